"""Small real pieces for sampler/criterion tests: the synthetic task, a tiny LSTM, a toy model."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from conftest import DATA_BIN
from fairseq_erpo.rewards import SpecialTokens

TOY_SPECIAL = SpecialTokens(pad=1, eos=2, unk=3)  # fairseq's layout: bos 0, pad 1, eos 2, unk 3


class ToyDictionary:
    """Enough of a fairseq Dictionary for the rewards: special ids, size and training counts."""

    def __init__(self, size: int = 12):
        self.size = size
        self.nspecial = 4
        self.count = [0] * 4 + [10 + i for i in range(size - 4)]

    def __len__(self) -> int:
        return self.size

    def bos(self) -> int:
        return 0

    def pad(self) -> int:
        return 1

    def eos(self) -> int:
        return 2

    def unk(self) -> int:
        return 3


class ToyModel(nn.Module):
    """log p(. | y_<t, x) = log_softmax(W[last token] + b[source row id]): depends on the prefix and
    the source, cheap to evaluate by hand. Source ids are a per-row integer in src_tokens[:, 0]."""

    def __init__(self, vocab: int, seed: int = 0, eos_bias: float = 0.0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(vocab, vocab, generator=gen))
        self.source_bias = nn.Parameter(torch.randn(64, vocab, generator=gen))
        self.eos_bias = eos_bias
        self.encoder = _ToyEncoder()
        self.decoder = _ToyDecoder(self)
        self.decoder_calls = 0

    def log_probs(self, prev_token: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        logits = self.table[prev_token] + self.source_bias[source]
        logits[:, 2] += self.eos_bias
        return torch.log_softmax(logits, dim=-1)

    def get_normalized_probs(self, net_output, log_probs: bool = True, sample=None):
        return torch.log_softmax(net_output[0], dim=-1)


class _ToyEncoder(nn.Module):
    def forward_torchscript(self, net_input):
        return net_input["src_tokens"][:, 0]


class _ToyDecoder(nn.Module):
    def __init__(self, model: ToyModel):
        super().__init__()
        self.__dict__["model"] = model  # not a submodule (no recursion)

    def extract_features(self, prev_output_tokens, encoder_out=None, incremental_state=None):
        self.model.decoder_calls += 1
        # the "features" are the logits themselves; output_layer is the identity
        return self.model.log_probs(prev_output_tokens[:, -1], encoder_out).unsqueeze(1), None

    def output_layer(self, features):
        return features


def toy_sample(refs, sources: Optional[torch.Tensor] = None) -> dict:
    bsz = refs.size(0)
    src = sources if sources is not None else torch.arange(bsz) % 64
    return {"net_input": {"src_tokens": src.unsqueeze(1), "src_lengths": torch.ones(bsz, dtype=torch.long)},
            "target": refs, "ntokens": int((refs != 1).sum()), "nsentences": bsz, "id": torch.arange(bsz)}


def synthetic_task(task_name: str = "translation", *flags: str, **overrides):
    """The fairseq task on data-bin/synthetic, configured as fairseq-train would be with ``flags``
    (e.g. "--decoder-learned-pos") and ``overrides`` ({"--arch": "transformer"})."""
    from fairseq import tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq import options

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(DATA_BIN), "--task", task_name, "--arch",
                                                "lstm_erpo_iwslt_de_en", "--optimizer", "adam",
                                                "--user-dir", "fairseq_erpo", "--seed", "1",
                                                *flags, *[a for k, v in overrides.items() for a in (k, v)]])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    return task, cfg


def first_batch(task, split: str = "train", max_sentences: int = 16) -> dict:
    task.load_dataset(split)
    itr = task.get_batch_iterator(task.dataset(split), max_sentences=max_sentences, seed=1,
                                  required_batch_size_multiple=1).next_epoch_itr(shuffle=False)
    return next(iter(itr))


def no_dropout_model(task, cfg):
    """The task's model in training mode with every dropout rate 0 (deterministic losses)."""
    model = task.build_model(cfg.model).train()
    for module in model.modules():  # fairseq's LSTM applies dropout functionally: zero every rate
        for name in ("p", "dropout_in", "dropout_out"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)
    return model


def summarization_bin(folder: Path) -> Path:
    """The embedded corpus as summarization data (article -> title, as scripts/prepare-gigaword.sh
    names it): the recipes detect it by dict.title.txt."""
    source = DATA_BIN
    folder.mkdir()
    for lang, role in (("syn", "article"), ("en", "title")):
        (folder / f"dict.{role}.txt").symlink_to(source / f"dict.{lang}.txt")
        for split in ("train", "valid", "test"):
            for ext in ("bin", "idx"):
                (folder / f"{split}.article-title.{role}.{ext}").symlink_to(source / f"{split}.syn-en.{lang}.{ext}")
    return folder
