"""The paper's Figure 1 as data: every algorithm is a point (R, alpha, beta) of ERPO, or a mixture
of such points (the interpolation algorithm's z-mixture, section 4).

Each point becomes one :class:`Branch` of the token sampler (:mod:`fairseq_erpo.sampling`), which
draws y_t from

    softmax( model_weight * log p_theta(. | y_<t, x) + reward_weight * dR(. | y_<t, y*) )

so Eq. 4's (alpha * log p + dR) / (alpha + beta) is ``model_weight = alpha / (alpha + beta)`` and
``reward_weight = 1 / (alpha + beta)``. The interpolation algorithm (Algorithm 1) mixes three
branches with weights (lambda1, lambda2, lambda3): exp{c log p}, exp{c dR_comm} and the
ground-truth token.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple


@dataclass(frozen=True)
class Branch:
    """One component of the z-mixture (or the whole sampler when it is the only one)."""

    name: str
    reward: Optional[str]  # a --reward registry name; None: no reward term
    model_weight: float
    reward_weight: float
    truth: bool = False  # the ground-truth token y*_t itself (EOS past the reference)

    @property
    def uses_model(self) -> bool:
        return self.model_weight > 0 and not self.truth


@dataclass(frozen=True)
class ErpoPoint:
    """A point of Figure 1: reward R and the weights alpha (KL to p_theta) and beta (entropy)."""

    reward: str
    alpha: float
    beta: float

    def branch(self, name: str = "erpo") -> Branch:
        check_alpha_beta(self.alpha, self.beta)
        total = self.alpha + self.beta
        return Branch(name, self.reward, self.alpha / total, 1.0 / total)


# Figure 1. RAML's beta is its temperature tau (footnote 3); MIXER is the interpolation algorithm
# with a position-dependent schedule (appendix A) and is not a single point.
FIGURE_1: Dict[str, ErpoPoint] = {
    "mle": ErpoPoint("delta", alpha=0.0, beta=1.0),
    "raml": ErpoPoint("bleu", alpha=0.0, beta=0.4),
    "data_noising": ErpoPoint("unigram_noise", alpha=0.0, beta=1.0),
    "spg": ErpoPoint("bleu", alpha=1.0, beta=0.0),
}

@dataclass(frozen=True)
class CandidateSetRisk:
    """Minimum risk training (Shen et al., 2016; Edunov et al., 2018): not a point of Figure 1 but
    its policy-gradient corner (R = log R_PG, alpha = 1, beta = 0; the paper's appendix A) with q =
    p_theta^s renormalised on a candidate set U(x) of ``candidates`` hypotheses (``generation``: the
    K best of a beam search, or K draws from p_theta), the expected cost 1 - R taken exactly over
    U(x). ``--criterion risk`` (criterions/risk.py)."""

    reward: str
    alpha: float = 1.0
    beta: float = 0.0
    candidates: int = 16
    generation: str = "beam"


# Beyond the paper: the authors' settings of Edunov et al. (16 beam candidates, BLEU)
MINIMUM_RISK = CandidateSetRisk("bleu")

# Algorithm 1, in the paper's order (lambda1, lambda2, lambda3) and the authors' initial weights
INTERPOLATION_BRANCHES = ("model", "reward", "truth")
INTERPOLATION_LAMBDAS = (0.04, 0.0, 0.96)


def interpolation_branches(reward: str, scale: float,
                           reward_scale: Optional[float] = None) -> Tuple[Branch, Branch, Branch]:
    """z = 1: exp{c log p_theta}; z = 2: exp{c_R dR_comm} (c_R = ``reward_scale``, default c, the
    paper's single c); z = 3: y*_t (R_delta)."""
    if not scale > 0:
        raise ValueError(f"--sample-scale must be > 0, got {scale}")
    if reward_scale is None:
        reward_scale = scale
    if not (math.isfinite(reward_scale) and reward_scale > 0):
        raise ValueError(f"--reward-sample-scale must be a finite number > 0, got {reward_scale} "
                         "(leave it unset for the paper's single --sample-scale)")
    if reward == "delta":
        raise ValueError("--reward delta: the interpolation's ground-truth branch already is R_delta; "
                         "choose a smooth reward for the reward branch (bleu, rouge, ...)")
    return (Branch("model", None, model_weight=scale, reward_weight=0.0),
            Branch("reward", reward, model_weight=0.0, reward_weight=reward_scale),
            Branch("truth", "delta", model_weight=0.0, reward_weight=1.0, truth=True))


def check_alpha_beta(alpha: float, beta: float) -> None:
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"--alpha must be a finite number >= 0, got {alpha}")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"--beta must be a finite number >= 0, got {beta}")
    if alpha + beta <= 0:
        raise ValueError("--alpha + --beta must be > 0 (Eq. 4 divides by it); e.g. --alpha 0 --beta 1 "
                         "for the MLE/RAML corner, --alpha 1 --beta 0 for SPG")


def parse_lambdas(text: str, size: int = 3, option: str = "--lambdas") -> Tuple[float, ...]:
    """'0.04,0,0.96' -> a distribution over the branches, or a ValueError naming the option."""
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected {size} comma-separated numbers, e.g. 0.04,0,0.96")
    check_lambdas(values, size, option)
    return values


def check_lambdas(values: Sequence[float], size: int = 3, option: str = "--lambdas") -> None:
    if len(values) != size:
        raise ValueError(f"{option}: expected {size} weights (model, reward, truth), got {len(values)}")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"{option} {list(values)}: weights must be finite and >= 0")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"{option} {list(values)}: weights must sum to 1 (they are a distribution "
                         f"over the branches), they sum to {sum(values):g}")
