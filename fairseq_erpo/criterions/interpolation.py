"""``--criterion interpolation``: the paper's interpolation algorithm (section 4, Algorithm 1).

Each token comes from one of three branches, z ~ (lambda1, lambda2, lambda3) in the paper's order:
the model (exp{c log p_theta}), the reward (exp{c dR_comm}) or the ground truth (y*_t). Under
``--task erpo_translation`` the lambdas are annealed from ``--lambdas`` (appendix C); under any
other task they stay fixed.
"""

import logging
from dataclasses import dataclass, field
from typing import Optional

from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum

from ..algorithms import INTERPOLATION_LAMBDAS, interpolation_branches, parse_lambdas
from .erpo import SamplingConfig, SamplingCriterion

logger = logging.getLogger(__name__)


@dataclass
class InterpolationConfig(SamplingConfig):
    reward: str = field(default="bleu", metadata={
        "help": "R_comm of the reward branch: bleu for translation, rouge (R-1 + R-2 + R-L) for summarization"})
    lambdas: str = field(default=",".join(f"{v:g}" for v in INTERPOLATION_LAMBDAS), metadata={
        "help": "initial (lambda1, lambda2, lambda3): weights of the model, reward and ground-truth branches"})
    sample_scale: float = field(default=1.0, metadata={
        "help": "c: model tokens ~ exp{c log p}, reward tokens ~ exp{c dR}; > 0"})
    reward_sample_scale: Optional[float] = field(default=None, metadata={
        "help": "c of the reward branch alone, reward tokens ~ exp{c_R dR} (default: --sample-scale, the "
                "paper's one c); > 0. With BLEU in [0, 1] and c_R = 1 the branch is nearly uniform over "
                "the vocabulary (docs/erpo.md#interpolation)"})
    z_granularity: ChoiceEnum(["token", "step"]) = field(default="token", metadata={
        "help": "token: an independent z per token per example (the paper); step: one z per time step "
                "for the whole batch (the authors' code)"})


@register_criterion("interpolation", dataclass=InterpolationConfig)
class InterpolationCriterion(SamplingCriterion):
    anneals = True

    def __init__(self, task, cfg: InterpolationConfig):
        super().__init__(task, cfg, interpolation_branches(cfg.reward, cfg.sample_scale, cfg.reward_sample_scale),
                         parse_lambdas(cfg.lambdas), granularity=cfg.z_granularity)
        if not getattr(task, "anneals_lambdas", False):
            logger.warning("interpolation: lambdas stay fixed at %s; annealing needs --task erpo_translation",
                           cfg.lambdas)
