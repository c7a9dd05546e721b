"""``--criterion risk``: minimum risk training (Shen et al., 2016), as Edunov et al. (2018) ran it in
fairseq's ``classic_seqlevel`` branch: a sequence-level loss for fine-tuning a converged model.

For each source x a candidate set U(x) of ``--risk-candidates`` hypotheses is generated online with
the current model: the K best of a beam search (fairseq's own ``SequenceGenerator``, the authors'
choice) or K draws from p_theta (the shared sampler, Shen et al.'s choice). The reference joins the
set only with ``--risk-keep-reference`` (the authors leave it out by default). Over the set,

    q(u | x) = softmax_{u in U(x)}( s * score(u) ),   score(u) = log p_theta(u | x) / |u|

(``--risk-sharpness`` s; ``--risk-length-normalize`` divides by the length, EOS included) and the
risk is the expected cost sum_u q(u | x) cost(u), cost(u) = 1 - R(u, y*) with R from the reward
registry at its ``--reward-scale`` (BLEU in [0, 1] by default, so the cost is (100 - BLEU) / 100;
``--reward-scale 1`` gives the authors' 100 - BLEU), optionally min-max normalised within each set
(``--risk-normalize-costs``, their ``--seq-risk-normbleu``). The loss is their combined one:

    alpha * (token NLL of y*) / (target tokens) + (1 - alpha) * (sum of risks) / (sentences)

with alpha = ``--risk-nll-weight`` (0.5 for risk in Edunov et al.), and a sample size of 1, as in
their ``CombinedSequenceCriterion``: each batch's loss is already a mean.

In ERPO terms (docs/erpo.md#figure-1-in-one-place) this is the policy-gradient corner (R = log R_PG,
alpha = 1, beta = 0; the paper's appendix A) with two changes: the expectation over p_theta is taken
exactly over the candidate set, with p_theta renormalised on it (sharpened by s), instead of by
sampling, and that renormalisation subtracts the set's expected cost from every candidate's, an
implicit baseline: d risk / d score(u) = s q(u) (cost(u) - E_q[cost]).

Validation (``model.training`` off) scores the references with fairseq's cross entropy, as every
criterion here does, so valid loss is comparable across algorithms.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, Tuple

import torch
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.cross_entropy import CrossEntropyCriterion
from fairseq.dataclass import ChoiceEnum
from fairseq.logging import metrics
from torch import Tensor

from ..algorithms import MINIMUM_RISK, Branch
from ..rewards import SpecialTokens, build_reward
from ..sampling import SequenceSampler, prev_output_tokens
from .erpo import SamplingConfig, logged_total
from .packed import decoder_features_given_encoder, nll_at_targets
from .repeated_sources import repeat_encoder_out


@dataclass
class RiskConfig(SamplingConfig):
    reward: str = field(default=MINIMUM_RISK.reward, metadata={
        "help": "R of the cost 1 - R: bleu for translation, rouge for summarization, or any registered reward"})
    risk_candidates: int = field(default=MINIMUM_RISK.candidates, metadata={
        "help": "hypotheses per source in the candidate set (Edunov et al.: 16); >= 1"})
    risk_generation: ChoiceEnum(["beam", "sample"]) = field(default=MINIMUM_RISK.generation, metadata={
        "help": "beam: the K best of a beam search of width K (fairseq's SequenceGenerator, Edunov et al.); "
                "sample: K draws from p_theta by the shared sampler (Shen et al.)"})
    risk_keep_reference: bool = field(default=False, metadata={
        "help": "add the reference to each candidate set (Edunov et al.'s --seq-keep-reference; off by default)"})
    risk_nll_weight: float = field(default=0.5, metadata={
        "help": "alpha of alpha * token NLL + (1 - alpha) * risk, in [0, 1] (Edunov et al.: 0.5 for risk)"})
    risk_sharpness: float = field(default=1.0, metadata={
        "help": "s of q(u) = softmax(s * score(u)) over the candidate set; > 0"})
    risk_length_normalize: bool = field(default=True, metadata={
        "help": "score(u) = log p(u) / |u| (Edunov et al.); --no-risk-length-normalize: log p(u)"})
    risk_normalize_costs: bool = field(default=False, metadata={
        "help": "min-max normalise the costs within each candidate set (Edunov et al.'s --seq-risk-normbleu)"})
    risk_max_len_a: float = field(default=1.5, metadata={
        "help": "beam candidates: at most risk_max_len_a * (source length) + risk_max_len_b tokens "
                "(fairseq-generate's --max-len-a; Edunov et al.: 1.5 and 5). Sampled candidates use "
                "--max-len-a/--max-len-b, relative to the reference's length"})
    risk_max_len_b: int = field(default=5, metadata={"help": "see --risk-max-len-a"})


@register_criterion("risk", dataclass=RiskConfig)
class RiskCriterion(CrossEntropyCriterion):
    def __init__(self, task, cfg: RiskConfig):
        super().__init__(task, cfg.sentence_avg)
        if cfg.risk_candidates < 1:
            raise ValueError(f"--risk-candidates must be >= 1, got {cfg.risk_candidates}")
        if cfg.risk_candidates + int(cfg.risk_keep_reference) < 2:
            raise ValueError("--risk-candidates 1 without --risk-keep-reference: a set of one candidate has q = 1 "
                             "and no risk gradient; use 2 or more candidates, or keep the reference")
        if not 0.0 <= cfg.risk_nll_weight <= 1.0:
            raise ValueError(f"--risk-nll-weight must be in [0, 1], got {cfg.risk_nll_weight}")
        if not (math.isfinite(cfg.risk_sharpness) and cfg.risk_sharpness > 0):
            raise ValueError(f"--risk-sharpness must be a finite number > 0, got {cfg.risk_sharpness}")
        if cfg.risk_max_len_a < 0 or cfg.risk_max_len_b < 0 or (cfg.risk_max_len_a == 0 and cfg.risk_max_len_b < 1):
            raise ValueError(f"--risk-max-len-a {cfg.risk_max_len_a} / --risk-max-len-b {cfg.risk_max_len_b}: "
                             "need a >= 0, b >= 0 and a positive maximum length")
        dictionary = task.target_dictionary
        self.reward = build_reward(cfg.reward, dictionary, cfg)
        if not self.reward.finite_scores:
            raise ValueError(f"--reward {cfg.reward} is a log-domain reward (-inf off its support) and cannot be "
                             "a cost 1 - R: use --reward bleu (translation) or rouge (summarization)")
        self.special = SpecialTokens.from_dictionary(dictionary)
        self.dictionary = dictionary
        self.cfg = cfg
        # sampled candidates: the one branch exp{log p_theta}, drawn by the shared sampler
        self.sampler = SequenceSampler([Branch("model", None, model_weight=1.0, reward_weight=0.0)], {},
                                       self.special, bos=dictionary.bos(), vocab_size=len(dictionary),
                                       max_len_a=cfg.max_len_a, max_len_b=cfg.max_len_b)
        self._generators: Dict[int, object] = {}  # beam search per model (built on first use)

    # -- the candidate set ---------------------------------------------------------------------------
    def beam_generator(self, model):
        from fairseq.sequence_generator import SequenceGenerator
        key = id(model)
        if key not in self._generators:
            self._generators = {key: SequenceGenerator(
                [model], self.dictionary, beam_size=self.cfg.risk_candidates, max_len_a=self.cfg.risk_max_len_a,
                max_len_b=self.cfg.risk_max_len_b)}
        return self._generators[key]

    def candidates(self, model, sample: dict) -> Tensor:
        """``[B * K', L]``: each source's candidate set (EOS-terminated, right-padded), source-major;
        K' = K, plus 1 where the reference is kept (last in each set)."""
        refs, k = sample["target"], self.cfg.risk_candidates
        was_training = model.training
        model.eval()  # candidates come from the model without dropout, as at test time
        try:
            with torch.no_grad():
                if self.cfg.risk_generation == "beam":
                    hypos = self.beam_generator(model).generate([model], sample)
                    rows = [h["tokens"] for per_source in hypos for h in per_source[:k]]
                    if len(rows) != refs.size(0) * k:
                        raise RuntimeError(f"beam search returned {len(rows)} hypotheses for {refs.size(0)} "
                                           f"sources x {k}")
                    width = max(int(r.numel()) for r in rows)
                    drawn = refs.new_full((len(rows), width), self.special.pad)
                    for i, row in enumerate(rows):
                        drawn[i, : row.numel()] = row
                else:
                    repeat = lambda t: t.repeat_interleave(k, dim=0)  # noqa: E731
                    expanded = {"net_input": {"src_tokens": repeat(sample["net_input"]["src_tokens"]),
                                              "src_lengths": repeat(sample["net_input"]["src_lengths"])},
                                "target": repeat(refs)}
                    drawn = self.sampler.sample(model, expanded, (1.0,)).sample["target"]
        finally:
            model.train(was_training)
        if not self.cfg.risk_keep_reference:
            return drawn
        width = max(drawn.size(1), refs.size(1))
        pad = lambda t: torch.nn.functional.pad(t, (0, width - t.size(1)), value=self.special.pad)  # noqa: E731
        sets = torch.cat([pad(drawn).view(refs.size(0), k, width), pad(refs).unsqueeze(1)], dim=1)
        return sets.view(-1, width)

    def costs(self, candidates: Tensor, refs: Tensor) -> Tuple[Tensor, Tensor]:
        """(cost, R), both ``[B, K']``: the cost 1 - R of every candidate, min-max normalised per set
        if asked, and its reward."""
        per_set = candidates.size(0) // refs.size(0)
        reward = self.reward.score(candidates, refs.repeat_interleave(per_set, dim=0)).view(-1, per_set)
        cost = 1.0 - reward
        if self.cfg.risk_normalize_costs:  # the authors' minmax: (c - min) / (1e-6 + max - min)
            low = cost.min(1, keepdim=True).values
            cost = (cost - low) / (1e-6 + (cost - low).max(1, keepdim=True).values)
        return cost, reward

    # -- the loss ---------------------------------------------------------------------------------
    def forward(self, model, sample, reduce=True):
        if not model.training:
            return super().forward(model, sample, reduce=reduce)
        refs, net_input = sample["target"], sample["net_input"]
        candidates = self.candidates(model, sample)
        with torch.no_grad():
            cost, reward = self.costs(candidates, refs)
        per_set = cost.size(1)
        encoder_out = model.encoder(net_input["src_tokens"], src_lengths=net_input["src_lengths"])
        # the references (token NLL) and the candidates (scores) share the encoder's pass
        ref_nll = self.sequence_nll(model, encoder_out, refs)
        cand_nll = self.sequence_nll(model, repeat_encoder_out(model, encoder_out, refs.size(0), per_set), candidates)
        score = -cand_nll
        if self.cfg.risk_length_normalize:
            score = score / (candidates != self.padding_idx).sum(1).to(score.dtype)
        q = torch.softmax(self.cfg.risk_sharpness * score.view(-1, per_set), dim=1)
        risk = (q * cost.to(q.dtype)).sum(1)  # [B]
        alpha, ntokens = self.cfg.risk_nll_weight, sample["ntokens"]
        loss = alpha * ref_nll.sum() / ntokens + (1.0 - alpha) * risk.sum() / refs.size(0)
        log = {"loss": loss.data, "nll_sum": float(ref_nll.detach().sum()), "ntokens": ntokens,
               "nsentences": refs.size(0), "sample_size": 1, "risk_sum": float(risk.detach().sum()),
               "risk_sets": refs.size(0), "candidate_reward_sum": float(reward.sum()),
               "candidates": int(reward.numel()), "candidate_tokens": int((candidates != self.padding_idx).sum())}
        return loss, 1, log

    def sequence_nll(self, model, encoder_out, targets: Tensor) -> Tensor:
        """-log p_theta(y | x) per row of ``targets`` (EOS-terminated, right-padded), row i decoded
        against row i of ``encoder_out``."""
        previous = prev_output_tokens(targets, self.special.eos, self.special.pad)
        # the output layer at the non-pad tokens only: K candidates per source are padded to the
        # longest (often the length cap), and the [tokens, V] log-probabilities and their gradients
        # are most of risk's memory and time (docs/baselines.md, step time and memory)
        features = decoder_features_given_encoder(model, previous, encoder_out)
        if features is not None:
            return nll_at_targets(model, *features, targets, self.padding_idx).sum(1)
        net_output = model.decoder(previous, encoder_out=encoder_out)
        lprobs = model.get_normalized_probs(net_output, log_probs=True)
        nll = -lprobs.gather(2, targets.unsqueeze(2)).squeeze(2)
        return nll.masked_fill(targets == self.padding_idx, 0.0).sum(1)

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        total = lambda key: logged_total(logging_outputs, key)  # noqa: E731
        if not total("risk_sets"):  # validation: fairseq's cross entropy on the references
            super().reduce_metrics(logging_outputs)
            return
        updates, ntokens = total("sample_size"), total("ntokens")
        # the combined loss as Edunov et al. log it (a mean per batch, nats and cost mixed); its token
        # NLL in base 2, as fairseq's cross entropy logs it
        metrics.log_scalar("loss", total("loss") / updates, updates, round=3)
        metrics.log_scalar("nll_loss", total("nll_sum") / ntokens / math.log(2), ntokens, round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))
        metrics.log_scalar("risk", total("risk_sum") / total("risk_sets"), total("risk_sets"), round=4)
        metrics.log_scalar("candidate_reward", total("candidate_reward_sum") / total("candidates"),
                           total("candidates"), round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
