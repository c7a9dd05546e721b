"""``--criterion raml``: reward-augmented maximum likelihood (Norouzi et al., 2016; paper section 3.3
and appendix C.2), the ERPO point (R, alpha -> 0, beta = tau).

For each example, ``--raml-samples`` targets are drawn online, fresh for every batch, from an
approximation of the exponentiated-reward distribution:

* ``ngram`` (Ma et al., 2017; the paper's choice): pick n uniformly in 1..min(T - 1, 4) and a start
  position that leaves the last word alone, and replace those n words with uniform non-special
  tokens;
* ``hamming`` (Norouzi et al.): draw the number of substitutions e with probability proportional
  to C(T, e) (V' - 1)^e exp(-e / tau) (the exponentiated negative Hamming distance, V' non-special
  tokens), then e distinct positions uniformly, each replaced by a uniform non-special token
  different from the reference's.

The reference itself is one of the samples unless ``--raml-no-reference`` (the authors' code keeps
it). Each example's samples are weighted by softmax(R / tau) with R from the reward registry (BLEU
for translation, ROUGE for summarization), and the loss is the weighted NLL. Everything is batched
on the model's device; the encoder runs once per example and its output is reordered for the
samples.

``--raml-resample M`` trains on M targets per example drawn (with replacement) from the example's
samples in proportion to their weights, each with weight 1/M, instead of on all of them weighted
(sampling-importance-resampling). Given the samples, its loss and gradient equal the weighted ones
in expectation; the decoder and output layer run on M instead of ``--raml-samples`` targets per
example, so M = 1 costs what MLE costs per update, at the price of a noisier gradient.
"""
import math
from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch
from fairseq.criterions import register_criterion
from fairseq.criterions.cross_entropy import CrossEntropyCriterion
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from torch import Tensor

from ..raml_samples import OfflineSamples
from ..rewards import SpecialTokens, build_reward
from ..sampling import UpdateSeededGenerator, prev_output_tokens
from .erpo import SamplingConfig, logged_total
from .repeated_sources import repeat_encoder_out


@dataclass
class RamlConfig(SamplingConfig):
    reward: str = field(default="bleu", metadata={"help": "R of the weights: bleu for MT, rouge for summarization"})
    raml_samples: int = field(default=10, metadata={"help": "targets per example (including the reference)"})
    raml_tau: float = field(default=0.4, metadata={"help": "temperature tau of the weights softmax(R / tau); > 0"})
    raml_sampler: ChoiceEnum(["ngram", "hamming"]) = field(default="ngram", metadata={
        "help": "ngram: Ma et al.'s n-gram replacement; hamming: Norouzi et al.'s Hamming-distance sampler"})
    raml_max_ngram: int = field(default=4, metadata={"help": "largest n of the ngram sampler"})
    raml_no_reference: bool = field(default=False, metadata={
        "help": "draw every sample (default: the reference is one of the samples, as in the authors' code)"})
    raml_resample: int = field(default=0, metadata={
        "help": "train on this many of each example's samples, drawn with replacement by their weights "
                "(the same loss in expectation at M / --raml-samples of the decoder cost); 0: all, weighted"})
    raml_samples_file: Optional[str] = field(default=None, metadata={
        "help": "offline mode: read each training example's samples and rewards from this file (the "
                "authors' format, written by scripts/raml_samples.py) instead of sampling online"})


def hamming_log_weights(lengths: Tensor, vocab: int, tau: float) -> Tensor:
    """[B, Lmax + 1] log of C(T, e) (vocab - 1)^e exp(-e / tau) for e = 0..T (-inf past T)."""
    e = torch.arange(int(lengths.max()) + 1, device=lengths.device, dtype=torch.float64)
    t = lengths.double().unsqueeze(1)
    log_choose = torch.lgamma(t + 1) - torch.lgamma(e + 1) - torch.lgamma((t - e).clamp(min=0) + 1)
    out = log_choose + e * math.log(vocab - 1) - e / tau
    return torch.where(e <= t, out, torch.full_like(out, -math.inf))


@register_criterion("raml", dataclass=RamlConfig)
class RamlCriterion(CrossEntropyCriterion):
    def __init__(self, task, cfg: RamlConfig):
        super().__init__(task, cfg.sentence_avg)
        if cfg.raml_samples < 1:
            raise ValueError(f"--raml-samples must be >= 1, got {cfg.raml_samples}")
        if not cfg.raml_tau > 0:
            raise ValueError(f"--raml-tau must be > 0, got {cfg.raml_tau}")
        if cfg.raml_resample < 0:
            raise ValueError(f"--raml-resample must be >= 0 (0 trains on every sample), got {cfg.raml_resample}")
        if cfg.raml_max_ngram < 1:
            raise ValueError(f"--raml-max-ngram must be >= 1, got {cfg.raml_max_ngram}")
        dictionary = getattr(task, "target_dictionary", None)
        self.reward = build_reward(cfg.reward, dictionary, cfg)
        if len(dictionary) - dictionary.nspecial < 2:
            raise ValueError("--criterion raml: the target dictionary needs at least 2 non-special tokens")
        self.special = SpecialTokens.from_dictionary(dictionary)
        self.first_word, self.vocab_size = dictionary.nspecial, len(dictionary)
        self.cfg = cfg
        self._rng = UpdateSeededGenerator(salt=0x4A)
        self.offline: Optional[OfflineSamples] = None
        if cfg.raml_samples_file:
            try:
                self.offline = OfflineSamples(cfg.raml_samples_file, dictionary, cfg.raml_samples)
            except OSError as err:
                raise ValueError(f"--raml-samples-file {cfg.raml_samples_file}: cannot read it ({err.strerror}); "
                                 "write one with scripts/raml_samples.py") from None
        self._checked_file = False

    # -- the samplers ------------------------------------------------------------------------------
    def word_lengths(self, refs: Tensor) -> Tensor:
        return ((refs != self.special.pad) & (refs != self.special.eos)).sum(1)

    def random_words(self, shape, gen: torch.Generator, device) -> Tensor:
        return torch.randint(self.first_word, self.vocab_size, shape, generator=gen, device=device)

    def ngram_replace(self, refs: Tensor, gen: torch.Generator) -> Tensor:
        """One Ma et al. sample per row of ``refs`` ([R, L], EOS-terminated)."""
        lengths = self.word_lengths(refs)
        top = (lengths - 1).clamp(min=0).clamp(max=self.cfg.raml_max_ngram)  # n in 1..top
        u = torch.rand(refs.size(0), 2, generator=gen, device=refs.device, dtype=torch.float64)
        n = 1 + torch.floor(u[:, 0] * top).long()
        start = torch.floor(u[:, 1] * (lengths - n).clamp(min=0)).long()  # the last word stays
        pos = torch.arange(refs.size(1), device=refs.device).unsqueeze(0)
        replace = (pos >= start.unsqueeze(1)) & (pos < (start + n).unsqueeze(1)) & (top > 0).unsqueeze(1)
        return torch.where(replace, self.random_words(refs.shape, gen, refs.device), refs)

    def hamming_replace(self, refs: Tensor, gen: torch.Generator) -> Tensor:
        """One Norouzi et al. sample per row: e ~ C(T,e)(V'-1)^e exp(-e/tau), e distinct positions."""
        lengths = self.word_lengths(refs)
        log_w = hamming_log_weights(lengths, self.vocab_size - self.first_word, self.cfg.raml_tau)
        edits = torch.multinomial(torch.softmax(log_w, dim=1), 1, generator=gen).squeeze(1)
        keys = torch.rand(refs.shape, generator=gen, device=refs.device)
        pos = torch.arange(refs.size(1), device=refs.device).unsqueeze(0)
        keys = keys.masked_fill(pos >= lengths.unsqueeze(1), 2.0)  # only word positions are chosen
        rank = keys.argsort(dim=1).argsort(dim=1)
        replace = rank < edits.unsqueeze(1)
        # a uniform non-special token different from the reference's (draw among V' - 1, skip it);
        # a special reference token (<unk>) may become any of the V' words
        draw = torch.randint(self.first_word, self.vocab_size - 1, refs.shape, generator=gen, device=refs.device)
        other = torch.where((draw >= refs) & (refs >= self.first_word), draw + 1, draw)
        other = torch.where(refs >= self.first_word, other, self.random_words(refs.shape, gen, refs.device))
        return torch.where(replace, other, refs)

    def draw_targets(self, refs: Tensor, gen: torch.Generator) -> Tensor:
        """[B * S, L]: S targets per example, example-major (the reference first unless excluded)."""
        samples = self.cfg.raml_samples
        expanded = refs.repeat_interleave(samples, dim=0)
        drawn = self.ngram_replace(expanded, gen) if self.cfg.raml_sampler == "ngram" else \
            self.hamming_replace(expanded, gen)
        if not self.cfg.raml_no_reference:
            first = (torch.arange(expanded.size(0), device=refs.device) % samples == 0).unsqueeze(1)
            drawn = torch.where(first, expanded, drawn)
        return drawn

    def weights(self, targets: Tensor, refs: Tensor) -> Tuple[Tensor, Tensor]:
        """softmax(R / tau) within each example's samples, and R; both [B, S]."""
        samples = self.cfg.raml_samples
        reward = self.reward.score(targets, refs.repeat_interleave(samples, dim=0)).view(-1, samples)
        return torch.softmax(reward / self.cfg.raml_tau, dim=1), reward

    def resample(self, targets: Tensor, weights: Tensor, gen: torch.Generator) -> Tuple[Tensor, Tensor]:
        """``--raml-resample M``: M of each example's S targets drawn with replacement with probability
        ``weights`` ([B, S]), example-major, and their loss weights 1/M ([B, M]), so that the expected
        loss is the weighted sum over all S targets."""
        m = self.cfg.raml_resample
        pick = torch.multinomial(weights.float(), m, replacement=True, generator=gen)  # [B, M]
        rows = pick + torch.arange(weights.size(0), device=pick.device).unsqueeze(1) * weights.size(1)
        return targets[rows.view(-1)], torch.full(pick.shape, 1.0 / m, dtype=weights.dtype, device=pick.device)

    def file_targets(self, sample: dict) -> Tuple[Tensor, Tensor]:
        """Offline mode: the batch's samples and rewards from the samples file (checked against the
        training data on the first batch)."""
        if not self._checked_file:
            train = getattr(self.task, "datasets", {}).get("train")
            if train is not None and len(train) != len(self.offline):
                raise ValueError(f"--raml-samples-file {self.cfg.raml_samples_file} has {len(self.offline)} entries, "
                                 f"the training data {len(train)} examples: write it from the same training split "
                                 "(scripts/raml_samples.py)")
            src = self.task.source_dictionary
            sources = [src.string(row, extra_symbols_to_ignore={src.pad()})
                       for row in sample["net_input"]["src_tokens"]]
            self.offline.check_sources(sample["id"], sources, src)
            self._checked_file = True
        return self.offline.batch(sample["id"], self.padding_idx)

    # -- the loss ------------------------------------------------------------------------------------
    def forward(self, model, sample, reduce=True):
        if not model.training:
            return super().forward(model, sample, reduce=reduce)
        refs, net_input = sample["target"], sample["net_input"]
        gen = self._rng.get(refs.device)
        with torch.no_grad():
            if self.offline is not None:
                targets, reward = self.file_targets(sample)
                weights = torch.softmax(reward / self.cfg.raml_tau, dim=1)
            else:
                targets = self.draw_targets(refs, gen)
                weights, reward = self.weights(targets, refs)
            loss_weights = weights
            if self.cfg.raml_resample:
                targets, loss_weights = self.resample(targets, weights, gen)
        prev = prev_output_tokens(targets, self.special.eos, self.special.pad)
        encoder_out = model.encoder(net_input["src_tokens"], src_lengths=net_input["src_lengths"])
        encoder_out = repeat_encoder_out(model, encoder_out, refs.size(0), loss_weights.size(1))
        net_output = model.decoder(prev, encoder_out=encoder_out)
        lprobs = model.get_normalized_probs(net_output, log_probs=True)
        nll = -lprobs.gather(2, targets.unsqueeze(2)).squeeze(2)
        nll = nll.masked_fill(targets == self.padding_idx, 0.0).sum(1)  # per sample
        loss = (loss_weights.view(-1).to(nll.dtype) * nll).sum()
        sample_size = refs.size(0) if self.sentence_avg else sample["ntokens"]
        log = {"loss": loss.data, "ntokens": sample["ntokens"], "nsentences": refs.size(0),
               "sample_size": sample_size, "raml_reward": float(reward.mean(1).sum()),
               "raml_max_weight": float(weights.max(1).values.sum())}
        return loss, sample_size, log

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        sentences = logged_total(logging_outputs, "nsentences")
        if any("raml_reward" in log for log in logging_outputs) and sentences:
            for key in ("raml_reward", "raml_max_weight"):
                metrics.log_scalar(key, logged_total(logging_outputs, key) / sentences,
                                   sentences, round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
