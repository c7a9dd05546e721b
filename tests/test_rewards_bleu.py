"""Sentence BLEU on token ids == sacrebleu.sentence_bleu(tokenize="none"), exactly."""
from __future__ import annotations

import logging

import pytest
import sacrebleu
import torch

from fairseq_erpo.rewards import BleuReward, sentence_bleu
from reward_data import REAL_MT, SPECIAL, as_text, random_pairs, real_pairs, to_batch

logging.getLogger("sacrebleu").setLevel(logging.ERROR)  # effective_order=False warns per call
SMOOTHING = ["none", "floor", "add-k", "exp"]


def sacrebleu_scores(hyps, refs, smooth, effective_order=True):
    metric = sacrebleu.BLEU(tokenize="none", smooth_method=smooth, effective_order=effective_order)
    return torch.tensor([metric.sentence_score(as_text(h, False), [as_text(r, True)]).score
                         for h, r in zip(hyps, refs)], dtype=torch.float64)


@pytest.mark.parametrize("smooth", SMOOTHING)
@pytest.mark.parametrize("effective_order", [True, False])
def test_random_pairs_match_sacrebleu(smooth, effective_order, reward_kernels):
    hyps, refs = random_pairs(1500, seed=11)
    ours = sentence_bleu(to_batch(hyps), to_batch(refs), SPECIAL, smooth=smooth,
                         effective_order=effective_order)
    theirs = sacrebleu_scores(hyps, refs, smooth, effective_order)
    assert (ours - theirs).abs().max().item() < 1e-6
    assert (theirs > 0).sum() > 100 and (theirs == 0).sum() > 20  # both regimes are exercised


@pytest.mark.parametrize("smooth", SMOOTHING)
def test_real_pairs_match_sacrebleu(smooth, reward_kernels):
    hyps, refs = real_pairs(REAL_MT, n=2000, seed=3)
    ours = sentence_bleu(to_batch(hyps), to_batch(refs), SPECIAL, smooth=smooth)
    theirs = sacrebleu_scores(hyps, refs, smooth)
    assert (ours - theirs).abs().max().item() < 1e-6
    assert theirs.mean() > 20  # mostly overlapping pairs: the n-gram counting is really tested


def test_agrees_with_sacrebleu_function_defaults():
    hyps, refs = random_pairs(200, seed=5)
    ours = sentence_bleu(to_batch(hyps), to_batch(refs), SPECIAL)
    theirs = [sacrebleu.sentence_bleu(as_text(h, False), [as_text(r, True)], tokenize="none").score
              for h, r in zip(hyps, refs)]
    assert torch.allclose(ours, torch.tensor(theirs, dtype=torch.float64), atol=1e-6, rtol=0)


def test_known_values():
    ref = [[5, 6, 7, 8, 9]]
    assert sentence_bleu(to_batch(ref), to_batch(ref), SPECIAL).item() == pytest.approx(100.0)
    assert sentence_bleu(to_batch([[]]), to_batch(ref), SPECIAL).item() == 0.0
    # reference <unk> never matches, not even a hypothesis <unk>
    unk = [[SPECIAL.unk, SPECIAL.unk]]
    assert sentence_bleu(to_batch(unk), to_batch(unk), SPECIAL, smooth="none").item() == 0.0


def test_large_vocabulary_ids_are_exact(reward_kernels):
    hyps, refs = random_pairs(300, seed=8)
    shift = lambda seqs: [[t + 60000 if t >= 4 else t for t in s] for s in seqs]  # noqa: E731
    big = sentence_bleu(to_batch(shift(hyps)), to_batch(shift(refs)), SPECIAL)
    small = sentence_bleu(to_batch(hyps), to_batch(refs), SPECIAL)
    assert torch.equal(big, small)


def test_padding_and_eos_layout_do_not_matter():
    hyps, refs = random_pairs(100, seed=9)
    with_eos = sentence_bleu(to_batch(hyps), to_batch(refs), SPECIAL)
    no_eos = sentence_bleu(to_batch(hyps, eos=False), to_batch(refs, eos=False), SPECIAL)
    wide = torch.nn.functional.pad(to_batch(hyps), (0, 7), value=SPECIAL.pad)
    assert torch.equal(with_eos, no_eos)
    assert torch.equal(with_eos, sentence_bleu(wide, to_batch(refs), SPECIAL))


def test_reward_scale_and_default_smoothing():
    hyps, refs = random_pairs(50, seed=4)
    reward = BleuReward(SPECIAL)
    expected = 0.01 * sentence_bleu(to_batch(hyps), to_batch(refs), SPECIAL, smooth="add-k")
    assert torch.allclose(reward.score(to_batch(hyps), to_batch(refs)), expected, atol=0, rtol=0)


@pytest.mark.parametrize("bad, message", [
    (lambda h, r: (h, r[:-1]), "refs: batch size"),
    (lambda h, r: (h - 10, r), "hyps: negative token id"),
    (lambda h, r: (h[:0], r[:0]), "hyps: empty batch"),
    (lambda h, r: (h.float(), r), "hyps: expected integer"),
    (lambda h, r: (h, r[0]), "refs: expected shape"),
])
def test_bad_input_names_the_argument(bad, message):
    hyps, refs = to_batch([[5, 6], [7]]), to_batch([[5], [6, 7]])
    with pytest.raises(ValueError, match=message):
        sentence_bleu(*bad(hyps, refs), SPECIAL)


def test_bad_smoothing_names_the_option():
    with pytest.raises(ValueError, match="--bleu-smooth 'lin'"):
        BleuReward(SPECIAL, smooth="lin")
    with pytest.raises(ValueError, match="--bleu-smooth-value"):
        BleuReward(SPECIAL, smooth="floor", smooth_value=0)


def test_compiled_sentence_stats_equal_the_torch_path():
    from fairseq_erpo.rewards import cpu_kernels
    from fairseq_erpo.rewards.ngrams import clipped_ngram_matches, mask_hypotheses, mask_references
    hyps, refs = random_pairs(400, seed=12)
    hyps, refs = to_batch(hyps), to_batch(refs)
    stats = cpu_kernels.sentence_stats(hyps, refs, SPECIAL.pad, SPECIAL.eos, SPECIAL.unk, 4)
    assert stats is not None  # the compiled path is what CPU callers get
    previous = cpu_kernels.set_enabled(False)
    try:
        hyp_ids, hyp_len = mask_hypotheses(hyps, SPECIAL)
        ref_ids, ref_len = mask_references(refs, SPECIAL)
        correct, _, _ = clipped_ngram_matches(hyp_ids, hyp_len, ref_ids, ref_len, 4)
    finally:
        cpu_kernels.set_enabled(previous)
    assert correct.sum() > 0
    for got, expected in zip(stats, (correct, hyp_len, ref_len)):
        assert torch.equal(got, expected)


@pytest.mark.parametrize("smooth", SMOOTHING)
@pytest.mark.parametrize("effective_order", [True, False])
def test_compiled_closed_form_equals_the_torch_path(smooth, effective_order):
    """cpu_kernels.bleu_scores is bleu_from_stats row by row: the same scores, to libm's rounding,
    on statistics with no match, orders without n-grams, empty hypotheses and the [B, L, N]
    candidate layout of the token-level increments."""
    from fairseq_erpo.rewards import cpu_kernels
    from fairseq_erpo.rewards.bleu import bleu_from_stats
    gen = torch.Generator().manual_seed(21)
    total = torch.randint(0, 7, (60, 9, 4), generator=gen).sort(dim=-1, descending=True).values
    correct = (torch.rand(60, 9, 4, generator=gen) * (total + 1)).floor().long().clamp(max=total)
    correct[::5] = 0  # nothing matches: BLEU 0 before smoothing
    sys_len = total[..., 0] + torch.randint(0, 2, (60, 9), generator=gen)
    sys_len[::7, 0] = 0
    ref_len = torch.randint(0, 14, (60, 1), generator=gen).expand(60, 9)
    compiled = bleu_from_stats(correct, total, sys_len, ref_len, smooth, None, effective_order)
    assert cpu_kernels.bleu_scores(correct, total, sys_len, ref_len, smooth, 1.0, effective_order) is not None
    previous = cpu_kernels.set_enabled(False)
    try:
        plain = bleu_from_stats(correct, total, sys_len, ref_len, smooth, None, effective_order)
    finally:
        cpu_kernels.set_enabled(previous)
    assert compiled.shape == plain.shape == (60, 9) and compiled.dtype == torch.float64
    assert int((plain > 0).sum()) > 50 and bool((plain == 0).any())
    assert torch.equal(compiled == 0, plain == 0)
    assert torch.allclose(compiled, plain, rtol=1e-13, atol=1e-13)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    hyps, refs = random_pairs(500, seed=2)
    cpu = sentence_bleu(to_batch(hyps), to_batch(refs), SPECIAL)
    gpu = sentence_bleu(to_batch(hyps).cuda(), to_batch(refs).cuda(), SPECIAL)
    assert gpu.is_cuda and torch.allclose(gpu.cpu(), cpu, atol=1e-9, rtol=0)


def test_one_thread_runs_the_serial_twin_of_each_kernel():
    """Under one torch thread (OMP_NUM_THREADS=1 training runs) the kernels run without numba's
    thread pool, whose spinning OpenMP worker slowed such runs 16-fold; results are identical."""
    from fairseq_erpo.rewards import cpu_kernels
    if cpu_kernels.numba is None:
        pytest.skip("numba is not installed: the torch path is the only one")
    hyps, refs = random_pairs(300, seed=13)
    hyps, refs = to_batch(hyps), to_batch(refs)
    threads = torch.get_num_threads()
    results = {}
    try:
        for n in (2, 1):
            torch.set_num_threads(n)
            results[n] = cpu_kernels.sentence_stats(hyps, refs, SPECIAL.pad, SPECIAL.eos, SPECIAL.unk, 4)
            assert (cpu_kernels._variant(cpu_kernels._sentence_stats) is cpu_kernels._sentence_stats) == (n > 1)
    finally:
        torch.set_num_threads(threads)
    serial = cpu_kernels._serial[cpu_kernels._sentence_stats]
    assert not serial.targetoptions.get("parallel")
    assert all(torch.equal(a, b) for a, b in zip(results[1], results[2]))
