"""Sentence BLEU on token-id tensors, identical to ``sacrebleu.sentence_bleu(tokenize="none")``.

``bleu_from_stats`` is sacrebleu's ``BLEU.compute_bleu`` vectorized over any leading shape: the
same brevity penalty, the early 0 when nothing matches, the same smoothing methods (``none``,
``floor``, ``add-k``, ``exp``) and effective order. Both the sentence scores and the token-level
increments (every candidate next token at once) go through it, so they agree by construction.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import cpu_kernels
from .base import Reward, check_scale
from .ngrams import (NgramMatchState, SpecialTokens, TokenDeltas, check_pair, check_tokens,
                     clipped_ngram_matches, mask_hypotheses, mask_references, ngram_counts)
from .registry import option, register_reward

MAX_ORDER = 4
SMOOTH_DEFAULTS = {"none": None, "floor": 0.1, "add-k": 1.0, "exp": None}
_LOG_ZERO = -9999999999.0  # sacrebleu's my_log(0)


def check_smoothing(smooth: str, smooth_value: Optional[float]) -> float:
    """The effective smoothing value; ValueError naming the option for a bad method or value."""
    if smooth not in SMOOTH_DEFAULTS:
        raise ValueError(f"--bleu-smooth {smooth!r}: choose one of {', '.join(SMOOTH_DEFAULTS)}")
    value = SMOOTH_DEFAULTS[smooth] if smooth_value is None else float(smooth_value)
    if smooth in ("floor", "add-k") and not value > 0:
        raise ValueError(f"--bleu-smooth-value must be > 0 for {smooth}, got {smooth_value}")
    return 0.0 if value is None else value


def bleu_from_stats(correct: Tensor, total: Tensor, sys_len: Tensor, ref_len: Tensor,
                    smooth: str = "exp", smooth_value: Optional[float] = None,
                    effective_order: bool = True) -> Tensor:
    """BLEU in [0, 100] from sufficient statistics.

    ``correct``/``total``: ``[..., N]`` clipped matches and hypothesis n-grams per order;
    ``sys_len``/``ref_len``: ``[...]``. Returns float64 ``[...]``.
    """
    value = check_smoothing(smooth, smooth_value)
    compiled = cpu_kernels.bleu_scores(correct, total, sys_len, ref_len, smooth, value, effective_order)
    if compiled is not None:  # CPU: the same arithmetic, one compiled pass
        return compiled
    correct, total = correct.double(), total.double()
    sys_len, ref_len = sys_len.double(), ref_len.double()
    order = correct.size(-1)
    matched_any = (correct > 0).any(-1)  # sacrebleu returns 0 before smoothing when nothing matches

    safe_sys = sys_len.clamp(min=1.0)
    bp = torch.where(sys_len < ref_len, torch.exp(1.0 - ref_len / safe_sys), torch.ones_like(sys_len))
    bp = torch.where(sys_len > 0, bp, torch.zeros_like(bp))

    if smooth == "add-k":  # orders n > 1 only
        bump = torch.full((order,), value, dtype=correct.dtype, device=correct.device)
        bump[0] = 0.0
        correct, total = correct + bump, total + bump
    # sacrebleu's loop breaks at the first order without hypothesis n-grams
    alive = (total > 0).long().cumprod(-1).bool()
    eff_order = alive.sum(-1).double() if effective_order else torch.full_like(sys_len, float(order))
    zero = correct == 0
    safe_total = total.clamp(min=1e-300)
    if smooth == "exp":  # each alive order without matches doubles the running divisor
        doublings = (alive & zero).double().cumsum(-1)
        smoothed = 100.0 / (torch.pow(2.0, doublings) * safe_total)
    elif smooth == "floor":
        smoothed = 100.0 * value / safe_total
    else:
        smoothed = torch.zeros_like(correct)
    precision = torch.where(zero, smoothed, 100.0 * correct / safe_total)
    precision = torch.where(alive, precision, torch.zeros_like(precision))
    log_p = torch.where(precision > 0, torch.log(precision.clamp(min=1e-300)),
                        torch.full_like(precision, _LOG_ZERO))
    used = torch.arange(order, device=correct.device) < eff_order.unsqueeze(-1)
    log_sum = torch.where(used, log_p, torch.zeros_like(log_p)).sum(-1)
    score = bp * torch.exp(log_sum / eff_order.clamp(min=1.0))
    return torch.where(matched_any, score, torch.zeros_like(score))


def sentence_bleu(hyps: Tensor, refs: Tensor, special: SpecialTokens, smooth: str = "exp",
                  smooth_value: Optional[float] = None, effective_order: bool = True,
                  max_order: int = MAX_ORDER) -> Tensor:
    """BLEU in [0, 100] of each hypothesis row against its reference row: float64 ``[B]``.

    Defaults are ``sacrebleu.sentence_bleu``'s (``exp`` smoothing, effective order).
    """
    check_pair(hyps, refs)
    stats = cpu_kernels.sentence_stats(hyps, refs, special.pad, special.eos, special.unk, max_order)
    if stats is not None:  # CPU: masking, lengths and counts in one compiled pass
        correct, hyp_len, ref_len = stats
    else:
        hyp_ids, hyp_len = mask_hypotheses(hyps, special)
        ref_ids, ref_len = mask_references(refs, special)
        correct, _, _ = clipped_ngram_matches(hyp_ids, hyp_len, ref_ids, ref_len, max_order)
    return bleu_from_stats(correct, ngram_counts(hyp_len, max_order), hyp_len, ref_len, smooth,
                           smooth_value, effective_order)


BREVITY_MODES = ("every-prefix", "at-eos")


class BleuIncrement:
    """dR(v) = BLEU(y_<t + v) - BLEU(y_<t) for all v, carried step to step (paper Eq. 3-4).

    ``brevity`` says where the brevity penalty enters. ``every-prefix`` (the paper's dR): every
    prefix is scored as a finished sentence, so a prefix of t tokens against a reference of T
    carries BP = exp(1 - T / t); for short prefixes that factor (e^-12 at t = 1, T = 13) makes the
    increments of all tokens nearly equal, and dR(EOS) = 0. ``at-eos``: a prefix is scored without
    the penalty (it is not finished), and EOS, which finishes it, gets
    dR(EOS) = BLEU(y_<t) - BLEU_noBP(y_<t) <= 0, the penalty's whole cost, negative exactly when
    the sentence would end shorter than its reference. The increments of a finished sentence still
    sum to its BLEU in both modes; only how the sum is spread over the steps differs.
    """

    def __init__(self, refs: Tensor, special: SpecialTokens, smooth: str, smooth_value: Optional[float],
                 effective_order: bool, scale: float, max_order: int = MAX_ORDER,
                 brevity: str = "every-prefix"):
        self.matches = NgramMatchState(refs, special, max_order)
        self.special = special
        self.kwargs = dict(smooth=smooth, smooth_value=smooth_value, effective_order=effective_order)
        self.scale = scale
        self.brevity = check_brevity(brevity)

    def _bleu(self, correct: Tensor, total: Tensor, sys_len: Tensor, ref_len: Tensor) -> Tensor:
        if self.brevity == "at-eos":  # an unfinished prefix: no brevity penalty (BP = 1 at sys >= ref)
            ref_len = torch.minimum(ref_len, sys_len)
        return self.scale * bleu_from_stats(correct, total, sys_len, ref_len, **self.kwargs)

    def current(self) -> Tensor:
        m = self.matches
        return self._bleu(m.correct, m.totals(), m.hyp_len, m.ref_len)

    def deltas(self) -> TokenDeltas:
        m = self.matches
        gains = m.candidate_gains()  # [B, Lr, N]
        length = gains.size(1)
        # one closed-form evaluation for: the prefix, prefix + any token outside the reference,
        # and prefix + each reference token (columns 0, 1, 2..)
        correct = torch.cat([m.correct.unsqueeze(1).expand(-1, 2, -1), m.correct.unsqueeze(1) + gains], 1)
        total = torch.stack([m.totals(), m.totals(extra=1)], 1)
        total = torch.cat([total, total[:, 1:].expand(-1, length, -1)], 1)
        sys_len = torch.cat([m.hyp_len.unsqueeze(1), (m.hyp_len + 1).unsqueeze(1).expand(-1, length + 1)], 1)
        bleu = self._bleu(correct, total, sys_len, m.ref_len.unsqueeze(1).expand(-1, length + 2))
        delta = bleu[:, 1:] - bleu[:, :1]
        deltas = TokenDeltas(delta[:, :1], torch.where(m.ref_valid, m.ref_ids, -1), delta[:, 1:])
        if self.brevity == "at-eos":  # EOS finishes the sentence: it pays the brevity penalty
            finished = self.scale * bleu_from_stats(m.correct, m.totals(), m.hyp_len, m.ref_len, **self.kwargs)
            return deltas.with_value(self.special.eos, finished - bleu[:, 0])
        # appending EOS leaves the scored sequence unchanged: dR(eos) = 0
        return deltas.with_value(self.special.eos, 0.0)

    def advance(self, tokens: Tensor, active: Optional[Tensor] = None) -> None:
        self.matches.advance(tokens, active)


def check_brevity(brevity: str) -> str:
    if brevity not in BREVITY_MODES:
        raise ValueError(f"--bleu-brevity {brevity!r}: choose every-prefix (the paper's dR: each prefix "
                         "scored with its brevity penalty) or at-eos (the penalty paid by EOS)")
    return brevity


@register_reward("bleu")
class BleuReward(Reward):
    """Sentence BLEU as a reward, scaled by ``--reward-scale`` (default 0.01, BLEU in [0, 1] as in
    the authors' reference code). Default smoothing ``add-k`` (k=1): every prefix with a matching
    unigram gets a non-zero reward, which the token-level increments need."""

    def __init__(self, special: SpecialTokens, smooth: str = "add-k", smooth_value: Optional[float] = None,
                 effective_order: bool = True, scale: float = 0.01, brevity: str = "every-prefix"):
        super().__init__(special)
        check_smoothing(smooth, smooth_value)
        self.brevity = check_brevity(brevity)
        self.scale = check_scale(scale)
        self.smooth, self.smooth_value = smooth, smooth_value
        self.effective_order = effective_order

    @classmethod
    def build(cls, dictionary, options) -> "BleuReward":
        return cls(SpecialTokens.from_dictionary(dictionary), smooth=option(options, "bleu_smooth", "add-k"),
                   smooth_value=option(options, "bleu_smooth_value", None),
                   effective_order=option(options, "bleu_effective_order", True),
                   scale=option(options, "reward_scale", 0.01),
                   brevity=option(options, "bleu_brevity", "every-prefix"))

    def score(self, hyps: Tensor, refs: Tensor) -> Tensor:
        return self.scale * sentence_bleu(hyps, refs, self.special, self.smooth, self.smooth_value,
                                          self.effective_order)

    def start(self, refs: Tensor) -> BleuIncrement:
        check_tokens("refs", refs)
        return BleuIncrement(refs, self.special, self.smooth, self.smooth_value, self.effective_order,
                             self.scale, brevity=self.brevity)
