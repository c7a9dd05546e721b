#!/usr/bin/env python3
"""Reward speed, measured side by side in one run on the same pairs (a benchmark, not a test).

1. Sentence BLEU / ROUGE throughput (pairs per second): ours (batched, token ids) vs
   ``sacrebleu.sentence_bleu`` and ``rouge_score.RougeScorer`` on the same pairs as id strings.
2. One token-level dR step at batch 64, vocabulary 23K, reference length 30: ours (the whole
   vocabulary's increments from the carried state) vs the naive approach the authors' reference
   code takes: recompute sentence BLEU for the prefix, for the prefix + <unk> (standing for every
   token outside the reference) and for the prefix + each distinct reference token, per example.
   The literal "every vocabulary token" approach is also estimated from a timed sample.

References are real sentences (default: IWSLT14 de-en test, English side); hypotheses are other
references and perturbed copies (dropped, repeated, replaced, swapped words).

    python scripts/bench_rewards.py [--refs FILE] [--pairs 4096] [--threads 2]
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import time
from typing import Callable, List, Sequence, Tuple

import sacrebleu
import torch
from rouge_score import rouge_scorer

from fairseq_erpo.rewards import BleuReward, rouge_scores, sentence_bleu
from reward_pairs import SPECIAL, make_hypothesis, to_batch
DEFAULT_REFS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "iwslt14-de-en", "test.en")


def make_pairs(path: str, n: int, seed: int) -> Tuple[List[List[int]], List[List[int]]]:
    sents = [line.split() for line in open(path, encoding="utf-8") if line.strip()]
    vocab = {w: i + 4 for i, w in enumerate(sorted({w for s in sents for w in s}))}
    rng = random.Random(seed)
    hyps, refs = [], []
    for k in range(n):
        ref = [vocab[w] for w in sents[rng.randrange(len(sents))]][:60]
        other = [vocab[w] for w in sents[rng.randrange(len(sents))]][:60]
        hyps.append(make_hypothesis(ref, other, k, rng))
        refs.append(ref)
    return hyps, refs


def best_time(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def throughput(hyps, refs, batch_sizes: Sequence[int], sample: int) -> None:
    texts = [(" ".join(map(str, h)), " ".join(map(str, r))) for h, r in zip(hyps, refs)]
    sub = texts[:sample]
    t_sacre = best_time(lambda: [sacrebleu.sentence_bleu(h, [r], tokenize="none") for h, r in sub], 3)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    t_rouge = best_time(lambda: [scorer.score(r, h) for h, r in sub], 3)
    sacre_rate, rouge_rate = len(sub) / t_sacre, len(sub) / t_rouge
    print(f"sacrebleu.sentence_bleu: {sacre_rate:10.0f} pairs/s   rouge-score: {rouge_rate:10.0f} pairs/s"
          f"   ({len(sub)} pairs, one at a time)")
    print(f"{'batch':>6} {'ours BLEU pairs/s':>18} {'vs sacrebleu':>13} {'ours ROUGE pairs/s':>19} "
          f"{'vs rouge-score':>15}")
    for bsz in batch_sizes:
        batches = [(to_batch(hyps[i:i + bsz]), to_batch(refs[i:i + bsz]))
                   for i in range(0, len(hyps) - bsz + 1, bsz)]
        n = sum(h.size(0) for h, _ in batches)
        t_bleu = best_time(lambda: [sentence_bleu(h, r, SPECIAL) for h, r in batches])
        t_rouge_ours = best_time(lambda: [rouge_scores(h, r, SPECIAL) for h, r in batches])
        print(f"{bsz:>6} {n / t_bleu:>18.0f} {n / t_bleu / sacre_rate:>12.1f}x {n / t_rouge_ours:>19.0f} "
              f"{n / t_rouge_ours / rouge_rate:>14.1f}x")


def naive_step(prefixes: List[List[int]], refs: List[List[int]]) -> None:
    """The reference code's dR step: sentence BLEU for the prefix, prefix + <unk>, and prefix + v
    for every distinct reference token v (every other token shares the <unk> value)."""
    for prefix, ref in zip(prefixes, refs):
        ref_text = " ".join(map(str, ref))
        score = lambda seq: sacrebleu.sentence_bleu(" ".join(map(str, seq)), [ref_text],  # noqa: E731
                                                    tokenize="none", smooth_method="add-k").score
        base = score(prefix)
        score(prefix + [-1])
        for v in set(ref):
            score(prefix + [v]) - base


def dr_step(hyps, refs, batch: int, vocab: int, ref_len: int, steps: int) -> None:
    rng = random.Random(0)
    pool = [r for r in refs if len(r) >= ref_len] or refs
    ref_rows = [rng.choice(pool)[:ref_len] for _ in range(batch)]
    ref_rows = [[t % (vocab - 4) + 4 for t in r] for r in ref_rows]  # ids inside the vocabulary
    ref_t = to_batch(ref_rows)
    reward = BleuReward(SPECIAL, smooth="add-k")
    path = [[r[t] if rng.random() < 0.6 else rng.randrange(4, vocab) for t in range(ref_len)] for r in ref_rows]
    path_t = torch.tensor(path, dtype=torch.long)

    def ours(expand: bool) -> Callable[[], None]:
        def run() -> None:
            state = reward.start(ref_t)
            for t in range(steps):
                deltas = state.deltas()
                if expand:
                    deltas.expand(vocab)
                state.advance(path_t[:, t])
        return run

    t_compact = best_time(ours(False), 3) / steps
    t_dense = best_time(ours(True), 3) / steps
    naive_times = []
    for t in (1, steps // 2, steps - 1):  # prefix lengths early, middle, late
        prefixes = [p[:t] for p in path]
        naive_times.append(best_time(lambda: naive_step(prefixes, ref_rows), 1))
    t_naive = statistics.mean(naive_times)
    # literal naive: one sentence BLEU per vocabulary token per example; timed on 500 calls
    one_call = best_time(lambda: [sacrebleu.sentence_bleu(" ".join(map(str, path[0][:15])),
                                                          [" ".join(map(str, ref_rows[0]))],
                                                          tokenize="none") for _ in range(500)], 1) / 500
    t_full = one_call * batch * vocab
    print(f"dR step, batch {batch}, vocab {vocab}, reference length {ref_len} (mean over {steps} steps):")
    print(f"  ours, compact (ref-token values + shared value): {t_compact * 1e3:8.3f} ms")
    print(f"  ours, expanded to [batch, vocab]:               {t_dense * 1e3:8.3f} ms")
    print(f"  naive, reference-code approach (sacrebleu, |unique ref tokens| + 2 per example): "
          f"{t_naive * 1e3:8.1f} ms -> ours {t_naive / t_compact:6.0f}x faster "
          f"({t_naive / t_dense:.0f}x expanded)")
    print(f"  naive, every vocabulary token (estimated from {one_call * 1e6:.0f} us per call): "
          f"{t_full:8.1f} s -> ours {t_full / t_dense:,.0f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--refs", default=DEFAULT_REFS, help="tokenized reference sentences, one per line")
    parser.add_argument("--pairs", type=int, default=4096)
    parser.add_argument("--sample", type=int, default=2000, help="pairs timed with the reference libraries")
    parser.add_argument("--batch-sizes", default="64,256,1024")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not os.path.exists(args.refs):
        sys.exit(f"--refs {args.refs}: not found; pass a file of tokenized sentences")
    logging.getLogger("sacrebleu").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    hyps, refs = make_pairs(args.refs, args.pairs, seed=1)
    mean_len = statistics.mean(len(r) for r in refs)
    print(f"torch {torch.__version__}, {args.threads} threads, sacrebleu {sacrebleu.__version__}; "
          f"{len(hyps)} pairs from {os.path.normpath(args.refs)} (mean reference length {mean_len:.1f})")
    throughput(hyps, refs, [int(b) for b in args.batch_sizes.split(",")], args.sample)
    dr_step(hyps, refs, batch=64, vocab=23000, ref_len=30, steps=30)


if __name__ == "__main__":
    main()
