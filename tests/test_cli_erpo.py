"""The criterions and the erpo_translation task through the real fairseq CLI."""
from __future__ import annotations

import re

import pytest
import torch

import fairseq_erpo  # noqa: F401
from conftest import ANNEAL, INTERPOLATION, SHORT_DECODE, cli, generate_args, train_args

CRITERIONS = {
    "erpo": ["--criterion", "erpo", "--reward", "bleu", "--alpha", "0.5", "--beta", "0.5"],
    "interpolation": INTERPOLATION,
    "spg": ["--criterion", "spg"],
    "data_noising": ["--criterion", "data_noising", "--noise-prob", "0.2"],
    "scheduled_sampling": ["--criterion", "scheduled_sampling", "--ss-k", "5"],
    "raml": ["--criterion", "raml", "--raml-samples", "4"],
    "mixer": ["--criterion", "mixer", "--mixer-updates-per-step", "5", "--mixer-delta", "2"],
    # sampled candidates (the shared sampler's per-update RNG); beam candidates: tests/test_risk.py
    "risk": ["--criterion", "risk", "--risk-candidates", "4", "--risk-generation", "sample"],
}
BASELINES = ("mixer", "raml", "scheduled_sampling")  # issue 5: their checkpoints are also decoded


def train_log(proc) -> str:
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("task", ["translation", "erpo_translation"])
@pytest.mark.parametrize("name", sorted(CRITERIONS))
def test_criterion_trains_20_updates(tmp_path, name, task):
    extra = ["--no-anneal"] if task == "erpo_translation" else []
    if name == "mixer" and task == "translation":  # its running-mean baseline needs erpo_translation's state
        extra = ["--mixer-baseline", "none"]
    log = train_log(cli("fairseq-train", *train_args(tmp_path, "--task", task, *CRITERIONS[name], *extra)))
    assert "num_updates 20" in log and (tmp_path / "checkpoint_last.pt").is_file()
    assert re.search(r"\| loss \d+\.\d+", log)
    if task == "erpo_translation" and name in ("interpolation", *BASELINES):
        # the checkpoint loads in fairseq-generate and decodes every test sentence
        proc = cli("fairseq-generate", *generate_args(tmp_path / "checkpoint_last.pt", *SHORT_DECODE))
        assert len([line for line in proc.stdout.splitlines() if line.startswith("H-")]) == 500
    if name == "scheduled_sampling":
        # k = 5: eps_i = 5 / (5 + exp(i / 5)) falls from 0.83 to 0.08 over the 20 updates, which
        # shows the criterion reads the trainer's update count
        eps = [float(v) for v in re.findall(r"ss_eps[=| ]+([\d.]+)", log)]
        assert eps and eps[-1] < 0.5 and re.search(r"frac_model_inputs[=| ]+0\.[1-9]", log)
        return
    if name == "raml":
        assert re.search(r"raml_reward[=| ]+0\.\d+", log)
        return
    if name == "risk":
        risks = [float(v) for v in re.findall(r"\| risk ([\d.]+)", log)]
        assert risks and all(0.0 < r < 1.0 for r in risks) and re.search(r"candidate_reward [\d.]+", log)
        return
    if name == "mixer":
        # 5 updates per step, 2 tokens per step: updates 11-20 hand the last 4, then 6 tokens to REINFORCE
        tails = [float(v) for v in re.findall(r"mixer_tail[=| ]+([\d.]+)", log)]
        assert tails and max(tails) == 5.0 and re.search(r"frac_reinforce[=| ]+0\.[1-9]", log)
        return
    assert re.search(r"sample_ms \d", log)
    if name == "interpolation":
        assert re.search(r"frac_model 0\.\d+ \| frac_reward 0\.\d+ \| frac_truth 0\.\d+", log)
        warned = "annealing needs --task erpo_translation" in log
        assert warned == (task == "translation")


def schedule_of(checkpoint) -> dict:
    state = torch.load(checkpoint, map_location="cpu")  # weights-only: the task state is plain data
    assert state["task_state"]["schedule"] == state["extra_state"]["ErpoTranslationTask"]["schedule"]
    return state["task_state"]["schedule"]


def test_annealing_moves_lambdas_and_restores_theta(annealed_run):
    save_dir, log = annealed_run
    schedule = schedule_of(save_dir / "checkpoint_last.pt")
    decisions = [d[2] for d in schedule["decisions"]]
    assert decisions.count("anneal") >= 1 and len(decisions) == 8
    assert schedule["anneal_count"] == decisions.count("anneal")
    assert "theta restored to the last accepted point" in log
    # the first anneal follows the paper: weight moves from the ground truth to the model branch
    first = decisions.index("anneal")
    assert schedule_of(save_dir / f"checkpoint_1_{5 * (first + 1)}.pt")["lambdas"] == [0.36, 0.3, 0.34]
    # theta was not updated: the checkpoint written after the rejection is the last accepted model
    rejected = torch.load(save_dir / f"checkpoint_1_{5 * (first + 1)}.pt", map_location="cpu")["model"]
    accepted = torch.load(save_dir / f"checkpoint_1_{5 * first}.pt", map_location="cpu")["model"]
    assert all(torch.equal(rejected[k], accepted[k]) for k in accepted)


def test_resume_mid_anneal_continues_the_same_schedule(annealed_run, tmp_path):
    save_dir, _ = annealed_run
    full = schedule_of(save_dir / "checkpoint_last.pt")
    first = [d[2] for d in full["decisions"]].index("anneal")
    stop = 5 * (first + 2)  # stopped after the first anneal, before the next decisions
    assert stop < 40
    cli("fairseq-train", *train_args(tmp_path, *ANNEAL, updates=stop))
    partial = schedule_of(tmp_path / "checkpoint_last.pt")
    assert partial["decisions"] == full["decisions"][: len(partial["decisions"])]
    cli("fairseq-train", *train_args(tmp_path, *ANNEAL, "--restore-file", "checkpoint_last.pt", updates=40))
    resumed = schedule_of(tmp_path / "checkpoint_last.pt")
    assert resumed == full  # lambdas, anneal count, best rewards and every later decision


def test_annealing_needs_a_validation_reward(tmp_path):
    proc = cli("fairseq-train", *train_args(tmp_path, "--task", "erpo_translation",
                                            *CRITERIONS["interpolation"]), check=False)
    assert proc.returncode != 0 and "add --eval-bleu" in proc.stderr


def test_rouge_validation_reward_drives_annealing(tmp_path):
    """Summarization setting: --eval-rouge logs ROUGE-1/2/L and their sum, which anneals."""
    args = [a for a in ANNEAL if a not in ("--eval-bleu", "--eval-tokenized-bleu")]
    log = train_log(cli("fairseq-train", *train_args(tmp_path, *args, "--eval-rouge", "--anneal-metric", "rouge",
                                                     "--reward", "rouge", updates=10)))
    rows = re.findall(r"valid on 'valid' subset .*?\| rouge1 ([\d.]+) \| rouge2 ([\d.]+) \| rougeL ([\d.]+) "
                      r"\| rouge ([\d.]+)", log)
    assert len(rows) == 2
    for r1, r2, rl, total in rows:
        assert abs(float(r1) + float(r2) + float(rl) - float(total)) < 0.02
    assert len(re.findall(r"erpo: valid rouge [\d.]+ accepted", log)) >= 1
    assert "bleu" not in log.split("valid on 'valid' subset")[1].split("\n")[0]


def test_annealing_without_validation_fails_at_start_up(tmp_path):
    proc = cli("fairseq-train", *train_args(tmp_path, *ANNEAL, "--disable-validation"), check=False)
    assert proc.returncode != 0
    assert "--disable-validation turns off: drop --disable-validation, or keep the lambdas fixed with --no-anneal" \
        in proc.stderr


def test_fine_tuning_starts_the_schedule_from_lambdas_or_from_a_checkpoint(annealed_run, tmp_path):
    """--finetune-from-model restores no task state (fairseq resets the data iterator), so the schedule
    starts from --lambdas; --schedule-from CHECKPOINT starts it from that checkpoint's lambdas and
    anneal count instead, with a fresh record of validation rewards."""
    save_dir, _ = annealed_run
    trained = schedule_of(save_dir / "checkpoint_last.pt")
    assert trained["anneal_count"] >= 1 and trained["lambdas"] != [0.3, 0.3, 0.4]
    model = str(save_dir / "checkpoint_last.pt")
    plain, continued = tmp_path / "plain", tmp_path / "continued"
    cli("fairseq-train", *train_args(plain, *ANNEAL, "--finetune-from-model", model, updates=5))
    cli("fairseq-train", *train_args(continued, *ANNEAL, "--finetune-from-model", model, "--schedule-from", model,
                                     updates=5))
    assert schedule_of(plain / "checkpoint_last.pt")["lambdas"] == [0.3, 0.3, 0.4]  # --lambdas
    schedule = schedule_of(continued / "checkpoint_last.pt")
    assert schedule["lambdas"] == trained["lambdas"] and schedule["anneal_count"] == trained["anneal_count"]
    assert [d[2] for d in schedule["decisions"]] == ["accept"]  # the first validation after it
    proc = cli("fairseq-train", *train_args(tmp_path / "bad", *ANNEAL, "--schedule-from", str(tmp_path / "none.pt")),
               check=False)
    assert proc.returncode != 0 and "--schedule-from" in proc.stderr and "cannot load it" in proc.stderr
