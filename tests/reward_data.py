"""Token-id pairs for the reward tests: random edge cases and real sentences from ../shared/data."""
from __future__ import annotations

import random
import sys
from typing import Dict, List, Sequence, Tuple

from conftest import REPO, shared_path

sys.path.insert(0, str(REPO / "scripts"))
from reward_pairs import SPECIAL, make_hypothesis, to_batch  # noqa: E402,F401  (shared with the benchmark)

FIRST_WORD = 4  # ids 0-3: bos, pad, eos, unk (fairseq's layout)
Pairs = Tuple[List[List[int]], List[List[int]]]


def as_text(seq: Sequence[int], is_ref: bool) -> str:
    """Whitespace-joined ids; a reference <unk> becomes a word no hypothesis contains."""
    return " ".join("unkref" if (is_ref and t == SPECIAL.unk) else str(t) for t in seq)


def random_pairs(n: int, seed: int) -> Pairs:
    """Edge cases on purpose: empty and length-1 hypotheses, tiny vocabularies (repeated n-grams),
    hypotheses longer than references, <unk> on both sides."""
    rng = random.Random(seed)
    hyps, refs = [], []
    for _ in range(n):
        vocab = rng.choice([2, 4, 8, 30, 500])
        ref_len = rng.randint(1, 30)
        hyp_len = rng.choice([0, 1, 2, 3, rng.randint(1, 45), ref_len])
        draw = lambda: rng.choice([SPECIAL.unk] + [FIRST_WORD + i for i in range(vocab)])  # noqa: E731
        ref = [draw() for _ in range(ref_len)]
        if rng.random() < 0.5:  # a perturbed copy of the reference: many matches
            hyp = [t if rng.random() < 0.7 else draw() for t in ref][:hyp_len] or []
            hyp += [draw() for _ in range(max(0, hyp_len - len(hyp)))]
        else:
            hyp = [draw() for _ in range(hyp_len)]
        hyps.append(hyp)
        refs.append(ref)
    return hyps, refs


def _read(path) -> List[List[str]]:
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def real_pairs(sources: Sequence[Tuple[str, ...]], n: int, seed: int, vocab_size: int = 20000) -> Pairs:
    """Real references; hypotheses are other references, or the reference with words dropped,
    repeated, replaced or shuffled locally. Words outside the ``vocab_size`` most frequent are <unk>."""
    sents: List[List[str]] = []
    for parts in sources:
        sents += [s for s in _read(shared_path(*parts)) if s]
    counts: Dict[str, int] = {}
    for s in sents:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    ranked = sorted(counts, key=lambda w: (-counts[w], w))[:vocab_size]
    ids = {w: FIRST_WORD + i for i, w in enumerate(ranked)}
    encode = lambda s: [ids.get(w, SPECIAL.unk) for w in s]  # noqa: E731
    rng = random.Random(seed)
    picked = rng.sample(range(len(sents)), n)
    hyps, refs = [], []
    for k, i in enumerate(picked):
        ref = encode(sents[i])
        hyps.append(make_hypothesis(ref, encode(sents[rng.randrange(len(sents))]), k, rng))
        refs.append(ref)
    return hyps, refs


REAL_MT = [("iwslt14-de-en", "valid.en"), ("iwslt14-de-en", "test.en"),
           ("multi30k-de-en", "tok", "valid.en")]
REAL_SUMMARIES = [("gigaword", "valid.title.txt"), ("gigaword", "test.title.txt")]
