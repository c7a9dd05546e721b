"""``--criterion spg``: softmax policy gradient (Ding and Soricut, 2017; paper section 3.4), the
ERPO point (R_comm, alpha = 1, beta = 0): y_t ~ exp{log p_theta + W dR}.

Trained as Ding and Soricut train it, with their *bang-bang* reward weight: each token is
reward-driven (W = ``--bang-bang-weight``) with probability 1 - ``--bang-bang-drop`` and
model-driven (W = 0) otherwise, an independent draw per token. The paper notes that SPG needs
such techniques "to make the training practical" (section 3.4): with W = 1 and the reward in
[0, 1], the increments of sentence BLEU are tiny (the brevity penalty of a 1-token prefix is
about e^(1 - T*)), so q is p_theta itself and training from scratch fits the model's own samples
until it emits EOS first (measured on Multi30k: reward 0 and loss 0 after 300 updates). A large
W makes reward-driven tokens follow the reward increments, with the model breaking ties. The
bang-bang draw is a z-mixture of the two branches in the shared sampler, so nothing new samples.

``--bang-bang-weight 1 --bang-bang-drop 0`` is the plain ERPO point (Eq. 4 per token, as Algorithm 1
draws it), the same sampler as
``--criterion erpo --alpha 1 --beta 0``.
"""

import math
from dataclasses import dataclass, field
from typing import List, Tuple

from fairseq.criterions import register_criterion

from ..algorithms import FIGURE_1, Branch, ErpoPoint
from .erpo import SamplingConfig, SamplingCriterion


@dataclass
class SpgConfig(SamplingConfig):
    reward: str = field(default=FIGURE_1["spg"].reward, metadata={
        "help": "R_comm: bleu for translation, rouge for summarization"})
    bang_bang_weight: float = field(default=1e4, metadata={
        "help": "W of the reward-driven tokens, y_t ~ exp{log p + W dR} (Ding and Soricut's W_max, 1e4; "
                "docs/baselines.md#spg): large, so that they follow the reward increments; 1 (with "
                "--bang-bang-drop 0) is the plain ERPO point (Eq. 4 per token, Algorithm 1)"})
    bang_bang_drop: float = field(default=0.4, metadata={
        "help": "probability that a token is model-driven (W = 0: y_t ~ p_theta), drawn per token (Ding "
                "and Soricut: 0.4); 0 makes every token reward-driven"})


def bang_bang_branches(reward: str, weight: float, drop: float) -> Tuple[List[Branch], List[float]]:
    """The reward-driven branch exp{log p + W dR} and, when ``drop`` > 0, the model-driven one
    exp{log p}, with their probabilities (1 - drop, drop)."""
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"--bang-bang-weight must be a finite number > 0, got {weight} (e.g. 1e6; 1 with "
                         "--bang-bang-drop 0 for the plain ERPO point)")
    if not (0 <= drop < 1):
        raise ValueError(f"--bang-bang-drop must be in [0, 1), got {drop} (0: every token reward-driven)")
    point = FIGURE_1["spg"]
    spg = ErpoPoint(reward, point.alpha, point.beta).branch("reward_driven")
    driven = Branch(spg.name, spg.reward, spg.model_weight, weight * spg.reward_weight)
    if drop == 0:
        return [driven], [1.0]
    model_driven = Branch("model_driven", None, model_weight=spg.model_weight, reward_weight=0.0)
    return [driven, model_driven], [1 - drop, drop]


@register_criterion("spg", dataclass=SpgConfig)
class SpgCriterion(SamplingCriterion):
    def __init__(self, task, cfg: SpgConfig):
        super().__init__(task, cfg, *bang_bang_branches(cfg.reward, cfg.bang_bang_weight, cfg.bang_bang_drop))
