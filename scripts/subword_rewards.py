#!/usr/bin/env python3
"""How much it matters that a reward sees subword pieces instead of words (docs/rewards.md):

    python scripts/subword_rewards.py [--text ../shared/data/multi30k-de-en/tok] [--pairs 2000]
        [--references 100] [--seed 7]

Learns a real subword-nmt model (500 merges) and a real sentencepiece BPE model (600 pieces) on the
first 3,000 English training sentences (what tests/test_reward_words.py uses), then prints JSON:

* ``sequence``: on ``--pairs`` (hypothesis, reference) pairs made from the valid sentences (another
  sentence, or the reference with words dropped, replaced or swapped), how often and by how much the
  piece-level BLEU and ROUGE scores differ from the word-level ones (``--reward-level word``).
* ``increments``: along ``--references`` valid references, at every step (the ground-truth prefix
  so far, as in the interpolation's truth branch), the piece-level BLEU increments that the
  reward branch and SPG draw from (``--bleu-brevity at-eos``, the recipes' setting) against
  word-level ones: dR_word(v) = BLEU(words(prefix + v)) - BLEU(words(prefix)), a trailing piece that
  does not end its word counting as the word it has spelled so far (how ``--reward-level word``
  scores an unfinished row). Printed: how often the two argmax sets are the same, the chance that
  a large-c_R piece-level draw (uniform over its argmax set) is also word-optimal, and how often
  each argmax set holds the next reference piece; by the kind of that next piece (a one-piece word,
  the first piece of a longer word, a later piece, EOS).
Seeded: the same command prints the same numbers.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
from collections import defaultdict
from types import SimpleNamespace
from typing import Callable, Dict, List, Sequence, Tuple

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fairseq_erpo.rewards import build_reward  # noqa: E402
from fairseq_erpo.rewards.bleu import BleuIncrement  # noqa: E402
from fairseq_erpo.rewards.words import WordMerger  # noqa: E402

SENTENCES = 3000  # training lines the subword models are learned on
MERGES, PIECES = 500, 600  # small models: many words split, as on small corpora
SCHEMES = ("subword_nmt", "sentencepiece")
TIE = 1e-9  # increments closer than this are one argmax


def read_lines(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def learn_segmenters(train: Sequence[str], folder: str) -> Dict[str, Callable[[str], List[str]]]:
    """word string -> piece strings, for a real subword-nmt and a real sentencepiece model."""
    from subword_nmt.apply_bpe import BPE
    from subword_nmt.learn_bpe import learn_bpe
    import sentencepiece as spm

    path = os.path.join(folder, "train.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(train) + "\n")
    codes = io.StringIO()
    learn_bpe(io.StringIO("\n".join(train)), codes, MERGES)
    bpe = BPE(io.StringIO(codes.getvalue()))
    spm.SentencePieceTrainer.train(input=path, model_prefix=os.path.join(folder, "spm"), vocab_size=PIECES,
                                   model_type="bpe", character_coverage=1.0, bos_id=-1, eos_id=-1,
                                   minloglevel=2)
    model = spm.SentencePieceProcessor(model_file=os.path.join(folder, "spm.model"))
    return {"subword_nmt": lambda text: bpe.process_line(text).split(),
            "sentencepiece": lambda text: model.encode(text, out_type=str)}


def text_pairs(sentences: Sequence[str], n: int, seed: int) -> List[Tuple[str, str]]:
    """(hypothesis, reference) word strings: another sentence, or the reference with words dropped,
    repeated, replaced by other sentences' words or swapped."""
    sents = [s.split() for s in sentences]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ref, other = rng.choice(sents), rng.choice(sents)
        kind = rng.randrange(4)
        if kind == 0:
            hyp = list(other)
        elif kind == 1:
            hyp = [w for w in ref if rng.random() > 0.2] + [w for w in ref if rng.random() < 0.1]
        elif kind == 2:
            hyp = [rng.choice(other) if rng.random() < 0.3 else w for w in ref]
        else:
            hyp = list(ref)
            i = rng.randrange(max(len(hyp) - 1, 1))
            hyp[i:i + 2] = hyp[i:i + 2][::-1]
        out.append((" ".join(hyp), " ".join(ref)))
    return out


def to_ids(rows: List[List[str]], dictionary) -> torch.Tensor:
    """Piece strings -> right-padded ids with EOS, like fairseq's targets."""
    width = max(len(r) for r in rows) + 1
    out = torch.full((len(rows), width), dictionary.pad(), dtype=torch.long)
    for i, row in enumerate(rows):
        ids = [dictionary.index(p) for p in row] + [dictionary.eos()]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def piece_batch(segment, pairs: Sequence[Tuple[str, str]]):
    """(hypothesis ids, reference ids, dictionary) of the pairs' pieces."""
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    hyp_pieces = [segment(h) for h, _ in pairs]
    ref_pieces = [segment(r) for _, r in pairs]
    for row in hyp_pieces + ref_pieces:
        for piece in row:
            dictionary.add_symbol(piece)
    return to_ids(hyp_pieces, dictionary), to_ids(ref_pieces, dictionary), dictionary


def sequence_differences(segment, scheme: str, pairs) -> Dict[str, Dict[str, float]]:
    """Piece-level minus word-level score, BLEU x 100 and ROUGE F1 sum x 100."""
    hyps, refs, dictionary = piece_batch(segment, pairs)
    out = {}
    for name in ("bleu", "rouge"):
        scale = 100.0 if name == "bleu" else 100.0 / 3  # ROUGE: the mean of the three F1, x 100
        pieces = scale * build_reward(name, dictionary, SimpleNamespace()).score(hyps, refs)
        words = scale * build_reward(name, dictionary, SimpleNamespace(reward_level="word", reward_bpe=scheme)
                                     ).score(hyps, refs)
        diff = pieces - words
        out[name] = {"pairs_that_differ": round(float((diff.abs() > 1e-9).double().mean()), 4),
                     "mean_abs_difference": round(float(diff.abs().mean()), 2),
                     "mean_difference": round(float(diff.mean()), 2),
                     "mean_word_score": round(float(words.mean()), 2)}
    return out


def prefix_bleu(word_rows: torch.Tensor, word_refs: torch.Tensor, reward, brevity_paid: bool) -> torch.Tensor:
    """BLEU of word rows that are prefixes (no EOS of their own) as the reward's increments see
    them: at-eos without the brevity penalty until ``brevity_paid``."""
    special = reward.special
    state = BleuIncrement(word_refs, special, reward.smooth, reward.smooth_value, reward.effective_order,
                          reward.scale, brevity="every-prefix" if brevity_paid else reward.brevity)
    for column in word_rows.t():
        active = (column != special.pad) & (column != special.eos)
        if not active.any():
            break
        state.advance(column.masked_fill(~active, special.eos), active)
    return state.current()


def increment_agreement(segment, scheme: str, references: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Piece-level against word-level BLEU increments along the references' own prefixes."""
    refs, _, dictionary = piece_batch(segment, [(r, r) for r in references])
    word_level = build_reward("bleu", dictionary, SimpleNamespace(reward_level="word", reward_bpe=scheme,
                                                                  bleu_brevity="at-eos"))
    inner = word_level.inner
    special = inner.special
    vocab = len(dictionary)
    # the tokens a branch may draw: every piece and EOS (not bos, pad or unk)
    candidates = torch.tensor([v for v in range(vocab) if v not in (dictionary.bos(), special.pad, special.unk)])
    eos_column = int((candidates == special.eos).nonzero())
    # the last token of one row per candidate (prefix + v), then of the prefix itself (EOS appends nothing)
    last = torch.cat([candidates.masked_fill(candidates == special.eos, special.pad), torch.tensor([special.pad])])
    tallies: Dict[str, List[float]] = defaultdict(lambda: [0.0] * 5)
    for b in range(refs.size(0)):
        ref = refs[b : b + 1]
        pieces = [t for t in ref[0].tolist() if t not in (special.pad, special.eos)]
        state = inner.start(ref)
        for t in range(len(pieces) + 1):
            piece_deltas = state.deltas().expand(vocab)[0, candidates]
            rows = torch.cat([torch.tensor(pieces[:t], dtype=torch.long).expand(len(last), t), last.unsqueeze(1)], 1)
            word_rows, word_ref = word_level.to_words(rows, ref)
            word_refs = word_ref.expand(len(last), -1)
            scores = prefix_bleu(word_rows, word_refs, inner, brevity_paid=False)
            word_deltas = scores[:-1] - scores[-1]
            finished = prefix_bleu(word_rows[-1:], word_refs[-1:], inner, brevity_paid=True)
            word_deltas[eos_column] = finished[0] - scores[-1]
            best_piece = piece_deltas >= piece_deltas.max() - TIE
            best_word = word_deltas >= word_deltas.max() - TIE
            nxt = special.eos if t == len(pieces) else pieces[t]
            column = int((candidates == nxt).nonzero())
            kind = next_piece_kind(pieces, t, word_level.merger)
            for key in (kind, "all steps"):
                tally = tallies[key]
                tally[0] += 1
                tally[1] += float(torch.equal(best_piece, best_word))
                tally[2] += float((best_piece & best_word).sum()) / float(best_piece.sum())
                tally[3] += float(best_piece[column])
                tally[4] += float(best_word[column])
            if t < len(pieces):
                state.advance(torch.tensor([pieces[t]]))
    return {kind: {"steps": int(n), "same_argmax": round(same / n, 4), "piece_draw_word_optimal": round(opt / n, 4),
                   "next_reference_piece_in_piece_argmax": round(p / n, 4),
                   "next_reference_piece_in_word_argmax": round(w / n, 4)}
            for kind, (n, same, opt, p, w) in sorted(tallies.items())}


def next_piece_kind(pieces: List[int], t: int, merger: WordMerger) -> str:
    """Where the reference's piece t sits in its word (by the reward's own word boundaries)."""
    if t == len(pieces):
        return "eos"
    if merger.scheme == "subword_nmt":
        first = t == 0 or not merger.continues[pieces[t - 1]]
        last = not merger.continues[pieces[t]]
    else:
        first = merger.starts[pieces[t]] or t == 0
        last = t + 1 == len(pieces) or merger.starts[pieces[t + 1]]
    if first and last:
        return "one-piece word"
    return "first piece of a longer word" if first else "later piece of a longer word"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                       "shared", "data", "multi30k-de-en", "tok"),
                        help="Multi30k's tokenized text (train.en and valid.en)")
    parser.add_argument("--pairs", type=int, default=2000, help="hypothesis/reference pairs for the sequence scores")
    parser.add_argument("--references", type=int, default=100, help="valid references whose prefixes are walked")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for name in ("pairs", "references"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    for split in ("train", "valid"):
        if not os.path.exists(os.path.join(args.text, f"{split}.en")):
            parser.error(f"--text {args.text}: no {split}.en there (the shared Multi30k tok/ folder)")
    train, valid = read_lines(os.path.join(args.text, "train.en")), read_lines(os.path.join(args.text, "valid.en"))
    with tempfile.TemporaryDirectory() as folder:
        segmenters = learn_segmenters(train[:SENTENCES], folder)
    pairs = text_pairs(valid, args.pairs, args.seed)
    references = random.Random(args.seed).sample(valid, min(args.references, len(valid)))
    report = {"segmenters": f"subword-nmt {MERGES} merges, sentencepiece BPE {PIECES} pieces, learned on the "
                            f"first {SENTENCES} lines of train.en",
              "pairs": args.pairs, "references": len(references), "seed": args.seed}
    for scheme in SCHEMES:
        report[scheme] = {"sequence": sequence_differences(segmenters[scheme], scheme, pairs),
                          "increments": increment_agreement(segmenters[scheme], scheme, references)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
