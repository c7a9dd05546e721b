"""Shared fixtures: repository paths, the fairseq CLI in a subprocess, and the shared real data."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_BIN = REPO / "data-bin" / "synthetic"
SHARED_DATA = Path(os.environ.get("ERPO_SHARED_DATA", REPO.parent / "shared" / "data"))
BIN = Path(sys.executable).parent


def cli(tool: str, *args: str, cwd: Path = REPO, check: bool = True,
        timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a fairseq console script (fairseq-train, fairseq-generate, ...) from this venv. The timeout
    only catches hangs: on a 2-core machine shared with a training run a 40-update run took over 300 s."""
    exe = shutil.which(tool, path=str(BIN)) or tool
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONWARNINGS="ignore")
    proc = subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def train_args(save_dir: Path, *extra: str, updates: int = 20) -> List[str]:
    """fairseq-train arguments for a short run of the paper's preset on data-bin/synthetic."""
    return [str(DATA_BIN), "--user-dir", "fairseq_erpo", "--arch", "lstm_erpo_iwslt_de_en",
            "--optimizer", "adam", "--lr", "1e-3", "--batch-size", "64",
            "--max-update", str(updates), "--save-dir", str(save_dir), "--seed", "1",
            "--no-progress-bar", "--log-interval", "10", "--num-workers", "0",
            "--no-epoch-checkpoints", *extra]


# fairseq-generate's length cap for briefly trained models, which may never write EOS: hypotheses stop
# near the source length (what the tests check is that checkpoints load and decode, not 200-token beams)
SHORT_DECODE = ["--max-len-a", "1.2", "--max-len-b", "10"]


def generate_args(checkpoint: Path, *extra: str) -> List[str]:
    return [str(DATA_BIN), "--user-dir", "fairseq_erpo", "--path", str(checkpoint),
            "--beam", "5", "--batch-size", "128", "--required-batch-size-multiple", "1",
            "--gen-subset", "test", *extra]


@pytest.fixture(scope="session")
def mle_checkpoint(tmp_path_factory) -> Path:
    """A 20-update MLE checkpoint trained through the real fairseq-train CLI (once per session)."""
    save_dir = tmp_path_factory.mktemp("mle")
    cli("fairseq-train", *train_args(save_dir, "--criterion", "cross_entropy"))
    return save_dir / "checkpoint_last.pt"


INTERPOLATION = ["--criterion", "interpolation", "--lambdas", "0.3,0.3,0.4"]
# cheap validation decodes (greedy, short) so that tests can validate often
FAST_EVAL = ["--eval-bleu", "--eval-bleu-args", '{"beam": 1, "max_len_a": 1, "max_len_b": 5}',
             "--eval-tokenized-bleu", "--max-valid-steps", "1", "--required-batch-size-multiple", "1"]
ANNEAL = ["--task", "erpo_translation", *INTERPOLATION, *FAST_EVAL,
          "--validate-interval-updates", "5", "--save-interval-updates", "5"]


@pytest.fixture(scope="session")
def annealed_run(tmp_path_factory):
    """Interpolation under erpo_translation, 40 updates validating every 5 (seeded: it anneals)."""
    save_dir = tmp_path_factory.mktemp("anneal")
    proc = cli("fairseq-train", *train_args(save_dir, *ANNEAL, updates=40))
    return save_dir, proc.stdout + proc.stderr


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data: skip when absent, but fail loudly in CI (CI=true)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        msg = f"shared data missing: {path} (set ERPO_SHARED_DATA to the shared/data folder)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(params=["numba", "torch"])
def reward_kernels(request):
    """Run a reward test on both CPU paths: the compiled kernels and the plain-torch (CUDA) code."""
    from fairseq_erpo.rewards import cpu_kernels

    if request.param == "numba" and cpu_kernels.numba is None:
        pytest.fail("numba is a dependency of fairseq-erpo but is not installed")
    previous = cpu_kernels.set_enabled(request.param == "numba")
    yield request.param
    cpu_kernels.set_enabled(previous)
