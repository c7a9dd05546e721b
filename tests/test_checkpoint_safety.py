"""torch >= 2.6 weights-only loading: fairseq checkpoints load, anything else is still refused."""
from __future__ import annotations

import argparse
import fractions
import os
import pickle

import pytest
import torch

from fairseq_erpo import compat
from fairseq import checkpoint_utils
from conftest import cli, generate_args

# torch < 2.4 (e.g. 1.13.1 on fairseq 0.12.2) has no allow-list, and torch.load unpickles anything
# by default: there, checkpoint safety is the user's (load only checkpoints you trust; README)
pytestmark = pytest.mark.skipif(not compat.torch_needs_allowlist(),
                                reason="torch < 2.4 has no weights-only allow-list: nothing to test")


class _Payload:
    """Pickles as a call to os.system: what a malicious checkpoint would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _with_extra(src, dst, value):
    """Copy a real fairseq checkpoint and add one more pickled object to it."""
    state = torch.load(src, map_location="cpu")
    state["extra_state"]["injected"] = value
    torch.save(state, dst)


def test_allow_list_is_exactly_fairseqs_globals():
    names = {f"{g.__module__}.{g.__qualname__}" for g in compat.FAIRSEQ_CHECKPOINT_GLOBALS}
    assert names == {"argparse.Namespace", "numpy.ndarray", "numpy.dtype", "numpy.dtypes.Int64DType",
                     "numpy.dtypes.Float64DType", "numpy._core.multiarray._reconstruct"}
    assert set(compat.FAIRSEQ_CHECKPOINT_GLOBALS) <= set(torch.serialization.get_safe_globals())


def globals_in(checkpoint):
    from torch.serialization import get_unsafe_globals_in_checkpoint  # torch >= 2.4

    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()  # the scan reports only globals not yet allowed
    try:
        return set(get_unsafe_globals_in_checkpoint(str(checkpoint)))
    finally:
        torch.serialization.add_safe_globals(saved)


def test_every_global_in_a_trained_checkpoint_is_allow_listed(mle_checkpoint, annealed_run):
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in compat.FAIRSEQ_CHECKPOINT_GLOBALS}
    assert globals_in(mle_checkpoint) == {"argparse.Namespace"}
    # --eval-bleu (fairseq's translation task) leaves numpy count arrays in the saved meters;
    # erpo_translation adds its schedule as plain data
    found = globals_in(annealed_run[0] / "checkpoint_last.pt")
    assert "numpy.ndarray" in found and found <= allowed
    state = torch.load(annealed_run[0] / "checkpoint_last.pt", map_location="cpu")
    assert state["task_state"]["schedule"]["lambdas"]


def test_numpy_object_arrays_are_still_refused(mle_checkpoint, tmp_path):
    import numpy as np
    bad = tmp_path / "object_array.pt"
    _with_extra(mle_checkpoint, bad, np.array([fractions.Fraction(1, 3)], dtype=object))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(bad, map_location="cpu")


def test_fairseq_loader_reads_plugin_checkpoint(mle_checkpoint):
    state = checkpoint_utils.load_checkpoint_to_cpu(str(mle_checkpoint))
    assert isinstance(state["cfg"]["model"], argparse.Namespace)
    assert "encoder.lstm.weight_ih_l0" in state["model"]


def test_malicious_checkpoint_is_refused(mle_checkpoint, tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.pt"
    _with_extra(mle_checkpoint, bad, _Payload(marker))
    with pytest.raises(pickle.UnpicklingError, match="posix.system"):
        checkpoint_utils.load_checkpoint_to_cpu(str(bad))
    assert not marker.exists()
    proc = cli("fairseq-generate", *generate_args(bad), check=False)
    assert proc.returncode != 0 and "Weights only load failed" in proc.stderr
    assert "posix.system" in proc.stderr
    assert not marker.exists()


def test_any_other_global_is_refused(mle_checkpoint, tmp_path):
    bad = tmp_path / "other.pt"
    _with_extra(mle_checkpoint, bad, fractions.Fraction(1, 3))
    with pytest.raises(pickle.UnpicklingError, match="fractions.Fraction"):
        checkpoint_utils.load_checkpoint_to_cpu(str(bad))
