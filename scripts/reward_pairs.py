"""Hypothesis/reference pairs for reward tests and benchmarks: realistic overlap, no model needed."""
from __future__ import annotations

import random
from typing import List, Sequence

import torch

from fairseq_erpo.rewards import SpecialTokens

SPECIAL = SpecialTokens(pad=1, eos=2, unk=3)  # fairseq's layout: 0 bos, 1 pad, 2 eos, 3 unk


def to_batch(seqs: Sequence[Sequence[int]], eos: bool = True) -> torch.Tensor:
    """Right-padded [B, L] with EOS after each sequence, like fairseq's targets."""
    width = max(len(s) for s in seqs) + 1
    out = torch.full((len(seqs), width), SPECIAL.pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(list(s), dtype=torch.long)
        if eos:
            out[i, len(s)] = SPECIAL.eos
    return out


def make_hypothesis(ref: Sequence[int], other: Sequence[int], kind: int, rng: random.Random) -> List[int]:
    """One of four kinds (``kind % 4``): another sentence; the reference with words dropped and a
    few repeated; with words replaced by other reference words; with neighbours swapped."""
    kind %= 4
    if kind == 0:
        return list(other)
    if kind == 1:
        return [t for t in ref if rng.random() > 0.2] + list(ref[: rng.randint(0, 3)])
    if kind == 2:
        return [t if rng.random() > 0.3 else rng.choice(ref) for t in ref]
    hyp = list(ref)
    for j in range(0, len(hyp) - 1, 3):
        if rng.random() < 0.5:
            hyp[j], hyp[j + 1] = hyp[j + 1], hyp[j]
    return hyp
