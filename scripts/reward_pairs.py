"""Hypothesis/reference pairs for reward tests and benchmarks: realistic overlap, no model needed."""
from __future__ import annotations

import random
from typing import List, Sequence


def make_hypothesis(ref: Sequence[int], other: Sequence[int], kind: int, rng: random.Random) -> List[int]:
    """One of four kinds (``kind % 4``): another sentence; the reference with words dropped and a
    few repeated; with words replaced by other reference words; with neighbours swapped."""
    kind %= 4
    if kind == 0:
        return list(other)
    if kind == 1:
        return [t for t in ref if rng.random() > 0.2] + list(ref[: rng.randint(0, 3)])
    if kind == 2:
        return [t if rng.random() > 0.3 else rng.choice(ref) for t in ref]
    hyp = list(ref)
    for j in range(0, len(hyp) - 1, 3):
        if rng.random() < 0.5:
            hyp[j], hyp[j + 1] = hyp[j + 1], hyp[j]
    return hyp
