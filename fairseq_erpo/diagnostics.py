"""What a sampler's branch draws: statistics for choosing and reporting the interpolation's reward
branch (``scripts/reward_branch_stats.py``; docs/erpo.md#interpolation)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .rewards import SpecialTokens
from .rewards.bleu import sentence_bleu
from .sampling import SampledBatch


@dataclass
class BranchStatistics:
    """Sums over batches; the properties are the means."""

    branch_tokens: int = 0  # tokens the branch chose
    in_reference: int = 0  # of those, how many occur in their row's reference
    bleu: float = 0.0  # sum of the samples' sentence BLEU (sacrebleu's sentence_bleu, 0-100)
    length: float = 0.0  # sum of the samples' lengths (tokens before EOS)
    reference_length: float = 0.0
    sentences: int = 0

    def add(self, drawn: SampledBatch, refs: Tensor, special: SpecialTokens, branch: int) -> "BranchStatistics":
        y = drawn.sample["target"]
        words = lambda t: (t != special.pad) & (t != special.eos)  # noqa: E731
        chosen = drawn.branch == branch
        ref_words = torch.where(words(refs), refs, torch.full_like(refs, -1))
        # [B, L, Lr]: does token t of row b occur in row b's reference
        occurs = (y.unsqueeze(2) == ref_words.unsqueeze(1)).any(2)
        self.branch_tokens += int(chosen.sum())
        self.in_reference += int((occurs & chosen).sum())
        self.bleu += float(sentence_bleu(y, refs, special).sum())
        self.length += float(words(y).sum())
        self.reference_length += float(words(refs).sum())
        self.sentences += refs.size(0)
        return self

    @property
    def share_in_reference(self) -> float:
        return self.in_reference / max(self.branch_tokens, 1)

    @property
    def mean_bleu(self) -> float:
        return self.bleu / max(self.sentences, 1)

    @property
    def mean_length(self) -> float:
        return self.length / max(self.sentences, 1)

    @property
    def mean_reference_length(self) -> float:
        return self.reference_length / max(self.sentences, 1)
