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


def test_period_counter_and_floor(task_and_cfg):
    """--ss-counter period: i = 1 again every --ss-period updates (the authors' per-epoch restart at
    a fixed length); --ss-min-truth: eps never below the floor."""
    task, cfg = task_and_cfg  # fairseq's own task: the update number is read off the per-update seed
    ss = build(task, cfg, "scheduled_sampling", ss_k=500.0, ss_counter="period", ss_period=2300)
    steps = []
    for update in (0, 1, 2299, 2300, 2301, 4600):
        torch.manual_seed(1 + update)  # fairseq's trainer seeds --seed 1 + the update count
        steps.append(ss.schedule_step())
    assert steps == [1, 2, 2300, 1, 2, 1]
    default = build(task, cfg, "scheduled_sampling")  # the default, chosen on validation: this schedule
    assert default.cfg.ss_counter == "period" and default.period == 2300
    torch.manual_seed(1 + 2301)
    assert default.schedule_step() == 2
    paper = build(task, cfg, "scheduled_sampling", ss_counter="global")  # the formula as the paper states it
    assert paper.schedule_step() == 2301
    # over one period the model's share 1 - eps climbs from 0.002 to 0.166, as over an authors' IWSLT14 epoch
    assert 1 - ss.truth_probability(1) == pytest.approx(0.002, abs=1e-3)
    assert 1 - ss.truth_probability(2300) == pytest.approx(0.1659, abs=1e-4)
    floored = build(task, cfg, "scheduled_sampling", ss_k=500.0, ss_min_truth=0.75)
    assert floored.truth_probability(0) == pytest.approx(500 / 501)
    assert floored.truth_probability(3107) == 0.75  # the decay is at 0.5 there
    assert floored.truth_probability(10 ** 9) == 0.75


@pytest.mark.parametrize("fields, message", [({"ss_k": 0.0}, "--ss-k must be > 0"),
                                             ({"ss_eps": 1.5}, "--ss-eps must be in"),
                                             ({"ss_period": 0}, "--ss-period must be >= 1"),
                                             ({"ss_counter": "global", "ss_period": 100},
                                              "--ss-period 100 has no effect with --ss-counter global"),
                                             ({"ss_min_truth": -0.1}, "--ss-min-truth must be in")])
def test_bad_options(task_and_cfg, fields, message):
    task, cfg = task_and_cfg
    with pytest.raises(ValueError, match=message):
        build(task, cfg, "scheduled_sampling", **fields)


def test_epoch_counter_restarts_every_epoch_and_survives_a_resume():
    """--ss-counter epoch: i = 1 at each epoch's first update (the authors' texar code), also when a
    run resumes from a checkpoint taken in the middle of an epoch."""
    from fairseq import optim

    task, cfg = synthetic_task("erpo_translation")
    model = task.build_model(cfg.model)
    ss = build(task, cfg, "scheduled_sampling", ss_k=5.0, ss_counter="epoch")
    optimizer = optim.build_optimizer(cfg.optimizer, list(model.parameters()))
    sample = first_batch(task, max_sentences=4)

    def eps_at(task, epoch, update_num):
        if task.epoch != epoch:
            task.begin_epoch(epoch, model)
        return task.train_step(sample, model, ss, optimizer, update_num)[2]["ss_eps"]

    assert [eps_at(task, 1, u) for u in range(3)] == [ss.truth_probability(i) for i in (1, 2, 3)]
    assert [eps_at(task, 2, u) for u in (3, 4)] == [ss.truth_probability(i) for i in (1, 2)]
    resumed, _ = synthetic_task("erpo_translation")
    resumed.set_checkpoint_dict(task.get_checkpoint_dict()["ErpoTranslationTask"])
    ss.task = resumed
    assert eps_at(resumed, 2, 5) == ss.truth_probability(3)  # update 5 is epoch 2's third
    assert eps_at(resumed, 3, 6) == ss.truth_probability(1)


def test_epoch_counter_needs_a_task_that_tracks_epochs(task_and_cfg):
    task, cfg = task_and_cfg  # fairseq's translation task
    with pytest.raises(ValueError, match="--ss-counter epoch restarts the count every epoch, which --task "
                                         "TranslationTask does not track"):
        build(task, cfg, "scheduled_sampling", ss_counter="epoch")
