"""``--criterion scheduled_sampling``: Bengio et al. (2015), the paper's baseline (appendix C.2).

At each decoding step the decoder input is the ground-truth previous token with probability
eps_i = k / (k + exp(i / k)) (inverse-sigmoid decay in the update number i; ``--ss-k`` 500 for
translation, 600 for summarization), otherwise a token drawn from (or, with ``--ss-decode
argmax``, the argmax of) the model's own output distribution at the previous step. The loss is the
NLL of y*. Decoding is step-wise through fairseq's incremental state with gradients through the
decoder (one model, no second copy); the V-sized output layer runs once, on all steps' features,
except for the rows whose next input is a model token, which need their distribution right away
(without grad: the choice of token is not differentiated, as in the original method).

``--ss-counter epoch`` counts i from 1 again at every epoch's first update. That is what the
authors' texar code does (``scheduled_sampling_main.py`` passes its step counter to ``_train_epoch``
by value), and the paper's scheduled-sampling results come from that code; ``global`` is the
formula as Bengio et al. and the paper state it, with the trainer's update count. How much of the
input the model feeds then depends on the corpus: the per-epoch restart keeps eps within [0.84, 1]
on IWSLT14 (~2,300 updates per epoch) but within [0.995, 1] on Multi30k (454), and the global
count drives eps to 0.02 by update 5,000 on any corpus. The default, ``--ss-counter period``, is
the authors' restart every ``--ss-period`` updates (default 2300, their IWSLT14 epoch) whatever the
epoch's length, chosen on Multi30k validation BLEU: the global count fell from 36.6 to 24-26 there,
the period schedule held MLE's level (docs/baselines.md). ``--ss-min-truth`` puts a floor under eps.

When every coin of a batch picks the ground truth (always with eps = 1), the batch is plain
teacher forcing: exactly fairseq's ``cross_entropy``.
"""
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.criterions import register_criterion
from fairseq.criterions.cross_entropy import CrossEntropyCriterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from ..sampling import LinearOutputLayer, UpdateSeededGenerator, draw_tokens, logits_are_log_probs, model_scores
from .erpo import logged_total
from .progress import update_number, updates_into_epoch

DEFAULT_SS_PERIOD = 2300  # updates of 64 sentences in an epoch of the authors' IWSLT14 data (docs/baselines.md)


@dataclass
class ScheduledSamplingConfig(FairseqDataclass):
    ss_k: float = field(default=500.0, metadata={
        "help": "k of the inverse-sigmoid decay eps_i = k / (k + exp(i / k)): 500 for MT, 600 for "
                "summarization (paper); > 0"})
    ss_schedule: ChoiceEnum(["inverse_sigmoid", "constant"]) = field(default="inverse_sigmoid", metadata={
        "help": "inverse_sigmoid: eps decays with the update number; constant: eps = --ss-eps"})
    ss_counter: ChoiceEnum(["global", "epoch", "period"]) = field(default="period", metadata={
        "help": "i of the decay: period (default, chosen on validation): 1 again every --ss-period updates, "
                "the authors' restart at a length that does not depend on the corpus; global: the "
                "trainer's update count (the paper's formula); epoch: 1 at each epoch's first update, as "
                "in the authors' texar code (needs --task erpo_translation, which records where each "
                "epoch began)"})
    ss_period: Optional[int] = field(default=None, metadata={
        "help": f"with --ss-counter period: updates between two restarts of i (default {DEFAULT_SS_PERIOD}, "
                "the authors' IWSLT14 epoch of 64-sentence batches); >= 1"})
    ss_min_truth: float = field(default=0.0, metadata={
        "help": "a floor on eps: the ground truth is fed with probability max(eps_i, this); in [0, 1]"})
    ss_eps: float = field(default=1.0, metadata={"help": "ground-truth probability of the constant schedule"})
    ss_decode: ChoiceEnum(["sample", "argmax"]) = field(default="sample", metadata={
        "help": "model tokens: sampled from the previous output distribution, or its argmax"})
    sentence_avg: bool = II("optimization.sentence_avg")
    seed: int = II("common.seed")


@register_criterion("scheduled_sampling", dataclass=ScheduledSamplingConfig)
class ScheduledSamplingCriterion(CrossEntropyCriterion):
    def __init__(self, task, cfg: ScheduledSamplingConfig):
        super().__init__(task, cfg.sentence_avg)
        if not cfg.ss_k > 0:
            raise ValueError(f"--ss-k must be > 0, got {cfg.ss_k}")
        if not 0.0 <= cfg.ss_eps <= 1.0:
            raise ValueError(f"--ss-eps must be in [0, 1], got {cfg.ss_eps}")
        if cfg.ss_counter == "period" and cfg.ss_period is not None and cfg.ss_period < 1:
            raise ValueError(f"--ss-period must be >= 1 (updates between restarts of the count), got "
                             f"{cfg.ss_period}")
        if cfg.ss_counter != "period" and cfg.ss_period is not None:
            raise ValueError(f"--ss-period {cfg.ss_period} has no effect with --ss-counter {cfg.ss_counter}: add "
                             "--ss-counter period, or drop --ss-period")
        if not 0.0 <= cfg.ss_min_truth <= 1.0:
            raise ValueError(f"--ss-min-truth must be in [0, 1], got {cfg.ss_min_truth}")
        if cfg.ss_counter == "epoch" and not hasattr(task, "epoch_first_update"):
            raise ValueError(f"--ss-counter epoch restarts the count every epoch, which --task "
                             f"{type(task).__name__} does not track: use --task erpo_translation, or "
                             "--ss-counter global")
        self.cfg = cfg
        self.period = DEFAULT_SS_PERIOD if cfg.ss_period is None else cfg.ss_period
        self.bos = task.target_dictionary.bos()
        self._rng = UpdateSeededGenerator(salt=0x55)

    def truth_probability(self, num_updates: int) -> float:
        """eps_i: probability of feeding the ground-truth previous token at update i."""
        if self.cfg.ss_schedule == "constant":
            return self.cfg.ss_eps
        k = self.cfg.ss_k
        exponent = num_updates / k
        decayed = 0.0 if exponent > 700 else k / (k + math.exp(exponent))
        return max(decayed, self.cfg.ss_min_truth)

    def schedule_step(self) -> int:
        """i of eps_i for the current update."""
        if self.cfg.ss_counter == "epoch":
            return updates_into_epoch(self.task) + 1  # texar's total_step_counter starts at 1
        if self.cfg.ss_counter == "period":  # the same restart, every --ss-period updates
            return update_number(self.task, self.cfg.seed) % self.period + 1
        return update_number(self.task, self.cfg.seed)

    def forward(self, model, sample, reduce=True):
        if not model.training:  # validation: the references, teacher-forced
            return super().forward(model, sample, reduce=reduce)
        # the constant schedule reads no update count (it may run outside fairseq's trainer)
        eps = self.cfg.ss_eps if self.cfg.ss_schedule == "constant" else self.truth_probability(self.schedule_step())
        prev = sample["net_input"]["prev_output_tokens"]
        gen = self._rng.get(prev.device)
        truth = torch.rand(prev.shape, generator=gen, device=prev.device) < eps
        truth[:, 0] = True  # the first input is the start symbol
        truth |= prev == self.padding_idx
        if bool(truth.all()):
            loss, sample_size, log = super().forward(model, sample, reduce=reduce)
            model_inputs = 0
        else:
            net_output = self.decode_mixed(model, sample, truth, gen)
            loss, _ = self.compute_loss(model, net_output, sample, reduce=reduce)
            sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
            log = {"loss": loss.data, "ntokens": sample["ntokens"], "nsentences": sample["target"].size(0),
                   "sample_size": sample_size}
            model_inputs = int((~truth).sum())
        log.update(ss_eps=eps, ss_batches=1, ss_model_inputs=model_inputs,
                   ss_inputs=int((prev != self.padding_idx).sum()) - prev.size(0))
        return loss, sample_size, log

    def decode_mixed(self, model, sample, truth: torch.Tensor, gen: torch.Generator):
        """Step-wise decoding; input t is prev[:, t] where ``truth``, else a model token."""
        net_input = sample["net_input"]
        prev = net_input["prev_output_tokens"]
        encoder_out = model.encoder(net_input["src_tokens"], src_lengths=net_input["src_lengths"])
        incremental_state = {}
        inputs = prev[:, :1]
        features = []
        # the output layer as a plain product for the model tokens' draws (a transposed copy of its
        # weight, made once per update, reads faster at these batch sizes); None: the decoder's own
        output = LinearOutputLayer.of(model) if logits_are_log_probs(model) else None
        for t in range(prev.size(1)):
            x, _ = model.decoder.extract_features(inputs, encoder_out=encoder_out,
                                                  incremental_state=incremental_state)
            features.append(x[:, -1:])
            if t + 1 == prev.size(1):
                break
            column = prev[:, t + 1]
            rows = (~truth[:, t + 1]).nonzero().squeeze(1)
            if rows.numel():
                column = column.clone()
                column[rows] = self.model_tokens(model, x[rows, -1:].detach(), gen, output)
            inputs = torch.cat([inputs, column.unsqueeze(1)], dim=1)  # new tensor: no in-place edits
        return model.decoder.output_layer(torch.cat(features, dim=1)), {"attn": None}

    def model_tokens(self, model, features: torch.Tensor, gen: torch.Generator,
                     output: Optional[LinearOutputLayer] = None) -> torch.Tensor:
        with torch.no_grad():  # log p up to a constant per row: a softmax or argmax ignores it
            scores = model_scores(model, features[:, 0], normalise=not logits_are_log_probs(model), output=output)
            if self.cfg.ss_decode == "argmax":
                scores[:, [self.padding_idx, self.bos]] = -math.inf
                return scores.argmax(dim=1)
            return draw_tokens(scores, (self.padding_idx, self.bos), gen)

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        batches = logged_total(logging_outputs, "ss_batches")
        if batches:
            metrics.log_scalar("ss_eps", logged_total(logging_outputs, "ss_eps") / batches,
                               batches, round=4)
            inputs = logged_total(logging_outputs, "ss_inputs")
            if inputs:
                metrics.log_scalar("frac_model_inputs",
                                   logged_total(logging_outputs, "ss_model_inputs") / inputs,
                                   inputs, round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
