"""Every criterion resumes bit-exactly after a crash: a run killed with SIGKILL and started again
with the same command draws the same targets, computes the same losses and ends with the same
parameters and task state as the run that was never interrupted (one torch thread, so that the
comparison can be exact)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest
import torch

from conftest import ANNEAL, REPO, train_args
from test_cli_erpo import CRITERIONS

DRIVER = Path(__file__).with_name("resume_driver.py")
UPDATES, SAVE_EVERY = 20, 5
# Each run is killed 3 updates after a checkpoint and resumes from it, through a schedule change:
# MIXER hands 4 tokens to REINFORCE from update 10, 6 from 15 (--mixer-updates-per-step 5),
# scheduled sampling's eps (k = 5) falls from 0.52 to 0.08 over the updates after update 10, and the
# interpolation (validating every 5 updates) anneals at update 10, after its resume point 5.
RESUME_FROM = {"interpolation": 5}
RUNS = {name: ["--task", "erpo_translation", *args, "--no-anneal"] for name, args in CRITERIONS.items()}
RUNS["interpolation"] = [*ANNEAL]  # validation every 5 updates, annealing on
RUNS["mixer_mean"] = [*RUNS["mixer"], "--mixer-baseline", "mean"]  # RUNS["mixer"]: the learned baseline
RUNS["mixer_translation"] = ["--task", "translation", *CRITERIONS["mixer"], "--mixer-baseline", "none"]
RUNS["scheduled_sampling_translation"] = ["--task", "translation", *CRITERIONS["scheduled_sampling"]]


# a small LSTM (the preset's layout, 32 units): the comparison is as exact, the runs cheaper
SMALL = ["--encoder-embed-dim", "32", "--encoder-hidden-size", "32", "--decoder-embed-dim", "32",
         "--decoder-hidden-size", "32", "--decoder-out-embed-dim", "32"]


def start(save_dir: Path, args: List[str], kill_at: int = -1) -> subprocess.Popen:
    """The training command (one torch thread), recording into save_dir/record.jsonl."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               ERPO_KILL_AT_UPDATE=str(kill_at))
    return subprocess.Popen([sys.executable, str(DRIVER), str(save_dir / "record.jsonl"),
                             *train_args(save_dir, *args, *SMALL, "--save-interval-updates", str(SAVE_EVERY),
                                         updates=UPDATES)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> Tuple[int, str]:
    out, _ = proc.communicate(timeout=900)
    return proc.returncode, out


def records(save_dir: Path) -> List[dict]:
    return [json.loads(line) for line in (save_dir / "record.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_killed_run_resumes_bit_exactly(tmp_path, name):
    args = RUNS[name]
    if "--save-interval-updates" in args:  # ANNEAL saves every 5 updates already
        i = args.index("--save-interval-updates")
        args = args[:i] + args[i + 2:]
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    for d in (whole, crashed):
        d.mkdir()
    resume = RESUME_FROM.get(name, 10)
    kill_at = resume + 3
    # side by side, one core each: the uninterrupted run, and the same command killed in update `kill_at`
    runs = [start(whole, args), start(crashed, args, kill_at=kill_at)]
    (code, log), (killed, killed_log) = finish(runs[0]), finish(runs[1])
    assert code == 0, log[-3000:]
    assert killed == -9, killed_log[-3000:]  # SIGKILL, as update `kill_at` began
    before = records(crashed)
    assert [r["update"] for r in before] == list(range(kill_at))
    (crashed / "record.jsonl").unlink()
    code, log = finish(start(crashed, args))  # the same command again: it resumes from checkpoint_last.pt
    assert code == 0, log[-3000:]
    assert re.search(rf"loaded checkpoint .*checkpoint_last\.pt \(epoch 1 @ {resume} updates\)", log, re.IGNORECASE)

    uninterrupted, resumed = records(whole), records(crashed)
    assert [r["update"] for r in uninterrupted] == list(range(UPDATES))
    assert before == uninterrupted[:kill_at]
    assert [r["update"] for r in resumed] == list(range(resume, UPDATES))
    assert all(r["draws"] for r in resumed)  # every update after the resume drew something
    for a, b in zip(uninterrupted[resume:], resumed):
        assert a == b, f"update {a['update']}: the resumed run drew or computed something else"

    final = [torch.load(d / "checkpoint_last.pt", map_location="cpu") for d in (whole, crashed)]
    assert final[0]["model"].keys() == final[1]["model"].keys()
    for key, value in final[0]["model"].items():
        assert torch.equal(value, final[1]["model"][key]), key
    assert final[0]["task_state"] == final[1]["task_state"]
    assert final[0]["optimizer_history"][-1]["num_updates"] == UPDATES
    if name == "interpolation":  # the run annealed after the resume point, and so did the resumed one
        decisions = final[0]["task_state"]["schedule"]["decisions"]
        assert any(update > resume and what == "anneal" for update, _, what in decisions), decisions
    if name == "mixer":  # the learned baseline is criterion state: trained, saved and resumed exactly
        regressor = final[0]["criterion"]
        assert set(regressor) == {"baseline_regressor.weight", "baseline_regressor.bias"}
        assert all(torch.equal(value, final[1]["criterion"][key]) for key, value in regressor.items())
        assert float(regressor["baseline_regressor.bias"]) != pytest.approx(0.01)  # it moved from its init
    if name == "mixer_mean":
        assert isinstance(final[0]["task_state"]["mixer_baseline"], float)
