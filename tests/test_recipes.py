"""scripts/train.sh -> scripts/evaluate.sh -> scripts/report.py on the embedded corpus."""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

from conftest import BIN, REPO, SHORT_DECODE
from erpo_helpers import summarization_bin

FAST = ["--max-update", "20", "--validate-interval-updates", "10", "--max-valid-steps", "1",
        "--eval-bleu-args", '{"beam": 1, "max_len_b": 5}']


# the queue's test decoding, passed to evaluate.sh through reproduce.sh
EVAL_ARGS = " ".join(SHORT_DECODE)


def run(*args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "OMP_NUM_THREADS": "2", "HOME": str(Path.home()),
           "EVAL_ARGS": EVAL_ARGS, **env_extra}
    return subprocess.run(list(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_reproduce_queue_trains_evaluates_reports_and_resumes(tmp_path):
    """scripts/reproduce.sh drives train.sh -> evaluate.sh -> report.py for every (algo, seed) of its
    plan: each run trains, decodes and is scored; a run short of the queue's budget is resumed."""
    data = tmp_path / "synthetic"
    data.symlink_to(REPO / "data-bin" / "synthetic")
    runs, results = tmp_path / "runs" / "synthetic", tmp_path / "results"
    # the recipes with phases or schedules of their own (MIXER's cross-entropy epochs, scheduled
    # sampling's restarted count, the interpolation's annealing, SPG's bang-bang draws) and RAML's
    # samples; every recipe's arguments build its task, model and criterion in the parser test below
    plan = "mle:1 interpolation:1 interpolation:2 mixer:1 raml_resampled:1 spg:1 scheduled_sampling:1"
    # MLE seed 1 trained by hand to a shorter budget, and scored: not a finished run of this queue
    short = run("bash", "scripts/train.sh", "mle", str(data), "1", *FAST, "--max-update", "10",
                ERPO_RUNS=str(tmp_path / "runs"))
    assert short.returncode == 0 and "num_updates 10" in (runs / "mle" / "seed1" / "train.log").read_text()
    (runs / "mle" / "seed1" / "scores-test.json").write_text(json.dumps({"bleu": -1.0}))
    proc = run("bash", "scripts/reproduce.sh", str(data), str(results), "2", *FAST, PLAN=plan,
               ERPO_RUNS=str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # resumed from its 10 updates to the queue's 20, then scored again (the stale score is gone)
    assert "@ 10 updates)" in (runs / "mle" / "seed1" / "train.log").read_text()
    assert (runs / "mle" / "seed1" / "queue-args").read_text() == " ".join(FAST) + "\n"
    for algo, seed in (item.split(":") for item in plan.split()):
        assert "num_updates 20" in (runs / algo / f"seed{seed}" / "train.log").read_text()
        scores = json.loads((runs / algo / f"seed{seed}" / "scores-test.json").read_text())
        assert scores["sentences"] == 500 and "tok:13a" in scores["sacrebleu_signature"]
        assert f"{algo} seed {seed}: " in proc.stdout
    table = (results / "table.md").read_text()
    assert "| interpolation | 2 |" in table and "| mle | 1 |" in table and "| mixer | 1 |" in table
    assert (results / "convergence.png").stat().st_size > 1000
    assert (results / "interpolation" / "seed2" / "train.log").is_file()
    # the same command again: every run is finished and evaluated, nothing is retrained
    logs = {p: p.read_text() for p in runs.glob("*/seed*/train.log")}
    proc = run("bash", "scripts/reproduce.sh", str(data), str(results), "2", *FAST, PLAN=plan,
               ERPO_RUNS=str(tmp_path / "runs"))
    assert proc.returncode == 0 and all(p.read_text() == text for p, text in logs.items())


def test_reproduce_queue_on_summarization_data(tmp_path):
    """Table 2's queue: on summarization data the reward and validation metric are ROUGE (SS with
    k = 600, the reward branch at c_R = 1000), runs are scored with ROUGE-1/2/L and the table sets
    ROUGE-L beside the paper's Table 2."""
    data = summarization_bin(tmp_path / "summaries")
    runs, results = tmp_path / "runs" / "summaries", tmp_path / "results"
    plan = "mle:1 interpolation:1 scheduled_sampling:1"  # the recipes whose settings differ for summarization
    proc = run("bash", "scripts/reproduce.sh", str(data), str(results), "2", *FAST, PLAN=plan,
               ERPO_RUNS=str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for algo in plan.replace(":1", "").split():
        log = (runs / algo / "seed1" / "train.log").read_text()
        assert "num_updates 20" in log and "| rougeL " in log and "| bleu " not in log
        scores = json.loads((runs / algo / "seed1" / "scores-test.json").read_text())
        assert set(scores) >= {"rouge1", "rouge2", "rougeL", "rougeL_no_unk_credit"} and scores["sentences"] == 500
    config = lambda algo: (runs / algo / "seed1" / "train.log").read_text()  # noqa: E731
    assert "'reward': 'rouge'" in config("interpolation") and "'reward_sample_scale': 1000.0" in config("interpolation")
    assert "'ss_k': 600" in config("scheduled_sampling")
    assert "'anneal_metric': rouge" in config("interpolation")
    table = (results / "table.md").read_text()
    assert "| mle | 1 |" in table and "32.32 ± 0.19" in table  # the paper's MLE ROUGE-L (Table 2)
    assert "| ROUGE-L, no `<unk>` credit |" in table


def test_reproduce_default_plans():
    """Without PLAN: 3 seeds of the seven algorithms on translation data (Table 1), 5 on summarization
    data (Table 2), seed 1 of every algorithm first; DRY_RUN=1 lists the plan and trains nothing."""
    seven = ["mle", "interpolation", "scheduled_sampling", "mixer", "spg", "raml_resampled", "data_noising"]
    for data, seeds in (("data-bin/synthetic", 3), (None, 5)):
        with tempfile.TemporaryDirectory() as tmp:
            folder = data or str(summarization_bin(Path(tmp) / "summaries"))
            proc = run("bash", "scripts/reproduce.sh", folder, str(Path(tmp) / "results"), DRY_RUN="1",
                       ERPO_RUNS=str(Path(tmp) / "runs"))
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert proc.stdout.split() == [f"{algo}:{seed}" for seed in range(1, seeds + 1) for algo in seven]
            assert not (Path(tmp) / "runs").exists() and not (Path(tmp) / "results").exists()


def test_fine_tuning_queue_starts_every_schedule_from_an_mle_model(tmp_path):
    """--init CHECKPOINT: every run of the queue starts from that seed's MLE model ({seed}) with
    fairseq's --finetune-from-model (fresh optimizer and update count), MIXER without its
    cross-entropy phase; the runs, scores and table live under finetune/."""
    data = tmp_path / "synthetic"
    data.symlink_to(REPO / "data-bin" / "synthetic")
    runs = tmp_path / "runs" / "synthetic"
    proc = run("bash", "scripts/train.sh", "mle", str(data), "2", *FAST, ERPO_RUNS=str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    init = str(runs / "mle" / "seed{seed}" / "checkpoint_last.pt")
    results = tmp_path / "results"
    proc = run("bash", "scripts/reproduce.sh", str(data), str(results), "2", *FAST, "--init", init,
               PLAN="mixer:2", ERPO_RUNS=str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    proc = run("bash", "scripts/train.sh", "risk", str(data), "2", *FAST, "--init", init, "--risk-candidates", "4",
               ERPO_RUNS=str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for algo in ("mixer", "risk"):
        log = (runs / "finetune" / algo / "seed2" / "train.log").read_text()
        assert f"from {runs / 'mle' / 'seed2' / 'checkpoint_last.pt'}" in log
        assert "loading pretrained model from" in log and "num_updates 20" in log and "num_updates 40" not in log
    assert (runs / "finetune" / "mixer" / "seed2" / "scores-test.json").is_file()
    mixer = (runs / "finetune" / "mixer" / "seed2" / "train.log").read_text()
    assert "'mixer_xent_epochs': 0" in mixer and re.search(r"mixer_tail[=| ]+3", mixer)  # REINFORCE from update 1
    assert re.search(r"\| risk 0\.\d+", (runs / "finetune" / "risk" / "seed2" / "train.log").read_text())
    assert "| mixer | 1 |" in (results / "table.md").read_text()
    missing = run("bash", "scripts/train.sh", "risk", str(data), "3", "--init", init)
    assert missing.returncode == 2 and "seed3/checkpoint_last.pt: no such checkpoint" in missing.stderr


def test_every_recipe_is_accepted_by_fairseqs_own_parser(tmp_path):
    """train.sh DRY_RUN=1 prints each recipe's fairseq-train arguments (translation and
    summarization data); fairseq's training parser and its config conversion accept every one, and
    the task, model and criterion build from them as fairseq-train builds them (every start-up check
    runs; the queue test above trains 7 of them end to end)."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_erpo  # noqa: F401  (registers what --user-dir would)

    usage = (REPO / "scripts" / "train.sh").read_text()
    algos = re.search(r"ALGO \$algo: choose ([^\"]+)\"", usage).group(1).replace(" or ", ", ").split(", ")
    assert len(algos) == 14 and "mixer_running_mean" in algos and "risk" in algos
    summaries = summarization_bin(tmp_path / "summaries")
    for data in (REPO / "data-bin" / "synthetic", summaries):
        for algo in algos:
            proc = run("bash", "scripts/train.sh", algo, str(data), "3", DRY_RUN="1", ERPO_RUNS=str(tmp_path / "runs"))
            assert proc.returncode == 0, proc.stderr[-2000:]
            argv = proc.stdout.splitlines()
            user_dir = argv.index("--user-dir")
            del argv[user_dir : user_dir + 2]  # already imported above
            args = options.parse_args_and_arch(options.get_training_parser(), argv)
            cfg = convert_namespace_to_omegaconf(args)
            assert cfg.task._name == "erpo_translation" and cfg.checkpoint.save_dir.endswith(f"{algo}/seed3")
            assert cfg.criterion._name == {"mle": "cross_entropy"}.get(algo, algo.replace("_resampled", "").replace(
                "_running_mean", "").replace("_paper", "").replace("_per_epoch", ""))
            task = tasks.setup_task(cfg.task)
            model = task.build_model(cfg.model)
            criterion = task.build_criterion(cfg.criterion)
            assert type(model).__name__ == "LSTMModel" and criterion.task is task
    assert not (tmp_path / "runs").exists()  # nothing trained


def test_unknown_algorithm_lists_the_choices():
    proc = run("bash", "scripts/train.sh", "mixer_v2", "data-bin/synthetic")
    assert proc.returncode == 2 and "choose mle, interpolation, interpolation_paper, raml" in proc.stderr


def test_report_collects_only_finished_runs(tmp_path):
    valid = ("2026-11-25 21:33:00 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 4.5 | bleu 12.3 "
             "| wps 1 | num_updates 454 | best_bleu 12.3\n")
    runs = tmp_path / "runs"
    for algo, finished, scored in (("mle", True, True), ("raml", False, True), ("spg", True, False)):
        run_dir = runs / algo / "seed1"
        run_dir.mkdir(parents=True)
        (run_dir / "train.log").write_text(valid + ("done training in 10.0 seconds\n" if finished else ""))
        if scored:
            (run_dir / "scores-test.json").write_text(json.dumps({"bleu": 30.0, "sacrebleu": 29.0, "sentences": 1}))
    results = tmp_path / "results"
    proc = run(str(BIN / "python"), "scripts/report.py", "--runs", str(runs), "--results", str(results))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (results / "mle" / "seed1" / "train.log").is_file() and not (results / "raml").exists()
    assert not (results / "spg").exists()  # trained, not scored yet
    assert "| mle | 1 | 30.00 | 29.00 |" in (results / "table.md").read_text()


def test_report_sets_the_table_beside_the_papers(tmp_path):
    results = tmp_path / "results"
    for algo, seed, bleu in (("mle", 1, 30.0), ("mle", 2, 31.0), ("raml_resampled", 1, 31.0),
                             ("interpolation", 1, 32.25), ("data_noising", 1, 29.0),
                             ("scheduled_sampling_per_epoch", 1, 30.75)):
        (results / algo / f"seed{seed}").mkdir(parents=True)
        (results / algo / f"seed{seed}" / "scores-test.json").write_text(json.dumps({"bleu": bleu, "sacrebleu": bleu - 1}))
    proc = run(str(BIN / "python"), "scripts/report.py", "--results", str(results))
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (results / "table.md").read_text()
    # ours: mean +- sample std, gain over MLE's mean (30.5); the paper's Table 1 row and its gain
    assert "| mle | 2 | 30.50 ± 0.71 | 29.50 ± 0.71 | +0.00 | 26.44 ± 0.18 | +0.00 |" in table
    assert "| interpolation | 1 | 32.25 | 31.25 | +1.75 | 27.82 ± 0.11 | +1.38 |" in table
    assert "| raml_resampled | 1 | 31.00 | 30.00 | +0.50 | 27.22 ± 0.14 | +0.78 |" in table
    assert "| scheduled_sampling_per_epoch | 1 | 30.75 | 29.75 | +0.25 | 26.76 ± 0.17 | +0.32 |" in table
    assert "| data_noising | 1 | 29.00 | 28.00 | -1.50 | n/a | n/a |" in table
    assert "vs start" not in table and "Fine-tuning" not in table  # runs from scratch
    # the gains again, as the paper's Figure 4 draws them, beside the paper's
    assert (results / "gain-over-mle.png").stat().st_size > 1000
    report = load_report()
    name, rows = report.gains_over_mle(report.table(results)[1])
    assert name == "BLEU" and [(a, n, round(g, 2), round(sd, 2), p if p is None else round(p, 2))
                               for a, n, g, sd, p in rows] == [
        ("interpolation", 1, 1.75, 0.0, 1.38), ("raml_resampled", 1, 0.5, 0.0, 0.78),
        ("scheduled_sampling_per_epoch", 1, 0.25, 0.0, 0.32), ("data_noising", 1, -1.5, 0.0, None)]
    assert ("Ours: interpolation > raml_resampled > scheduled_sampling_per_epoch > mle > data_noising. The paper's, "
            "same algorithms: interpolation > raml_resampled > scheduled_sampling_per_epoch > mle.") in table


def test_report_sets_fine_tuning_runs_beside_their_start(tmp_path):
    """A fine-tuning run (fairseq's --finetune-from-model in its config dump) is scored against the
    model it started from, seed by seed: report.py copies that run's own test scores beside it as
    scores-start.json and adds "vs start"; a start that is not the scored checkpoint is left out."""
    runs, results = tmp_path / "runs", tmp_path / "results"
    start_bleu = {1: 30.0, 2: 31.0}
    for seed, bleu in start_bleu.items():
        (runs / "mle" / f"seed{seed}").mkdir(parents=True)
        (runs / "mle" / f"seed{seed}" / "checkpoint_best.pt").write_bytes(b"")
        (runs / "mle" / f"seed{seed}" / "scores-test.json").write_text(json.dumps({"bleu": bleu, "sacrebleu": bleu}))
    finetuned = {("mle", 1): 30.5, ("mle", 2): 31.0, ("risk", 1): 31.0, ("risk", 2): 32.5, ("raml", 1): 32.0}
    for (algo, seed), bleu in finetuned.items():
        run_dir = runs / "finetune" / algo / f"seed{seed}"
        run_dir.mkdir(parents=True)
        # raml started from the last checkpoint, which evaluate.sh did not score: its start is unknown
        start = runs / "mle" / f"seed{seed}" / ("checkpoint_last.pt" if algo == "raml" else "checkpoint_best.pt")
        (run_dir / "train.log").write_text(f"{{'checkpoint': {{'finetune_from_model': '{start}', 'x': 1}}}}\n"
                                           "done training in 10.0 seconds\n")
        (run_dir / "scores-test.json").write_text(json.dumps({"bleu": bleu, "sacrebleu": bleu - 1}))
    proc = run(str(BIN / "python"), "scripts/report.py", "--runs", str(runs / "finetune"), "--results", str(results))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "checkpoint_last.pt: the gain over this start is left out" in proc.stderr
    assert json.loads((results / "risk" / "seed2" / "scores-start.json").read_text())["bleu"] == 31.0
    assert not (results / "raml" / "seed1" / "scores-start.json").exists()
    table = (results / "table.md").read_text()
    assert "| BLEU vs MLE | vs start | paper BLEU" in table and "|---|---|---|---|---|---|---|---|\n" in table
    # risk: +1.00 and +1.50 over its starts; +1.00 over MLE continued (30.75)
    assert "| risk | 2 | 31.75 ± 1.06 | 30.75 ± 1.06 | +1.00 | +1.25 ± 0.35 | n/a | n/a |" in table
    assert "| mle | 2 | 30.75 ± 0.35 | 29.75 ± 0.35 | +0.00 | +0.25 ± 0.35 | 26.44 ± 0.18 | +0.00 |" in table
    assert "| raml | 1 | 32.00 | 31.00 | +1.25 | n/a | 27.22 ± 0.14 | +0.78 |" in table
    assert "started from its seed's model (seeds 1, 2; test BLEU 30.50 ± 0.71)" in table


def load_report():
    import importlib.util

    spec = importlib.util.spec_from_file_location("report", REPO / "scripts" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    return report


def test_report_replaces_files_atomically(tmp_path):
    """While report.py writes a file, readers still see the previous complete file; then the new one."""
    report = load_report()
    target = tmp_path / "scores-test.json"
    target.write_text('{"bleu": 1.0}')
    seen = []

    def write(tmp):
        tmp.write_text('{"bleu": ')  # half a file, as a reader could have caught it before
        seen.append(target.read_text())
        tmp.write_text('{"bleu": 2.0}')

    report.replace_atomically(target, write)
    assert seen == ['{"bleu": 1.0}'] and json.loads(target.read_text()) == {"bleu": 2.0}
    assert [p.name for p in tmp_path.iterdir()] == ["scores-test.json"]  # no temporary left behind


def test_report_lists_each_runs_validation_pick(tmp_path):
    """The tested checkpoint of each run: its best validation score (the last of equal bests, as
    fairseq keeps), its epoch and update, and a flag where it falls in the run's last 10% of
    updates, also for a run that validates within epochs and stops mid-epoch (fine-tuning)."""
    def valid(epoch, updates, bleu):
        return (f"2026-12-01 22:00:00 | INFO | valid | epoch {epoch:03d} | valid on 'valid' subset | loss 4.5 "
                f"| bleu {bleu} | wps 1 | num_updates {updates} | best_bleu {bleu}\n")
    results = tmp_path / "results"
    per_epoch = [(e, 454 * e) for e in range(1, 11)]
    # --validate-interval-updates 250 --max-update 1000, 454 updates an epoch: the pick at update 908
    # is in epoch 2 of 3 but in the last 10% of the updates
    within_epochs = [(1, 250), (1, 454), (2, 500), (2, 750), (2, 908), (3, 1000)]
    curves = {"mle": (per_epoch, [30.0, 35.5, 35.5, 34.0] + [33.0] * 6),
              "interpolation": (per_epoch, [30.0] * 9 + [36.0]),
              "risk": (within_epochs, [38.0, 38.5, 38.2, 38.9, 39.1, 38.7])}
    for algo, (points, curve) in curves.items():
        (results / algo / "seed1").mkdir(parents=True)
        (results / algo / "seed1" / "train.log").write_text(
            "".join(valid(e, u, b) for (e, u), b in zip(points, curve)))
        (results / algo / "seed1" / "scores-test.json").write_text(json.dumps({"bleu": 30.0, "sacrebleu": 29.0}))
    proc = run(str(BIN / "python"), "scripts/report.py", "--results", str(results))
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (results / "table.md").read_text()
    assert "| mle | 1 | 35.50 | 3 | 1362 | 10 | 4540 | no |" in table
    assert "| interpolation | 1 | 36.00 | 10 | 4540 | 10 | 4540 | yes |" in table
    assert "| risk | 1 | 39.10 | 2 | 908 | 3 | 1000 | yes |" in table
