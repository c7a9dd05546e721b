"""Offline RAML: the samples file (the authors' format), its writer script, and training from it."""
from __future__ import annotations

import re
import sys

import pytest
import torch

import fairseq_erpo  # noqa: F401
from conftest import DATA_BIN, REPO, cli, train_args
from erpo_helpers import first_batch, no_dropout_model, synthetic_task
from fairseq_erpo.raml_samples import OfflineSamples, read_samples_file, write_entry
from test_criterions import build

SAMPLES = 3


@pytest.fixture(scope="module")
def samples_file(tmp_path_factory):
    """The writer script's file for data-bin/synthetic's training split (3 samples per example)."""
    path = tmp_path_factory.mktemp("raml") / "samples.txt"
    proc = cli(sys.executable, str(REPO / "scripts" / "raml_samples.py"), str(DATA_BIN), "--output", str(path),
               "--samples", str(SAMPLES), "--seed", "3")
    assert "12000 entries x 3 samples" in proc.stdout
    return path


@pytest.fixture(scope="module")
def task_and_cfg():
    return synthetic_task()


def test_write_and_read_round_trip(tmp_path):
    path = tmp_path / "s.txt"
    with open(path, "w") as f:
        write_entry(f, "ein hund .", ["a dog .", "a cat .", "the dog ."], [1.0, 0.25, 0.5])
        write_entry(f, "samples ||| here", ["some samples"], [0.75])  # tricky words stay data
    first, second = read_samples_file(str(path))
    assert first.source == "ein hund ." and first.targets == ["a dog .", "the dog .", "a cat ."]
    assert first.rewards == [1.0, 0.5, 0.25]  # ranked best first, as in the authors' files
    assert second.source == "samples ||| here" and second.targets == ["some samples"] and second.rewards == [0.75]


def test_the_script_writes_every_example_with_the_reference_first(samples_file, task_and_cfg):
    task, _ = task_and_cfg
    task.load_dataset("train")
    dataset, tgt = task.dataset("train"), task.target_dictionary
    entries = read_samples_file(str(samples_file))
    assert len(entries) == len(dataset) == 12000
    for i in (0, 1, 4567, 11999):
        entry = entries[i]
        assert entry.source == task.source_dictionary.string(dataset.src[i])
        assert len(entry.targets) == SAMPLES and entry.targets[0] == tgt.string(dataset.tgt[i])
        assert entry.rewards[0] == 1.0 and max(entry.rewards) == 1.0  # BLEU of the reference itself
        assert all(0.0 <= r <= 1.0 for r in entry.rewards)


def test_offline_loss_is_the_weighted_nll_of_the_files_samples(samples_file, task_and_cfg):
    task, cfg = task_and_cfg
    model = no_dropout_model(task, cfg)
    sample = first_batch(task)
    raml = build(task, cfg, "raml", raml_samples=SAMPLES, raml_samples_file=str(samples_file))
    loss, _, log = raml(model, sample)
    entries = read_samples_file(str(samples_file))
    expected = torch.zeros(())
    tgt = task.target_dictionary
    with torch.no_grad():
        for row, i in enumerate(sample["id"].tolist()):
            rewards = torch.tensor(entries[i].rewards, dtype=torch.float64)
            weights = torch.softmax(rewards / 0.4, dim=0)
            for text, w in zip(entries[i].targets, weights):
                target = tgt.encode_line(text, add_if_not_exist=False).long().unsqueeze(0)
                one = {"net_input": {"src_tokens": sample["net_input"]["src_tokens"][row:row + 1],
                                     "src_lengths": sample["net_input"]["src_lengths"][row:row + 1],
                                     "prev_output_tokens": torch.cat([target[:, -1:], target[:, :-1]], 1)}}
                lprobs = model.get_normalized_probs(model(**one["net_input"]), log_probs=True)
                expected += float(w) * -lprobs.gather(2, target.unsqueeze(2)).sum()
    # left-padded sources in the batch change the encoder's float rounding slightly
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert log["raml_reward"] == pytest.approx(
        sum(sum(entries[i].rewards) / SAMPLES for i in sample["id"].tolist()), rel=1e-9)


def test_one_sample_entries_are_repeated(tmp_path, task_and_cfg):
    task, _ = task_and_cfg
    path = tmp_path / "one.txt"
    with open(path, "w") as f:
        write_entry(f, "x", ["a dog ."], [0.5])
    offline = OfflineSamples(str(path), task.target_dictionary, samples=4)
    targets, rewards = offline.batch(torch.tensor([0]), task.target_dictionary.pad())
    assert targets.shape[0] == 4 and all(torch.equal(targets[0], t) for t in targets)
    assert rewards.tolist() == [[0.5] * 4]


def test_bad_files_fail_with_the_option_named(tmp_path, task_and_cfg, samples_file):
    task, cfg = task_and_cfg
    with pytest.raises(ValueError, match="--raml-samples-file .*cannot read it"):
        build(task, cfg, "raml", raml_samples_file=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="entry 0 has 3 samples; each entry needs 1 or --raml-samples \\(10\\)"):
        build(task, cfg, "raml", raml_samples_file=str(samples_file))
    broken = tmp_path / "broken.txt"
    broken.write_text("source: a\n2 samples\nonly one ||| 0.5\n")
    with pytest.raises(ValueError, match="line 4: expected 2 lines"):
        build(task, cfg, "raml", raml_samples=2, raml_samples_file=str(broken))
    # a file written for other data: the first batch's sources do not match
    shifted = tmp_path / "shifted.txt"
    entries = read_samples_file(str(samples_file))
    with open(shifted, "w") as f:
        for e in entries[1:] + entries[:1]:
            write_entry(f, e.source, e.targets, e.rewards)
    raml = build(task, cfg, "raml", raml_samples=SAMPLES, raml_samples_file=str(shifted))
    with pytest.raises(ValueError, match="entry \\d+ has source .* but training example"):
        raml(task.build_model(cfg.model).train(), first_batch(task))


def test_cli_trains_from_a_samples_file(tmp_path, samples_file):
    log = cli("fairseq-train", *train_args(tmp_path, "--task", "translation", "--criterion", "raml",
                                           "--raml-samples", str(SAMPLES), "--raml-samples-file", str(samples_file)))
    text = log.stdout + log.stderr
    assert "num_updates 20" in text and re.search(r"raml_reward[=| ]+0\.\d+", text)
