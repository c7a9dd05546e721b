"""Compiled CPU kernels (numba) for the sentence-level n-gram and LCS statistics.

On CPU, torch's per-operation overhead dominates for batches of short sentences: the vectorized
counting in :mod:`.ngrams` costs ~2 ms per 256 pairs whatever their length. These kernels compute
the same integer statistics per pair (sorted packed n-gram keys merged; the textbook LCS table),
pairs spread over threads (``prange``), several times faster at batch 256. CUDA tensors always
take the torch path; so does CPU when numba is missing or when ``ERPO_REWARD_KERNELS=torch``. Both paths are tested against sacrebleu and rouge-score.
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

try:  # an optional speed-up, never a requirement for correctness
    import numba

    # fairseq configures the root logger; keep numba's compiler traces out of training logs
    logging.getLogger("numba").setLevel(logging.WARNING)
except ImportError:  # pragma: no cover - exercised only where numba is absent
    numba = None

_MAX_PART = (1 << 15) - 1  # part reserved for reference <unk> (see ngrams._REF_UNK_PART)
_enabled = numba is not None and os.environ.get("ERPO_REWARD_KERNELS", "numba") != "torch"


def set_enabled(enabled: bool) -> bool:
    """Turn the compiled CPU path on or off (tests compare both); returns the previous setting."""
    global _enabled
    previous = _enabled
    _enabled = enabled and numba is not None
    return previous


def usable(*tensors: Tensor) -> bool:
    return _enabled and all(t.device.type == "cpu" for t in tensors)


_serial: dict = {}


def _variant(kernel):
    """The kernel for torch's thread budget. With one thread (e.g. OMP_NUM_THREADS=1, two training runs
    sharing two cores) it is the same code compiled without numba's thread pool: the pool's OpenMP
    worker otherwise spins between launches, and in such a run it took half a core and slowed
    interpolation training 16-fold (1.7 s instead of 0.1 s of sampling per update). The serial twin
    is compiled on first use (not cached: numba's cache would not tell it from the parallel one)."""
    threads = torch.get_num_threads()
    if threads > 1:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        return kernel
    serial = _serial.get(kernel)
    if serial is None:
        serial = _serial[kernel] = numba.njit(nogil=True)(kernel.py_func)  # prange runs as range
    return serial


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _sorted_copy(src, size, dst):
        """Insertion sort of src[:size] into dst (sentences are short: no allocation, few moves)."""
        for i in range(size):
            key, k = src[i], i
            while k > 0 and dst[k - 1] > key:
                dst[k] = dst[k - 1]
                k -= 1
            dst[k] = key

    @numba.njit(cache=True, nogil=True)
    def _merge_count(hs, nh, rs, nr):
        """Sum over keys of min(count in hs[:nh], count in rs[:nr]), both sorted."""
        i, j, total = 0, 0, 0
        while i < nh and j < nr:
            if hs[i] < rs[j]:
                i += 1
            elif hs[i] > rs[j]:
                j += 1
            else:
                key, in_hyp, in_ref = hs[i], 0, 0
                while i < nh and hs[i] == key:
                    in_hyp += 1
                    i += 1
                while j < nr and rs[j] == key:
                    in_ref += 1
                    j += 1
                total += min(in_hyp, in_ref)
        return total

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _clipped_counts(hyp, hyp_len, ref, ref_len, max_order, out):
        # ids are < 2^15 (callers relabel), so n-gram keys packed 15 bits per token are exact
        for row in numba.prange(hyp.shape[0]):
            lh, lr = hyp_len[row], ref_len[row]
            hyp_keys, ref_keys = hyp[row, :lh].copy(), ref[row, :lr].copy()
            hs, rs = np.empty(lh, np.int64), np.empty(lr, np.int64)
            for n in range(1, max_order + 1):
                nh, nr = max(lh - n + 1, 0), max(lr - n + 1, 0)
                if n > 1:  # in place: key i of order n = key i of order n-1, then token i+n-1
                    for i in range(nh):
                        hyp_keys[i] = (hyp_keys[i] << 15) | hyp[row, i + n - 1]
                    for i in range(nr):
                        ref_keys[i] = (ref_keys[i] << 15) | ref[row, i + n - 1]
                _sorted_copy(hyp_keys, nh, hs)
                _sorted_copy(ref_keys, nr, rs)
                out[row, n - 1] = _merge_count(hs, nh, rs, nr)

    @numba.njit(cache=True, nogil=True)
    def _length(tokens, row, pad, eos):
        """Tokens before the first pad or eos (the shared convention of :mod:`.ngrams`)."""
        for i in range(tokens.shape[1]):
            if tokens[row, i] == pad or tokens[row, i] == eos:
                return i
        return tokens.shape[1]

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _sentence_stats(hyp, ref, pad, eos, unk, max_order, correct, hyp_len, ref_len):
        """Lengths, masking and clipped counts from raw padded ids in one pass (no torch ops):
        reference <unk> becomes the key part 2^15 - 1, which no hypothesis id takes."""
        for row in numba.prange(hyp.shape[0]):
            lh, lr = _length(hyp, row, pad, eos), _length(ref, row, pad, eos)
            hyp_len[row], ref_len[row] = lh, lr
            hyp_keys, ref_keys = hyp[row, :lh].copy(), ref[row, :lr].copy()
            for i in range(lr):
                if ref_keys[i] == unk:
                    ref_keys[i] = 32767
            ref_parts = ref_keys.copy()
            hs, rs = np.empty(lh, np.int64), np.empty(lr, np.int64)
            for n in range(1, max_order + 1):
                nh, nr = max(lh - n + 1, 0), max(lr - n + 1, 0)
                if n > 1:
                    for i in range(nh):
                        hyp_keys[i] = (hyp_keys[i] << 15) | hyp[row, i + n - 1]
                    for i in range(nr):
                        ref_keys[i] = (ref_keys[i] << 15) | ref_parts[i + n - 1]
                _sorted_copy(hyp_keys, nh, hs)
                _sorted_copy(ref_keys, nr, rs)
                correct[row, n - 1] = _merge_count(hs, nh, rs, nr)

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _lcs(hyp, hyp_len, ref, ref_len, out):
        for row in numba.prange(hyp.shape[0]):
            lr = ref_len[row]
            dp = np.zeros(lr + 1, np.int64)
            for i in range(hyp_len[row]):
                diag = 0
                token = hyp[row, i]
                for j in range(1, lr + 1):
                    above = dp[j]
                    if token == ref[row, j - 1]:
                        dp[j] = diag + 1
                    elif dp[j - 1] > dp[j]:
                        dp[j] = dp[j - 1]
                    diag = above
            out[row] = dp[lr]


    @numba.njit(cache=True, nogil=True)
    def _bleu_scores(correct, total, sys_len, ref_len, smooth, value, effective_order, out):
        """bleu.bleu_from_stats row by row (the same operations in the same order, float64): the
        token-level increments score a few thousand candidate rows per step, where torch's ~40
        small operations cost more than the arithmetic. ``smooth``: SMOOTH_CODES."""
        order = correct.shape[1]
        for row in range(correct.shape[0]):
            matched_any = False
            for n in range(order):
                if correct[row, n] > 0:
                    matched_any = True
            if not matched_any:  # sacrebleu returns 0 before smoothing when nothing matches
                out[row] = 0.0
                continue
            sys, ref = sys_len[row], ref_len[row]
            bp = np.exp(1.0 - ref / max(sys, 1.0)) if sys < ref else 1.0
            if not sys > 0:
                bp = 0.0
            alive_orders, doublings, log_sum, alive = 0, 0.0, 0.0, True
            logs = np.empty(order)
            for n in range(order):
                c, t = correct[row, n], total[row, n]
                if smooth == 2 and n > 0:  # add-k: orders n > 1 only
                    c, t = c + value, t + value
                alive = alive and t > 0  # sacrebleu's loop breaks at the first order without n-grams
                zero = c == 0
                safe_total = max(t, 1e-300)
                if smooth == 3:  # exp: each alive order without matches doubles the running divisor
                    if alive and zero:
                        doublings += 1.0
                    smoothed = 100.0 / (2.0 ** doublings * safe_total)
                elif smooth == 1:
                    smoothed = 100.0 * value / safe_total
                else:
                    smoothed = 0.0
                precision = smoothed if zero else 100.0 * c / safe_total
                if not alive:
                    precision = 0.0
                else:
                    alive_orders += 1
                logs[n] = np.log(max(precision, 1e-300)) if precision > 0 else -9999999999.0
            eff_order = float(alive_orders) if effective_order else float(order)
            for n in range(order):
                if n < eff_order:
                    log_sum += logs[n]
            out[row] = bp * np.exp(log_sum / max(eff_order, 1.0))


SMOOTH_CODES = {"none": 0, "floor": 1, "add-k": 2, "exp": 3}


def bleu_scores(correct: Tensor, total: Tensor, sys_len: Tensor, ref_len: Tensor, smooth: str, value: float,
                effective_order: bool) -> Optional[Tensor]:
    """``bleu.bleu_from_stats`` (``correct``/``total`` ``[..., N]``, lengths ``[...]``, smoothing
    value already resolved) as float64 ``[...]``, or None when the compiled path is not usable."""
    if not usable(correct, total, sys_len, ref_len):
        return None
    shape = sys_len.shape
    order = correct.size(-1)

    def flat(t: Tensor, width: Optional[int] = None) -> np.ndarray:
        t = t.detach().double()
        t = t.expand(*shape, width) if width else t.expand(shape)
        return np.ascontiguousarray(t.reshape(-1, width) if width else t.reshape(-1))

    out = np.empty(int(np.prod(shape)) if shape else 1, np.float64)
    _bleu_scores(flat(correct, order), flat(total, order), flat(sys_len), flat(ref_len), SMOOTH_CODES[smooth],
                 float(value), bool(effective_order), out)
    return torch.from_numpy(out).reshape(shape)


def _as_numpy(tensor: Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to(torch.int64).numpy())


def _arrays(*tensors: Tensor):
    return tuple(_as_numpy(t) for t in tensors)


def clipped_counts(hyp_parts: Tensor, hyp_len: Tensor, ref_parts: Tensor, ref_len: Tensor,
                   max_order: int) -> Optional[Tensor]:
    """[B, max_order] clipped n-gram matches, or None when the compiled path is not usable.

    ``*_parts``: ids below 2^15 (see ``ngrams._key_parts``); padding positions are never read.
    """
    if not usable(hyp_parts, ref_parts):
        return None
    out = np.zeros((hyp_parts.size(0), max_order), np.int64)
    _variant(_clipped_counts)(*_arrays(hyp_parts, hyp_len, ref_parts, ref_len), max_order, out)
    return torch.from_numpy(out)


def sentence_stats(hyps: Tensor, refs: Tensor, pad: int, eos: int, unk: Optional[int],
                   max_order: int) -> Optional[Tuple[Tensor, Tensor, Tensor]]:
    """(clipped matches [B, max_order], hypothesis lengths, reference lengths) straight from raw
    padded ids, or None when the compiled path is not usable (ids must be below 2^15 - 1)."""
    if not usable(hyps, refs):
        return None
    if max(int(t.max()) if t.numel() else -1 for t in (hyps, refs)) >= _MAX_PART:
        return None
    bsz = hyps.size(0)
    correct = np.zeros((bsz, max_order), np.int64)
    hyp_len, ref_len = np.zeros(bsz, np.int64), np.zeros(bsz, np.int64)
    _variant(_sentence_stats)(_as_numpy(hyps), _as_numpy(refs), pad, eos, -1 if unk is None else unk, max_order,
                    correct, hyp_len, ref_len)
    return torch.from_numpy(correct), torch.from_numpy(hyp_len), torch.from_numpy(ref_len)


def lcs_lengths(hyp_ids: Tensor, hyp_len: Tensor, ref_ids: Tensor, ref_len: Tensor) -> Optional[Tensor]:
    """[B] LCS lengths, or None when the compiled path is not usable."""
    if not usable(hyp_ids, ref_ids):
        return None
    out = np.zeros(hyp_ids.size(0), np.int64)
    _variant(_lcs)(*_arrays(hyp_ids, hyp_len, ref_ids, ref_len), out)
    return torch.from_numpy(out)
