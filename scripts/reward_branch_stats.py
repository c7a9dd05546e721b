"""What the interpolation's reward branch draws, on a data-bin split (no training):

    python scripts/reward_branch_stats.py DATA [--split valid] [--checkpoint CKPT] [--reward bleu]
        [--lambdas 0,1,0] [--settings every-prefix:1 at-eos:1 at-eos:100 ...]

For each setting it samples the split once with ``--criterion interpolation``'s sampler at
``--lambdas`` and prints, for the tokens the reward branch chose: the share that occur in their
reference, and for the samples: the mean sentence score against the reference (``--reward bleu``:
sacrebleu's sentence BLEU; ``rouge``: rouge-score's ROUGE-L F1; both 0-100) and the mean length
against the reference's. A BLEU setting is BREVITY:C_R (``--bleu-brevity`` and
``--reward-sample-scale``); a ROUGE setting is C_R alone (ROUGE has no brevity penalty to move).
With ``--lambdas 0,1,0`` every token is the reward branch's and no model is read (``--checkpoint``
is then not needed); with a mixture such as 0.1,0.18,0.72 (where annealing ends on Multi30k) the
other tokens come from the checkpoint's model and the ground truth. A uniform draw over the
vocabulary is printed beside them as the floor. Seeded: the same command prints the same numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from types import SimpleNamespace
from typing import Dict, List, Tuple

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fairseq_erpo.algorithms import interpolation_branches, parse_lambdas  # noqa: E402
from fairseq_erpo.rewards import SpecialTokens, build_reward  # noqa: E402
from fairseq_erpo.diagnostics import BranchStatistics, uniform_hits  # noqa: E402
from fairseq_erpo.sampling import SequenceSampler  # noqa: E402


def load(data: str, split: str, checkpoint: str | None):
    from fairseq import checkpoint_utils, tasks
    import fairseq_erpo  # noqa: F401  (registers the task, criterions and models)
    if checkpoint:
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
            [checkpoint], arg_overrides={"data": data})
        model = models[0]
    else:
        from fairseq.dataclass.utils import convert_namespace_to_omegaconf
        from fairseq import options
        parser = options.get_training_parser()
        args = options.parse_args_and_arch(parser, [data, "--task", "erpo_translation",
                                                    "--arch", "lstm_erpo_iwslt_de_en"])
        cfg = convert_namespace_to_omegaconf(args)
        task = tasks.setup_task(cfg.task)
        model = task.build_model(cfg.model)
    task.load_dataset(split)
    model.eval()
    return task, model


def batches(task, split: str, batch_size: int):
    dataset = task.dataset(split)
    order = list(range(len(dataset)))
    for start in range(0, len(order), batch_size):
        yield dataset.collater([dataset[i] for i in order[start:start + batch_size]])


def measure(task, model, split: str, lambdas, reward: str, brevity: str, reward_scale: float, seed: int,
            batch_size: int = 64) -> Dict[str, float]:
    dictionary = task.target_dictionary
    special = SpecialTokens.from_dictionary(dictionary)
    rewards = {reward: build_reward(reward, dictionary, SimpleNamespace(bleu_brevity=brevity))}
    sampler = SequenceSampler(interpolation_branches(reward, 1.0, reward_scale), rewards, special,
                              bos=dictionary.bos(), vocab_size=len(dictionary))
    stats = BranchStatistics(metric=reward)
    for number, sample in enumerate(batches(task, split, batch_size)):
        torch.manual_seed(seed * 100_003 + number)  # the sampler's generator follows torch's seed
        stats.add(sampler.sample(model, sample, lambdas), sample["target"], special, branch=1)
    return {"reward_tokens": stats.branch_tokens, "reward_tokens_in_reference": stats.share_in_reference,
            "sentence_score": stats.mean_score, "length": stats.mean_length,
            "reference_length": stats.mean_reference_length}


def uniform_share(task, split: str) -> float:
    """The share of reference tokens for a uniform draw over the vocabulary less pad/bos/eos/unk."""
    dictionary = task.target_dictionary
    special = SpecialTokens.from_dictionary(dictionary)
    hits, total = 0.0, 0
    for sample in batches(task, split, 256):
        batch_hits, batch_total = uniform_hits(sample["target"], special, len(dictionary) - 4)
        hits, total = hits + batch_hits, total + batch_total
    return hits / max(total, 1)


def parse_setting(reward: str, setting: str) -> Tuple[str, float]:
    """BLEU: BREVITY:C_R -> (brevity, c_R); ROUGE: C_R -> ("every-prefix", c_R), the brevity unused."""
    brevity, _, scale = setting.rpartition(":") if reward == "bleu" else ("", "", setting)
    if reward == "bleu" and brevity not in ("every-prefix", "at-eos"):
        raise ValueError(f"setting {setting!r}: BLEU settings are BREVITY:C_R with BREVITY every-prefix or at-eos")
    try:
        value = float(scale)
    except ValueError:
        raise ValueError(f"setting {setting!r}: " + ("a ROUGE setting is the scale C_R alone, e.g. 100"
                                                     if reward != "bleu" else "C_R must be a number")) from None
    return brevity or "every-prefix", value


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--reward", default="bleu", choices=["bleu", "rouge"],
                        help="the reward branch's R: bleu (translation) or rouge (R-1 + R-2 + R-L, summarization)")
    parser.add_argument("--lambdas", default="0,1,0")
    parser.add_argument("--settings", nargs="+", default=None,
                        help="BLEU: BREVITY:C_R (default every-prefix:1 at-eos:1 at-eos:10 at-eos:100); "
                             "ROUGE: C_R (default 1 10 100)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    lambdas = parse_lambdas(args.lambdas)
    if lambdas[0] > 0 and not args.checkpoint:
        parser.error(f"--lambdas {args.lambdas} reads the model (lambda1 > 0): give --checkpoint")
    if args.split.startswith("test"):
        parser.error("the reward branch is a design choice: measure it on the validation split, not a test set")
    default = ["every-prefix:1", "at-eos:1", "at-eos:10", "at-eos:100"] if args.reward == "bleu" else ["1", "10", "100"]
    try:
        settings = [(setting, parse_setting(args.reward, setting)) for setting in args.settings or default]
    except ValueError as error:
        parser.error(f"--settings: {error}")
    task, model = load(args.data, args.split, args.checkpoint)
    rows = {}
    print(f"{args.split}, lambdas {args.lambdas}; uniform draw: share of reference tokens "
          f"{uniform_share(task, args.split):.4f}")
    score = "sentence BLEU" if args.reward == "bleu" else "ROUGE-L"
    print(f"{'setting':>18} {'reward tokens':>13} {'in reference':>12} {score:>13} {'length':>7} {'ref length':>10}")
    for setting, (brevity, scale) in settings:
        out = measure(task, model, args.split, lambdas, args.reward, brevity, scale, args.seed)
        rows[setting] = out
        print(f"{setting:>18} {out['reward_tokens']:>13d} {out['reward_tokens_in_reference']:>12.4f} "
              f"{out['sentence_score']:>13.2f} {out['length']:>7.2f} {out['reference_length']:>10.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"split": args.split, "reward": args.reward, "lambdas": args.lambdas, "checkpoint": args.checkpoint,
                       "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
