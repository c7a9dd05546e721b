"""scripts/score_generate.py: the test scores of a fairseq-generate output file."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from score_generate import read_generate_output, rouge  # noqa: E402


def test_rouge_with_and_without_unk_credit():
    """rouge-score matches <unk> with fairseq's escaped reference <<unk>> (both become ``unk``);
    without that credit they are distinct words, as in the rewards and the validation ROUGE."""
    hyps, refs = ["a <unk> b", "x y"], ["a <<unk>> b", "x y"]
    assert rouge(hyps, refs) == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    # the first pair: 2 of 3 unigrams (F 2/3), 0 of 2 bigrams, LCS 2 of 3; the second pair is exact
    assert rouge(hyps, refs, credit_unk=False) == {"rouge1": round(100 * (2 / 3 + 1) / 2, 2),
                                                   "rouge2": 50.0, "rougeL": round(100 * (2 / 3 + 1) / 2, 2)}


def test_the_json_record_has_both_rouge_sets(tmp_path):
    out = tmp_path / "generate-test.txt"
    out.write_text("S-1\tsource\nT-1\tthe <<unk>> wins\nH-1\t-0.5\tthe <unk> wins\n"
                   "S-0\tsource\nT-0\tmarkets fall\nH-0\t-0.1\tmarkets rise\n", encoding="utf-8")
    assert read_generate_output(str(out)) == (["markets rise", "the <unk> wins"], ["markets fall", "the <<unk>> wins"])
    proc = subprocess.run([sys.executable, "scripts/score_generate.py", str(out), "--rouge", "--json"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    record = json.loads(proc.stdout)
    assert record["sentences"] == 2 and record["rouge1"] == 75.0  # (1/2 + 1) / 2
    assert record["rouge1_no_unk_credit"] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2, abs=0.01)
