"""The one token-level sampler every ERPO algorithm uses (paper Eq. 4 and the z-mixture of
section 4 / Algorithm 1). Nothing else in the package samples sequences.

For a batch (x, y*) it draws y token by token with fairseq's incremental decoding. At step t each
row picks a branch z ~ (lambda_1, ..., lambda_K) (``token``: independently per row, as in the
paper; ``step``: one z for the whole batch, as in the authors' code), then

    y_t ~ softmax( model_weight * log p_theta(. | y_<t, x) + reward_weight * dR(. | y_<t, y*) )

for that branch, or y_t = y*_t for the ground-truth branch (EOS past the reference). This is
Algorithm 1's token-by-token q: each step is normalised on its own, the paper's approximation of
the sequence-level q of Eq. 2 (Eq. 4 applied per token).

The limits are exact: a branch with ``model_weight == 0`` never reads the model (when no branch
with a non-zero lambda does, the decoder is not run at all), and the delta reward forces y*_t
through its -inf increments. Every sequence ends with EOS, at the latest after
``max_len_a * T* + max_len_b`` tokens (T*: reference length without EOS) and within the decoder's
position limit (``model.max_decoder_positions()``).

What a step costs (the E-step's floor is the decoder's forward on the sampled tokens): the
output layer runs once per step, only for the rows whose branch reads the model, and all those
rows are drawn together; the draw needs no log-softmax (a constant per row does not change a
softmax), adds a reward's increments only at its few override tokens, and inverts the CDF with
float32 elementwise passes and one sum over ``[rows, V]``, float64 only per block
(:func:`draw_tokens`, :func:`sample_weights`).

Randomness comes from a private generator reseeded from fairseq's per-update seed
(:class:`UpdateSeededGenerator`), so sampling never shifts the dropout masks of the M-step
(``--criterion erpo --reward delta`` is bit-exact fairseq ``cross_entropy``) and a resumed run
draws the same samples.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .algorithms import Branch
from .rewards import Reward, SpecialTokens, TokenDeltas
from .rewards.delta import reference_with_eos


class UpdateSeededGenerator:
    """A private RNG reseeded whenever fairseq reseeds torch (seed + update number, once per
    update): drawing from it never shifts the global stream (dropout masks), and a resumed run
    draws the same numbers."""

    def __init__(self, salt: int = 0x5EED):
        self.salt = salt
        self._generator: Optional[torch.Generator] = None
        self._seed: Optional[int] = None

    def get(self, device: torch.device) -> torch.Generator:
        seed = torch.initial_seed()
        gen = self._generator
        if gen is None or gen.device != torch.device(device) or seed != self._seed:
            gen = torch.Generator(device=device)
            gen.manual_seed((seed * 1_000_003 + self.salt) % (2 ** 63))
            self._generator, self._seed = gen, seed
        return gen


CDF_BLOCK = 256  # vocabulary entries per block of the two-level CDF inversion


def sample_weights(weights: Tensor, gen: torch.Generator, block: int = CDF_BLOCK) -> Tensor:
    """One index per row with probability ``weights[i, j] / sum_j weights[i, j]`` (``[rows, n]``,
    >= 0, a positive entry in every row), by inverting the CDF with one uniform per row. Indices of
    weight 0 are never returned.

    The inversion runs in two levels, so no pass over ``[rows, n]`` is made in float64 and none
    costs more than a sum: block sums (``block`` entries each, summed in the weights' dtype), a
    float64 CDF over the blocks to pick one, then a float64 CDF inside that block only, with the
    uniform's residual rescaled to the block's exact float64 total. The probability of each index
    is its weight's share to the rounding of the block sums (relative ~1e-7 in float32); within a
    block it is exact in float64. ``torch.multinomial`` draws the same distribution at ~30 ms for
    a 64 x 23K batch on CPU; a float64 ``exp`` + ``cumsum`` over the whole row cost ~5 ms."""
    rows, n = weights.shape
    full = n // block
    sums = [weights[:, : full * block].reshape(rows, full, block).sum(2)] if full else []
    if n > full * block:
        sums.append(weights[:, full * block:].sum(1, keepdim=True))
    block_sum = (torch.cat(sums, dim=1) if len(sums) > 1 else sums[0]).double()
    cdf = block_sum.cumsum(1)
    total = cdf[:, -1:]
    u = torch.rand(rows, 1, generator=gen, dtype=torch.float64, device=weights.device) * total
    # right=True skips blocks of mass 0; the minimum guards u * total rounding up to the total
    chosen = torch.minimum(torch.searchsorted(cdf, u, right=True), (cdf < total).sum(1, keepdim=True))
    before = torch.where(chosen > 0, cdf.gather(1, (chosen - 1).clamp(min=0)), torch.zeros_like(u))
    index = chosen * block + torch.arange(block, device=weights.device)
    inside = index < n
    within = weights.gather(1, index.clamp(max=n - 1)).double().masked_fill(~inside, 0.0).cumsum(1)
    left = (u - before) * within[:, -1:] / block_sum.gather(1, chosen)
    pos = torch.minimum(torch.searchsorted(within, left, right=True), (within < within[:, -1:]).sum(1, keepdim=True))
    return (chosen * block + pos).squeeze(1)


def sample_categorical(logits: Tensor, gen: torch.Generator) -> Tensor:
    """One index per row from softmax(logits) (``logits`` with a finite maximum per row)."""
    logits = logits.double()
    return sample_weights(torch.exp(logits - logits.max(dim=1, keepdim=True).values), gen)


@functools.lru_cache(maxsize=8)
def uniform_base(vocab_size: int, masked: Tuple[int, ...], device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """The base distribution of a reward whose "every other token" value is one number per row:
    uniform over the vocabulary less ``masked``, as (log-weights, log of their total, CDF), float64.
    The same at every step, so computed once (an exp and a cumsum over V per step otherwise)."""
    shared = torch.zeros(vocab_size, dtype=torch.float64, device=device)
    shared[list(masked)] = -math.inf
    log_total = torch.logsumexp(shared, 0)
    return shared, log_total, torch.exp(shared - log_total).cumsum(0)


def sample_from_deltas(deltas: TokenDeltas, rows: Tensor, weight: float, vocab_size: int,
                       masked: Sequence[int], gen: torch.Generator, max_rounds: int = 16) -> Tensor:
    """Exact draw from softmax(weight * dR) for ``rows`` without materializing ``[rows, V]``.

    A reward's increments are a base shared by most tokens (one value per row, or one vector for
    the batch) plus a few overrides (the reference tokens). The draw picks a bucket (one override
    token, or "any other token") with its exact mass, then an "other" token from the base
    distribution by rejection of the row's override tokens (falling back to the dense draw for
    rows still rejected after ``max_rounds``). Pad/bos (``masked``) are never drawn.
    """
    n, device = rows.numel(), rows.device
    base = deltas.base
    if base.size(-1) == 1:  # one value per row for every token outside the overrides
        shared, log_total, cdf = uniform_base(vocab_size, tuple(masked), device)
        per_row = base.reshape(-1).double()
        offset = per_row[rows] if per_row.numel() == deltas.tokens.size(0) else per_row.expand(n)
    else:  # one vector shared by the batch
        shared = weight * base.reshape(-1).double()
        shared[list(masked)] = -math.inf
        log_total = torch.logsumexp(shared, 0)
        cdf = torch.exp(shared - log_total).cumsum(0)
        offset = torch.zeros(n, dtype=torch.float64, device=device)
    if deltas.row_offset is not None:
        offset = offset + deltas.row_offset.reshape(-1).double()[rows]
    offset = weight * offset

    tokens, values = deltas.tokens[rows], weight * deltas.values[rows].double()
    valid = tokens >= 0
    for m in masked:
        valid &= tokens != m
    tokens, order = tokens.masked_fill(~valid, -1).sort(dim=1)
    values = values.gather(1, order)
    distinct = tokens >= 0
    distinct[:, 1:] &= tokens[:, 1:] != tokens[:, :-1]  # a repeated override token counts once
    override_logits = torch.where(distinct, values, torch.full_like(values, -math.inf))
    removed = torch.logsumexp(torch.where(distinct, shared[tokens.clamp(min=0)],
                                          torch.full_like(values, -math.inf)), dim=1)
    left = torch.log1p(-torch.exp(removed - log_total).clamp(max=1.0))  # base mass outside overrides
    other_logit = offset + log_total + left
    buckets = torch.cat([other_logit.unsqueeze(1), override_logits], dim=1)
    top = buckets.max(dim=1).values
    if not bool(torch.isfinite(top).all()):
        raise RuntimeError("reward increments give -inf to every allowed token")
    pick = sample_categorical(buckets - top.unsqueeze(1), gen)
    out = tokens.gather(1, (pick - 1).clamp(min=0).unsqueeze(1)).squeeze(1)

    need = (pick == 0).nonzero().squeeze(1)
    for _ in range(max_rounds):
        if need.numel() == 0:
            return out
        u = torch.rand(need.numel(), generator=gen, dtype=cdf.dtype, device=device) * cdf[-1]
        candidate = torch.searchsorted(cdf, u, right=True).clamp(max=vocab_size - 1)
        clash = ((tokens[need] == candidate.unsqueeze(1)) & distinct[need]).any(1)
        out[need[~clash]] = candidate[~clash]
        need = need[clash]
    if need.numel():  # the overrides hold nearly all the base mass: draw these rows densely
        dense = shared.expand(need.numel(), vocab_size).clone()
        dense.scatter_(1, tokens[need].masked_fill(~distinct[need], masked[0]), -math.inf)
        out[need] = sample_categorical(dense - dense.max(dim=1, keepdim=True).values, gen)
    return out


def prev_output_tokens(target: Tensor, eos: int, pad: int) -> Tensor:
    """Decoder inputs for teacher forcing on EOS-terminated, right-padded targets, exactly as
    fairseq's collater builds them: EOS, then the target shifted right, padding after its EOS."""
    prev = torch.cat([target.new_full((target.size(0), 1), eos), target[:, :-1]], dim=1)
    prev[:, 1:] = prev[:, 1:].masked_fill(prev[:, 1:] == eos, pad)
    return prev


# exp in float32 takes a slow path, 20-100x the normal one, for arguments below its normal range
# (about -87.3, -inf included): the logits are clamped there, and the tokens below LOG_NEGLIGIBLE
# + log 2 (probability under 2^-124 of the most likely token's) get probability 0
LOG_NEGLIGIBLE = -87.0


def draw_tokens(logits: Tensor, banned: Sequence[int], gen: torch.Generator) -> Tensor:
    """One token per row from softmax(logits), never one of ``banned`` (pad, bos). ``logits`` (our
    own buffer) is overwritten in place with the unnormalised probabilities, so the draw costs a few
    elementwise passes (max, subtract, clamp, exp, threshold) and one sum over ``[rows, V]`` in the
    logits' dtype, no float64 pass. Raises if a row has no allowed token with a finite logit."""
    logits[:, list(banned)] = -math.inf
    top = logits.amax(dim=1, keepdim=True)  # (max with dim also finds the indices: 8x slower on CPU)
    if not bool(torch.isfinite(top).all()):
        raise RuntimeError("a row has no allowed token with a finite logit")
    weights = logits.sub_(top).clamp_(min=LOG_NEGLIGIBLE).exp_()
    return sample_weights(torch.nn.functional.threshold_(weights, 2 * math.exp(LOG_NEGLIGIBLE), 0.0), gen)


def logits_are_log_probs(model) -> bool:
    """Whether ``model``'s log p_theta is the log-softmax of its output layer (no adaptive softmax, no
    override of fairseq's ``get_normalized_probs``): then the raw logits are log p up to a constant
    per row, which a softmax over the vocabulary ignores, and sampling needs no normalisation."""
    decoder = getattr(model, "decoder", None)
    return getattr(decoder, "adaptive_softmax", None) is None and \
        _normalises_by_log_softmax(type(model), type(decoder))


@functools.lru_cache(maxsize=None)
def _normalises_by_log_softmax(model_class: type, decoder_class: type) -> bool:
    """The class half of :func:`logits_are_log_probs`, checked once per pair of classes (scheduled
    sampling asks at every step)."""
    try:
        from fairseq.models import BaseFairseqModel, FairseqDecoder
    except ImportError:
        return False
    allowed = {BaseFairseqModel.get_normalized_probs}
    try:  # fairseq >= 0.12: the Transformer re-exports the base method for TorchScript
        from fairseq.models.transformer import TransformerModelBase
        allowed.add(TransformerModelBase.get_normalized_probs)
    except ImportError:
        pass
    return (issubclass(model_class, BaseFairseqModel) and issubclass(decoder_class, FairseqDecoder)
            and model_class.get_normalized_probs in allowed
            and model_class.get_normalized_probs_scriptable is BaseFairseqModel.get_normalized_probs_scriptable
            and decoder_class.get_normalized_probs is FairseqDecoder.get_normalized_probs
            and decoder_class.get_normalized_probs_scriptable is FairseqDecoder.get_normalized_probs_scriptable)


@dataclass(frozen=True)
class LinearOutputLayer:
    """The decoder's output layer when it is exactly ``F.linear(features, weight, bias)``, with what
    bounds every logit of a row without computing it: ``logit_v <= ||h|| * max_norm + max_bias``
    (Cauchy-Schwarz), so a draw whose reward increments dominate can skip the ``[rows, V]`` product."""

    weight: Tensor  # [V, C]
    weight_t: Tensor  # [C, V], contiguous: a small-batch product reads it ~30% faster on CPU
    bias: Optional[Tensor]  # [V]
    max_norm: float  # max over v of ||weight[v]||
    max_bias: float

    @classmethod
    def of(cls, model) -> Optional["LinearOutputLayer"]:
        """The output layer of fairseq's LSTM and Transformer decoders (tied or not); None for any
        other decoder, an adaptive softmax, or a projection with hooks."""
        projection = linear_output_projection(model)
        if projection is None:
            return None
        weight, bias = projection
        with torch.no_grad():
            weight, bias = weight.detach(), None if bias is None else bias.detach()
            # float32 norms are within a relative C * 2^-24 of the exact ones: inflate by far more
            max_norm = float(weight.float().norm(dim=1).max()) * (1.0 + 1e-4)
            max_bias = float(bias.max()) if bias is not None else 0.0
            return cls(weight, weight.t().contiguous(), bias, max_norm, max_bias)

    def logits(self, features: Tensor) -> Tensor:
        """``output_layer(features)`` for ``[n, C]`` features (the same product, up to rounding)."""
        features = features.to(self.weight_t.dtype)
        if self.bias is None:
            return torch.mm(features, self.weight_t)
        return torch.addmm(self.bias, features, self.weight_t)

    def logits_of(self, features: Tensor, tokens: Tensor) -> Tensor:
        """``output_layer(features)[i, tokens[i, k]]`` for ``[n, K]`` token ids >= 0, float32 ``[n, K]``."""
        # an embedding lookup and a product summed over C: 3-5x faster than indexing + bmm on CPU
        rows = torch.nn.functional.embedding(tokens, self.weight)  # [n, K, C]
        logits = (rows * features.unsqueeze(1).to(self.weight.dtype)).sum(2)
        if self.bias is not None:
            logits += self.bias[tokens]
        return logits.float()

    def bound(self, features: Tensor) -> Tensor:
        """float64 ``[n]``: no logit of row i exceeds it."""
        return features.double().norm(dim=1) * self.max_norm + self.max_bias


def linear_output_projection(model) -> Optional[Tuple[Tensor, Optional[Tensor]]]:
    """(weight, bias) of ``model``'s output layer where it is exactly ``F.linear`` (fairseq's LSTM
    and Transformer decoders, own or tied embedding, no adaptive softmax, no hooks); else None.
    A check of classes and attributes: nothing is copied or computed."""
    decoder = getattr(model, "decoder", None)
    if decoder is None or getattr(decoder, "adaptive_softmax", None) is not None:
        return None
    return _plain_linear_projection(decoder)


def _plain_linear_projection(decoder) -> Optional[Tuple[Tensor, Optional[Tensor]]]:
    def plain(module) -> bool:
        return (type(module) is torch.nn.Linear and not module._forward_hooks
                and not module._forward_pre_hooks)

    try:
        from fairseq.models.lstm import LSTMDecoder
        if type(decoder).output_layer is LSTMDecoder.output_layer:
            if decoder.share_input_output_embed:
                return decoder.embed_tokens.weight, None
            fc_out = getattr(decoder, "fc_out", None)
            return (fc_out.weight, fc_out.bias) if plain(fc_out) else None
    except ImportError:
        pass
    try:
        from fairseq.models.transformer import TransformerDecoderBase
        if type(decoder).output_layer is TransformerDecoderBase.output_layer:
            projection = getattr(decoder, "output_projection", None)
            return (projection.weight, projection.bias) if plain(projection) else None
    except ImportError:
        pass
    return None


def row_levels(deltas: TokenDeltas, batch_rows: Tensor) -> Optional[Tensor]:
    """float64 ``[n]``: dR of every token outside the overrides, for batch rows ``batch_rows``, where
    the increments have one such value per row; None where the base is a vector over the vocabulary."""
    if deltas.base.size(-1) != 1:
        return None
    per_row = deltas.base.reshape(-1).double()
    level = per_row[batch_rows] if per_row.numel() > 1 else per_row.expand(batch_rows.numel())
    if deltas.row_offset is not None:
        level = level + deltas.row_offset.reshape(-1).double()[batch_rows]
    return level


def draw_dominant_overrides(features: Tensor, deltas: TokenDeltas, batch_rows: Tensor, model_weight: float,
                            reward_weight: float, output: LinearOutputLayer, banned: Sequence[int],
                            gen: torch.Generator) -> Optional[Tuple[Tensor, Tensor]]:
    """The draw of :func:`draw_tokens` from softmax(model_weight * logits + reward_weight * dR) for
    the rows where it is decided by the reward's override tokens alone, without the output layer.

    Every token outside a row's overrides has the same dR (the row's base), so its logit is at most
    ``model_weight * output.bound(h)``. Where that is more than -LOG_NEGLIGIBLE + 1 below the largest
    override logit, :func:`draw_tokens` gives every such token probability exactly 0 (its clamp
    and threshold), and the draw is the same one over the overrides, whose logits are computed for
    those few tokens only (``output.logits_of``). Returns (which rows [n] bool, their tokens), or
    None where the increments have no finite per-row base (nothing is decided here then)."""
    level = row_levels(deltas, batch_rows)
    if level is None:
        return None
    tokens = deltas.tokens[batch_rows]
    allowed = tokens >= 0
    for token in banned:
        allowed &= tokens != token
    gain = reward_weight * (deltas.values[batch_rows].double() - level.unsqueeze(1))
    # no override logit exceeds model_weight * bound + max gain: rows whose largest gain is at most
    # -(LOG_NEGLIGIBLE - 1) cannot be decided (e.g. every row at W = 1), and are not looked at
    best = gain.masked_fill(~allowed, -math.inf).amax(dim=1)
    decided = torch.isfinite(level) & (best > -(LOG_NEGLIGIBLE - 1.0))
    rows = decided.nonzero().squeeze(1)
    if rows.numel() == 0:
        return decided, tokens.new_empty(0)
    features, tokens, allowed, gain = features[rows], tokens[rows], allowed[rows], gain[rows]
    tokens, order = tokens.masked_fill(~allowed, -1).sort(dim=1)
    distinct = tokens >= 0
    distinct[:, 1:] &= tokens[:, 1:] != tokens[:, :-1]  # a token listed twice has one value: count it once
    logits = output.logits_of(features, tokens.clamp(min=0)).mul_(model_weight)
    logits += gain.gather(1, order).to(logits.dtype)  # as add_reward_increments adds them
    logits.masked_fill_(~distinct, -math.inf)
    top = logits.amax(dim=1)
    others = model_weight * output.bound(features)
    dominant = torch.isfinite(top) & (others < top.double() + (LOG_NEGLIGIBLE - 1.0))
    decided[rows] = dominant
    keep = dominant.nonzero().squeeze(1)
    if keep.numel() == 0:
        return decided, tokens.new_empty(0)
    tokens = tokens[keep]
    # draw_tokens' weights (clamp, exp, threshold); a few columns need no two-level inversion
    weights = logits[keep].sub_(top[keep].unsqueeze(1)).clamp_(min=LOG_NEGLIGIBLE).exp_()
    weights = torch.nn.functional.threshold_(weights, 2 * math.exp(LOG_NEGLIGIBLE), 0.0)
    column = torch.multinomial(weights, 1, generator=gen)
    return decided, tokens.gather(1, column).squeeze(1)


def model_scores(model, features: Tensor, normalise: bool = True,
                 output: Optional[LinearOutputLayer] = None) -> Tensor:
    """log p_theta(. | y_<t, x) for the rows' decoder features ``[rows, C]``, float32 ``[rows, V]``,
    up to a constant per row when ``normalise`` is False (for a softmax over the vocabulary), then
    through ``output`` (the decoder's own output layer) where given."""
    if output is not None and not normalise:
        return output.logits(features).float()
    logits = model.decoder.output_layer(features.unsqueeze(1))
    if normalise:
        logits = model.get_normalized_probs((logits, None), log_probs=True)
    return logits.squeeze(1).float()


def add_reward_increments(scores: Tensor, rows: Tensor, deltas: TokenDeltas, batch_rows: Tensor,
                          weight: float) -> None:
    """``scores[rows] += weight * dR`` in place (``dR`` of batch rows ``batch_rows``), up to a
    constant per row. Where "every other token" has one finite value per row, only the override
    tokens change (by ``weight * (override - base)``): no ``[rows, V]`` increment is built."""
    level = row_levels(deltas, batch_rows)
    if level is not None and bool(torch.isfinite(level).all()):
        tokens = deltas.tokens[batch_rows]
        listed = tokens >= 0
        at = (rows.unsqueeze(1).expand_as(tokens)[listed], tokens[listed])
        change = (weight * (deltas.values[batch_rows].double() - level.unsqueeze(1)))[listed]
        # a token listed twice in a row has one value: both writes agree
        scores.index_put_(at, scores[at] + change.to(scores.dtype))
        return
    scores[rows] += weight * deltas.expand(scores.size(1), scores.dtype)[batch_rows]


PREFIX = -2  # SampledBatch.branch of a token copied from the reference by ``truth_prefix``


@dataclass
class SampledBatch:
    """The sampled sequences, as a fairseq sample ready for teacher forcing, and what produced them."""

    sample: dict
    branch: Tensor  # [B, L]: index of the branch that chose each target token, -1 on padding,
    # PREFIX for the tokens copied from y* by ``truth_prefix``
    seconds: float
    capped: Tensor  # [B, L] bool: the EOS forced by the length cap, which no
    # branch chose (a REINFORCE return must not train it: see criterions/mixer.py)


class SequenceSampler:
    """Draws y ~ q(y | x, y*) for a fixed tuple of branches; lambdas are given per call, so the
    task can anneal them."""

    def __init__(self, branches: Sequence[Branch], rewards: Dict[str, Reward], special: SpecialTokens,
                 bos: int, vocab_size: int, granularity: str = "token", max_len_a: float = 1.0, max_len_b: int = 10,
                 compact: bool = True):
        if granularity not in ("token", "step"):
            raise ValueError(f"--z-granularity must be 'token' or 'step', got {granularity!r}")
        if max_len_a < 0 or max_len_b < 0 or (max_len_a == 0 and max_len_b < 1):
            raise ValueError(f"--max-len-a {max_len_a} / --max-len-b {max_len_b}: need a >= 0, b >= 0 and "
                             "a positive maximum length")
        missing = [b.reward for b in branches if b.reward and not b.truth and b.reward not in rewards]
        if missing:
            raise ValueError(f"no reward object for {missing}")
        self.branches = tuple(branches)
        self.rewards = rewards
        self.special = special
        self.bos = bos
        self.vocab_size = vocab_size
        self.compact = compact  # reward-only branches draw from the compact increments
        self.granularity = granularity
        self.max_len_a, self.max_len_b = float(max_len_a), int(max_len_b)
        self._rng = UpdateSeededGenerator()

    # -- randomness ---------------------------------------------------------------------------
    def generator(self, device: torch.device) -> torch.Generator:
        return self._rng.get(device)

    def draw_branches(self, lambdas: Tensor, bsz: int, gen: torch.Generator) -> Tensor:
        """[B] branch index per row: z ~ lambdas, per token or shared by the step."""
        count = bsz if self.granularity == "token" else 1
        z = torch.multinomial(lambdas, count, replacement=True, generator=gen)
        return z.expand(bsz) if count == 1 else z

    # -- the sampler ----------------------------------------------------------------------------
    def max_lengths(self, refs: Tensor, model=None) -> Tensor:
        """[B] the most tokens (before EOS) a sample may have: ``max_len_a * T* + max_len_b``, and
        never more than ``model``'s decoder positions leave room for. The decoder reads EOS + every
        token before the one it predicts, so a sample that ends with its EOS at position P needs P
        positions: at most ``max_decoder_positions() - 1`` tokens before EOS (fairseq's beam search
        stops at the same bound). A learned-position table would otherwise be indexed past its end."""
        ref_len = ((refs != self.special.pad) & (refs != self.special.eos)).sum(1)
        cap = torch.floor(self.max_len_a * ref_len.double() + self.max_len_b).long().clamp(min=0)
        positions = getattr(model, "max_decoder_positions", None)
        return cap if positions is None else cap.clamp(max=max(int(positions()) - 1, 0))

    def sample(self, model, sample: dict, lambdas: Sequence[float],
               truth_prefix: Optional[Tensor] = None) -> SampledBatch:
        """y ~ q for the batch. ``truth_prefix`` ([B], optional): row i copies its first
        ``truth_prefix[i]`` tokens from y* and draws from the branches after them (MIXER)."""
        start = time.perf_counter()
        refs = sample["target"]
        bsz, device = refs.size(0), refs.device
        if len(lambdas) != len(self.branches):
            raise ValueError(f"{len(lambdas)} lambdas for {len(self.branches)} branches")
        weights = torch.tensor([float(v) for v in lambdas], dtype=torch.float64, device=device)
        live = [k for k, w in enumerate(lambdas) if w > 0]
        need_model = any(self.branches[k].uses_model for k in live)
        states = {k: self.rewards[self.branches[k].reward].start(refs) for k in live
                  if self.branches[k].reward and not self.branches[k].truth}
        truth = reference_with_eos(refs, self.special) \
            if truth_prefix is not None or any(self.branches[k].truth for k in live) else None
        cap = self.max_lengths(refs, model)
        steps = int(cap.max()) + 1
        gen = self.generator(device)
        branch_uses_model = torch.tensor([b.uses_model for b in self.branches], device=device)
        # the model's rows of all branches are drawn together, where the first of them would draw
        model_branches = [k for k in live if self.branches[k].uses_model]
        model_weight = None  # per branch, where one differs from 1
        if any(self.branches[k].model_weight != 1.0 for k in model_branches):
            model_weight = torch.tensor([b.model_weight for b in self.branches], device=device)
        normalise = not logits_are_log_probs(model)
        # the output layer as a plain product, with the bound on its logits that lets a reward-weighted
        # row skip it where its reward decides the draw (draw_dominant_overrides)
        output = LinearOutputLayer.of(model) if model_branches and not normalise else None

        tokens = refs.new_full((bsz, steps + 1), self.special.pad)  # decoder input stream
        tokens[:, 0] = self.special.eos  # fairseq decoders start from EOS
        chosen = refs.new_full((bsz, steps), -1)
        capped = torch.zeros(bsz, steps, dtype=torch.bool, device=device)
        active = torch.ones(bsz, dtype=torch.bool, device=device)
        was_training = model.training
        model.eval()  # q is defined by p_theta; dropout belongs to the M-step
        try:
            with torch.no_grad():
                decoder = model.decoder
                encoder_out = model.encoder.forward_torchscript(sample["net_input"]) if need_model else None
                incremental_state: Dict[str, Dict[str, Optional[Tensor]]] = {}
                for t in range(steps):
                    # one live branch (MIXER, SPG without drop): nothing to draw
                    z = self.draw_branches(weights, bsz, gen) if len(live) > 1 else refs.new_full((bsz,), live[0])
                    features = None
                    if need_model:
                        features = decoder.extract_features(tokens[:, : t + 1], encoder_out=encoder_out,
                                                            incremental_state=incremental_state)[0][:, -1]
                    y = torch.full_like(cap, self.special.eos)
                    drawing = active
                    if truth_prefix is not None:
                        copied = t < truth_prefix
                        y = torch.where(copied, truth[:, min(t, truth.size(1) - 1)], y)
                        z = torch.where(copied, torch.full_like(z, PREFIX), z)
                        drawing = active & ~copied
                    reads = None
                    if need_model:  # every row whose branch reads the model, drawn in one call
                        reads = (drawing & branch_uses_model[z.clamp(min=0)] & (z >= 0)).nonzero().squeeze(1)
                    for k in live:
                        branch = self.branches[k]
                        if branch.uses_model:
                            if k == model_branches[0] and reads.numel():
                                y[reads] = self.draw_model_rows(model, features[reads], reads, z[reads],
                                                                model_branches, model_weight, states,
                                                                normalise, gen, output)
                            continue
                        rows = ((z == k) & drawing).nonzero().squeeze(1)
                        if rows.numel() == 0:
                            continue
                        if branch.truth:
                            y[rows] = truth[rows, min(t, truth.size(1) - 1)]
                        elif self.compact:  # exp(c dR): no [B, V] tensor
                            y[rows] = sample_from_deltas(states[k].deltas(), rows, branch.reward_weight,
                                                         self.vocab_size, (self.special.pad, self.bos), gen)
                        else:
                            scores = torch.zeros(rows.numel(), self.vocab_size, device=device)
                            add_reward_increments(scores, torch.arange(rows.numel(), device=device),
                                                  states[k].deltas(), rows, branch.reward_weight)
                            y[rows] = self.draw_tokens(scores, (branch,), gen)
                    y = torch.where(t >= cap, torch.full_like(y, self.special.eos), y)
                    capped[:, t] = active & (t >= cap)
                    y = torch.where(active, y, torch.full_like(y, self.special.pad))
                    tokens[:, t + 1] = y
                    chosen[:, t] = torch.where(active, z, torch.full_like(z, -1))
                    for state in states.values():
                        state.advance(y, active)
                    active = active & (y != self.special.eos)
                    if not bool(active.any()):
                        break
        finally:
            model.train(was_training)
        width = t + 1
        return SampledBatch(self._as_sample(sample, tokens[:, : width + 1]), chosen[:, :width],
                            time.perf_counter() - start, capped[:, :width])

    def draw_model_rows(self, model, features: Tensor, rows: Tensor, z: Tensor, branches: Sequence[int],
                        model_weight: Optional[Tensor], states: dict, normalise: bool, gen: torch.Generator,
                        output: Optional[LinearOutputLayer] = None) -> Tensor:
        """y_t for the batch rows ``rows`` whose branches ``z`` (among ``branches``) read the model:
        softmax(model_weight * log p + reward_weight * dR). Rows whose reward decides the draw are
        drawn from their override tokens alone (with ``output``: :func:`draw_dominant_overrides`);
        all others with one output-layer call and one draw. ``model_weight``: per branch, None when
        every one is 1."""
        rewarded = [k for k in branches if self.branches[k].reward_weight > 0 and self.branches[k].reward is not None]
        deltas = {k: states[k].deltas() for k in rewarded}
        y = torch.empty_like(rows)
        dense = None  # rows still to draw with the output layer (None: all of them)
        if output is not None:
            dense = torch.ones_like(rows, dtype=torch.bool)
            for k in rewarded:
                branch = self.branches[k]
                sel = (z == k).nonzero().squeeze(1)
                if sel.numel() == 0:
                    continue
                found = draw_dominant_overrides(features[sel], deltas[k], rows[sel], branch.model_weight,
                                                branch.reward_weight, output, (self.special.pad, self.bos), gen)
                if found is not None:
                    decided, tokens = found
                    y[sel[decided]] = tokens
                    dense[sel[decided]] = False
            left = dense.nonzero().squeeze(1)
            if left.numel() == 0:
                return y
            if left.numel() < rows.numel():
                features, rows, z = features[left], rows[left], z[left]
            else:
                dense = None
        scores = model_scores(model, features, normalise, output)
        if model_weight is not None:
            scores.mul_(model_weight[z].to(scores.dtype).unsqueeze(1))
        for k in rewarded:
            sel = (z == k).nonzero().squeeze(1)
            if sel.numel():
                add_reward_increments(scores, sel, deltas[k], rows[sel], self.branches[k].reward_weight)
        drawn = self.draw_tokens(scores, tuple(self.branches[k] for k in branches), gen)
        if dense is None:
            return drawn
        y[left] = drawn
        return y

    def draw_tokens(self, logits: Tensor, branches: Sequence[Branch], gen: torch.Generator) -> Tensor:
        """One token per row from softmax(logits) (the Eq. 4 logits of ``branches``' rows, up to a
        constant per row; overwritten); pad and bos are never drawn."""
        try:
            return draw_tokens(logits, (self.special.pad, self.bos), gen)
        except RuntimeError:  # impossible for the built-in rewards, by construction
            names = ", ".join(f"{b.name!r} (reward {b.reward!r})" for b in branches)
            raise RuntimeError(f"branch {names}: a row has no token with a finite logit (the reward gave "
                               "-inf to every allowed token)") from None

    def _as_sample(self, sample: dict, stream: Tensor) -> dict:
        """The fairseq sample for teacher forcing on y (``stream`` = EOS + y)."""
        target = stream[:, 1:].contiguous()
        out = dict(sample)
        out["net_input"] = dict(sample["net_input"],
                                prev_output_tokens=prev_output_tokens(target, self.special.eos, self.special.pad))
        out["target"] = target
        out["ntokens"] = int((target != self.special.pad).sum())
        return out
