"""``--criterion data_noising``: data noising (Xie et al., 2017; paper section 3.5) as the ERPO point
(R_noise, alpha -> 0, beta = 1): sampling from exp(dR) *is* the noising process.

``--noise-type unigram``: each reference token is replaced with probability gamma by a draw from the
training unigram distribution (Eq. 9). ``uniform_single``: exactly one token, at a uniform position,
is replaced by a uniform non-special token (the paper's R'_delta).
"""

from dataclasses import dataclass, field

from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum

from ..algorithms import FIGURE_1, ErpoPoint
from .erpo import SamplingConfig, SamplingCriterion

NOISE_REWARDS = {"unigram": "unigram_noise", "uniform_single": "uniform_single_noise"}


@dataclass
class DataNoisingConfig(SamplingConfig):
    noise_type: ChoiceEnum(list(NOISE_REWARDS)) = field(default="unigram", metadata={
        "help": "unigram: Xie et al.'s unigram noising; uniform_single: replace exactly one token uniformly"})
    noise_prob: float = field(default=0.1, metadata={
        "help": "gamma: probability of replacing each reference token (unigram noising), in (0, 1)"})


@register_criterion("data_noising", dataclass=DataNoisingConfig)
class DataNoisingCriterion(SamplingCriterion):
    def __init__(self, task, cfg: DataNoisingConfig):
        point = FIGURE_1["data_noising"]
        reward = NOISE_REWARDS[cfg.noise_type]
        super().__init__(task, cfg, [ErpoPoint(reward, point.alpha, point.beta).branch("noise")], [1.0])
