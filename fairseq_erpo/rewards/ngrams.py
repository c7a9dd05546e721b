"""Batched n-gram statistics on token-id tensors: the one piece BLEU and ROUGE share.

Everything works on padded ``[B, L]`` LongTensors on any device. The torch code loops in Python
over n-gram orders only, never over batch elements, positions or vocabulary entries; on CPU the
sentence-level counts go through the compiled kernels in :mod:`.cpu_kernels` instead.

Conventions, shared by all rewards:
  * a sequence is the tokens before its first ``pad`` or ``eos``; EOS is never scored;
  * in references, ``unk`` never matches anything (not even a hypothesis ``unk``).

Counting is exact, with no hashing: sentence-level counts pack each n-gram into one int64 key
(injective, see ``_packed_ngrams``) and count clipped matches on row-wise sorted keys; the
incremental state compares reference n-grams pairwise once per batch (``[B, Lr, Lr]``). Every
count is an integer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from . import cpu_kernels

# Masked ids: negative, so they never equal a real (non-negative) token id, and distinct from one
# another so that hypothesis padding never equals reference padding or a reference <unk>.
_HYP_PAD, _REF_PAD, _REF_UNK = -1, -2, -3


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the special symbols the rewards need (from a fairseq ``Dictionary``)."""

    pad: int
    eos: int
    unk: Optional[int] = None

    @classmethod
    def from_dictionary(cls, dictionary) -> "SpecialTokens":
        return cls(pad=dictionary.pad(), eos=dictionary.eos(), unk=dictionary.unk())


def check_tokens(name: str, tokens: Tensor, batch_size: Optional[int] = None) -> None:
    """Raise ValueError naming ``name`` unless ``tokens`` is a non-empty [B, L] tensor of ids >= 0."""
    if not isinstance(tokens, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of token ids, got {type(tokens).__name__}")
    if tokens.dim() != 2:
        raise ValueError(f"{name}: expected shape [batch, length], got {tuple(tokens.shape)}")
    if tokens.dtype in (torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.bool):
        raise ValueError(f"{name}: expected integer token ids, got dtype {tokens.dtype}")
    if tokens.size(0) == 0:
        raise ValueError(f"{name}: empty batch (batch size 0)")
    if batch_size is not None and tokens.size(0) != batch_size:
        raise ValueError(f"{name}: batch size {tokens.size(0)} does not match hyps' {batch_size}")
    if tokens.numel() and int(tokens.min()) < 0:
        raise ValueError(f"{name}: negative token id {int(tokens.min())}")


def check_pair(hyps: Tensor, refs: Tensor) -> None:
    check_tokens("hyps", hyps)
    check_tokens("refs", refs, batch_size=hyps.size(0))
    if hyps.device != refs.device:
        raise ValueError(f"refs: on {refs.device}, hyps on {hyps.device}")


def sequence_lengths(tokens: Tensor, special: SpecialTokens) -> Tensor:
    """Tokens before the first pad or eos, per row."""
    stop = (tokens == special.pad) | (tokens == special.eos)
    stop = torch.cat([stop, stop.new_ones(stop.size(0), 1)], dim=1)  # rows with no stop: full
    return stop.to(torch.uint8).argmax(dim=1)


def _lengths_and_mask(tokens: Tensor, special: SpecialTokens) -> Tuple[Tensor, Tensor]:
    lengths = sequence_lengths(tokens, special)
    positions = torch.arange(tokens.size(1), device=tokens.device)
    return lengths, positions.unsqueeze(0) < lengths.unsqueeze(1)


def sequence_mask(tokens: Tensor, special: SpecialTokens) -> Tensor:
    """True for the tokens of each sequence: everything before the first pad or eos."""
    return _lengths_and_mask(tokens, special)[1]


def mask_hypotheses(tokens: Tensor, special: SpecialTokens) -> Tuple[Tensor, Tensor]:
    """(ids with padding replaced by a sentinel, lengths)."""
    lengths, valid = _lengths_and_mask(tokens, special)
    return tokens.masked_fill(~valid, _HYP_PAD), lengths


def mask_references(tokens: Tensor, special: SpecialTokens) -> Tuple[Tensor, Tensor]:
    """(ids with padding and <unk> replaced by sentinels that match nothing, lengths).

    <unk> still counts towards the reference length, as the word it stands for would.
    """
    lengths, valid = _lengths_and_mask(tokens, special)
    ids = tokens if special.unk is None else tokens.masked_fill(tokens == special.unk, _REF_UNK)
    return ids.masked_fill(~valid, _REF_PAD), lengths


def ngram_equality(a: Tensor, b: Tensor, max_order: int) -> List[Tensor]:
    """``eq[n-1][k, i, j]``: the n-gram of ``a[k]`` starting at i equals that of ``b[k]`` at j.

    Built from the unigram matrix: ``eq_n[i, j] = eq_{n-1}[i, j] & eq_1[i+n-1, j+n-1]``. Shapes are
    ``[B, La-n+1, Lb-n+1]`` (clamped at 0). Windows that run into padding are not excluded here;
    callers mask them by length.
    """
    first = a.unsqueeze(2) == b.unsqueeze(1)
    eq = [first]
    for n in range(2, max_order + 1):
        eq.append(eq[-1][:, :-1, :-1] & first[:, n - 1:, n - 1:])
    return eq


def ngram_counts(lengths: Tensor, max_order: int) -> Tensor:
    """``[..., max_order]``: how many n-grams (n = 1..max_order) sequences of these lengths hold."""
    orders = torch.arange(1, max_order + 1, device=lengths.device)
    return (lengths.unsqueeze(-1) - orders + 1).clamp(min=0)


def window_mask(lengths: Tensor, width: int, n: int) -> Tensor:
    """[B, width]: True where an n-gram starting there lies inside the sequence."""
    starts = torch.arange(width, device=lengths.device)
    return starts.unsqueeze(0) < (lengths - n + 1).unsqueeze(1)


# Packing: an n-gram of ids < 2^15 is one int64 key, id_1 << 15(n-1) | ... | id_n (<= 60 bits, so
# the key is exact and non-negative). Reference <unk> becomes the part 2^15 - 1, which no hypothesis
# id takes, and windows that run into padding get negative keys, distinct for the two sides.
_PART_BITS = 15
_REF_UNK_PART = (1 << _PART_BITS) - 1
_HYP_NONE, _REF_NONE = -1, -2


def _dense_ids(hyp_ids: Tensor, ref_ids: Tensor) -> Tuple[Tensor, Tensor]:
    """Relabel token ids to 0..(distinct tokens in the batch) - 1 when they do not fit in 15 bits."""
    top = max(int(ids.max()) if ids.numel() else -1 for ids in (hyp_ids, ref_ids))
    if top < _REF_UNK_PART:
        return hyp_ids, ref_ids
    real = torch.cat([hyp_ids[hyp_ids >= 0], ref_ids[ref_ids >= 0]])
    values = torch.unique(real)
    if values.numel() >= _REF_UNK_PART:
        raise ValueError(f"hyps: {values.numel()} distinct token ids in one batch; split the batch "
                         f"(at most {_REF_UNK_PART - 1})")

    def relabel(ids: Tensor) -> Tensor:
        dense = torch.searchsorted(values, ids.clamp(min=0))
        return torch.where(ids >= 0, dense, ids)

    return relabel(hyp_ids), relabel(ref_ids)


def _packed_ngrams(ids: Tensor, lengths: Tensor, max_order: int, none_key: int) -> Tensor:
    """[max_order * B, L]: row (n-1)*B + b holds the keys of the n-grams of sequence b."""
    bsz, length = ids.shape
    parts = ids.clamp(min=0)  # padding parts are masked below through the window mask
    keys = ids.new_full((max_order, bsz, length), none_key)
    key = parts
    for n in range(1, max_order + 1):
        if n > 1:
            key = (key[:, :-1] << _PART_BITS) | parts[:, n - 1:]
        width = key.size(1)
        keys[n - 1, :, :width] = torch.where(window_mask(lengths, width, n), key, none_key)
    return keys.view(max_order * bsz, length)


def clipped_ngram_matches(hyp_ids: Tensor, hyp_len: Tensor, ref_ids: Tensor, ref_len: Tensor,
                          max_order: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Per order n = 1..max_order: (clipped matches, hypothesis n-grams, reference n-grams), each
    ``[B, max_order]`` int64. Clipped matches = sum over distinct hypothesis n-grams g of
    ``min(count_hyp(g), count_ref(g))``: BLEU's "correct" and ROUGE-N's intersection.

    On CPU the compiled kernel counts (:mod:`.cpu_kernels`); otherwise the counts come from sorted
    keys: the k-th occurrence (k = 0, 1, ...) of a hypothesis n-gram is a match iff the reference
    holds it more than k times.
    """
    if max_order * _PART_BITS > 62:
        raise ValueError(f"max_order {max_order}: at most {62 // _PART_BITS} with packed keys")
    hyp_parts, ref_parts = _key_parts(hyp_ids, ref_ids)
    correct = cpu_kernels.clipped_counts(hyp_parts, hyp_len, ref_parts, ref_len, max_order)
    if correct is None:
        correct = _clipped_counts_sorted(hyp_parts, hyp_len, ref_parts, ref_len, max_order)
    return correct.to(hyp_ids.device), ngram_counts(hyp_len, max_order), ngram_counts(ref_len, max_order)


def _key_parts(hyp_ids: Tensor, ref_ids: Tensor) -> Tuple[Tensor, Tensor]:
    """Masked ids -> key parts: real ids below 2^15 (relabelled if needed), reference <unk> as
    2^15 - 1; padding stays negative (callers never pack it, thanks to the lengths)."""
    hyp_ids, ref_ids = _dense_ids(hyp_ids, ref_ids)
    return hyp_ids, torch.where(ref_ids == _REF_UNK, torch.full_like(ref_ids, _REF_UNK_PART), ref_ids)


def _clipped_counts_sorted(hyp_ids: Tensor, hyp_len: Tensor, ref_ids: Tensor, ref_len: Tensor,
                           max_order: int) -> Tensor:
    """The torch path of :func:`clipped_ngram_matches` (CUDA, or CPU without the kernels)."""
    hyp_keys = _packed_ngrams(hyp_ids, hyp_len, max_order, _HYP_NONE).sort(dim=1).values
    ref_keys = _packed_ngrams(ref_ids, ref_len, max_order, _REF_NONE).sort(dim=1).values
    occurrence = torch.arange(hyp_keys.size(1), device=hyp_keys.device) - \
        torch.searchsorted(hyp_keys, hyp_keys, side="left")
    in_ref = torch.searchsorted(ref_keys, hyp_keys, side="right") - \
        torch.searchsorted(ref_keys, hyp_keys, side="left")
    return (occurrence < in_ref).sum(1).view(max_order, hyp_ids.size(0)).t()


class NgramMatchState:
    """Clipped n-gram matches of a growing hypothesis against fixed references, updated per token.

    The state lives on the reference positions, stacked over orders (``[B, N, Lr]``), so a step is
    a handful of tensor ops costing O(B * N * Lr^2) at most, independent of the vocabulary:

    * ``suffix[b, k-1, j]``: the hypothesis' last k tokens equal ``ref[b, j-k+1 .. j]``;
    * ``hyp_count[b, n-1, j]``: how often the hypothesis contains the reference n-gram ending at j;
    * ``ref_count[b, n-1, j]``: how often the reference contains it;
    * ``correct[b, n-1]``: clipped matches so far, ``hyp_len[b]``: hypothesis length.

    :meth:`candidate_gains` answers, for every reference token v at once, whether appending v adds
    a clipped match of order n; tokens absent from the reference never do, so they share one value.
    """

    def __init__(self, refs: Tensor, special: SpecialTokens, max_order: int):
        self.max_order = max_order
        self.ref_ids, self.ref_len = mask_references(refs, special)
        ids, bsz, length = self.ref_ids, refs.size(0), refs.size(1)
        self.ref_valid = ids >= 0  # real tokens (not pad, not <unk>): candidates for a match
        self.same_token = (ids.unsqueeze(2) == ids.unsqueeze(1)) & self.ref_valid.unsqueeze(1)
        # float copy for the batched product in candidate_gains (exact: counts <= Lr)
        self._same_token_f = self.same_token.float()
        ref_ref = ngram_equality(ids, ids, max_order)
        counts = []
        for n in range(1, max_order + 1):
            ok = window_mask(self.ref_len, ref_ref[n - 1].size(2), n)
            by_start = ((ref_ref[n - 1] & ok.unsqueeze(1)).sum(-1)) * ok
            # index by the n-gram's last position: shift right by n-1
            counts.append(torch.nn.functional.pad(by_start, (n - 1, 0))[:, :length])
        self.ref_count = torch.stack(counts, dim=1)
        self.suffix = torch.zeros(bsz, max_order, length, dtype=torch.bool, device=refs.device)
        self.hyp_count = torch.zeros_like(self.ref_count)
        self.correct = refs.new_zeros(bsz, max_order)
        self.hyp_len = refs.new_zeros(bsz)

    def _extends(self) -> Tensor:
        """[B, N, Lr]: for order n, the hypothesis' last n-1 tokens equal the n-1 reference tokens
        before j (always true for n = 1), and j holds a real token."""
        shifted = torch.nn.functional.pad(self.suffix[:, :-1, :-1], (1, 0))
        first = torch.ones_like(shifted[:, :1])
        return torch.cat([first, shifted], dim=1) & self.ref_valid.unsqueeze(1)

    def advance(self, tokens: Tensor, active: Optional[Tensor] = None) -> None:
        """Append ``tokens[b]`` to hypothesis b for every active row (others stay as they are)."""
        if active is None:
            active = torch.ones_like(tokens, dtype=torch.bool)
        hits = (self.ref_ids == tokens.unsqueeze(1)).unsqueeze(1)
        matched = self._extends() & hits & active.view(-1, 1, 1)  # new n-gram == ref n-gram at j
        gain = (matched & (self.hyp_count < self.ref_count)).any(-1)
        self.correct += gain.long()
        self.hyp_count += matched.long()
        self.suffix = torch.where(active.view(-1, 1, 1), matched, self.suffix)
        self.hyp_len += active.long()

    def candidate_gains(self) -> Tensor:
        """[B, Lr, N] int64: appending token ``ref[b, j]`` adds a clipped n-gram match.

        Every position holding the same token gets the same answer (a token's n-gram given the
        current suffix is unique, so its gain is the OR over the positions where it occurs).
        """
        here = self._extends() & (self.hyp_count < self.ref_count)  # [B, N, Lr]
        # OR over the positions holding the same token, as one batched product: [B, Lr, N]
        hits = torch.bmm(self._same_token_f, here.transpose(1, 2).to(self._same_token_f.dtype))
        return (hits > 0).long()

    def totals(self, extra: int = 0) -> Tensor:
        """[B, N]: hypothesis n-gram counts after ``extra`` more tokens."""
        return ngram_counts(self.hyp_len + extra, self.max_order)


@dataclass
class TokenDeltas:
    """dR(v | y_<t, y*) for every vocabulary token v, stored compactly.

    ``base`` is broadcastable to ``[B, V]`` (``[B, 1]`` for "every other token", or ``[1, V]`` for a
    per-token value shared by the batch), plus ``row_offset`` (``[B, 1]``) when given;
    ``tokens``/``values`` (``[B, K]``) override it at K positions per row (entries with
    ``tokens < 0`` are ignored). :meth:`expand` materializes ``[B, V]``.
    """

    base: Tensor
    tokens: Tensor
    values: Tensor
    row_offset: Optional[Tensor] = None

    def expand(self, vocab_size: int, dtype: Optional[torch.dtype] = None) -> Tensor:
        """``[B, V]`` in ``dtype`` (default: the values' dtype), written in one buffer."""
        bsz = self.tokens.size(0)
        dtype = dtype or self.values.dtype
        # one extra column receives the ignored entries (tokens < 0) and is sliced off
        dense = torch.empty(bsz, vocab_size + 1, dtype=dtype, device=self.values.device)
        body = dense[:, :vocab_size]
        body.copy_(self.base.expand(bsz, vocab_size))
        if self.row_offset is not None:
            body.add_(self.row_offset.to(dtype))
        index = self.tokens.masked_fill(self.tokens < 0, vocab_size)
        dense.scatter_(1, index, self.values.to(dtype))
        return body

    def value_of(self, tokens: Tensor) -> Tensor:
        """dR of one given token per row (``tokens``: ``[B]``), without expanding the vocabulary."""
        base = self.base.expand(tokens.size(0), -1)
        value = base[:, 0] if base.size(1) == 1 else base.gather(1, tokens.unsqueeze(1)).squeeze(1)
        if self.row_offset is not None:
            value = value + self.row_offset.squeeze(1)
        hit = (self.tokens == tokens.unsqueeze(1)) & (self.tokens >= 0)
        override = self.values.gather(1, hit.long().argmax(1, keepdim=True)).squeeze(1)
        return torch.where(hit.any(1), override.to(value.dtype), value)

    def with_value(self, token: int, value: Union[float, Tensor]) -> "TokenDeltas":
        """The same increments with dR(token) = value (a number for every row, e.g. dR(eos) = 0, or
        one per row, ``[B]``)."""
        bsz = self.tokens.size(0)
        tokens = torch.cat([self.tokens, self.tokens.new_full((bsz, 1), token)], dim=1)
        if isinstance(value, Tensor):
            column = value.reshape(bsz, 1).to(self.values.dtype)
        else:
            column = self.values.new_full((bsz, 1), value)
        return TokenDeltas(self.base, tokens, torch.cat([self.values, column], dim=1), self.row_offset)
