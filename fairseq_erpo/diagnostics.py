"""What a sampler's branch draws: statistics for choosing and reporting the interpolation's reward
branch (``scripts/reward_branch_stats.py``; docs/erpo.md#the-reward-branch-of-the-interpolation)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import torch
from torch import Tensor

from .rewards import SpecialTokens
from .rewards.bleu import sentence_bleu
from .rewards.rouge import rouge_scores
from .sampling import SampledBatch


def _rouge_l(hyps: Tensor, refs: Tensor, special: SpecialTokens) -> Tensor:
    return 100.0 * rouge_scores(hyps, refs, special)["rougeL"]


# the sentence score reported for a branch's samples, 0-100, per reward: sacrebleu's sentence BLEU
# for BLEU, rouge-score's ROUGE-L F1 (the paper's Figure 4 metric) for the ROUGE sum
SENTENCE_SCORES: Dict[str, Callable[[Tensor, Tensor, SpecialTokens], Tensor]] = {
    "bleu": sentence_bleu, "rouge": _rouge_l}


def word_mask(tokens: Tensor, special: SpecialTokens) -> Tensor:
    """The positions that hold words: neither padding nor EOS."""
    return (tokens != special.pad) & (tokens != special.eos)


def uniform_hits(refs: Tensor, special: SpecialTokens, vocab_words: int) -> Tuple[float, int]:
    """What a uniform draw over ``vocab_words`` words would put in the references: (expected number
    of drawn tokens that occur in their row's reference, number of reference words). A row of T words
    with D distinct words other than <unk> expects T * D / vocab_words hits when it draws T tokens;
    the share of a uniform draw is the first over the second, summed over batches."""
    words = word_mask(refs, special)
    hits = 0.0
    for row, mask in zip(refs, words):
        distinct = set(row[mask].tolist()) - {special.unk}
        hits += int(mask.sum()) * len(distinct) / vocab_words
    return hits, int(words.sum())


@dataclass
class BranchStatistics:
    """Sums over batches; the properties are the means. ``metric`` names the sentence score
    (a key of ``SENTENCE_SCORES``)."""

    metric: str = "bleu"
    branch_tokens: int = 0  # tokens the branch chose
    in_reference: int = 0  # of those, how many occur in their row's reference
    score: float = 0.0  # sum of the samples' sentence scores (0-100)
    length: float = 0.0  # sum of the samples' lengths (tokens before EOS)
    reference_length: float = 0.0
    sentences: int = 0

    def __post_init__(self) -> None:
        if self.metric not in SENTENCE_SCORES:
            raise ValueError(f"no sentence score for reward {self.metric!r}; choose one of {sorted(SENTENCE_SCORES)}")

    def add(self, drawn: SampledBatch, refs: Tensor, special: SpecialTokens, branch: int) -> "BranchStatistics":
        y = drawn.sample["target"]
        chosen = drawn.branch == branch
        ref_words = torch.where(word_mask(refs, special), refs, torch.full_like(refs, -1))
        # [B, L, Lr]: does token t of row b occur in row b's reference
        occurs = (y.unsqueeze(2) == ref_words.unsqueeze(1)).any(2)
        self.branch_tokens += int(chosen.sum())
        self.in_reference += int((occurs & chosen).sum())
        self.score += float(SENTENCE_SCORES[self.metric](y, refs, special).sum())
        self.length += float(word_mask(y, special).sum())
        self.reference_length += float(word_mask(refs, special).sum())
        self.sentences += refs.size(0)
        return self

    @property
    def share_in_reference(self) -> float:
        return self.in_reference / max(self.branch_tokens, 1)

    @property
    def mean_score(self) -> float:
        return self.score / max(self.sentences, 1)

    @property
    def mean_length(self) -> float:
        return self.length / max(self.sentences, 1)

    @property
    def mean_reference_length(self) -> float:
        return self.reference_length / max(self.sentences, 1)
