"""Unigram-noising reward (Xie et al., 2017; paper Eq. 9).

Data noising replaces each reference token, with probability gamma, by a draw from the unigram
distribution u of the training data. Its ERPO reward is the log-probability of that noise process:

    R(y | y*) = sum_t log( gamma * u(y_t) + (1 - gamma) * [y_t = y*_t] )   if T = T*, else -inf,

so exp(dR) at each position is exactly the noising distribution and sampling from
softmax(dR) (alpha -> 0, beta = 1) *is* unigram noising. The paper's Eq. 9 writes the same process
with |Δ| counting differing positions; it differs only in the mass gamma * u(y*_t) of drawing the
reference token itself as noise, which Eq. 9 leaves out. EOS is never noised (u(special) = 0), so
lengths are kept.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .base import Reward
from .delta import DeltaState, reference_with_eos
from .ngrams import SpecialTokens, TokenDeltas, check_pair, check_tokens, mask_hypotheses, sequence_mask
from .registry import option, register_reward


def unigram_from_dictionary(dictionary) -> Tensor:
    """u over the dictionary from its training counts; special symbols get probability 0."""
    counts = torch.tensor(dictionary.count, dtype=torch.float64)
    counts[: dictionary.nspecial] = 0.0
    if counts.sum() <= 0:
        raise ValueError("--reward unigram_noise: the target dictionary has no token counts "
                         "(build it with fairseq-preprocess from the training data)")
    return counts / counts.sum()


class NoiseProcessState(DeltaState):
    """Position bookkeeping is the delta reward's (the reference stream with EOS); the increments
    are the log-probabilities of a noising process, so any token may be drawn where the reference
    has a word, and the reward is their running sum."""

    def __init__(self, refs: Tensor, special: SpecialTokens):
        super().__init__(refs, special)
        self.total = torch.zeros(refs.size(0), dtype=torch.float64, device=refs.device)

    def current(self) -> Tensor:
        return self.total

    def advance(self, tokens: Tensor, active: Optional[Tensor] = None) -> None:
        if active is None:
            active = torch.ones_like(tokens, dtype=torch.bool)
        deltas = self.deltas()
        picked = deltas.value_of(tokens).to(self.total.dtype)
        self.total = self.total + torch.where(active, picked, torch.zeros_like(picked))
        self.record(tokens, active, deltas)
        self.step += 1

    def record(self, tokens: Tensor, active: Tensor, deltas: TokenDeltas) -> None:
        """Extra bookkeeping of a process after each step (none by default)."""


class UnigramNoiseState(NoiseProcessState):
    def __init__(self, refs: Tensor, special: SpecialTokens, log_noise: Tensor, log_keep: Tensor):
        super().__init__(refs, special)
        self.log_noise, self.log_keep = log_noise, log_keep

    def deltas(self) -> TokenDeltas:
        truth = self._truth_now()
        word = self.step < self.ref_len - 1  # a reference word (not EOS) stands here
        keep = torch.logaddexp(self.log_noise[truth], self.log_keep.expand_as(truth).to(self.log_noise))
        values = torch.where(word, keep, torch.zeros_like(keep))
        # at the EOS position and beyond: EOS only (the base -inf, EOS overridden with 0)
        offset = torch.where(word, 0.0, float("-inf")).to(self.log_noise).unsqueeze(1)
        return TokenDeltas(self.log_noise.unsqueeze(0), truth.unsqueeze(1), values.unsqueeze(1), offset)


@register_reward("unigram_noise")
class UnigramNoiseReward(Reward):
    finite_scores = False
    @classmethod
    def build(cls, dictionary, options) -> "UnigramNoiseReward":
        return cls(SpecialTokens.from_dictionary(dictionary), unigram_from_dictionary(dictionary),
                   gamma=option(options, "noise_prob", 0.1))

    def __init__(self, special: SpecialTokens, unigram: Tensor, gamma: float):
        super().__init__(special)
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"--noise-prob must be in (0, 1), got {gamma}")
        if unigram.dim() != 1 or bool((unigram < 0).any()) or abs(float(unigram.sum()) - 1) > 1e-6:
            raise ValueError("unigram: expected a probability vector over the vocabulary")
        self.gamma = gamma
        self.log_noise = torch.log(gamma * unigram.double())
        self.log_keep = torch.tensor(1.0 - gamma, dtype=torch.float64).log()

    def _to(self, device: torch.device) -> None:
        if self.log_noise.device != device:
            self.log_noise, self.log_keep = self.log_noise.to(device), self.log_keep.to(device)

    def score(self, hyps: Tensor, refs: Tensor) -> Tensor:
        check_pair(hyps, refs)
        self._to(hyps.device)
        hyp_ids, hyp_len = mask_hypotheses(hyps, self.special)
        ref_len = sequence_mask(refs, self.special).sum(1)
        width = min(hyp_ids.size(1), refs.size(1))
        hyp, ref = hyp_ids[:, :width].clamp(min=0), refs[:, :width]
        inside = torch.arange(width, device=hyps.device).unsqueeze(0) < hyp_len.unsqueeze(1)
        per_token = torch.where(hyp == ref, torch.logaddexp(self.log_noise[hyp], self.log_keep),
                                self.log_noise[hyp])
        total = torch.where(inside, per_token, torch.zeros_like(per_token)).sum(1)
        return torch.where(hyp_len == ref_len, total, torch.full_like(total, float("-inf")))

    def start(self, refs: Tensor) -> UnigramNoiseState:
        check_tokens("refs", refs)
        self._to(refs.device)
        return UnigramNoiseState(refs, self.special, self.log_noise, self.log_keep)


class UniformSingleNoiseState(NoiseProcessState):
    """Exactly one reference word is replaced, at a uniform position, by a uniform non-special token
    other than it. dR is the log-probability of that process, step by step: with r words left and no
    replacement yet, replace here with probability 1/r (forced at the last word)."""

    def __init__(self, refs: Tensor, special: SpecialTokens, allowed: Tensor):
        super().__init__(refs, special)
        self.log_allowed = torch.where(allowed, 0.0, float("-inf")).double().to(refs.device)
        self.allowed = allowed.to(refs.device)
        self.replaced = torch.zeros(refs.size(0), dtype=torch.bool, device=refs.device)

    def deltas(self) -> TokenDeltas:
        truth = self._truth_now()
        words_left = (self.ref_len - 1 - self.step).double()  # including this position
        word = words_left > 0
        choices = self.allowed.sum().double() - self.allowed[truth].double()  # tokens != y*_t
        fresh = word & ~self.replaced
        replace = torch.where(fresh, -torch.log(words_left.clamp(min=1)) - torch.log(choices),
                              torch.full_like(words_left, float("-inf")))
        keep = torch.where(fresh, torch.log1p(-1.0 / words_left.clamp(min=1)), torch.zeros_like(words_left))
        # at the EOS position (and past it): only EOS, with dR = 0
        return TokenDeltas(self.log_allowed.unsqueeze(0), truth.unsqueeze(1), keep.unsqueeze(1),
                           replace.unsqueeze(1))

    def record(self, tokens: Tensor, active: Tensor, deltas: TokenDeltas) -> None:
        self.replaced |= active & (tokens != deltas.tokens.squeeze(1))


@register_reward("uniform_single_noise")
class UniformSingleNoiseReward(Reward):
    """The paper's R'_delta (section 3.5) as the exact log-probability of its noising process:
    finite iff y has the reference's length and differs from it in exactly one position. A reference
    without words (EOS only) is returned unchanged."""
    finite_scores = False

    def __init__(self, special: SpecialTokens, vocab_size: int, nspecial: int):
        super().__init__(special)
        if vocab_size - nspecial < 2:
            raise ValueError("--noise-type uniform_single: the dictionary needs at least 2 non-special tokens")
        self.allowed = torch.arange(vocab_size) >= nspecial

    @classmethod
    def build(cls, dictionary, options) -> "UniformSingleNoiseReward":
        return cls(SpecialTokens.from_dictionary(dictionary), len(dictionary), dictionary.nspecial)

    def score(self, hyps: Tensor, refs: Tensor) -> Tensor:
        check_pair(hyps, refs)
        state = self.start(refs)
        hyp = reference_with_eos(hyps, self.special)
        for t in range(int(state.ref_len.max())):
            token = hyp[:, t] if t < hyp.size(1) else torch.full_like(hyp[:, 0], self.special.eos)
            state.advance(token, torch.full_like(token, True, dtype=torch.bool))
        return state.total

    def start(self, refs: Tensor) -> UniformSingleNoiseState:
        check_tokens("refs", refs)
        return UniformSingleNoiseState(refs, self.special, self.allowed)
