"""The interpolation's reward branch: its own sampling scale and where BLEU's brevity penalty is
paid, and what the branch draws at the paper's settings and at an exploring one (fixed batch)."""
from __future__ import annotations

import pytest
import torch

import fairseq_erpo  # noqa: F401
from erpo_helpers import first_batch, synthetic_task
from fairseq_erpo.diagnostics import BranchStatistics
from test_criterions import build


@pytest.fixture(scope="module")
def task_and_cfg():
    return synthetic_task("erpo_translation")


def test_reward_sample_scale(task_and_cfg):
    task, cfg = task_and_cfg
    paper = build(task, cfg, "interpolation", sample_scale=2.0)
    assert [b.reward_weight for b in paper.branches] == [0.0, 2.0, 1.0]  # one c for both (the paper)
    assert [b.model_weight for b in paper.branches] == [2.0, 0.0, 0.0]
    own = build(task, cfg, "interpolation", sample_scale=2.0, reward_sample_scale=1000.0, bleu_brevity="at-eos")
    assert [b.reward_weight for b in own.branches] == [0.0, 1000.0, 1.0]
    assert [b.model_weight for b in own.branches] == [2.0, 0.0, 0.0]
    assert own.sampler.rewards["bleu"].brevity == "at-eos" and paper.sampler.rewards["bleu"].brevity == "every-prefix"
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="--reward-sample-scale must be a finite number > 0"):
            build(task, cfg, "interpolation", reward_sample_scale=bad)


def branch_statistics(task, cfg, **fields) -> BranchStatistics:
    """The reward branch alone (lambdas 0, 1, 0: no model is read) on a fixed validation batch."""
    criterion = build(task, cfg, "interpolation", **fields)
    model = task.build_model(cfg.model)
    sample = first_batch(task, "valid", max_sentences=64)
    torch.manual_seed(11)
    drawn = criterion.sampler.sample(model, sample, (0.0, 1.0, 0.0))
    return BranchStatistics().add(drawn, sample["target"], criterion.sampler.special, branch=1)


def test_paper_reward_branch_is_a_uniform_draw_and_a_scaled_one_explores_by_reward(task_and_cfg):
    task, cfg = task_and_cfg
    vocab = len(task.target_dictionary) - 4  # pad, bos, eos, unk are never drawn as words
    sample = first_batch(task, "valid", max_sentences=64)
    refs = sample["target"]
    words = (refs != task.target_dictionary.pad()) & (refs != task.target_dictionary.eos())
    distinct = torch.tensor([len(set(r[w].tolist())) for r, w in zip(refs, words)], dtype=torch.float64)
    uniform = float((distinct * words.sum(1)).sum() / words.sum() / vocab)  # a uniform draw's share

    paper = branch_statistics(task, cfg)  # BLEU x 0.01, c = 1, the penalty at every prefix
    assert 0.5 * uniform < paper.share_in_reference < 1.5 * uniform
    assert paper.mean_bleu < 3.0
    # dR(EOS) = 0 and every word nearly alike: samples run on towards the cap (T* + 10)
    assert paper.mean_length > paper.mean_reference_length + 6

    explore = branch_statistics(task, cfg, reward_sample_scale=1000.0, bleu_brevity="at-eos")
    assert explore.share_in_reference > 0.85 and explore.mean_bleu > 60.0
    assert explore.mean_bleu < 95.0  # not a copy of the reference
    assert abs(explore.mean_length - explore.mean_reference_length) < 1.5  # EOS when the penalty is paid


def test_reward_branch_stats_script(tmp_path):
    """scripts/reward_branch_stats.py: the table of docs/erpo.md, on the embedded corpus; it refuses
    a test split (the branch is a design choice, made on validation)."""
    import json
    import subprocess
    import sys

    from conftest import REPO

    out = tmp_path / "stats.json"
    proc = subprocess.run([sys.executable, "scripts/reward_branch_stats.py", "data-bin/synthetic", "--settings",
                           "every-prefix:1", "at-eos:1000", "--json", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows["every-prefix:1"]["reward_tokens_in_reference"] < 0.1  # uniform: 0.069 on this corpus
    assert rows["at-eos:1000"]["reward_tokens_in_reference"] > 0.9
    assert rows["at-eos:1000"]["sentence_bleu"] > 10 * rows["every-prefix:1"]["sentence_bleu"]
    assert "at-eos:1000" in proc.stdout
    refused = subprocess.run([sys.executable, "scripts/reward_branch_stats.py", "data-bin/synthetic", "--split", "test"],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "measure it on the validation split" in refused.stderr
