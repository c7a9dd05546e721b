"""fairseq / torch version shims, applied once when the plugin is imported.

Each shim names the versions it is for; everything else in the package runs unchanged on fairseq
0.12.2 (Python 3.8-3.10) and on fairseq main (``fairseq-fixed`` 0.12.3.1, Python 3.11+).

* ``build_criterion``: fairseq main added ``from_checkpoint`` to ``FairseqTask.build_criterion``.
* Task state on resume: fairseq main's checkpoint hooks, backported around fairseq 0.12.2's own
  functions (see ``_backport_task_checkpoint_hooks``).
* ``criterion_config``: a criterion's config outside fairseq-train, without omegaconf 2.1's
  ``OmegaConf.update(force_add=...)`` (fairseq 0.12.2 pins omegaconf 2.0).
* Checkpoint safety (torch >= 2.6), below.

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
import dataclasses
import functools
import inspect
import os
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


def build_criterion(parent, cfg, from_checkpoint: bool = False):
    """``parent.build_criterion`` for a task's ``super()``: fairseq main (fairseq-fixed 0.12.3.1)
    passes ``from_checkpoint``; fairseq 0.12.2's ``FairseqTask.build_criterion(cfg)`` has no such
    parameter, and passing it was a TypeError at start-up."""
    if "from_checkpoint" in inspect.signature(parent.build_criterion).parameters:
        return parent.build_criterion(cfg, from_checkpoint)
    return parent.build_criterion(cfg)


def criterion_config(name: str, **fields: Any):
    """The OmegaConf config of criterion ``name`` for building it outside fairseq-train (scripts,
    tests): its dataclass defaults, ``fields`` set, and the values fairseq-train interpolates
    (``sentence_avg`` False, ``seed`` 1) where the dataclass has them. Fields are set on the
    dataclass before the conversion: omegaconf 2.0 (fairseq 0.12.2) has no
    ``OmegaConf.update(..., force_add=True)``."""
    from fairseq.criterions import CRITERION_DATACLASS_REGISTRY
    from omegaconf import OmegaConf

    config = CRITERION_DATACLASS_REGISTRY[name]()
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"criterion {name!r} has no option {unknown}")
    for key, value in {"sentence_avg": False, "seed": 1, **fields}.items():
        if key in known:
            setattr(config, key, value)
    conf = OmegaConf.structured(config)
    conf._name = name
    return conf


def fairseq_has_task_checkpoint_hooks() -> bool:
    """fairseq main saves ``task.get_checkpoint_dict()`` in a checkpoint's ``extra_state`` and gives it
    back through ``task.set_checkpoint_dict`` on resume; fairseq 0.12.2 saves the task state
    (``task_state``) but never reads it back when training resumes."""
    from fairseq import checkpoint_utils

    return "set_checkpoint_dict" in inspect.getsource(checkpoint_utils.load_checkpoint)


def _backport_task_checkpoint_hooks() -> None:
    """fairseq 0.12.2: the two hooks of fairseq main, around fairseq's own functions (unchanged).

    * ``Trainer.save_checkpoint(filename, extra_state)`` also stores ``task.get_checkpoint_dict()``
      in ``extra_state``, as main's ``checkpoint_utils.save_checkpoint`` does;
    * ``checkpoint_utils.load_checkpoint(cfg, trainer)`` then calls ``task.set_checkpoint_dict`` with
      it, under main's condition: only when the data iterator is restored too (not with
      ``--reset-dataloader``, nor for the first launch of ``--finetune-from-model``).
    """
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager
    from fairseq.trainer import Trainer

    save, load = Trainer.save_checkpoint, checkpoint_utils.load_checkpoint

    @functools.wraps(save)
    def save_checkpoint(self, filename, extra_state):
        if hasattr(self.task, "get_checkpoint_dict"):
            extra_state = {**extra_state, **self.task.get_checkpoint_dict()}
        return save(self, filename, extra_state)

    @functools.wraps(load)
    def load_checkpoint(cfg, trainer, **passthrough_args):
        last = os.path.join(cfg.save_dir, "checkpoint_last{}.pt".format(trainer.checkpoint_suffix))
        finetune_start = (cfg.finetune_from_model is not None and cfg.restore_file == "checkpoint_last.pt"
                          and not PathManager.exists(last))
        extra_state, epoch_itr = load(cfg, trainer, **passthrough_args)
        task = trainer.task
        if extra_state is not None and not (cfg.reset_dataloader or finetune_start) and \
                hasattr(task, "set_checkpoint_dict"):
            saved = extra_state.get(task.__class__.__name__, {})
            if saved:
                task.set_checkpoint_dict(saved)
        return extra_state, epoch_itr

    Trainer.save_checkpoint = save_checkpoint
    checkpoint_utils.load_checkpoint = load_checkpoint


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
    if not fairseq_has_task_checkpoint_hooks():
        _backport_task_checkpoint_hooks()
    _applied = True
