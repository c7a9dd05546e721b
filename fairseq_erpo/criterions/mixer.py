"""``--criterion mixer``: MIXER (Ranzato et al., 2016), the paper's baseline (appendix A, C.2).

For a reference y* of T tokens (EOS included) the first m = max(T - s, 0) tokens are trained by
maximum likelihood on y*; from position m + 1 on, the tokens are drawn from the model (the shared
sampler, :meth:`~fairseq_erpo.sampling.SequenceSampler.sample` with ``truth_prefix=m``) and trained
with REINFORCE, with the paper's advantage

    A = R(y_1:T | y*) - R(y*_1:m | y*)  [- b, a running mean of A when ``--mixer-baseline mean``]

so the loss is  sum_{t <= m} -log p(y*_t)  +  A * sum_{t > m} -log p(y_t),  leaving out the EOS
that the sampler forces when a sample reaches its length cap (the policy did not choose it).

The REINFORCE tail s starts at 0 (every token by MLE: the batch is fairseq's ``cross_entropy``
exactly) and grows by ``--mixer-delta`` tokens every ``--mixer-epochs-per-step`` epochs (or every
``--mixer-updates-per-step`` updates), so m decreases from the full length, as in the original
schedule. Validation scores the references, like every criterion of this package.

The schedule reads the update number and the epoch that fairseq hands over, and the running-mean
baseline lives in ``--task erpo_translation``'s checkpointed state (:mod:`.progress`), so a resumed
run continues both exactly; the baseline therefore needs that task (or ``--mixer-baseline none``).
"""
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from fairseq.criterions import register_criterion
from fairseq.criterions.cross_entropy import CrossEntropyCriterion
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from omegaconf import II
from torch import Tensor

from ..algorithms import Branch
from ..rewards import SpecialTokens, build_reward
from ..sampling import SequenceSampler
from .erpo import SamplingConfig, logged_total
from .packed import target_nll
from .progress import current_epoch, restores_state, save_value, saved_value, update_number

BASELINE_KEY = "mixer_baseline"  # the running mean, in the task's checkpointed state


@dataclass
class MixerConfig(SamplingConfig):
    reward: str = field(default="bleu", metadata={"help": "R of the advantage: bleu for MT, rouge for summarization"})
    mixer_delta: int = field(default=2, metadata={
        "help": "tokens moved from MLE to REINFORCE at each step of the schedule (Delta); >= 1"})
    mixer_epochs_per_step: int = field(default=1, metadata={
        "help": "epochs between two steps of the schedule (the first step is pure MLE); needs "
                "--task erpo_translation, which records the epoch; >= 1"})
    mixer_updates_per_step: int = field(default=0, metadata={
        "help": "if > 0, updates between two steps of the schedule instead of epochs (any task)"})
    mixer_baseline: ChoiceEnum(["none", "mean"]) = field(default="mean", metadata={
        "help": "subtract from the advantage a running mean of it (mean) or nothing (none)"})
    mixer_baseline_decay: float = field(default=0.9, metadata={
        "help": "decay of the running-mean baseline per update, in [0, 1)"})
    seed: int = II("common.seed")


def truncated_references(refs: Tensor, prefix: Tensor, eos: int, pad: int) -> Tensor:
    """y*_1:m for each row as a hypothesis: the first ``prefix[i]`` tokens, then EOS, then padding."""
    pos = torch.arange(refs.size(1), device=refs.device).unsqueeze(0)
    out = torch.where(pos < prefix.unsqueeze(1), refs, torch.full_like(refs, pad))
    return torch.where(pos == prefix.unsqueeze(1), torch.full_like(refs, eos), out)


@register_criterion("mixer", dataclass=MixerConfig)
class MixerCriterion(CrossEntropyCriterion):
    def __init__(self, task, cfg: MixerConfig):
        super().__init__(task, cfg.sentence_avg)
        if cfg.mixer_delta < 1:
            raise ValueError(f"--mixer-delta must be >= 1 (tokens per schedule step), got {cfg.mixer_delta}")
        if cfg.mixer_epochs_per_step < 1:
            raise ValueError(f"--mixer-epochs-per-step must be >= 1, got {cfg.mixer_epochs_per_step}")
        if cfg.mixer_updates_per_step < 0:
            raise ValueError(f"--mixer-updates-per-step must be >= 0 (0: count epochs), got "
                             f"{cfg.mixer_updates_per_step}")
        if not 0.0 <= cfg.mixer_baseline_decay < 1.0:
            raise ValueError(f"--mixer-baseline-decay must be in [0, 1), got {cfg.mixer_baseline_decay}")
        if cfg.mixer_updates_per_step == 0 and not hasattr(task, "epoch"):
            raise ValueError(f"--criterion mixer counts epochs (--mixer-epochs-per-step), which --task "
                             f"{type(task).__name__} does not record: use --task erpo_translation, or "
                             "schedule by updates with --mixer-updates-per-step N")
        if cfg.mixer_baseline == "mean" and not restores_state(task):
            raise ValueError(f"--mixer-baseline mean keeps a running mean that a resumed run needs, and --task "
                             f"{type(task).__name__} does not restore state from checkpoints: use --task "
                             "erpo_translation, or --mixer-baseline none")
        dictionary = task.target_dictionary
        self.cfg = cfg
        self.reward = build_reward(cfg.reward, dictionary, cfg)
        if not self.reward.finite_scores:
            raise ValueError(f"--reward {cfg.reward} is a log-domain reward (-inf off its support) and cannot "
                             "be a REINFORCE return: use --reward bleu (translation) or rouge (summarization)")
        self.special = SpecialTokens.from_dictionary(dictionary)
        self.sampler = SequenceSampler([Branch("model", None, model_weight=1.0, reward_weight=0.0)], {},
                                       self.special, bos=dictionary.bos(), vocab_size=len(dictionary),
                                       max_len_a=cfg.max_len_a, max_len_b=cfg.max_len_b)

    @property
    def baseline(self) -> Optional[float]:
        """The running mean of the advantage over earlier updates (None before the first)."""
        return saved_value(self.task, BASELINE_KEY) if self.cfg.mixer_baseline == "mean" else None

    def reinforce_tokens(self) -> int:
        """s: how many final tokens of each reference are left to REINFORCE now."""
        if self.cfg.mixer_updates_per_step > 0:
            step = update_number(self.task, self.cfg.seed) // self.cfg.mixer_updates_per_step
        else:
            step = ((current_epoch(self.task) or 1) - 1) // self.cfg.mixer_epochs_per_step
        return step * self.cfg.mixer_delta

    def forward(self, model, sample, reduce=True):
        tail = self.reinforce_tokens() if model.training else 0
        if tail == 0:  # every token by MLE (and validation): fairseq's cross entropy
            loss, sample_size, log = super().forward(model, sample, reduce=reduce)
            if model.training:
                log.update(mixer_batches=1, mixer_tail=0)
            return loss, sample_size, log

        refs = sample["target"]
        pad, eos = self.special.pad, self.special.eos
        prefix = ((refs != pad).sum(1) - tail).clamp(min=0)
        drawn = self.sampler.sample(model, sample, (1.0,), truth_prefix=prefix)
        y = drawn.sample["target"]
        nll = target_nll(model, drawn.sample, pad)  # the output layer at the sampled tokens only
        if nll is None:  # another model: its own forward over the padded batch
            net_output = model(**drawn.sample["net_input"])
            lprobs = model.get_normalized_probs(net_output, log_probs=True)
            nll = F.nll_loss(lprobs.view(-1, lprobs.size(-1)), y.view(-1), ignore_index=pad,
                             reduction="none").view_as(y)
        with torch.no_grad():
            gain = self.reward.score(y, refs) - self.reward.score(truncated_references(refs, prefix, eos, pad), refs)
            advantage = gain
            if self.cfg.mixer_baseline == "mean":  # b from earlier batches only: no bias
                baseline = self.baseline
                if baseline is not None:
                    advantage = gain - baseline
                mean, decay = float(gain.mean()), self.cfg.mixer_baseline_decay
                save_value(self.task, BASELINE_KEY,
                           mean if baseline is None else decay * baseline + (1 - decay) * mean)
        pos = torch.arange(y.size(1), device=y.device).unsqueeze(0)
        # the EOS forced at the length cap is no action of the policy: with a negative advantage,
        # REINFORCE would push its log-probability down without limit (it is forced whatever p
        # says), which taught the model never to stop (Multi30k: validation BLEU 33.8 -> 5.4 in
        # one epoch, every hypothesis run to the length limit). It gets no loss at all.
        reinforce = (pos >= prefix.unsqueeze(1)) & (y != pad) & ~drawn.capped
        weight = torch.where(reinforce, advantage.unsqueeze(1).to(nll.dtype), torch.ones_like(nll))
        weight = weight.masked_fill(drawn.capped, 0.0)
        loss = (weight * nll).sum()  # padding has nll 0
        ntokens = drawn.sample["ntokens"]
        sample_size = refs.size(0) if self.sentence_avg else ntokens
        log = {"loss": loss.data, "ntokens": ntokens, "nsentences": refs.size(0), "sample_size": sample_size,
               "mixer_batches": 1, "mixer_tail": tail, "mixer_gain": float(gain.sum()),
               "mixer_reinforce_tokens": int(reinforce.sum()), "sample_time": drawn.seconds}
        return loss, sample_size, log

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        total = lambda key: logged_total(logging_outputs, key)  # noqa: E731
        batches = total("mixer_batches")
        if not batches:
            return
        metrics.log_scalar("mixer_tail", total("mixer_tail") / batches, batches, round=2)
        tokens, sentences = total("ntokens"), total("nsentences")
        if tokens:
            metrics.log_scalar("frac_reinforce", total("mixer_reinforce_tokens") / tokens, tokens, round=3)
        if total("mixer_reinforce_tokens") and sentences:
            metrics.log_scalar("mixer_gain", total("mixer_gain") / sentences, sentences, round=4)
            metrics.log_scalar("sample_ms", 1000.0 * total("sample_time") / batches, batches, round=1)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
