"""The reward interface every ERPO algorithm uses: R(y | y*) and its token-level increments."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional, Protocol

from torch import Tensor

from .ngrams import SpecialTokens, TokenDeltas


def check_scale(scale: float) -> float:
    """``--reward-scale``: a positive multiplier, else a start-up error naming the option."""
    if not scale > 0:
        raise ValueError(f"--reward-scale must be > 0, got {scale}")
    return float(scale)


class RewardState(Protocol):
    """The reward of a batch of growing hypotheses, advanced one token per step (paper Eq. 3)."""

    def current(self) -> Tensor:
        """R(y_<t | y*) of the prefixes so far, ``[B]``."""

    def deltas(self) -> TokenDeltas:
        """dR(v | y_<t, y*) = R(y_<t + v) - R(y_<t) for every vocabulary token v."""

    def advance(self, tokens: Tensor, active: Optional[Tensor] = None) -> None:
        """Append ``tokens`` ``[B]`` to the rows where ``active`` (default: all)."""


class Reward(ABC):
    """A sequence reward on token ids.

    Hypotheses and references are padded ``[B, L]`` id tensors; a sequence ends at its first pad or
    eos, and EOS itself is never scored. ``score`` is the sequence-level reward (RAML weights, MIXER
    advantages, validation); ``start`` gives the incremental state the token sampler uses.
    Subclasses register under a ``--reward`` name with :func:`register_reward`.
    """

    # False for log-domain rewards (delta, the noising processes) whose score is -inf off their
    # support: they define a sampling distribution but cannot serve as a REINFORCE return
    finite_scores: bool = True

    def __init__(self, special: SpecialTokens):
        self.special = special

    @abstractmethod
    def score(self, hyps: Tensor, refs: Tensor) -> Tensor:
        """R(hyp_b | ref_b) for each row, float64 ``[B]``."""

    @abstractmethod
    def start(self, refs: Tensor) -> RewardState:
        """Incremental state for hypotheses that start empty, against ``refs``."""
