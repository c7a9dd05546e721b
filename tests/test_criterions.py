"""The criterions on a real fairseq LSTM: MLE as the ERPO special case, and start-up errors."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import fairseq_erpo  # noqa: F401
from erpo_helpers import first_batch, synthetic_task
from fairseq import criterions as fairseq_criterions
from fairseq_erpo.compat import criterion_config


@pytest.fixture(scope="module")
def task_and_cfg():
    return synthetic_task()


def build(task, cfg, name, **fields):
    """The criterion ``name`` with its dataclass defaults, overridden by ``fields``."""
    return fairseq_criterions.build_criterion(criterion_config(name, **fields), task)


def loss_and_grads(model, criterion, sample, seed=7):
    model.train()
    model.zero_grad()
    torch.manual_seed(seed)  # the same dropout masks for both criterions
    loss, sample_size, log = criterion(model, sample)
    loss.backward()
    return loss.detach(), sample_size, log, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_erpo_delta_alpha0_beta1_is_exactly_cross_entropy(task_and_cfg):
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model)
    sample = first_batch(task)
    ce = build(task, cfg, "cross_entropy")
    mle = build(task, cfg, "erpo", reward="delta", alpha=0.0, beta=1.0)
    loss_ce, size_ce, _, grads_ce = loss_and_grads(model, ce, sample)
    loss_mle, size_mle, log, grads_mle = loss_and_grads(model, mle, sample)
    assert size_ce == size_mle and loss_ce.item() > 0
    assert torch.equal(loss_ce, loss_mle)
    assert all(torch.equal(grads_ce[n], grads_mle[n]) for n in grads_ce)
    assert log["reward_sum"] == sample["target"].size(0)  # R_delta(y*) = 1 for every sample


def test_validation_scores_the_references(task_and_cfg):
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model)
    model.eval()
    sample = first_batch(task, "valid")
    ce, spg = build(task, cfg, "cross_entropy"), build(task, cfg, "spg")
    with torch.no_grad():
        assert torch.equal(ce(model, sample)[0], spg(model, sample)[0])


@pytest.mark.parametrize("name, fields", [
    ("erpo", {}), ("erpo", {"alpha": 1.0, "beta": 0.5}), ("spg", {}), ("spg", {"bang_bang_drop": 0.0}),
    ("interpolation", {}),
    ("interpolation", {"lambdas": "0.3,0.3,0.4", "z_granularity": "step"}),
    ("data_noising", {}), ("data_noising", {"noise_type": "uniform_single"}),
])
def test_every_criterion_trains_and_logs(task_and_cfg, name, fields):
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model)
    criterion = build(task, cfg, name, **fields)
    loss, sample_size, log = criterion(model.train(), first_batch(task))
    loss.backward()
    assert torch.isfinite(loss) and sample_size == log["ntokens"] > 0
    assert log["sampled_tokens"] == log["ntokens"] and log["sample_time"] > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name, fields, message", [
    ("interpolation", {"lambdas": "0.5,0.5,0.5"}, "--lambdas .* sum to 1"),
    ("interpolation", {"lambdas": "0.5,0.5"}, "--lambdas: expected 3"),
    ("interpolation", {"lambdas": "-0.1,0.1,1"}, "--lambdas .* >= 0"),
    ("interpolation", {"sample_scale": 0.0}, "--sample-scale must be > 0"),
    ("interpolation", {"reward": "delta"}, "--reward delta"),
    ("erpo", {"alpha": -1.0}, "--alpha must be"),
    ("erpo", {"beta": -0.5}, "--beta must be"),
    ("erpo", {"alpha": 0.0, "beta": 0.0}, "--alpha \\+ --beta must be > 0"),
    ("erpo", {"reward": "meteor"}, "--reward 'meteor' is unknown; choose from: .*bleu"),
    ("erpo", {"reward": "bleu", "reward_scale": 0.0}, "--reward-scale must be > 0"),
    ("data_noising", {"noise_prob": 1.5}, "--noise-prob must be in"),
    ("spg", {"max_len_a": -1.0}, "--max-len-a"),
    ("spg", {"bang_bang_weight": 0.0}, "--bang-bang-weight must be a finite number > 0"),
    ("spg", {"bang_bang_weight": float("inf")}, "--bang-bang-weight must be a finite number > 0"),
    ("spg", {"bang_bang_drop": 1.0}, "--bang-bang-drop must be in \\[0, 1\\)"),
    ("spg", {"bang_bang_drop": -0.1}, "--bang-bang-drop must be in \\[0, 1\\)"),
])
def test_bad_options_fail_at_start_up(task_and_cfg, name, fields, message):
    task, cfg = task_and_cfg
    with pytest.raises(ValueError, match=message):
        build(task, cfg, name, **fields)


def test_reward_without_a_target_dictionary_fails():
    no_dict = SimpleNamespace(target_dictionary=None)
    from fairseq_erpo.criterions.spg import SpgConfig, SpgCriterion
    with pytest.raises(ValueError, match="--reward bleu: needs the task's target dictionary"):
        SpgCriterion(no_dict, SpgConfig(sentence_avg=False))


TRANSFORMER = {"--arch": "transformer", "--encoder-layers": "1", "--decoder-layers": "1",
               "--encoder-embed-dim": "16", "--decoder-embed-dim": "16", "--encoder-ffn-embed-dim": "32",
               "--decoder-ffn-embed-dim": "32", "--encoder-attention-heads": "2", "--decoder-attention-heads": "2",
               "--dropout": "0.3"}


@pytest.mark.parametrize("overrides", [{}, TRANSFORMER], ids=["lstm", "transformer"])
def test_samples_wider_than_their_references_train_on_their_tokens_only(overrides):
    """Samples that run past their references widen the batch; the M-step then projects only the
    sampled tokens onto the vocabulary (criterions/packed.py), with the loss and gradients of
    fairseq's cross entropy on the same padded batch, and the same dropout masks."""
    task, cfg = synthetic_task("translation", **overrides)
    torch.manual_seed(3)
    model = task.build_model(cfg.model)
    sample = first_batch(task)
    spg = build(task, cfg, "spg", bang_bang_weight=1.0, bang_bang_drop=0.0)  # an untrained model runs long
    torch.manual_seed(11)
    model.eval()
    drawn = spg.draw(model, sample)
    assert drawn["target"].size(1) > sample["target"].size(1)
    pad = task.target_dictionary.pad()
    assert float((drawn["target"] == pad).float().mean()) > 0.05  # the padding the packed M-step skips

    from fairseq_erpo.criterions.packed import target_nll
    loss_ce, size_ce, log_ce, grads_ce = loss_and_grads(model, build(task, cfg, "cross_entropy"), drawn)
    loss, size, log, grads = loss_and_grads(model, spg, drawn)
    assert size == size_ce and log["ntokens"] == log_ce["ntokens"] and log["nsentences"] == log_ce["nsentences"]
    assert loss.item() > 0 and torch.allclose(loss, loss_ce, rtol=1e-6, atol=0)
    for name in grads_ce:
        scale = grads_ce[name].abs().max().clamp(min=1e-12)
        assert ((grads[name] - grads_ce[name]).abs() <= 1e-5 * scale).all(), name
    torch.manual_seed(7)
    nll = target_nll(model, drawn, pad)
    assert nll.shape == drawn["target"].shape and bool((nll[drawn["target"] == pad] == 0).all())
    assert torch.allclose(nll.sum(), loss_ce, rtol=1e-6, atol=0)
