#!/usr/bin/env python3
"""Write a RAML samples file for ``--criterion raml --raml-samples-file`` (offline RAML, the
authors' setup): for every example of a fairseq data-bin's training split, in order, ``--samples``
targets drawn by this package's RAML sampler (n-gram replacement of Ma et al., or Norouzi et al.'s
Hamming sampler; the reference is the first sample unless --no-reference) and their reward R
against the reference (sentence BLEU in [0, 1] by default, as the authors' files hold).

    python scripts/raml_samples.py data-bin/iwslt14.de-en --output raml-samples.txt [--samples 10]
        [--sampler ngram|hamming] [--reward bleu|rouge] [--tau 0.4] [--seed 1]

The online criterion draws fresh samples every batch; a file fixes them for the whole run.
"""
import argparse
import logging
import sys
import warnings
from types import SimpleNamespace

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="fairseq data-bin folder (from scripts/prepare-*.sh)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--source-lang", default=None)
    parser.add_argument("--target-lang", default=None)
    parser.add_argument("--split", default="train")
    parser.add_argument("--samples", type=int, default=10, help="samples per example (--raml-samples)")
    parser.add_argument("--sampler", choices=["ngram", "hamming"], default="ngram")
    parser.add_argument("--reward", default="bleu", help="a --reward registry name (bleu, rouge)")
    parser.add_argument("--tau", type=float, default=0.4, help="the hamming sampler's temperature")
    parser.add_argument("--max-ngram", type=int, default=4)
    parser.add_argument("--no-reference", action="store_true", help="do not keep the reference as a sample")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")  # hydra's deprecation notices from fairseq's option parsing
    import fairseq_erpo  # noqa: F401  (registers the criterion and rewards)
    from fairseq import options, tasks
    from fairseq.criterions import build_criterion
    from fairseq.data import data_utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_erpo.compat import criterion_config
    from fairseq_erpo.raml_samples import write_entry

    langs = [a for flag, v in (("--source-lang", args.source_lang), ("--target-lang", args.target_lang)) if v
             for a in (flag, v)]
    fairseq_args = options.parse_args_and_arch(options.get_training_parser(),
                                               [args.data, "--task", "translation", "--arch", "lstm", *langs])
    task = tasks.setup_task(convert_namespace_to_omegaconf(fairseq_args).task)
    task.load_dataset(args.split)
    dataset = task.dataset(args.split)
    conf = criterion_config("raml", reward=args.reward, raml_samples=args.samples, raml_tau=args.tau,
                            raml_sampler=args.sampler, raml_max_ngram=args.max_ngram,
                            raml_no_reference=args.no_reference)
    raml = build_criterion(conf, SimpleNamespace(target_dictionary=task.target_dictionary,
                                                 source_dictionary=task.source_dictionary))
    src, tgt = task.source_dictionary, task.target_dictionary
    gen = torch.Generator().manual_seed(args.seed)
    with open(args.output, "w", encoding="utf-8") as out:
        for begin in range(0, len(dataset), args.batch_size):
            ids = range(begin, min(begin + args.batch_size, len(dataset)))
            refs = data_utils.collate_tokens([dataset.tgt[i] for i in ids], tgt.pad(), tgt.eos())
            targets = raml.draw_targets(refs, gen)
            rewards = raml.reward.score(targets, refs.repeat_interleave(args.samples, dim=0))
            rewards = rewards.view(-1, args.samples).tolist()
            for k, i in enumerate(ids):
                rows = targets[k * args.samples:(k + 1) * args.samples]
                write_entry(out, src.string(dataset.src[i]), [tgt.string(r, extra_symbols_to_ignore={tgt.pad()}) for r in rows],
                            rewards[k])
    print(f"{args.output}: {len(dataset)} entries x {args.samples} samples ({args.sampler}, R = {args.reward})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
