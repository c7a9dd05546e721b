#!/usr/bin/env python3
"""Scores of a ``fairseq-generate`` output file, as the paper computes them.

* BLEU: the paper reports multi-bleu.perl on tokenized, lowercased words; sacrebleu with
  ``tokenize="none"`` on the same whitespace tokens is that computation. ``--detok LANG`` adds
  sacrebleu's standard detokenized BLEU (Moses-detokenized hypotheses and references, 13a) with
  its signature.
* ROUGE (``--rouge``, summarization): mean ROUGE-1/2/L F1 x 100 (rouge-score, no stemming). rouge-score
  keeps ``[a-z0-9]`` tokens, so a hypothesis ``<unk>`` matches a reference ``<unk>`` (fairseq prints it
  ``<<unk>>``) as the word ``unk``. The ``*_no_unk_credit`` scores give no such match, as the rewards
  and the validation ROUGE do (a reference ``<unk>`` matches nothing; both still count in lengths).

Hypotheses and references are read from the H-/T- lines (after fairseq's ``--remove-bpe``/
post-processing, if any), ordered by sentence id.

    python scripts/score_generate.py GEN_OUT [--name LABEL] [--detok en] [--rouge] [--json]
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


def detokenized_bleu(hyps: List[str], refs: List[str], lang: str) -> Tuple[float, str]:
    """sacrebleu's default BLEU on Moses-detokenized text, and its signature."""
    from sacremoses import MosesDetokenizer
    detok = MosesDetokenizer(lang=lang)
    undo = lambda lines: [detok.detokenize(line.split(), unescape=True) for line in lines]  # noqa: E731
    metric = sacrebleu.metrics.BLEU()
    score = metric.corpus_score(undo(hyps), [undo(refs)])
    return score.score, str(metric.get_signature())


def rouge(hyps: List[str], refs: List[str], credit_unk: bool = True) -> Dict[str, float]:
    """Mean ROUGE-1/2/L F1 x 100; ``credit_unk=False``: ``<unk>`` never matches (distinct words on
    the two sides, so lengths are unchanged)."""
    from rouge_score import rouge_scorer
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    if not credit_unk:
        def rename(lines: List[str], word: str) -> List[str]:
            return [" ".join(word if w in ("<unk>", "<<unk>>") else w for w in line.split()) for line in lines]
        hyps, refs = rename(hyps, "unkhypothesis"), rename(refs, "unkreference")
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hyp, ref in zip(hyps, refs):
        for key, value in scorer.score(ref, hyp).items():
            totals[key] += value.fmeasure
    return {key: round(100 * value / len(hyps), 2) for key, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("gen_out")
    parser.add_argument("--name", default=None)
    parser.add_argument("--detok", metavar="LANG", default=None, help="also detokenized sacrebleu (target language)")
    parser.add_argument("--rouge", action="store_true", help="also ROUGE-1/2/L (summarization)")
    parser.add_argument("--json", action="store_true", help="print a JSON record instead")
    args = parser.parse_args()
    hyps, refs = read_generate_output(args.gen_out)
    record = {"name": args.name, "bleu": round(corpus_bleu(hyps, refs).score, 2), "sentences": len(hyps),
              "signature": "tokenize:none (multi-bleu on tokenized words)"}
    if args.detok:
        score, signature = detokenized_bleu(hyps, refs, args.detok)
        record.update(sacrebleu=round(score, 2), sacrebleu_signature=signature)
    if args.rouge:
        record.update(rouge(hyps, refs))
        record.update({f"{key}_no_unk_credit": value for key, value in rouge(hyps, refs, credit_unk=False).items()})
    if args.json:
        json.dump(record, sys.stdout)
        print()
    else:
        extra = "".join(f"\t{k} {record[k]}" for k in ("sacrebleu", "rouge1", "rouge2", "rougeL") if k in record)
        print(f"{args.name or args.gen_out}\t{record['bleu']:.2f}\t{len(hyps)} sentences{extra}")


if __name__ == "__main__":
    main()
