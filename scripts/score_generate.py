#!/usr/bin/env python3
"""Corpus BLEU of a ``fairseq-generate`` output file, as the paper computes it.

The paper reports multi-bleu.perl on tokenized, lowercased words; sacrebleu with
``tokenize="none"`` on the same whitespace tokens is that computation. Hypotheses and references
are read from the H-/T- lines (after fairseq's ``--remove-bpe``/post-processing, if any), ordered by
sentence id.

    python scripts/score_generate.py GEN_OUT [--name LABEL] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Tuple

import sacrebleu


def read_generate_output(path: str) -> Tuple[List[str], List[str]]:
    """(hypotheses, references) from a fairseq-generate log, sorted by sentence id."""
    hyps: Dict[int, str] = {}
    refs: Dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            tag, _, rest = line.rstrip("\n").partition("\t")
            if tag.startswith("H-"):
                hyps[int(tag[2:])] = rest.split("\t", 1)[1] if "\t" in rest else ""
            elif tag.startswith("T-"):
                refs[int(tag[2:])] = rest
    if not hyps or set(hyps) != set(refs):
        raise SystemExit(f"{path}: no H-/T- pairs (is it fairseq-generate output?)")
    ids = sorted(hyps)
    return [hyps[i] for i in ids], [refs[i] for i in ids]


def corpus_bleu(hyps: List[str], refs: List[str]) -> sacrebleu.metrics.bleu.BLEUScore:
    # force: the inputs are tokenized on purpose (multi-bleu equivalent), silence the warning
    return sacrebleu.corpus_bleu(hyps, [refs], tokenize="none", force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("gen_out")
    parser.add_argument("--name", default=None)
    parser.add_argument("--json", action="store_true", help="print a JSON record instead")
    args = parser.parse_args()
    hyps, refs = read_generate_output(args.gen_out)
    bleu = corpus_bleu(hyps, refs)
    if args.json:
        json.dump({"name": args.name, "bleu": round(bleu.score, 2), "sentences": len(hyps),
                   "signature": "tokenize:none"}, sys.stdout)
        print()
    else:
        print(f"{args.name or args.gen_out}\t{bleu.score:.2f}\t{len(hyps)} sentences")


if __name__ == "__main__":
    main()
