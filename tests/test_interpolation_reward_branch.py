"""The interpolation's reward branch: its own sampling scale and where BLEU's brevity penalty is
paid, and what the branch draws at the paper's settings and at an exploring one (fixed batch), for
BLEU and for the ROUGE sum."""
from __future__ import annotations

import pytest
import torch

import fairseq_erpo  # noqa: F401
from erpo_helpers import first_batch, summarization_bin, synthetic_task
from fairseq_erpo.diagnostics import BranchStatistics, uniform_hits
from fairseq_erpo.rewards import SpecialTokens
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
    metric = fields.get("reward", "bleu")
    model = task.build_model(cfg.model)
    sample = first_batch(task, "valid", max_sentences=64)
    torch.manual_seed(11)
    drawn = criterion.sampler.sample(model, sample, (0.0, 1.0, 0.0))
    return BranchStatistics(metric=metric).add(drawn, sample["target"], criterion.sampler.special, branch=1)


def uniform_share(task) -> float:
    """A uniform draw's share of reference words on the fixed batch, by hand and by uniform_hits."""
    vocab = len(task.target_dictionary) - 4  # pad, bos, eos, unk are never drawn as words
    refs = first_batch(task, "valid", max_sentences=64)["target"]
    dictionary = task.target_dictionary
    words = (refs != dictionary.pad()) & (refs != dictionary.eos())
    distinct = torch.tensor([len(set(r[w].tolist()) - {dictionary.unk()}) for r, w in zip(refs, words)],
                            dtype=torch.float64)
    by_hand = float((distinct * words.sum(1)).sum() / words.sum() / vocab)
    hits, total = uniform_hits(refs, SpecialTokens.from_dictionary(dictionary), vocab)
    assert total == int(words.sum()) and hits / total == pytest.approx(by_hand, rel=1e-12)
    return by_hand


def test_paper_reward_branch_is_a_uniform_draw_and_a_scaled_one_explores_by_reward(task_and_cfg):
    task, cfg = task_and_cfg
    uniform = uniform_share(task)
    assert uniform == pytest.approx(0.02710, abs=1e-5)  # this batch: 236 words to draw from

    paper = branch_statistics(task, cfg)  # BLEU x 0.01, c = 1, the penalty at every prefix
    assert 0.5 * uniform < paper.share_in_reference < 1.5 * uniform
    assert paper.mean_score < 3.0
    # dR(EOS) = 0 and every word nearly alike: samples run on towards the cap (T* + 10)
    assert paper.mean_length > paper.mean_reference_length + 6

    explore = branch_statistics(task, cfg, reward_sample_scale=1000.0, bleu_brevity="at-eos")
    assert explore.share_in_reference > 0.85 and explore.mean_score > 60.0
    assert explore.mean_score < 95.0  # not a copy of the reference
    assert abs(explore.mean_length - explore.mean_reference_length) < 1.5  # EOS when the penalty is paid


def test_rouge_reward_branch_at_the_papers_scale_and_at_c_r_1000(task_and_cfg):
    """The ROUGE sum's increments are a few tenths (it lies in [0, 3]): at c = 1 a reference word is
    drawn about as often as any of the 236 others, and samples run to the cap; at c_R = 1000 the branch draws reference words and stops
    about where the reference does (a word past it lowers precision, EOS adds 0)."""
    task, cfg = task_and_cfg
    uniform = uniform_share(task)
    paper = branch_statistics(task, cfg, reward="rouge")
    assert paper.metric == "rouge" and paper.share_in_reference < 2.0 * uniform
    assert paper.mean_score < 20.0 and paper.mean_length > paper.mean_reference_length + 6
    explore = branch_statistics(task, cfg, reward="rouge", reward_sample_scale=1000.0)
    assert explore.share_in_reference > 0.85 and 60.0 < explore.mean_score < 100.0
    assert abs(explore.mean_length - explore.mean_reference_length) < 1.5
    with pytest.raises(ValueError, match="no sentence score for reward 'delta'"):
        BranchStatistics(metric="delta")


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
    assert rows["at-eos:1000"]["sentence_score"] > 10 * rows["every-prefix:1"]["sentence_score"]
    assert "at-eos:1000" in proc.stdout
    refused = subprocess.run([sys.executable, "scripts/reward_branch_stats.py", "data-bin/synthetic", "--split", "test"],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "measure it on the validation split" in refused.stderr


def test_reward_branch_stats_script_on_summarization_data(tmp_path):
    """--reward rouge: settings are c_R alone, the score is ROUGE-L; a brevity setting is refused."""
    import json
    import subprocess
    import sys

    from conftest import REPO

    data, out = summarization_bin(tmp_path / "summaries"), tmp_path / "stats.json"
    proc = subprocess.run([sys.executable, "scripts/reward_branch_stats.py", str(data), "--reward", "rouge",
                           "--settings", "1", "1000", "--json", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads(out.read_text())
    assert stats["reward"] == "rouge" and "ROUGE-L" in proc.stdout
    rows = stats["rows"]
    assert rows["1"]["reward_tokens_in_reference"] < 0.1 and rows["1000"]["reward_tokens_in_reference"] > 0.85
    assert rows["1000"]["sentence_score"] > 3 * rows["1"]["sentence_score"]
    refused = subprocess.run([sys.executable, "scripts/reward_branch_stats.py", str(data), "--reward", "rouge",
                              "--settings", "at-eos:10"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "a ROUGE setting is the scale C_R alone" in refused.stderr
    refused = subprocess.run([sys.executable, "scripts/reward_branch_stats.py", "data-bin/synthetic", "--settings",
                              "at-end:10"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "BREVITY every-prefix or at-eos" in refused.stderr
