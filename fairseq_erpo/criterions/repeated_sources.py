"""One encoder pass for several targets per source, with a backward that sums in a fixed order.

RAML trains on K samples per reference and risk scores K candidates per source; both run the encoder
once and repeat each source's output K times. fairseq's ``reorder_encoder_out(out, order)`` does that
with ``index_select`` and ``order = [0]*K + [1]*K + ...``. The backward of ``index_select`` is an
``index_add_``: on CUDA, atomic adds into each source's row in no fixed order, so the gradients' last
bits differ between two identical runs (on a GPU, resumed ``raml`` and ``risk`` runs were the only
ones that did not continue bit-exactly: docs/erpo.md#resuming-a-run). Here every repeated tensor is
an ``expand`` of the source's own tensor instead: the same values, and a backward that sums the K
copies' gradients as a reduction over one dimension, in a fixed order on every device.

fairseq's own ``reorder_encoder_out`` still decides the output's structure and which dimension of
each tensor is the batch (the LSTM's and the Transformer's differ): it runs once without gradients,
and each tensor it returns is rebuilt from the original by ``expand`` along the one dimension that
grew from B to B*K, checked equal to fairseq's values. A structure this cannot mirror (a model whose
reorder does something else) falls back to fairseq's reorder itself.
"""
from __future__ import annotations

from typing import Any

import torch
from fairseq import utils
from torch import Tensor


class _NotMirrored(Exception):
    """fairseq's reordered output is not the original's tensors repeated along one dimension."""


def repeat_encoder_out(model, encoder_out: Any, sources: int, copies: int) -> Any:
    """``encoder_out`` of ``sources`` sources with source i repeated at rows i*copies ..
    (i+1)*copies - 1, as ``model.encoder.reorder_encoder_out`` with the order
    ``arange(sources).repeat_interleave(copies)`` returns it, but differentiable through ``expand``
    (a fixed-order sum in the backward) rather than ``index_select`` (an ``index_add_``)."""
    if copies == 1:
        return encoder_out
    detached = utils.apply_to_sample(torch.Tensor.detach, encoder_out)
    device = next((t.device for t in _tensors(detached)), torch.device("cpu"))
    order = torch.arange(sources, device=device).repeat_interleave(copies)
    with torch.no_grad():
        reordered = model.encoder.reorder_encoder_out(detached, order)
    try:
        return _mirror(encoder_out, reordered, copies)
    except _NotMirrored:
        return model.encoder.reorder_encoder_out(encoder_out, order)


def _tensors(value: Any):
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def _mirror(original: Any, reordered: Any, copies: int) -> Any:
    if isinstance(reordered, Tensor):
        if not isinstance(original, Tensor) or original.dim() != reordered.dim():
            raise _NotMirrored()
        grown = [d for d in range(original.dim()) if original.size(d) != reordered.size(d)]
        if not grown:  # not indexed by source (nothing to repeat)
            if not torch.equal(original.detach(), reordered):
                raise _NotMirrored()
            return original
        d = grown[0]
        if len(grown) > 1 or original.size(d) * copies != reordered.size(d):
            raise _NotMirrored()
        shape = list(original.shape)
        repeated = original.unsqueeze(d + 1).expand(*shape[: d + 1], copies, *shape[d + 1:]).flatten(d, d + 1)
        if not torch.equal(repeated.detach(), reordered):
            raise _NotMirrored()
        return repeated
    if isinstance(reordered, (tuple, list)):
        if not isinstance(original, (tuple, list)) or len(original) != len(reordered):
            raise _NotMirrored()
        return type(reordered)(_mirror(o, r, copies) for o, r in zip(original, reordered))
    if isinstance(reordered, dict):
        # (fairseq's Transformer drops what it does not reorder, e.g. "fc_results")
        if not isinstance(original, dict) or not set(reordered) <= set(original):
            raise _NotMirrored()
        return {key: _mirror(original[key], value, copies) for key, value in reordered.items()}
    return reordered  # None, numbers, strings: nothing to differentiate
