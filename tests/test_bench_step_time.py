"""scripts/bench_step_time.py trains every criterion it lists (a smoke test of the benchmark: it
asserts what the benchmark counts, never a timing). The benchmark once broke unnoticed: MIXER's
learned baseline needs the decoder's feature size, which its stand-in for the task did not record,
and the baseline's parameters must be optimised (and restored between repeats) with the model's."""
from __future__ import annotations

import subprocess
import sys
from typing import Dict, List

from conftest import REPO, shared_path

sys.path.insert(0, str(REPO / "scripts"))
from bench_step_time import CRITERIONS, selected  # noqa: E402

SAMPLER_CRITERIONS = ("erpo", "interpolation", "spg", "data_noising", "mixer")  # these log the E-step's time


def table(stdout: str) -> Dict[str, List[str]]:
    """The benchmark's rows: label -> [s/update, E-step s, E / M, tokens, per update, per token, ...]."""
    rows = {}
    for line in stdout.splitlines():
        for label in CRITERIONS:
            if line.startswith(label + " "):
                rows[label] = line[len(label):].split()
    return rows


def test_benchmark_trains_every_criterion_it_lists():
    data = shared_path("iwslt14-de-en", "train-partial")
    proc = subprocess.run([sys.executable, "scripts/bench_step_time.py", "--data", str(data), "--batches", "2",
                           "--repeats", "2", "--batch-size", "2", "--src-vocab", "0", "--tgt-vocab", "0",
                           "--threads", "1"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = table(proc.stdout)
    assert set(rows) == set(CRITERIONS), proc.stdout
    references = int(rows["cross_entropy"][3])  # the timed batch's target tokens
    assert references > 0 and rows["cross_entropy"][4:6] == ["1.00x", "1.00x"]
    # what each update trains on: the references themselves, RAML's 10 (or 1 resampled) per
    # reference, the samples (the interpolation's, SPG's, MIXER's may differ in length)
    for label in ("erpo (delta, a=0, b=1: MLE)", "data_noising (unigram)", "scheduled_sampling (eps 0.5)",
                  "raml (10 samples, resample 1)"):
        assert int(rows[label][3]) == references, label
    assert int(rows["raml (10 samples)"][3]) == 10 * references
    # risk: the references' NLL plus 16 candidates per source
    assert all(int(rows[label][3]) > references for label in CRITERIONS if label.startswith("risk"))
    for label, row in rows.items():
        sampler = label.split(" ")[0] in SAMPLER_CRITERIONS
        assert (row[1] != "-") == sampler, label  # the E-step's time, where the sampler ran
        assert float(row[0]) > 0 and row[4].endswith("x") and float(row[5].rstrip("x")) > 0, label


def test_risk_rows_run_by_default_only_at_batches_that_fit_in_memory():
    risk = [label for label in CRITERIONS if label.startswith("risk")]
    assert len(risk) == 2
    # the default 64 sentences: every row but risk's (its 16 candidates per source outgrow 24 GB)
    assert [label for label in CRITERIONS if not selected(label, None, 64)] == risk
    assert all(selected(label, None, 16) for label in CRITERIONS)
    # named in --only, risk runs at any size; cross_entropy, the reference, always runs
    assert [label for label in CRITERIONS if selected(label, ["risk"], 64)] == ["cross_entropy"] + risk
    assert [label for label in CRITERIONS if selected(label, ["mixer"], 64)] == \
        ["cross_entropy", "mixer (last 6 tokens)", "mixer (every token)"]
