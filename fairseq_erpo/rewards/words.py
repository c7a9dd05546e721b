"""``--reward-level word``: sequence rewards on the words that subword pieces make.

On BPE data a target is a row of subword pieces. Scored as they are, BLEU counts piece n-grams:
reference ``mal@@ es ... bu@@ shes`` against hypothesis ``mal@@ shes ... bu@@ es`` scores 0.6546
on the pieces and 0.5428 on the words, while validation BLEU (``--eval-bleu-remove-bpe``), which
drives annealing and checkpoint selection, is on words. :class:`WordLevelReward` merges the pieces
of each row into words, gives every distinct word of one call an id, and scores those rows with
the wrapped reward, so its sequence scores (RAML weights, MIXER returns, risk costs, the logged
reward) equal the wrapped reward on the words, as sacrebleu scores the detokenised text.

Two schemes (``--reward-bpe``): ``subword_nmt`` (a piece ending in ``@@`` continues into the next
one) and ``sentencepiece`` (a piece starting with ``▁`` starts a word). A word with an ``<unk>``
piece becomes ``<unk>``, as a word-level vocabulary would make it.

Token-level increments (the interpolation's reward branch, SPG's reward-driven draws) stay on the
pieces (:meth:`WordLevelReward.start` is the wrapped reward's): an increment is defined per
appended token, and a piece that does not end its word has no word-level score of its own.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
from torch import Tensor

from .base import Reward, RewardState
from .ngrams import SpecialTokens

SCHEMES = {"subword_nmt": "subword_nmt", "@@ ": "subword_nmt", "@@": "subword_nmt",
           "sentencepiece": "sentencepiece"}
SPM_SPACE = "\u2581"


class WordMerger:
    """Rows of piece ids -> rows of word ids (EOS-terminated, right-padded, on the same device).
    Word ids start past the dictionary, so they never equal pad, EOS or ``<unk>``; ``ids`` maps each
    word (a tuple of piece ids) to its id and is shared by the rows that are compared."""

    def __init__(self, symbols: List[str], scheme: str, special: SpecialTokens):
        if scheme not in SCHEMES:
            raise ValueError(f"--reward-bpe {scheme!r}: choose subword_nmt (pieces ending in @@) or sentencepiece")
        self.scheme = SCHEMES[scheme]
        self.special = special
        self.first_id = len(symbols)
        if self.scheme == "subword_nmt":
            self.continues = [s.endswith("@@") for s in symbols]
        else:
            self.starts = [s.startswith(SPM_SPACE) for s in symbols]

    def words(self, row: List[int]) -> List[List[int]]:
        """The words of one row (piece ids up to its first EOS or pad)."""
        words: List[List[int]] = []
        current: List[int] = []
        for piece in row:
            if piece in (self.special.pad, self.special.eos):
                break
            if self.scheme == "sentencepiece" and current and self.starts[piece]:
                words.append(current)
                current = []
            current.append(piece)
            if self.scheme == "subword_nmt" and not self.continues[piece]:
                words.append(current)
                current = []
        if current:  # a row that ends inside a word: the word as far as it goes
            words.append(current)
        return words

    def __call__(self, tokens: Tensor, ids: Dict[tuple, int]) -> Tensor:
        rows = []
        for row in tokens.tolist():
            out = []
            for word in self.words(row):
                if self.special.unk is not None and self.special.unk in word:
                    out.append(self.special.unk)
                else:
                    out.append(ids.setdefault(tuple(word), self.first_id + len(ids)))
            rows.append(out + [self.special.eos])
        width = max(len(r) for r in rows)
        merged = torch.full((len(rows), width), self.special.pad, dtype=torch.long)
        for i, row in enumerate(rows):
            merged[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return merged.to(tokens.device)


class WordLevelReward(Reward):
    """``inner`` scored on words: hypotheses and references merged by one :class:`WordMerger` call
    pair, then ``inner.score``. Increments (``start``) are ``inner``'s, on the pieces."""

    def __init__(self, inner: Reward, symbols: List[str], scheme: Optional[str]):
        if scheme is None:
            raise ValueError("--reward-level word needs --reward-bpe subword_nmt or sentencepiece (the scheme "
                             "your data was split with, as in --eval-bleu-remove-bpe)")
        if not inner.finite_scores:
            raise ValueError(f"--reward-level word: {type(inner).__name__} is a log-domain reward defined on the "
                             "target tokens; word level applies to sequence rewards such as bleu and rouge")
        super().__init__(inner.special)
        self.inner = inner
        self.merger = WordMerger(symbols, scheme, inner.special)

    def __getattr__(self, name: str):  # the wrapped reward's own settings (scale, brevity, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def to_words(self, hyps: Tensor, refs: Tensor):
        ids: Dict[tuple, int] = {}  # fresh per call: ids only need to agree between these two
        return self.merger(hyps, ids), self.merger(refs, ids)

    def score(self, hyps: Tensor, refs: Tensor) -> Tensor:
        return self.inner.score(*self.to_words(hyps, refs))

    def start(self, refs: Tensor) -> RewardState:
        return self.inner.start(refs)
