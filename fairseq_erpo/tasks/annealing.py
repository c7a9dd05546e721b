"""The interpolation algorithm's lambda schedule (paper appendix C), as plain data so that it can be
saved in checkpoints and unit-tested without a trainer.

Each time the validation reward falls below the best seen under the current lambdas, the next
entry of a cyclic pattern (default: model once, then reward four times) moves ``delta`` of weight
from the ground-truth branch to that branch (never more than the ground truth has left), and the
best-under-current-lambdas resets, so the first validation under new lambdas is always accepted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..algorithms import INTERPOLATION_BRANCHES, check_lambdas


@dataclass(frozen=True)
class AnnealConfig:
    pattern: Tuple[str, ...]  # branch names, cycled: ("model", "reward", "reward", "reward", "reward")
    deltas: Dict[str, float]  # weight moved to each branch per anneal
    source: str = "truth"  # the branch that gives weight away

    @classmethod
    def parse(cls, pattern: str, delta_model: float, delta_reward: float) -> "AnnealConfig":
        steps = tuple(p.strip() for p in str(pattern).split(",") if p.strip())
        bad = [p for p in steps if p not in ("model", "reward")]
        if not steps or bad:
            raise ValueError(f"--anneal-pattern {pattern!r}: a comma-separated list of 'model' and 'reward', "
                             "e.g. model,reward,reward,reward,reward")
        for option, value in (("--anneal-delta-model", delta_model), ("--anneal-delta-reward", delta_reward)):
            if not 0 <= value <= 1:
                raise ValueError(f"{option} must be in [0, 1], got {value}")
        return cls(steps, {"model": float(delta_model), "reward": float(delta_reward)})


def initial_state(lambdas: Sequence[float]) -> dict:
    """What the task keeps in its checkpointed state (plain numbers and lists only)."""
    check_lambdas(lambdas)
    return {"lambdas": [float(v) for v in lambdas], "anneal_count": 0,
            "best_under_lambdas": None, "best_reward": None, "decisions": []}


def decide(state: dict, reward: float, config: AnnealConfig, num_updates: int) -> bool:
    """Record a validation reward; returns True when it is accepted, False when the lambdas were
    annealed (and the caller must restore theta to the last accepted point). Mutates ``state``."""
    best = state["best_under_lambdas"]
    state["best_reward"] = reward if state["best_reward"] is None else max(state["best_reward"], reward)
    accepted = best is None or reward >= best
    if accepted:
        state["best_under_lambdas"] = reward
    else:
        state["lambdas"] = anneal(state["lambdas"], state["anneal_count"], config)
        state["anneal_count"] += 1
        state["best_under_lambdas"] = None
    state["decisions"].append([int(num_updates), float(reward), "accept" if accepted else "anneal"])
    return accepted


def anneal(lambdas: Sequence[float], count: int, config: AnnealConfig) -> List[float]:
    """The lambdas after anneal number ``count`` (0-based)."""
    names = list(INTERPOLATION_BRANCHES)
    out = [float(v) for v in lambdas]
    target = config.pattern[count % len(config.pattern)]
    source = names.index(config.source)
    moved = min(config.deltas[target], out[source])
    out[source] = round(out[source] - moved, 10)
    out[names.index(target)] = round(out[names.index(target)] + moved, 10)
    return out


def last_decision(state: dict) -> Optional[list]:
    return state["decisions"][-1] if state["decisions"] else None
