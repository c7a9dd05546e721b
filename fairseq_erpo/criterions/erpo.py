"""``--criterion erpo``: any point (R, alpha, beta) of the paper's Figure 1, and the base class of
every sampling criterion in this package.

E-step: draw y ~ q (Algorithm 1's token-by-token q: Eq. 4's factors, each step normalised on its
own, the paper's approximation of Eq. 2's sequence-level q; or the z-mixture) with the shared
:class:`~fairseq_erpo.sampling.SequenceSampler`; M-step: the negative log-likelihood of y with teacher forcing, which is fairseq's
own ``cross_entropy`` on the sampled batch (so the loss, its base-2 logging and ``sentence_avg``
behave exactly like the stock criterion). Validation (``model.training`` off) scores the
references, so valid loss is comparable across algorithms.

Under ``--task erpo_translation`` the task samples before the loss with its annealed lambdas;
under any other task (e.g. stock ``translation``) the criterion samples itself with fixed lambdas.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import torch
from fairseq.criterions import register_criterion
from fairseq.criterions.cross_entropy import CrossEntropyCriterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from ..algorithms import Branch, ErpoPoint
from ..rewards import Reward, SpecialTokens, build_reward
from ..sampling import SampledBatch, SequenceSampler
from .packed import target_nll

SAMPLED_KEY = "erpo_sampled"  # a sample that already went through the E-step carries its SampledBatch


def logged_total(logging_outputs, key: str) -> float:
    """The sum of ``key`` over the workers' / batches' logging outputs (0 where absent)."""
    return sum(log.get(key, 0) for log in logging_outputs)


@dataclass
class SamplingConfig(FairseqDataclass):
    """Options every sampling criterion shares."""

    max_len_a: float = field(default=1.0, metadata={
        "help": "samples end with EOS after at most max_len_a * T* + max_len_b tokens (T*: reference length)"})
    max_len_b: int = field(default=10, metadata={"help": "see --max-len-a"})
    reward_scale: Optional[float] = field(default=None, metadata={
        "help": "multiplier of the reward (default: the reward's own; 0.01 for bleu, i.e. BLEU in [0, 1] "
                "as in the authors' code, 1 for rouge)"})
    bleu_smooth: ChoiceEnum(["none", "floor", "add-k", "exp"]) = field(default="add-k", metadata={
        "help": "sentence-BLEU smoothing of the bleu reward (sacrebleu's methods)"})
    bleu_smooth_value: Optional[float] = field(default=None, metadata={
        "help": "value for floor / add-k smoothing (default: sacrebleu's)"})
    bleu_brevity: ChoiceEnum(["every-prefix", "at-eos"]) = field(default="every-prefix", metadata={
        "help": "where the bleu reward's token increments pay the brevity penalty: every-prefix (the "
                "paper's dR: each prefix scored as a sentence, which flattens the increments of short "
                "prefixes) or at-eos (prefixes unpenalized, EOS pays the penalty: a premature EOS "
                "loses reward); sentence scores are the same"})
    reward_level: ChoiceEnum(["token", "word"]) = field(default="token", metadata={
        "help": "token: sequence rewards (RAML weights, MIXER returns, risk costs, the logged reward) on the "
                "target tokens as they are, subword pieces on BPE data; word: on the words the pieces make "
                "(--reward-bpe), as validation BLEU with --eval-bleu-remove-bpe scores them. Token-level "
                "increments (the interpolation's reward branch, SPG) stay on the pieces"})
    reward_bpe: Optional[str] = field(default=None, metadata={
        "help": "the targets' subword scheme for --reward-level word: subword_nmt (pieces ending in @@; "
                "'@@ ' is accepted) or sentencepiece (a piece starting with \u2581 starts a word)"})
    sentence_avg: bool = II("optimization.sentence_avg")


@dataclass
class ErpoConfig(SamplingConfig):
    reward: str = field(default="bleu", metadata={
        "help": "R: a registered reward (bleu, rouge, delta, unigram_noise, uniform_single_noise, ...)"})
    alpha: float = field(default=0.0, metadata={"help": "weight of KL(q || p_theta) (Eq. 1); >= 0"})
    beta: float = field(default=1.0, metadata={"help": "weight of the entropy H(q) (Eq. 1); >= 0"})
    noise_prob: float = field(default=0.1, metadata={
        "help": "gamma of the unigram_noise reward (probability of replacing a reference token)"})


class SamplingCriterion(CrossEntropyCriterion):
    """Cross entropy on sequences drawn by the shared sampler; subclasses only choose branches."""

    # whether ``--task erpo_translation`` anneals this criterion's lambdas (the interpolation
    # algorithm); other mixtures (bang-bang SPG) keep theirs fixed
    anneals: bool = False

    def __init__(self, task, cfg: SamplingConfig, branches: Sequence[Branch], lambdas: Sequence[float],
                 granularity: str = "token"):
        super().__init__(task, cfg.sentence_avg)
        dictionary = getattr(task, "target_dictionary", None)
        names = sorted({b.reward for b in branches if b.reward and not b.truth})
        rewards: Dict[str, Reward] = {name: build_reward(name, dictionary, cfg) for name in names}
        self.lambdas: Tuple[float, ...] = tuple(float(v) for v in lambdas)
        self.sampler = SequenceSampler(branches, rewards, SpecialTokens.from_dictionary(dictionary),
                                       bos=dictionary.bos(), vocab_size=len(dictionary),
                                       granularity=granularity, max_len_a=cfg.max_len_a,
                                       max_len_b=cfg.max_len_b)
        # the reward whose mean over samples is logged: the first non-ground-truth one
        self.score_reward: Optional[Reward] = rewards[names[0]] if names else None

    @property
    def branches(self) -> Tuple[Branch, ...]:
        return self.sampler.branches

    def draw(self, model, sample: dict, lambdas: Optional[Sequence[float]] = None) -> dict:
        """The E-step: ``sample`` with its target replaced by y ~ q; the SampledBatch rides along."""
        lambdas = self.lambdas if lambdas is None else tuple(lambdas)
        drawn = self.sampler.sample(model, sample, lambdas)
        out = drawn.sample
        out[SAMPLED_KEY] = (drawn, sample["target"], lambdas)
        return out

    def forward(self, model, sample, reduce=True):
        if model.training and SAMPLED_KEY not in sample:
            sample = self.draw(model, sample)
        nll = None
        if SAMPLED_KEY in sample and reduce and sample["target"].size(1) > sample[SAMPLED_KEY][1].size(1):
            # samples wider than their references: the output layer at the sampled tokens only
            nll = target_nll(model, sample, self.padding_idx)
        if nll is None:  # fairseq's cross entropy itself
            loss, sample_size, logging_output = super().forward(model, sample, reduce=reduce)
        else:
            loss = nll.sum()
            sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
            logging_output = {"loss": loss.data, "ntokens": sample["ntokens"], "nsentences": sample["target"].size(0),
                              "sample_size": sample_size}
        if SAMPLED_KEY in sample:
            logging_output.update(self.sampling_log(*sample[SAMPLED_KEY]))
        return loss, sample_size, logging_output

    def sampling_log(self, drawn: SampledBatch, refs: torch.Tensor, lambdas: Sequence[float]) -> dict:
        out = {"sample_time": drawn.seconds, "sampled_batches": 1,
               "sampled_tokens": int((drawn.branch >= 0).sum())}
        for k, branch in enumerate(self.branches):
            if len(self.branches) > 1:
                out[f"tokens_{branch.name}"] = int((drawn.branch == k).sum())
                out[f"lambda_{branch.name}"] = float(lambdas[k])
        if self.score_reward is not None:
            reward = self.score_reward.score(drawn.sample["target"], refs)
            finite = torch.isfinite(reward)
            out["reward_sum"] = float(reward[finite].sum())
            out["reward_count"] = int(finite.sum())
        return out

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        total = lambda key: logged_total(logging_outputs, key)  # noqa: E731
        batches = total("sampled_batches")
        if not batches:
            return
        metrics.log_scalar("sample_ms", 1000.0 * total("sample_time") / batches, batches, round=1)
        if total("reward_count"):
            metrics.log_scalar("reward", total("reward_sum") / total("reward_count"),
                               total("reward_count"), round=4)
        tokens = total("sampled_tokens")
        keys = {key for log in logging_outputs for key in log}
        for key in sorted(keys):
            if key.startswith("tokens_") and tokens:
                metrics.log_scalar("frac_" + key[len("tokens_"):], total(key) / tokens, tokens, round=3)
            elif key.startswith("lambda_"):
                metrics.log_scalar(key, total(key) / batches, batches, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


@register_criterion("erpo", dataclass=ErpoConfig)
class ErpoCriterion(SamplingCriterion):
    """One branch: y_t ~ softmax((alpha log p_theta + dR) / (alpha + beta)) (Eq. 4 per token, Algorithm 1)."""

    def __init__(self, task, cfg: ErpoConfig):
        super().__init__(task, cfg, [ErpoPoint(cfg.reward, cfg.alpha, cfg.beta).branch()], [1.0])
