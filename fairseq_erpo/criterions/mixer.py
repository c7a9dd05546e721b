"""``--criterion mixer``: MIXER (Ranzato et al., 2016), the paper's baseline (appendix A, C.2), with
the training protocol of the authors' code (facebookarchive/MIXER).

For a reference y* of T tokens (EOS included) the first m = max(T - s, 0) tokens are trained by
maximum likelihood on y*; from position m + 1 on, the tokens are drawn from the model (the shared
sampler, :meth:`~fairseq_erpo.sampling.SequenceSampler.sample` with ``truth_prefix=m``) and trained
with REINFORCE on the paper's return G = R(y_1:T | y*) - R(y*_1:m | y*), less a baseline b_t:

    loss = w * sum_{t <= m} -log p(y*_t)  +  (1 - w) * sum_{t > m} (G - b_t) * -log p(y_t)
           [+ c * sum_{t > m} (b_t - G)^2   for the learned baseline]

leaving out the EOS that the sampler forces when a sample reaches its length cap (the policy did
not choose it). w = ``--mixer-xent-weight`` (0.5 in the authors' code once mixing starts).
``--mixer-baseline``: ``learned`` (the authors'): b_t = w_b . h_t + b_b, a linear regressor on the
decoder's features at step t (the state that chose y_t), initialised at w_b = 0, b_b = 0.01, trained
by its squared error weighted c = ``--mixer-baseline-weight`` (0.01), with its input detached so
that no gradient reaches the network; ``mean``: a running mean of earlier batches' G; ``none``.

The REINFORCE tail s is 0 for the first ``--mixer-xent-epochs`` epochs (the authors: 25, until the
cross-entropy model has converged; every token by MLE, so the batch is fairseq's ``cross_entropy``
exactly) and then grows by ``--mixer-delta`` tokens every ``--mixer-epochs-per-step`` epochs (or
counted in updates with ``--mixer-updates-per-step`` / ``--mixer-xent-updates``), so m decreases
from the full length, as in the original schedule. Validation scores the references, like every
criterion of this package.

What a resumed run needs comes back with it: the schedule reads the update number and the epoch
that fairseq hands over; the learned regressor is a criterion parameter, which fairseq's trainer
optimizes with the model and saves, with its optimizer slots, in every checkpoint; the running mean
lives in ``--task erpo_translation``'s checkpointed state (:mod:`.progress`). The learned baseline
reads the decoder's feature size from ``--task erpo_translation`` (fairseq builds the criterion
after the model but hands it only the task), so both baselines need that task (or
``--mixer-baseline none``).
"""
import logging
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
from .packed import decoder_features, nll_at_targets
from .progress import current_epoch, restores_state, save_value, saved_value, update_number

logger = logging.getLogger(__name__)

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
    mixer_xent_epochs: Optional[int] = field(default=None, metadata={
        "help": "epochs of pure cross entropy before the first REINFORCE tokens (Ranzato et al.: 25, "
                "until MLE has converged); default --mixer-epochs-per-step"})
    mixer_xent_updates: Optional[int] = field(default=None, metadata={
        "help": "with --mixer-updates-per-step: updates of pure cross entropy before the first "
                "REINFORCE tokens; default --mixer-updates-per-step"})
    mixer_xent_weight: float = field(default=0.5, metadata={
        "help": "once REINFORCE has started, the weight of the cross-entropy part (the first m tokens); "
                "the REINFORCE part gets 1 minus it (Ranzato et al.'s code: 0.5 / 0.5); in (0, 1]"})
    mixer_baseline: ChoiceEnum(["none", "mean", "learned"]) = field(default="learned", metadata={
        "help": "what the advantage subtracts: learned (Ranzato et al.: a linear regressor per time step on "
                "the decoder's features, trained by squared error on the return without gradient into "
                "the network; needs --task erpo_translation), mean (a running mean of earlier batches' "
                "returns) or none"})
    mixer_baseline_decay: float = field(default=0.9, metadata={
        "help": "decay of the running-mean baseline per update, in [0, 1)"})
    mixer_baseline_weight: float = field(default=0.01, metadata={
        "help": "weight of the learned baseline's squared error in the loss (Ranzato et al.'s "
                "weight_predictive_reward, 0.01); > 0"})
    seed: int = II("common.seed")


def learned_baseline(feature_dim: Optional[int], task) -> torch.nn.Linear:
    """Ranzato et al.'s baseline regressor b_t = w . h_t + b (``LinearNoBackpropInput``), initialised
    as in their code: w = 0, b = 0.01."""
    if feature_dim is None:
        raise ValueError(f"--mixer-baseline learned needs the size of the decoder's features, which --task "
                         f"erpo_translation records when it builds fairseq's LSTM or Transformer model (--task "
                         f"{type(task).__name__} does not): use --task erpo_translation, or --mixer-baseline "
                         "none")
    regressor = torch.nn.Linear(int(feature_dim), 1)
    torch.nn.init.zeros_(regressor.weight)
    torch.nn.init.constant_(regressor.bias, 0.01)
    return regressor


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
        for option, value in (("--mixer-xent-epochs", cfg.mixer_xent_epochs),
                              ("--mixer-xent-updates", cfg.mixer_xent_updates)):
            if value is not None and value < 0:
                raise ValueError(f"{option} must be >= 0 (0: REINFORCE from the start), got {value}")
        if not 0.0 < cfg.mixer_xent_weight <= 1.0:
            raise ValueError(f"--mixer-xent-weight must be in (0, 1] (0.5: Ranzato et al.'s 0.5 / 0.5), got "
                             f"{cfg.mixer_xent_weight}")
        if not 0.0 <= cfg.mixer_baseline_decay < 1.0:
            raise ValueError(f"--mixer-baseline-decay must be in [0, 1), got {cfg.mixer_baseline_decay}")
        if not cfg.mixer_baseline_weight > 0:
            raise ValueError(f"--mixer-baseline-weight must be > 0, got {cfg.mixer_baseline_weight}")
        if cfg.mixer_updates_per_step == 0 and not hasattr(task, "epoch"):
            raise ValueError(f"--criterion mixer counts epochs (--mixer-epochs-per-step), which --task "
                             f"{type(task).__name__} does not record: use --task erpo_translation, or "
                             "schedule by updates with --mixer-updates-per-step N")
        if cfg.mixer_baseline == "mean" and not restores_state(task):
            raise ValueError(f"--mixer-baseline mean keeps a running mean that a resumed run needs, and --task "
                             f"{type(task).__name__} does not restore state from checkpoints: use --task "
                             "erpo_translation, or --mixer-baseline none")
        self.baseline_regressor: Optional[torch.nn.Linear] = None
        if cfg.mixer_baseline == "learned":
            # a criterion parameter: fairseq's trainer optimizes it with the model, saves it (and its
            # optimizer slots) in every checkpoint and restores it on resume
            self.baseline_regressor = learned_baseline(getattr(task, "decoder_feature_dim", None), task)
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

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        """A checkpoint without criterion state (e.g. an MLE model to fine-tune with MIXER) leaves the
        learned baseline at its initial values; fairseq would fail on the missing entry."""
        if state_dict is None:
            logger.info("mixer: the checkpoint has no learned baseline; it starts from its initial values")
            return None
        return super().load_state_dict(state_dict, strict=strict, **kwargs)

    @property
    def baseline(self) -> Optional[float]:
        """The running mean of the advantage over earlier updates (None before the first)."""
        return saved_value(self.task, BASELINE_KEY) if self.cfg.mixer_baseline == "mean" else None

    def reinforce_tokens(self) -> int:
        """s: how many final tokens of each reference are left to REINFORCE now: 0 for the first
        --mixer-xent-epochs epochs (updates), then Delta more at each step of the schedule."""
        cfg = self.cfg
        if cfg.mixer_updates_per_step > 0:
            per_step = cfg.mixer_updates_per_step
            done = update_number(self.task, cfg.seed)
            xent = per_step if cfg.mixer_xent_updates is None else cfg.mixer_xent_updates
        else:
            per_step = cfg.mixer_epochs_per_step
            done = (current_epoch(self.task) or 1) - 1
            xent = per_step if cfg.mixer_xent_epochs is None else cfg.mixer_xent_epochs
        if done < xent:
            return 0
        return (1 + (done - xent) // per_step) * cfg.mixer_delta

    def forward(self, model, sample, reduce=True):
        tail = self.reinforce_tokens() if model.training else 0
        if tail == 0:  # every token by MLE (and validation): fairseq's cross entropy
            loss, sample_size, log = super().forward(model, sample, reduce=reduce)
            if model.training:
                log.update(mixer_batches=1, mixer_tail=0)
                if self.baseline_regressor is not None:
                    # the regressor takes part in every update with a zero gradient: fairseq wraps a
                    # criterion with parameters in DistributedDataParallel, which otherwise stops on
                    # parameters that received no gradient (x + 0.0 leaves the loss exactly as it was)
                    loss = loss + 0.0 * sum(p.sum() for p in self.baseline_regressor.parameters())
            return loss, sample_size, log

        refs = sample["target"]
        pad, eos = self.special.pad, self.special.eos
        prefix = ((refs != pad).sum(1) - tail).clamp(min=0)
        drawn = self.sampler.sample(model, sample, (1.0,), truth_prefix=prefix)
        y = drawn.sample["target"]
        out = decoder_features(model, drawn.sample["net_input"])
        if out is not None:  # the output layer at the sampled tokens only
            features, extra = out
            nll = nll_at_targets(model, features, extra, y, pad)
        elif self.baseline_regressor is not None:
            raise ValueError(f"--mixer-baseline learned reads the decoder's features, which this package gets "
                             f"from fairseq's LSTM and Transformer models only, not {type(model).__name__}: "
                             "use --mixer-baseline mean")
        else:  # another model: its own forward over the padded batch
            net_output = model(**drawn.sample["net_input"])
            lprobs = model.get_normalized_probs(net_output, log_probs=True)
            nll = F.nll_loss(lprobs.view(-1, lprobs.size(-1)), y.view(-1), ignore_index=pad,
                             reduction="none").view_as(y)
        pos = torch.arange(y.size(1), device=y.device).unsqueeze(0)
        # the EOS forced at the length cap is no action of the policy: with a negative advantage,
        # REINFORCE would push its log-probability down without limit (it is forced whatever p
        # says), which taught the model never to stop (Multi30k: validation BLEU 33.8 -> 5.4 in
        # one epoch, every hypothesis run to the length limit). It gets no loss at all.
        reinforce = (pos >= prefix.unsqueeze(1)) & (y != pad) & ~drawn.capped
        with torch.no_grad():
            gain = self.reward.score(y, refs) - self.reward.score(truncated_references(refs, prefix, eos, pad), refs)
        gain_t = gain.to(nll.dtype).unsqueeze(1).expand_as(nll)
        log = {}
        if self.baseline_regressor is not None:
            # b_t from the state that chose y_t; detached input: the regressor's error never reaches
            # the network, and detached output: the policy's loss never trains the regressor
            predicted = self.baseline_regressor(features.detach()).squeeze(-1)
            error = torch.where(reinforce, predicted - gain_t, torch.zeros_like(predicted))
            baseline_loss = self.cfg.mixer_baseline_weight * error.pow(2).sum()
            advantage = gain_t - predicted.detach()
            log.update(mixer_baseline_sse=float(error.detach().pow(2).sum()))
        else:
            baseline_loss = 0.0
            advantage = gain_t
            if self.cfg.mixer_baseline == "mean":  # b from earlier batches only: no bias
                with torch.no_grad():
                    baseline = self.baseline
                    if baseline is not None:
                        advantage = gain_t - baseline
                    mean, decay = float(gain.mean()), self.cfg.mixer_baseline_decay
                    save_value(self.task, BASELINE_KEY,
                               mean if baseline is None else decay * baseline + (1 - decay) * mean)
        xent_weight = self.cfg.mixer_xent_weight
        weight = torch.where(reinforce, (1.0 - xent_weight) * advantage, torch.full_like(nll, xent_weight))
        weight = weight.masked_fill(drawn.capped, 0.0)
        loss = (weight * nll).sum() + baseline_loss  # padding has nll 0
        ntokens = drawn.sample["ntokens"]
        sample_size = refs.size(0) if self.sentence_avg else ntokens
        log.update({"loss": loss.data, "ntokens": ntokens, "nsentences": refs.size(0), "sample_size": sample_size,
                    "mixer_batches": 1, "mixer_tail": tail, "mixer_gain": float(gain.sum()),
                    "mixer_reinforce_tokens": int(reinforce.sum()), "sample_time": drawn.seconds})
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
            if any("mixer_baseline_sse" in log for log in logging_outputs):  # the learned baseline's fit
                metrics.log_scalar("mixer_baseline_mse", total("mixer_baseline_sse") / total("mixer_reinforce_tokens"),
                                   total("mixer_reinforce_tokens"), round=5)
            metrics.log_scalar("sample_ms", 1000.0 * total("sample_time") / batches, batches, round=1)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
