"""RAML: the two samplers against their formulas, the weights, the loss, start-up errors."""
from __future__ import annotations

import math

import pytest
import torch

import fairseq_erpo  # noqa: F401
from erpo_helpers import first_batch, no_dropout_model, synthetic_task
from fairseq_erpo.criterions.raml import hamming_log_weights
from fairseq_erpo.sampling import prev_output_tokens
from test_criterions import build


@pytest.fixture(scope="module")
def task_and_cfg():
    return synthetic_task()


def refs_of(rows, eos=2, pad=1):
    width = max(map(len, rows)) + 1
    out = torch.full((len(rows), width), pad)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
        out[i, len(r)] = eos
    return out


def test_ngram_sampler_follows_ma_et_al(task_and_cfg):
    task, cfg = task_and_cfg
    crit = build(task, cfg, "raml", raml_samples=1, raml_no_reference=True)
    refs = refs_of([[10, 11, 12, 13, 14, 15, 16]] * 20000)
    out = crit.ngram_replace(refs, torch.Generator().manual_seed(0))
    changed = out != refs
    assert not changed[:, 6:].any()  # the last word (and EOS) are never replaced
    spans = changed.sum(1)
    # a replaced word may be redrawn as itself, so measure n by the span's first/last change... use
    # the positions: every change lies in one contiguous window of at most 4 words
    first = changed.float().argmax(1)
    last = changed.size(1) - 1 - changed.flip(1).float().argmax(1)
    has = spans > 0
    assert ((last - first + 1)[has] <= 4).all() and (spans <= 4).all()
    # n is uniform on 1..4 and the start uniform on 0..T-n-1: P(position 0 changed) = 1/4 * sum_n 1/(7-n)
    expected = sum(1 / (7 - n) for n in range(1, 5)) / 4
    words = crit.vocab_size - crit.first_word
    assert changed[:, 0].double().mean().item() == pytest.approx(expected * (1 - 1 / words), abs=0.012)
    assert (out[changed] >= crit.first_word).all()


def test_hamming_sampler_edit_counts_follow_the_exponentiated_payoff(task_and_cfg):
    task, cfg = task_and_cfg
    tau = 0.9
    crit = build(task, cfg, "raml", raml_samples=1, raml_sampler="hamming", raml_tau=tau)
    rows = [[10, 11, 12, 13, 14]] * 20000
    refs = refs_of(rows)
    out = crit.hamming_replace(refs, torch.Generator().manual_seed(1))
    edits = (out != refs).sum(1)
    assert (out[out != refs] >= crit.first_word).all() and not (out[:, 5:] != refs[:, 5:]).any()
    words = crit.vocab_size - crit.first_word
    probs = torch.softmax(hamming_log_weights(torch.tensor([5]), words, tau), dim=1)[0]
    expected = torch.tensor([math.comb(5, e) * (words - 1) ** e * math.exp(-e / tau) for e in range(6)],
                            dtype=torch.float64)
    assert torch.allclose(probs, expected / expected.sum())
    counts = torch.bincount(edits, minlength=6).double()
    keep = probs * 20000 > 5
    chi2 = (((counts - 20000 * probs) ** 2 / (20000 * probs))[keep]).sum().item()
    assert chi2 < 20.5  # chi-square 0.999 quantile, 5 degrees of freedom


def test_weights_are_a_softmax_per_example_and_the_reference_is_kept(task_and_cfg):
    task, cfg = task_and_cfg
    crit = build(task, cfg, "raml", raml_samples=5)
    refs = first_batch(task)["target"]
    targets = crit.draw_targets(refs, torch.Generator().manual_seed(2))
    assert torch.equal(targets[::5], refs)
    weights, reward = crit.weights(targets, refs)
    assert weights.shape == (refs.size(0), 5)
    assert torch.allclose(weights.sum(1), torch.ones(refs.size(0), dtype=weights.dtype))
    assert torch.allclose(weights, torch.softmax(reward / 0.4, dim=1))
    assert (weights[:, 0] >= weights.max(1).values - 1e-12).all()  # the reference has the best BLEU


def test_one_sample_equal_to_the_reference_is_mle(task_and_cfg):
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model).train()
    sample = first_batch(task)
    ce = build(task, cfg, "cross_entropy")
    raml = build(task, cfg, "raml", raml_samples=1)
    torch.manual_seed(3)
    loss_ce = ce(model, sample)[0]
    torch.manual_seed(3)
    loss_raml, size, log = raml(model, sample)
    assert torch.allclose(loss_ce, loss_raml, rtol=1e-5) and size == sample["ntokens"]
    loss_raml.backward()


def test_resampling_draws_targets_by_weight(task_and_cfg):
    task, cfg = task_and_cfg
    crit = build(task, cfg, "raml", raml_samples=3, raml_resample=2)
    rows = 20000
    targets = torch.arange(rows * 3).view(-1, 1)  # row i*3 + j is example i's sample j
    probs = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    picked, loss_weights = crit.resample(targets, probs.repeat(rows, 1), torch.Generator().manual_seed(4))
    assert picked.shape == (rows * 2, 1) and torch.equal(loss_weights, torch.full((rows, 2), 0.5, dtype=torch.float64))
    example, which = picked.view(rows, 2) // 3, picked.view(rows, 2) % 3
    assert torch.equal(example, torch.arange(rows).unsqueeze(1).expand(rows, 2))  # each example's own samples
    counts = torch.bincount(which.flatten(), minlength=3).double()
    chi2 = ((counts - 2 * rows * probs) ** 2 / (2 * rows * probs)).sum().item()
    assert chi2 < 13.8  # chi-square 0.999 quantile, 2 degrees of freedom


def nll_per_row(task, cfg, model, sample, targets):
    """fairseq's cross_entropy (reduce=False) on ``targets``, rows example-major, summed per row."""
    order = torch.arange(sample["target"].size(0)).repeat_interleave(targets.size(0) // sample["target"].size(0))
    net_input, vocab = sample["net_input"], task.target_dictionary
    batch = {"net_input": {"src_tokens": net_input["src_tokens"][order], "src_lengths": net_input["src_lengths"][order],
                           "prev_output_tokens": prev_output_tokens(targets, vocab.eos(), vocab.pad())},
             "target": targets, "ntokens": int((targets != vocab.pad()).sum())}
    loss, _, _ = build(task, cfg, "cross_entropy")(model, batch, reduce=False)
    return loss.view(targets.shape).sum(1).double()


def test_resampled_loss_is_the_weighted_loss_in_expectation(task_and_cfg):
    """The resampled loss is exactly the mean NLL of the drawn targets, and with the draws' law
    (checked above) its expectation, sum_i w_i NLL_i, is exactly the full weighted loss."""
    task, cfg = task_and_cfg
    model = no_dropout_model(task, cfg)
    sample = first_batch(task, max_sentences=6)
    full = build(task, cfg, "raml", raml_samples=5)(model, sample)[0]
    crit = build(task, cfg, "raml", raml_samples=5, raml_resample=3)
    seen = {}
    draw = crit.resample

    def spy(targets, weights, gen):
        seen["targets"], seen["weights"] = targets, weights
        seen["picked"], loss_weights = draw(targets, weights, gen)
        return seen["picked"], loss_weights

    crit.resample = spy
    loss, size, log = crit(model, sample)
    assert seen["picked"].size(0) == 3 * sample["target"].size(0) and size == sample["ntokens"]
    # the same update number draws the same 5 samples as the full criterion
    expected = (seen["weights"].double() * nll_per_row(task, cfg, model, sample, seen["targets"]).view(-1, 5)).sum()
    assert expected.item() == pytest.approx(full.item(), rel=1e-5)
    assert loss.item() == pytest.approx(nll_per_row(task, cfg, model, sample, seen["picked"]).sum().item() / 3,
                                        rel=1e-5)
    loss.backward()


@pytest.mark.parametrize("fields, message", [({"raml_tau": 0.0}, "--raml-tau must be > 0"),
                                             ({"raml_resample": -1}, "--raml-resample must be >= 0"),
                                             ({"raml_samples": 0}, "--raml-samples must be >= 1"),
                                             ({"raml_max_ngram": 0}, "--raml-max-ngram"),
                                             ({"reward": "nope"}, "--reward 'nope' is unknown")])
def test_bad_options(task_and_cfg, fields, message):
    task, cfg = task_and_cfg
    with pytest.raises(ValueError, match=message):
        build(task, cfg, "raml", **fields)
