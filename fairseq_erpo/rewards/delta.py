"""The MLE delta reward (paper Eq. 6, footnote 2): R_δ(y_1:t) = t / T* on the reference prefix.

The reference here includes its EOS (T* counts it), so a full match scores T*/T* = 1 and every
other sequence -inf. At the token level only the reference token is finite: dR(y*_t) = 1/T*,
dR(v) = -inf for v != y*_t. Samplers therefore always pick y*_t, so a prefix never leaves the
reference; :meth:`DeltaState.advance` raises if one is made to, because its increment would be
-inf - (-inf), undefined. Past the reference the ground truth continues with EOS (dR = 0).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .base import Reward
from .ngrams import SpecialTokens, TokenDeltas, check_pair, check_tokens, sequence_mask
from .registry import register_reward


def reference_with_eos(refs: Tensor, special: SpecialTokens) -> Tensor:
    """``[B, L+1]``: each reference's tokens, then EOS, then EOS padding (the ground-truth stream)."""
    valid = sequence_mask(refs, special)
    out = torch.cat([refs, refs.new_full((refs.size(0), 1), special.eos)], dim=1)
    keep = torch.cat([valid, valid.new_zeros(refs.size(0), 1)], dim=1)
    return out.masked_fill(~keep, special.eos)


class DeltaState:
    def __init__(self, refs: Tensor, special: SpecialTokens):
        self.truth = reference_with_eos(refs, special)
        self.ref_len = sequence_mask(refs, special).sum(1) + 1  # T*, counting EOS
        self.step = 0

    def _truth_now(self) -> Tensor:
        t = min(self.step, self.truth.size(1) - 1)  # past the end: EOS forever
        return self.truth[:, t]

    def current(self) -> Tensor:
        return torch.clamp(torch.full_like(self.ref_len, self.step), max=self.ref_len).double() / \
            self.ref_len.double()

    def deltas(self) -> TokenDeltas:
        inside = self.step < self.ref_len
        values = torch.where(inside, 1.0 / self.ref_len.double(), torch.zeros_like(self.ref_len.double()))
        base = torch.full((self.truth.size(0), 1), float("-inf"), dtype=torch.float64,
                          device=self.truth.device)
        return TokenDeltas(base, self._truth_now().unsqueeze(1), values.unsqueeze(1))

    def advance(self, tokens: Tensor, active: Optional[Tensor] = None) -> None:
        if active is None:
            active = torch.ones_like(tokens, dtype=torch.bool)
        if bool(((tokens != self._truth_now()) & active).any()):
            raise RuntimeError("delta reward: a sampled token left the reference prefix, where every "
                               "increment is -inf - (-inf); sample from the reward's deltas (they force "
                               "the reference token)")
        self.step += 1


@register_reward("delta")
class DeltaReward(Reward):
    finite_scores = False
    @classmethod
    def build(cls, dictionary, options) -> "DeltaReward":
        return cls(SpecialTokens.from_dictionary(dictionary))

    def score(self, hyps: Tensor, refs: Tensor) -> Tensor:
        check_pair(hyps, refs)
        hyp, ref = reference_with_eos(hyps, self.special), reference_with_eos(refs, self.special)
        width = max(hyp.size(1), ref.size(1))
        hyp = torch.nn.functional.pad(hyp, (0, width - hyp.size(1)), value=self.special.eos)
        ref = torch.nn.functional.pad(ref, (0, width - ref.size(1)), value=self.special.eos)
        same = (hyp == ref).all(1)
        return torch.where(same, 1.0, float("-inf")).double()

    def start(self, refs: Tensor) -> DeltaState:
        check_tokens("refs", refs)
        return DeltaState(refs, self.special)
