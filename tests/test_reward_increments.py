"""Token-level increments dR(v | y_<t, y*) over the whole vocabulary (paper Eq. 3-4), checked by
brute force: R(prefix + v) - R(prefix) with the sequence-level reward, for every v."""
from __future__ import annotations

import math

import pytest
import torch

from fairseq_erpo.rewards import BleuReward, DeltaReward, RougeReward, UnigramNoiseReward
from reward_data import FIRST_WORD, SPECIAL, to_batch

VOCAB = 14  # ids 0-3 special, 4-13 words: small, so that repeats and partial matches abound


def random_refs(seed: int, batch: int = 24):
    g = torch.Generator().manual_seed(seed)
    refs = []
    for b in range(batch):
        length = int(torch.randint(1, 12, (1,), generator=g))
        words = torch.randint(FIRST_WORD - 1, VOCAB, (length,), generator=g)  # includes <unk>
        refs.append(words.tolist())
    return to_batch(refs)


def brute_force(reward, prefix: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    """[B, V]: R(prefix + v) - R(prefix) by scoring every extension as a full sequence."""
    bsz = prefix.size(0)
    base = reward.score(prefix, refs)
    cand = torch.arange(VOCAB).repeat(bsz)
    extended = torch.cat([prefix.repeat_interleave(VOCAB, 0), cand.unsqueeze(1)], dim=1)
    extended = torch.cat([extended, torch.full((bsz * VOCAB, 1), SPECIAL.eos)], dim=1)
    scores = reward.score(extended, refs.repeat_interleave(VOCAB, 0)).view(bsz, VOCAB)
    return scores - base.unsqueeze(1)


def walk(reward, refs, seed, steps=14, follow_ref=0.6):
    """Advance a random path (often copying the reference, so matches happen) and yield, at each
    step, (prefix, state) before the next token is appended."""
    g = torch.Generator().manual_seed(seed)
    state = reward.start(refs)
    prefix = refs.new_zeros(refs.size(0), 0)
    for t in range(steps):
        yield prefix, state
        copy = refs[:, min(t, refs.size(1) - 1)].clone()
        copy[copy < FIRST_WORD] = FIRST_WORD  # never append pad/eos/unk mid-path
        other = torch.randint(FIRST_WORD, VOCAB, (refs.size(0),), generator=g)
        token = torch.where(torch.rand(refs.size(0), generator=g) < follow_ref, copy, other)
        state.advance(token)
        prefix = torch.cat([prefix, token.unsqueeze(1)], dim=1)


REWARDS = {
    **{f"bleu-{s}": BleuReward(SPECIAL, smooth=s, scale=1.0) for s in ("none", "floor", "add-k", "exp")},
    "bleu-no-effective-order": BleuReward(SPECIAL, smooth="exp", effective_order=False, scale=1.0),
    "rouge": RougeReward(SPECIAL),
}


@pytest.mark.parametrize("name", sorted(REWARDS))
@pytest.mark.parametrize("seed", [0, 1])
def test_increments_equal_brute_force(name, seed):
    reward = REWARDS[name]
    refs = random_refs(seed)
    for prefix, state in walk(reward, refs, seed):
        fast = state.deltas().expand(VOCAB)
        slow = brute_force(reward, prefix, refs)
        words = slice(FIRST_WORD, VOCAB)  # EOS and specials are checked below
        assert torch.allclose(fast[:, words], slow[:, words], atol=1e-9, rtol=0), prefix
        assert torch.equal(fast[:, SPECIAL.eos], torch.zeros(refs.size(0), dtype=fast.dtype))
        assert torch.allclose(fast[:, SPECIAL.unk], slow[:, SPECIAL.unk], atol=1e-9, rtol=0)
        assert torch.allclose(state.current(), reward.score(prefix, refs), atol=1e-9, rtol=0)


def test_scaled_bleu_increments_scale():
    refs = random_refs(3)
    plain, scaled = BleuReward(SPECIAL, scale=1.0).start(refs), BleuReward(SPECIAL).start(refs)
    assert torch.allclose(scaled.deltas().expand(VOCAB), 0.01 * plain.deltas().expand(VOCAB))


def test_inactive_rows_do_not_advance():
    refs = random_refs(4, batch=4)
    state = RougeReward(SPECIAL).start(refs)
    before = state.deltas().expand(VOCAB)
    state.advance(torch.full((4,), FIRST_WORD), active=torch.tensor([True, False, True, False]))
    after = state.deltas().expand(VOCAB)
    assert torch.equal(after[1], before[1]) and torch.equal(after[3], before[3])
    assert state.matches.hyp_len.tolist() == [1, 0, 1, 0]


def test_delta_reward_forces_the_reference_and_sums_to_one():
    refs = random_refs(5)
    reward = DeltaReward(SPECIAL)
    state = reward.start(refs)
    lengths = (refs != SPECIAL.pad).sum(1)  # tokens + EOS = T*
    total = torch.zeros(refs.size(0), dtype=torch.float64)
    for t in range(refs.size(1) + 2):
        dense = state.deltas().expand(VOCAB)
        finite = torch.isfinite(dense)
        assert finite.sum(1).eq(1).all()  # exactly one allowed token: never an all -inf row
        token = dense.argmax(1)
        expected = torch.where(t < lengths, refs[:, min(t, refs.size(1) - 1)], SPECIAL.eos)
        assert torch.equal(token, expected)
        total += dense.gather(1, token.unsqueeze(1)).squeeze(1)
        state.advance(token)
    assert torch.allclose(total, torch.ones_like(total))
    assert torch.equal(reward.score(refs, refs), torch.ones(refs.size(0), dtype=torch.float64))
    assert reward.score(refs[:1, 1:], refs[:1]).item() == -math.inf


def test_delta_reward_refuses_to_leave_the_reference():
    refs = to_batch([[5, 6, 7]])
    state = DeltaReward(SPECIAL).start(refs)
    with pytest.raises(RuntimeError, match="left the reference"):
        state.advance(torch.tensor([6]))


def test_unigram_noise_is_the_noising_distribution():
    counts = torch.tensor([0, 0, 0, 0] + list(range(1, VOCAB - 3)), dtype=torch.float64)
    unigram = counts / counts.sum()
    gamma = 0.25
    reward = UnigramNoiseReward(SPECIAL, unigram, gamma)
    refs = random_refs(6)
    lengths = (refs != SPECIAL.pad).sum(1) - 1  # words, without EOS
    state = reward.start(refs)
    path = []
    g = torch.Generator().manual_seed(0)
    for t in range(refs.size(1)):
        probs = state.deltas().expand(VOCAB).exp()
        assert torch.allclose(probs.sum(1), torch.ones(refs.size(0), dtype=probs.dtype))
        word = t < lengths
        truth = refs[:, t]
        # the noising process: keep y*_t with 1 - gamma, else draw from u (which may redraw y*_t)
        expected = gamma * unigram.unsqueeze(0).expand(refs.size(0), -1).clone()
        expected[torch.arange(refs.size(0)), truth.clamp(max=VOCAB - 1)] += 1 - gamma
        assert torch.allclose(probs[word], expected[word])
        assert torch.equal(probs[~word].argmax(1), torch.full_like(truth[~word], SPECIAL.eos))
        token = torch.multinomial(probs, 1, generator=g).squeeze(1)
        path.append(token)
        state.advance(token)
    sampled = torch.stack(path, 1)
    assert torch.allclose(state.current(), reward.score(sampled, refs))
    assert torch.isfinite(reward.score(sampled, refs)).all()
    assert reward.score(refs[:, 1:], refs)[lengths > 1].eq(-math.inf).all()  # wrong length


@pytest.mark.parametrize("smooth", ["add-k", "exp"])
@pytest.mark.parametrize("seed", [0, 1])
def test_bleu_brevity_penalty_at_eos(smooth, seed):
    """--bleu-brevity at-eos: a word's increment is that of BLEU without the brevity penalty
    (BLEU / BP), EOS pays the penalty (negative exactly while the prefix is shorter than its
    reference), and the increments along a sentence still sum to its BLEU."""
    reward = BleuReward(SPECIAL, smooth=smooth, scale=1.0, brevity="at-eos")
    refs = random_refs(seed)
    ref_len = ((refs != SPECIAL.pad) & (refs != SPECIAL.eos)).sum(1).double()

    def unpenalized(hyps):  # BLEU / BP with BP = exp(1 - r / c) for 0 < c < r (sacrebleu's)
        length = torch.full((hyps.size(0),), float(hyps.size(1)), dtype=torch.float64)
        bp = torch.where(length < ref_len, torch.exp(1 - ref_len / length.clamp(min=1)), torch.ones_like(length))
        return reward.score(hyps, refs) / bp

    increments = []
    for prefix, state in walk(reward, refs, seed):  # (one state, advanced between the steps)
        fast = state.deltas().expand(VOCAB)
        for v in range(FIRST_WORD, VOCAB):
            extended = torch.cat([prefix, torch.full((refs.size(0), 1), v)], dim=1)
            assert torch.allclose(fast[:, v], unpenalized(extended) - unpenalized(prefix), atol=1e-9, rtol=0)
        eos = fast[:, SPECIAL.eos]
        assert torch.allclose(eos, reward.score(prefix, refs) - unpenalized(prefix), atol=1e-9, rtol=0)
        short = (prefix.size(1) < ref_len) & (reward.score(prefix, refs) > 0)
        assert bool((eos[short] < 0).all()) and bool((eos[~short].abs() < 1e-12).all())
        increments.append(fast)
    # telescoping: the chosen tokens' increments, then EOS, add up to the finished sentence's BLEU
    final = prefix
    total = sum(increments[t].gather(1, final[:, t:t + 1]).squeeze(1) for t in range(final.size(1)))
    total = total + increments[-1][:, SPECIAL.eos]
    assert torch.allclose(total, reward.score(final, refs), atol=1e-9, rtol=0)
    assert bool((reward.score(final, refs) > 0).any())


def test_bleu_brevity_option_is_checked():
    with pytest.raises(ValueError, match="--bleu-brevity 'sometimes': choose every-prefix"):
        BleuReward(SPECIAL, brevity="sometimes")
