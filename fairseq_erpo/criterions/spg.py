"""``--criterion spg``: softmax policy gradient (Ding and Soricut, 2017; paper section 3.4), the
ERPO point (R_comm, alpha = 1, beta = 0): y_t ~ exp{log p_theta + dR}."""

from dataclasses import dataclass, field

from fairseq.criterions import register_criterion

from ..algorithms import FIGURE_1, ErpoPoint
from .erpo import SamplingConfig, SamplingCriterion


@dataclass
class SpgConfig(SamplingConfig):
    reward: str = field(default=FIGURE_1["spg"].reward, metadata={
        "help": "R_comm: bleu for translation, rouge for summarization"})


@register_criterion("spg", dataclass=SpgConfig)
class SpgCriterion(SamplingCriterion):
    def __init__(self, task, cfg: SpgConfig):
        point = FIGURE_1["spg"]
        super().__init__(task, cfg, [ErpoPoint(cfg.reward, point.alpha, point.beta).branch("spg")], [1.0])
