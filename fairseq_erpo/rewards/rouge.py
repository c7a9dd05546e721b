"""ROUGE-1, ROUGE-2 and ROUGE-L F1 on token-id tensors, identical to Google's ``rouge-score``
(``RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)`` on the id strings).

ROUGE-N: intersection = clipped n-gram matches (shared with BLEU), precision = inter / max(hyp
n-grams, 1), recall = inter / max(ref n-grams, 1). ROUGE-L: LCS length over hypothesis and
reference lengths, 0 when either is empty.

The LCS is batched with one vectorized row update per hypothesis position: given the previous DP
row ``D`` (LCS of the hypothesis prefix with every reference prefix), the next row is
``cummax_j max(D[j], D[j-1] + [h == r_j])``. A row is non-decreasing, so the in-row dependency of
the textbook recurrence is exactly a running maximum.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor

from . import cpu_kernels
from .base import Reward, check_scale
from .ngrams import (NgramMatchState, SpecialTokens, TokenDeltas, check_pair, check_tokens,
                     clipped_ngram_matches, mask_hypotheses, mask_references, ngram_counts)
from .registry import option, register_reward


def f_measure(overlap: Tensor, hyp_count: Tensor, ref_count: Tensor) -> Tensor:
    """rouge-score's precision/recall/F1 for n-grams: counts floored at 1 in the denominators."""
    overlap = overlap.double()
    precision = overlap / hyp_count.double().clamp(min=1.0)
    recall = overlap / ref_count.double().clamp(min=1.0)
    denom = precision + recall
    return torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-300),
                       torch.zeros_like(denom))


def lcs_f_measure(lcs: Tensor, hyp_len: Tensor, ref_len: Tensor) -> Tensor:
    """rouge-score's ROUGE-L F1: 0 when either side is empty."""
    nonempty = (hyp_len > 0) & (ref_len > 0)
    score = f_measure(lcs, hyp_len, ref_len)
    return torch.where(nonempty, score, torch.zeros_like(score))


def lcs_step(row: Tensor, ref_ids: Tensor, tokens: Tensor) -> Tensor:
    """Next LCS DP row ``[B, Lr+1]`` after appending ``tokens`` ``[B]`` to the hypotheses."""
    hit = (ref_ids == tokens.unsqueeze(1)).to(row.dtype)
    best = torch.maximum(row[:, 1:], row[:, :-1] + hit)
    return torch.cat([row[:, :1], best.cummax(dim=1).values], dim=1)


def lcs_length(hyp_ids: Tensor, hyp_len: Tensor, ref_ids: Tensor, ref_len: Tensor) -> Tensor:
    """LCS lengths ``[B]``; sentinel (negative) ids never match, so padding needs no masking."""
    compiled = cpu_kernels.lcs_lengths(hyp_ids, hyp_len, ref_ids, ref_len)
    if compiled is not None:
        return compiled
    row = ref_ids.new_zeros(ref_ids.size(0), ref_ids.size(1) + 1)
    for i in range(hyp_ids.size(1)):
        row = lcs_step(row, ref_ids, hyp_ids[:, i])
    return row[:, -1]


def rouge_scores(hyps: Tensor, refs: Tensor, special: SpecialTokens) -> Dict[str, Tensor]:
    """{"rouge1", "rouge2", "rougeL"}: F1 in [0, 1] per row, float64 ``[B]``."""
    check_pair(hyps, refs)
    hyp_ids, hyp_len = mask_hypotheses(hyps, special)
    ref_ids, ref_len = mask_references(refs, special)
    overlap, hyp_count, ref_count = clipped_ngram_matches(hyp_ids, hyp_len, ref_ids, ref_len, 2)
    scores = f_measure(overlap, hyp_count, ref_count)
    return {"rouge1": scores[:, 0], "rouge2": scores[:, 1],
            "rougeL": lcs_f_measure(lcs_length(hyp_ids, hyp_len, ref_ids, ref_len), hyp_len, ref_len)}


def rouge_sum(hyps: Tensor, refs: Tensor, special: SpecialTokens) -> Tensor:
    """ROUGE-1 + ROUGE-2 + ROUGE-L F1: the paper's summarization reward, in [0, 3]."""
    scores = rouge_scores(hyps, refs, special)
    return scores["rouge1"] + scores["rouge2"] + scores["rougeL"]


class RougeIncrement:
    """dR(v) of the ROUGE sum for every next token v: n-gram matches and the LCS row are carried
    from step to step; appending v can lengthen the LCS only where v occurs in the reference."""

    def __init__(self, refs: Tensor, special: SpecialTokens, scale: float = 1.0):
        self.matches = NgramMatchState(refs, special, max_order=2)
        self.special = special
        self.scale = scale
        self.lcs_row = refs.new_zeros(refs.size(0), refs.size(1) + 1)

    def _score(self, overlap: Tensor, hyp_len: Tensor, ref_len: Tensor, lcs: Tensor) -> Tensor:
        """ROUGE sum from statistics; all arguments share their leading shape ([B] or [B, K])."""
        ngram = f_measure(overlap, ngram_counts(hyp_len, 2), ngram_counts(ref_len, 2)).sum(-1)
        return self.scale * (ngram + lcs_f_measure(lcs, hyp_len, ref_len))

    def current(self) -> Tensor:
        m = self.matches
        return self._score(m.correct, m.hyp_len, m.ref_len, self.lcs_row[:, -1])

    def deltas(self) -> TokenDeltas:
        m = self.matches
        now = self.current()
        lcs, len_next = self.lcs_row[:, -1], m.hyp_len + 1
        other = self._score(m.correct, len_next, m.ref_len, lcs) - now
        # token ref[j'] extends an LCS ending before position j' by one
        extended = torch.where(m.same_token, (self.lcs_row[:, :-1] + 1).unsqueeze(1),
                               torch.zeros_like(self.lcs_row[:, :1]).unsqueeze(1)).amax(-1)
        length = extended.size(1)
        ref_values = self._score(m.correct.unsqueeze(1) + m.candidate_gains(),
                                 len_next.unsqueeze(1).expand(-1, length),
                                 m.ref_len.unsqueeze(1).expand(-1, length),
                                 torch.maximum(lcs.unsqueeze(1), extended)) - now.unsqueeze(1)
        return TokenDeltas(other.unsqueeze(1), torch.where(m.ref_valid, m.ref_ids, -1),
                           ref_values).with_value(self.special.eos, 0.0)

    def advance(self, tokens: Tensor, active: Optional[Tensor] = None) -> None:
        if active is None:
            active = torch.ones_like(tokens, dtype=torch.bool)
        self.matches.advance(tokens, active)
        stepped = lcs_step(self.lcs_row, self.matches.ref_ids, tokens)
        self.lcs_row = torch.where(active.unsqueeze(1), stepped, self.lcs_row)


@register_reward("rouge")
class RougeReward(Reward):
    """ROUGE-1 + ROUGE-2 + ROUGE-L F1 (the paper's summarization reward), times ``--reward-scale``."""

    def __init__(self, special: SpecialTokens, scale: float = 1.0):
        super().__init__(special)
        self.scale = check_scale(scale)

    @classmethod
    def build(cls, dictionary, options) -> "RougeReward":
        return cls(SpecialTokens.from_dictionary(dictionary), scale=option(options, "reward_scale", 1.0))

    def score(self, hyps: Tensor, refs: Tensor) -> Tensor:
        return self.scale * rouge_sum(hyps, refs, self.special)

    def start(self, refs: Tensor) -> RougeIncrement:
        check_tokens("refs", refs)
        return RougeIncrement(refs, self.special, self.scale)
