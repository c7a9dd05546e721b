"""ROUGE-1/2/L F1 on token ids == rouge-score (no stemming, on the id strings), to 1e-6."""
from __future__ import annotations

import pytest
import torch
from rouge_score import rouge_scorer

from fairseq_erpo.rewards import RougeReward, rouge_scores, rouge_sum
from reward_data import REAL_SUMMARIES, SPECIAL, as_text, random_pairs, real_pairs, to_batch

SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)


def reference_scores(hyps, refs):
    rows = [SCORER.score(as_text(r, True), as_text(h, False)) for h, r in zip(hyps, refs)]
    return {k: torch.tensor([row[k].fmeasure for row in rows], dtype=torch.float64)
            for k in ("rouge1", "rouge2", "rougeL")}


@pytest.mark.parametrize("source", ["random", "gigaword"])
def test_matches_rouge_score(source, reward_kernels):
    if source == "random":
        hyps, refs = random_pairs(1500, seed=21)
    else:
        hyps, refs = real_pairs(REAL_SUMMARIES, n=1500, seed=5)
    ours = rouge_scores(to_batch(hyps), to_batch(refs), SPECIAL)
    theirs = reference_scores(hyps, refs)
    for key in theirs:
        assert (ours[key] - theirs[key]).abs().max().item() < 1e-6, key
        assert theirs[key].mean() > 0.05  # overlapping pairs: LCS and n-grams really exercised


def test_reward_is_the_sum_of_the_three():
    hyps, refs = random_pairs(100, seed=1)
    h, r = to_batch(hyps), to_batch(refs)
    parts = rouge_scores(h, r, SPECIAL)
    total = parts["rouge1"] + parts["rouge2"] + parts["rougeL"]
    assert torch.equal(rouge_sum(h, r, SPECIAL), total)
    assert torch.equal(RougeReward(SPECIAL).score(h, r), total)
    assert rouge_sum(to_batch([[5, 6, 7]]), to_batch([[5, 6, 7]]), SPECIAL).item() == pytest.approx(3.0)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="refs: batch size"):
        rouge_sum(to_batch([[5], [6]]), to_batch([[5]]), SPECIAL)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    hyps, refs = random_pairs(300, seed=2)
    cpu = rouge_sum(to_batch(hyps), to_batch(refs), SPECIAL)
    gpu = rouge_sum(to_batch(hyps).cuda(), to_batch(refs).cuda(), SPECIAL)
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-9, rtol=0)
