"""Scheduled sampling: the decay, MLE at eps = 1, model-only inputs at eps = 0, step-wise decoding."""
from __future__ import annotations

import math

import pytest
import torch

import fairseq_erpo  # noqa: F401
from erpo_helpers import first_batch, synthetic_task
from test_criterions import build, loss_and_grads


@pytest.fixture(scope="module")
def task_and_cfg():
    return synthetic_task()


def test_inverse_sigmoid_decay(task_and_cfg):
    task, cfg = task_and_cfg
    crit = build(task, cfg, "scheduled_sampling", ss_k=500.0)
    assert crit.truth_probability(0) == pytest.approx(500 / 501)
    assert crit.truth_probability(int(round(500 * math.log(500)))) == pytest.approx(0.5, abs=1e-3)
    assert crit.truth_probability(10 ** 9) == 0.0
    assert build(task, cfg, "scheduled_sampling", ss_k=600.0).truth_probability(600) == \
        pytest.approx(600 / (600 + math.e))


def test_eps_one_is_exactly_cross_entropy(task_and_cfg):
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model)
    sample = first_batch(task)
    ce = build(task, cfg, "cross_entropy")
    ss = build(task, cfg, "scheduled_sampling", ss_schedule="constant", ss_eps=1.0)
    loss_ce, _, _, grads_ce = loss_and_grads(model, ce, sample)
    loss_ss, _, log, grads_ss = loss_and_grads(model, ss, sample)
    assert torch.equal(loss_ce, loss_ss) and log["ss_model_inputs"] == 0
    assert all(torch.equal(grads_ce[n], grads_ss[n]) for n in grads_ce)


def test_stepwise_decoding_with_truth_inputs_equals_teacher_forcing(task_and_cfg):
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model).eval()  # no dropout: the two computations must agree
    sample = first_batch(task)
    ss = build(task, cfg, "scheduled_sampling")
    truth = torch.ones_like(sample["net_input"]["prev_output_tokens"], dtype=torch.bool)
    with torch.no_grad():
        stepwise = ss.decode_mixed(model, sample, truth, torch.Generator())[0]
        batched = model(**sample["net_input"])[0]
    assert torch.allclose(stepwise, batched, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("eps, decode", [(0.0, "sample"), (0.0, "argmax"), (0.5, "sample")])
def test_model_inputs_follow_eps(task_and_cfg, eps, decode):
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model).train()
    sample = first_batch(task, max_sentences=64)
    ss = build(task, cfg, "scheduled_sampling", ss_schedule="constant", ss_eps=eps, ss_decode=decode)
    torch.manual_seed(0)
    loss, _, log = ss(model, sample)
    loss.backward()
    assert torch.isfinite(loss) and log["ss_inputs"] > 300
    frac = log["ss_model_inputs"] / log["ss_inputs"]
    assert frac == 1.0 if eps == 0.0 else abs(frac - 0.5) < 0.1  # binomial: sd ~ 0.03
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_argmax_inputs_are_the_models_greedy_tokens(task_and_cfg):
    """eps = 0 with argmax: every input after the first is the argmax of the previous step."""
    task, cfg = task_and_cfg
    model = task.build_model(cfg.model).eval()
    sample = first_batch(task, max_sentences=4)
    ss = build(task, cfg, "scheduled_sampling", ss_decode="argmax")
    prev = sample["net_input"]["prev_output_tokens"]
    truth = torch.zeros_like(prev, dtype=torch.bool)
    truth[:, 0] = True
    with torch.no_grad():
        logits = ss.decode_mixed(model, sample, truth, torch.Generator())[0]
        greedy = logits.clone()
        greedy[:, :, [ss.padding_idx, ss.bos]] = -math.inf
        greedy = greedy.argmax(-1)
        fed = torch.cat([prev[:, :1], greedy[:, :-1]], dim=1)
        replay = model(sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"], fed)[0]
    assert torch.allclose(replay, logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fields, message", [({"ss_k": 0.0}, "--ss-k must be > 0"),
                                             ({"ss_eps": 1.5}, "--ss-eps must be in")])
def test_bad_options(task_and_cfg, fields, message):
    task, cfg = task_and_cfg
    with pytest.raises(ValueError, match=message):
        build(task, cfg, "scheduled_sampling", **fields)
