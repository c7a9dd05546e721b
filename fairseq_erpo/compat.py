"""fairseq / torch version shims, applied once when the plugin is imported.

torch >= 2.6 loads checkpoints with ``weights_only=True``: its unpickler accepts tensors, containers
and primitive types, and refuses every other pickled global unless it is allow-listed. fairseq's
``checkpoint_utils.load_checkpoint_to_cpu`` calls plain ``torch.load``, so every fairseq checkpoint
(its ``cfg`` holds the model options as an ``argparse.Namespace``) is refused and
``fairseq-generate`` fails with "Unsupported global: argparse.Namespace".

The fix keeps the safety on: we add exactly the globals that fairseq checkpoints hold to torch's
allow-list. A checkpoint that pickles anything else (a crafted ``os.system`` payload, any other
class) is still refused by torch. ``tests/test_checkpoint_safety.py`` scans the checkpoints that
every training configuration we ship produces, so a new global shows up as a failing test rather
than as a broken ``fairseq-generate``.
"""
from __future__ import annotations

import argparse
from typing import Any, List

import numpy as np
import torch

try:  # numpy >= 2 moved the array internals to numpy._core
    from numpy._core import multiarray as _numpy_multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _numpy_multiarray

# Every global found in checkpoints written by fairseq's trainer (fairseq 0.12.x / fairseq-fixed):
# ``state["cfg"]["model"]`` is the argparse Namespace of the model options. With ``--eval-bleu``
# the translation task logs its BLEU n-gram counts as numpy arrays, and the saved meter state
# (``extra_state["metrics"]``) holds them: plain numeric arrays need numpy's array reconstructor,
# ndarray and dtype (an object array would need further globals and is still refused). Everything
# else fairseq stores (OmegaConf containers converted to dicts, optimizer state, iterator state, our
# task state) is made of plain containers, numbers, strings and tensors.
FAIRSEQ_CHECKPOINT_GLOBALS: List[Any] = [
    argparse.Namespace,
    np.ndarray,
    np.dtype,
    type(np.dtype(np.int64)),  # the dtype of the count arrays (numpy.dtypes.Int64DType)
    type(np.dtype(np.float64)),
    _numpy_multiarray._reconstruct,
]

_applied = False


def torch_needs_allowlist() -> bool:
    """True when this torch has the weights-only unpickler and its allow-list API (torch >= 2.4)."""
    return hasattr(torch.serialization, "add_safe_globals")


def apply() -> None:
    """Allow-list the fairseq checkpoint globals in torch's weights-only unpickler (idempotent)."""
    global _applied
    if _applied:
        return
    if torch_needs_allowlist():
        torch.serialization.add_safe_globals(FAIRSEQ_CHECKPOINT_GLOBALS)
    _applied = True
