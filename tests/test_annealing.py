"""The interpolation lambda schedule of appendix C, as pure data."""
from __future__ import annotations

import pytest

from fairseq_erpo.tasks import annealing

PAPER = annealing.AnnealConfig.parse("model,reward,reward,reward,reward", 0.06, 0.06)


def test_paper_pattern_model_once_then_reward_four_times():
    lambdas, seen = [0.04, 0.0, 0.96], []
    for count in range(6):
        lambdas = annealing.anneal(lambdas, count, PAPER)
        seen.append(lambdas)
    assert seen == [[0.10, 0.0, 0.90], [0.10, 0.06, 0.84], [0.10, 0.12, 0.78], [0.10, 0.18, 0.72],
                    [0.10, 0.24, 0.66], [0.16, 0.24, 0.60]]


def test_ground_truth_weight_never_goes_below_zero():
    lambdas = [0.04, 0.0, 0.96]
    for count in range(40):
        lambdas = annealing.anneal(lambdas, count, PAPER)
        assert min(lambdas) >= 0 and abs(sum(lambdas) - 1) < 1e-9
    assert lambdas[2] == 0.0 and lambdas[0] + lambdas[1] == pytest.approx(1.0)


def test_decisions_accept_anneal_and_reset_the_best_under_current_lambdas():
    state = annealing.initial_state([0.04, 0.0, 0.96])
    rewards = [10.0, 12.0, 11.0, 5.0, 6.0, 5.5, 7.0]
    accepted = [annealing.decide(state, r, PAPER, num_updates=100 * (i + 1)) for i, r in enumerate(rewards)]
    # 11 < 12: anneal; 5 is the first under the new lambdas: accepted; 6 ok; 5.5 < 6: anneal; 7 first
    assert accepted == [True, True, False, True, True, False, True]
    assert state["lambdas"] == [0.10, 0.06, 0.84] and state["anneal_count"] == 2
    assert state["best_reward"] == 12.0 and state["best_under_lambdas"] == 7.0
    assert state["decisions"][2] == [300, 11.0, "anneal"]


@pytest.mark.parametrize("pattern, dm, dr, message", [
    ("model,truth", 0.06, 0.06, "--anneal-pattern"), ("", 0.06, 0.06, "--anneal-pattern"),
    ("model", -0.1, 0.06, "--anneal-delta-model"), ("reward", 0.06, 2.0, "--anneal-delta-reward"),
])
def test_bad_schedule_options(pattern, dm, dr, message):
    with pytest.raises(ValueError, match=message):
        annealing.AnnealConfig.parse(pattern, dm, dr)
