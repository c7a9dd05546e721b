"""``--task erpo_translation``: fairseq's translation task with the ERPO E-step before the loss,
a validation reward, and the interpolation algorithm's annealing (paper appendix C).

* ``train_step``: for a sampling criterion (every criterion of this package) the task draws
  y ~ q with its current lambdas, then runs the usual teacher-forced update on y.
* Validation reward: corpus BLEU of beam decodes (fairseq's own ``--eval-bleu``, beam 5 by
  default) or ``--eval-rouge`` (mean ROUGE-1 + ROUGE-2 + ROUGE-L F1 x 100 of the same decodes).
* Annealing (criterions with several branches, i.e. ``interpolation``): when the validation reward
  is below the best seen under the current lambdas, the lambdas move by the pattern and theta is
  *not* updated: the model parameters and the optimizer state go back to the last accepted
  validation point (``post_validate``). The schedule lives in the task state, which fairseq saves
  in every checkpoint, so ``--restore-file`` resumes it exactly. fairseq restores task state only
  when it restores the data iterator: ``--finetune-from-model`` and ``--reset-dataloader`` start the
  schedule from ``--lambdas``, or from a checkpoint's schedule with ``--schedule-from``.
* Criterion state that must survive a resume (MIXER's running-mean baseline, the epoch each epoch
  began with) is kept in the same task state.
"""

import copy
import json
import logging
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from fairseq import utils
from fairseq.data import encoders
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import II

from .. import compat
from ..criterions.erpo import SamplingCriterion
from ..rewards import rouge_scores
from ..rewards.ngrams import SpecialTokens
from ..sampling import linear_output_projection
from . import annealing

logger = logging.getLogger(__name__)

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")


@dataclass
class ErpoTranslationConfig(TranslationConfig):
    no_anneal: bool = field(default=False, metadata={
        "help": "keep the interpolation lambdas fixed (no annealing, theta always updated)"})
    anneal_pattern: str = field(default="model,reward,reward,reward,reward", metadata={
        "help": "branches that receive weight on successive anneals, cycled (paper: lambda1 once, then "
                "lambda2 four times)"})
    anneal_delta_model: float = field(default=0.06, metadata={"help": "weight moved to lambda1 per anneal"})
    anneal_delta_reward: float = field(default=0.06, metadata={"help": "weight moved to lambda2 per anneal"})
    anneal_metric: ChoiceEnum(["bleu", "rouge"]) = field(default="bleu", metadata={
        "help": "validation reward that drives annealing: bleu (needs --eval-bleu) or rouge (needs --eval-rouge)"})
    eval_rouge: bool = field(default=False, metadata={
        "help": "validation ROUGE-1/2/L of beam decodes (generation options: --eval-bleu-args, "
                "--eval-bleu-remove-bpe, --eval-bleu-detok)"})
    schedule_from: Optional[str] = field(default=None, metadata={
        "help": "start the interpolation's lambdas and anneal count from this checkpoint's schedule "
                "(e.g. with --finetune-from-model or --reset-dataloader, which start the task state "
                "afresh) instead of --lambdas; an ordinary resume restores the whole schedule anyway"})
    disable_validation: bool = II("dataset.disable_validation")


@register_task("erpo_translation", dataclass=ErpoTranslationConfig)
class ErpoTranslationTask(TranslationTask):
    anneals_lambdas = True  # criterions check this to know their lambdas may be annealed
    restores_state = True  # its checkpointed state comes back on resume (criterions keep state in it)

    def __init__(self, cfg: ErpoTranslationConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.anneal_config = annealing.AnnealConfig.parse(cfg.anneal_pattern, cfg.anneal_delta_model,
                                                          cfg.anneal_delta_reward)
        self.annealing = False
        self._optimizer = None
        self._accepted: Optional[dict] = None  # model + optimizer state at the last accepted validation
        self._validated = False
        self.epoch: Optional[int] = None  # the training epoch, for schedules over epochs (MIXER)
        self.update_num: Optional[int] = None  # the update being computed, from train_step
        self.decoder_feature_dim: Optional[int] = None  # set by build_model

    # -- set-up ---------------------------------------------------------------------------------
    def build_criterion(self, cfg, from_checkpoint=False):
        criterion = compat.build_criterion(super(), cfg, from_checkpoint)
        if isinstance(criterion, SamplingCriterion) and criterion.anneals:
            # annealed lambdas live here (and in checkpoints); a resumed run overwrites them
            if "schedule" not in self.state.state_dict:
                start = self._schedule_from(self.cfg.schedule_from) if self.cfg.schedule_from else \
                    annealing.initial_state(criterion.lambdas)
                self.state.merge_state_dict({"schedule": start})
            self.annealing = not self.cfg.no_anneal
        if self.annealing:
            if self.cfg.disable_validation:
                raise ValueError("--task erpo_translation anneals the lambdas after each validation, which "
                                 "--disable-validation turns off: drop --disable-validation, or keep the "
                                 "lambdas fixed with --no-anneal")
            metric = self.cfg.anneal_metric
            if metric == "bleu" and not self.cfg.eval_bleu:
                raise ValueError("--task erpo_translation anneals the lambdas on a validation reward: add "
                                 "--eval-bleu (beam 5 by default; --eval-tokenized-bleu for tokenized "
                                 "corpus BLEU), use --anneal-metric rouge with --eval-rouge, or --no-anneal")
            if metric == "rouge" and not self.cfg.eval_rouge:
                raise ValueError("--anneal-metric rouge needs --eval-rouge (or use --no-anneal)")
        return criterion

    @staticmethod
    def _schedule_from(path: str) -> dict:
        """``--schedule-from``: a checkpoint's lambdas and anneal count, with a fresh record of
        validation rewards (the first validation of the new run is accepted, as after any anneal)."""
        from fairseq import checkpoint_utils  # the checkpoint loader with our allow-list (compat.py)

        try:
            state = checkpoint_utils.load_checkpoint_to_cpu(path)
        except (OSError, RuntimeError) as err:
            raise ValueError(f"--schedule-from {path}: cannot load it ({err})") from None
        schedule = (state.get("task_state") or {}).get("schedule")
        if schedule is None:
            raise ValueError(f"--schedule-from {path}: the checkpoint holds no interpolation schedule (train it "
                             "with --task erpo_translation --criterion interpolation), or pass --lambdas")
        start = annealing.initial_state(schedule["lambdas"])
        start["anneal_count"] = int(schedule["anneal_count"])
        logger.info("erpo: lambdas %s and anneal count %d from %s", start["lambdas"], start["anneal_count"], path)
        return start

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        # the size of the features the output layer reads, for criterions that learn on them (MIXER's
        # learned baseline); fairseq builds the criterion after the model, and hands it only the task
        projection = linear_output_projection(model)
        self.decoder_feature_dim = int(projection[0].size(1)) if projection is not None else None
        if self.cfg.eval_rouge and not self.cfg.eval_bleu:  # translation builds these for --eval-bleu only
            self.tokenizer = encoders.build_tokenizer(
                Namespace(tokenizer=self.cfg.eval_bleu_detok, **json.loads(self.cfg.eval_bleu_detok_args)))
            self.sequence_generator = self.build_generator([model], Namespace(**json.loads(self.cfg.eval_bleu_args)))
        return model

    @property
    def schedule(self) -> Optional[dict]:
        return self.state.state_dict.get("schedule")

    @property
    def epoch_first_update(self) -> Optional[int]:
        """The update number the current epoch began with (None before the first train_step).
        Kept in checkpoints, so a run resumed in the middle of an epoch keeps counting from it."""
        start = self.state.state_dict.get("epoch_start")
        return None if start is None else start[1]

    @property
    def lambdas(self) -> Optional[List[float]]:
        return None if self.schedule is None else list(self.schedule["lambdas"])

    # -- training -------------------------------------------------------------------------------
    def begin_epoch(self, epoch, model):
        super().begin_epoch(epoch, model)
        self.epoch = epoch

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, **kwargs):
        self._optimizer = optimizer
        self.update_num = int(update_num)
        start = self.state.state_dict.get("epoch_start")
        if start is None or start[0] != self.epoch:  # this epoch's first update
            self.state.merge_state_dict({"epoch_start": [self.epoch, self.update_num]})
        if self.annealing and self._accepted is None:
            # a fresh run, or a resumed one: the loaded checkpoint is the last accepted point
            self._accepted = self._snapshot(model, optimizer)
        if isinstance(criterion, SamplingCriterion):
            model.train()
            sample = criterion.draw(model, sample, self.lambdas)
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad, **kwargs)

    # -- validation reward ----------------------------------------------------------------------
    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.cfg.eval_rouge:
            scores = self._inference_with_rouge(sample, model)
            logging_output["_rouge_count"] = scores.size(0)
            for k, key in enumerate(ROUGE_KEYS):
                logging_output[f"_{key}_sum"] = float(scores[:, k].sum())
        return loss, sample_size, logging_output

    def _inference_with_rouge(self, sample, model) -> torch.Tensor:
        """[B, 3] ROUGE-1/2/L F1 of the beam decodes, on whitespace words of the decoded strings."""
        def decode(tokens, unk):
            text = self.tgt_dict.string(tokens.int().cpu(), self.cfg.eval_bleu_remove_bpe, unk_string=unk)
            return (self.tokenizer.decode(text) if self.tokenizer else text).split()

        gen_out = self.inference_step(self.sequence_generator, [model], sample, prefix_tokens=None)
        hyps = [decode(out[0]["tokens"], "UNKNOWNTOKENINHYP") for out in gen_out]
        refs = [decode(utils.strip_pad(t, self.tgt_dict.pad()), "UNKNOWNTOKENINREF") for t in sample["target"]]
        words: Dict[str, int] = {}
        special = SpecialTokens(pad=0, eos=1)
        ids = lambda seqs: [[words.setdefault(w, len(words) + 2) for w in s] for s in seqs]  # noqa: E731
        to_tensor = lambda seqs: torch.tensor([s + [0] * (1 + max(map(len, seqs)) - len(s)) for s in seqs])  # noqa: E731
        hyp_ids, ref_ids = ids(hyps), ids(refs)
        scores = rouge_scores(to_tensor(hyp_ids), to_tensor(ref_ids), special)
        return torch.stack([scores[key] for key in ROUGE_KEYS], dim=1)

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        if self.cfg.eval_rouge:
            count = sum(log.get("_rouge_count", 0) for log in logging_outputs)
            if count:
                values = {key: sum(log.get(f"_{key}_sum", 0) for log in logging_outputs) / count * 100
                          for key in ROUGE_KEYS}
                for key, value in values.items():
                    metrics.log_scalar(key, value, count, round=2)
                metrics.log_scalar("rouge", sum(values.values()), count, round=2)

    # -- annealing --------------------------------------------------------------------------------
    def begin_valid_epoch(self, epoch, model):
        super().begin_valid_epoch(epoch, model)
        self._validated = False

    def post_validate(self, model, stats, agg):
        """After each validation (first valid subset only): accept, or anneal and restore theta."""
        if not self.annealing or self._validated:
            return
        self._validated = True
        metric = self.cfg.anneal_metric
        if metric not in stats:
            raise RuntimeError(f"--anneal-metric {metric}: the validation produced no {metric!r}")
        reward, schedule = float(stats[metric]), self.schedule
        best = schedule["best_under_lambdas"]
        num_updates = int(stats.get("num_updates", 0))
        if annealing.decide(schedule, reward, self.anneal_config, num_updates):
            self._accepted = self._snapshot(model, self._optimizer)
            logger.info("erpo: valid %s %.4f accepted (lambdas %s)", metric, reward, schedule["lambdas"])
        else:
            self._restore(model, self._optimizer, self._accepted)
            logger.info("erpo: valid %s %.4f < %.4f, the best under the current lambdas: theta restored to "
                        "the last accepted point; lambdas -> %s (anneal %d)", metric, reward, best,
                        schedule["lambdas"], schedule["anneal_count"])
        for name, value in zip(("model", "reward", "truth"), schedule["lambdas"]):
            stats[f"lambda_{name}"] = value

    @staticmethod
    def _snapshot(model, optimizer) -> dict:
        snap = {"model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if optimizer is not None:
            snap["optimizer"] = copy.deepcopy(optimizer.state_dict())
            fp32 = getattr(optimizer, "fp32_params", None)  # fairseq's FP16Optimizer master copy
            if fp32 is not None:
                snap["fp32"] = copy.deepcopy(fp32)
        return snap

    @staticmethod
    def _restore(model, optimizer, snap: Optional[dict]) -> None:
        if snap is None:
            raise RuntimeError("erpo_translation: no accepted state to restore theta to")
        model.load_state_dict(snap["model"])
        if optimizer is not None and "optimizer" in snap:
            optimizer.load_state_dict(copy.deepcopy(snap["optimizer"]))
            if "fp32" in snap:
                fp32 = optimizer.fp32_params
                if torch.is_tensor(fp32):
                    fp32.data.copy_(snap["fp32"].data)
                elif isinstance(fp32, dict):
                    for device, tensor in fp32.items():
                        tensor.data.copy_(snap["fp32"][device].data)
                else:
                    for tensor, saved in zip(fp32, snap["fp32"]):
                        tensor.data.copy_(saved.data)

    # -- checkpoints: fairseq saves task state; these hooks restore it on --restore-file ----------
    def get_checkpoint_dict(self) -> dict:
        return {self.__class__.__name__: copy.deepcopy(self.state.state_dict)}

    def set_checkpoint_dict(self, state: dict) -> None:
        self.state.merge_state_dict(copy.deepcopy(state))
