"""SPG as Ding and Soricut train it: bang-bang reward weights over the shared sampler."""
from __future__ import annotations

import pytest
import torch

import fairseq_erpo  # noqa: F401
from erpo_helpers import first_batch, synthetic_task
from test_criterions import build, criterion_config


@pytest.fixture(scope="module")
def task_model_batch():
    task, cfg = synthetic_task()
    torch.manual_seed(0)
    return task, cfg, task.build_model(cfg.model), first_batch(task, max_sentences=32)


def draw(criterion, model, sample, seed: int):
    """The sampled targets and the criterion's sampling log for one seeded E-step."""
    torch.manual_seed(seed)  # the sampler's private generator follows torch's seed
    out = criterion.draw(model, sample)
    return out["target"], criterion.sampling_log(*out["erpo_sampled"])


def mean_reward(log: dict) -> float:
    return log["reward_sum"] / log["reward_count"]


def test_weight_1_drop_0_is_the_plain_eq4_point(task_model_batch):
    task, cfg, model, sample = task_model_batch
    plain = build(task, cfg, "spg", bang_bang_weight=1.0, bang_bang_drop=0.0)
    point = build(task, cfg, "erpo", reward="bleu", alpha=1.0, beta=0.0)
    weights = lambda c: [(b.reward, b.model_weight, b.reward_weight) for b in c.branches]  # noqa: E731
    assert weights(plain) == weights(point) == [("bleu", 1.0, 1.0)]
    assert torch.equal(draw(plain, model, sample, 5)[0], draw(point, model, sample, 5)[0])


def test_reward_driven_tokens_follow_the_reward_increments(task_model_batch):
    """On an untrained model the plain point samples noise (sentence BLEU ~0.024 in [0, 1]: the
    increments of a short prefix are tiny); W = 1e6 follows them (~0.71; the first token ties among
    the reference's words, the model breaking the tie). Means over 16 seeded draws, within ~3
    standard errors (per-draw std 0.005 and 0.023): one draw's value depends on the torch build's
    float kernels (the CPU and CUDA wheels of torch 2.13 differ in the third digit)."""
    task, cfg, model, sample = task_model_batch
    plain_spg = build(task, cfg, "spg", bang_bang_weight=1.0, bang_bang_drop=0.0)
    driven_spg = build(task, cfg, "spg", bang_bang_weight=1e6, bang_bang_drop=0.0)
    plain = sum(mean_reward(draw(plain_spg, model, sample, seed)[1]) for seed in range(16)) / 16
    driven = sum(mean_reward(draw(driven_spg, model, sample, seed)[1]) for seed in range(16)) / 16
    assert plain == pytest.approx(0.024, abs=0.004)
    assert driven == pytest.approx(0.712, abs=0.018)


def test_drop_is_the_fraction_of_model_driven_tokens(task_model_batch):
    task, cfg, model, sample = task_model_batch
    spg = build(task, cfg, "spg", bang_bang_drop=0.5)
    assert [b.name for b in spg.branches] == ["reward_driven", "model_driven"] and spg.lambdas == (0.5, 0.5)
    assert spg.branches[1].reward_weight == 0.0 and spg.branches[0].reward_weight == 1e4  # Ding and Soricut's W
    logs = [draw(spg, model, sample, seed)[1] for seed in range(6)]
    model_tokens = sum(log["tokens_model_driven"] for log in logs)
    tokens = sum(log["sampled_tokens"] for log in logs)
    assert tokens > 1000 and abs(model_tokens / tokens - 0.5) < 4 * (0.25 / tokens) ** 0.5


def test_erpo_translation_anneals_the_interpolation_only():
    """Bang-bang SPG is a two-branch mixture with fixed weights: the task keeps no schedule for it
    (so it needs no --eval-bleu), while the interpolation's lambdas are annealed."""
    task, _ = synthetic_task("erpo_translation")
    task.build_criterion(criterion_config("spg"))
    assert not task.annealing and task.schedule is None and task.lambdas is None
    with pytest.raises(ValueError, match="anneals the lambdas on a validation reward: add --eval-bleu"):
        task.build_criterion(criterion_config("interpolation"))
