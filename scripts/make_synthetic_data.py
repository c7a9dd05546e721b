#!/usr/bin/env python3
"""Generate the embedded default corpus: a synthetic language pair ("syn" -> "en").

The corpus is small enough that the paper's LSTM preset learns it in minutes on a CPU, yet it has
the structure that makes exposure bias visible: long sentences (5-40 tokens) built from up to three
clauses, so an early mistake during greedy/beam decoding propagates.

Translation rules (deterministic given the source sentence):
  * word order: the source is verb-final (S O PP V), the target is S V O PP; source adjectives
    follow the noun, target adjectives precede it; source postpositions become prepositions;
  * agreement: source determiners inflect for gender x number x definiteness (8 forms) and
    adjectives for number; the target verb agrees with the subject (3rd person singular "-s");
  * many-to-one / one-to-many: verb + past particle -> one inflected word ("saw"), future
    particle + verb -> "will see", some nouns are compounds in the target ("ice cream"),
    two-word source adverbs become one target word;
  * conjunctions join clauses; numerals agree with plural nouns;
  * free variation: some target adjectives have a synonym chosen at random (see SYNONYMS).

Everything comes from one seeded ``random.Random``, so the output is byte-identical across runs and
machines (no hash-ordering, no numpy). Usage:

    python scripts/make_synthetic_data.py OUTDIR [--train 12000 --valid 500 --test 500 --seed 1]

writes OUTDIR/{train,valid,test}.{syn,en}.
"""
from __future__ import annotations

import argparse
import os
import random
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

# --- target-side lexicon -----------------------------------------------------------------------
# (singular, plural); a space makes a compound: one source word, two target words.
NOUNS: List[Tuple[str, str]] = [
    ("cat", "cats"), ("dog", "dogs"), ("child", "children"), ("woman", "women"), ("man", "men"),
    ("teacher", "teachers"), ("farmer", "farmers"), ("bird", "birds"), ("horse", "horses"),
    ("doctor", "doctors"), ("student", "students"), ("king", "kings"), ("queen", "queens"),
    ("baker", "bakers"), ("singer", "singers"), ("sailor", "sailors"), ("friend", "friends"),
    ("neighbor", "neighbors"), ("girl", "girls"), ("boy", "boys"), ("apple", "apples"),
    ("book", "books"), ("letter", "letters"), ("house", "houses"), ("river", "rivers"),
    ("garden", "gardens"), ("table", "tables"), ("window", "windows"), ("car", "cars"),
    ("boat", "boats"), ("tree", "trees"), ("song", "songs"), ("stone", "stones"),
    ("bridge", "bridges"), ("road", "roads"), ("cake", "cakes"), ("flower", "flowers"),
    ("ice cream", "ice creams"), ("police officer", "police officers"),
    ("bus stop", "bus stops"), ("coffee cup", "coffee cups"), ("post office", "post offices"),
    ("train station", "train stations"), ("fire truck", "fire trucks"),
]
ANIMATE = 20  # the first ANIMATE nouns can be subjects
ADJECTIVES = [
    "big", "small", "old", "young", "red", "blue", "green", "happy", "sad", "quiet", "loud",
    "tall", "short", "clever", "lazy", "brave", "kind", "strange", "famous", "tired", "hungry",
    "beautiful", "dark", "bright",
]
# Free variation: where an adjective has a synonym, the target picks one of the two at random for
# each occurrence. Nothing in the source tells them apart, so the best achievable BLEU is below
# 100 and a model must spread probability over both forms (a multi-modal target, as in real MT).
SYNONYMS = {"big": "large", "small": "little", "happy": "glad", "quiet": "silent",
            "clever": "smart", "beautiful": "pretty", "strange": "odd", "tired": "sleepy"}
# (base, 3rd singular, past)
TRANSITIVE = [
    ("see", "sees", "saw"), ("take", "takes", "took"), ("find", "finds", "found"),
    ("like", "likes", "liked"), ("carry", "carries", "carried"), ("buy", "buys", "bought"),
    ("paint", "paints", "painted"), ("watch", "watches", "watched"), ("build", "builds", "built"),
    ("sell", "sells", "sold"), ("need", "needs", "needed"), ("visit", "visits", "visited"),
    ("draw", "draws", "drew"), ("hold", "holds", "held"),
]
INTRANSITIVE = [
    ("sleep", "sleeps", "slept"), ("run", "runs", "ran"), ("sing", "sings", "sang"),
    ("wait", "waits", "waited"), ("laugh", "laughs", "laughed"), ("swim", "swims", "swam"),
    ("dance", "dances", "danced"), ("sit", "sits", "sat"), ("work", "works", "worked"),
    ("cry", "cries", "cried"), ("walk", "walks", "walked"),
]
PREPOSITIONS = ["in", "near", "behind", "under", "on", "with", "at"]
ADVERBS = ["quickly", "slowly", "often", "today", "again", "happily", "never", "yesterday"]
TWO_WORD_ADVERBS = 3  # the first N adverbs are two words in the source: many-to-one
CONJUNCTIONS = ["and", "but", "because", "while"]
NUMBERS = ["two", "three", "four", "five"]

# --- source-side word formation ----------------------------------------------------------------
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def make_source_lexicon(rng: random.Random, n_words: int) -> List[str]:
    """Deterministic pseudo-words of 2-3 syllables, all distinct and distinct from any affix."""
    seen = set()
    words: List[str] = []
    while len(words) < n_words:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3))))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


@dataclass
class Lexicon:
    noun: List[str]
    noun_gender: List[int]
    adj: List[str]
    verb_tr: List[str]
    verb_in: List[str]
    post: List[str]
    adv: List[List[str]]
    conj: List[str]
    num: List[str]
    det: Dict[Tuple[bool, int, bool], str]  # (definite, gender, plural) -> determiner
    past: str
    future: str
    plural_suffix: str = "ni"
    adj_plural_suffix: str = "ri"


def build_lexicon(rng: random.Random) -> Lexicon:
    n_plain = len(NOUNS) + len(ADJECTIVES) + len(TRANSITIVE) + len(INTRANSITIVE)
    n_plain += len(PREPOSITIONS) + len(ADVERBS) + TWO_WORD_ADVERBS + len(CONJUNCTIONS)
    n_plain += len(NUMBERS)
    words = iter(make_source_lexicon(rng, n_plain))

    def take(n: int) -> List[str]:
        return [next(words) for _ in range(n)]

    noun = take(len(NOUNS))
    adj = take(len(ADJECTIVES))
    verb_tr, verb_in = take(len(TRANSITIVE)), take(len(INTRANSITIVE))
    post = take(len(PREPOSITIONS))
    adv = [[w] for w in take(len(ADVERBS))]
    for i, extra in enumerate(take(TWO_WORD_ADVERBS)):
        adv[i] = [extra, adv[i][0]]
    conj, num = take(len(CONJUNCTIONS)), take(len(NUMBERS))
    det_forms = iter(["lo", "la", "li", "le", "u", "a", "ul", "al"])
    det = {(d, g, p): next(det_forms) for d in (True, False) for g in (0, 1) for p in (False, True)}
    return Lexicon(noun=noun, noun_gender=[rng.randrange(2) for _ in noun], adj=adj,
                   verb_tr=verb_tr, verb_in=verb_in, post=post, adv=adv, conj=conj, num=num,
                   det=det, past="ka", future="mo")


@dataclass
class NounPhrase:
    noun: int
    plural: bool
    definite: bool
    adjs: List[int]
    number: int  # index into NUMBERS, or -1

    def source(self, lex: Lexicon) -> List[str]:
        det = lex.det[(self.definite, lex.noun_gender[self.noun], self.plural)]
        noun = lex.noun[self.noun] + (lex.plural_suffix if self.plural else "")
        out = [det] + ([lex.num[self.number]] if self.number >= 0 else []) + [noun]
        suffix = lex.adj_plural_suffix if self.plural else ""
        return out + [lex.adj[a] + suffix for a in self.adjs]

    def target(self, rng: random.Random) -> List[str]:
        if self.definite:
            det = ["the"]
        elif self.plural:
            det = [] if self.number >= 0 else ["some"]
        else:
            det = ["a"]
        number = [NUMBERS[self.number]] if self.number >= 0 else []
        noun = NOUNS[self.noun][1 if self.plural else 0].split()
        adjs = [ADJECTIVES[a] for a in self.adjs]
        adjs = [SYNONYMS[a] if a in SYNONYMS and rng.random() < 0.5 else a for a in adjs]
        return det + number + adjs + noun


def random_np(rng: random.Random, animate: bool, max_adjs: int) -> NounPhrase:
    noun = rng.randrange(ANIMATE) if animate else rng.randrange(len(NOUNS))
    plural = rng.random() < 0.4
    definite = rng.random() < 0.6
    number = rng.randrange(len(NUMBERS)) if plural and rng.random() < 0.3 else -1
    n_adj = min(max_adjs, rng.choice((0, 0, 1, 1, 2)))
    return NounPhrase(noun, plural, definite, rng.sample(range(len(ADJECTIVES)), n_adj), number)


def clause(rng: random.Random, lex: Lexicon) -> Tuple[List[str], List[str]]:
    subj = random_np(rng, animate=True, max_adjs=2)
    transitive = rng.random() < 0.6
    obj = random_np(rng, animate=False, max_adjs=2) if transitive else None
    pp = (rng.randrange(len(PREPOSITIONS)), random_np(rng, False, 1)) if rng.random() < 0.4 else None
    adv = rng.randrange(len(ADVERBS)) if rng.random() < 0.3 else -1
    tense = rng.choice(("present", "past", "future"))
    v = rng.randrange(len(TRANSITIVE) if transitive else len(INTRANSITIVE))
    forms = (TRANSITIVE if transitive else INTRANSITIVE)[v]
    src_verb = (lex.verb_tr if transitive else lex.verb_in)[v]

    src = subj.source(lex) + (obj.source(lex) if obj else [])
    if pp:
        src += pp[1].source(lex) + [lex.post[pp[0]]]
    src += lex.adv[adv] if adv >= 0 else []
    src += ([lex.future] if tense == "future" else []) + [src_verb]
    src += [lex.past] if tense == "past" else []

    if tense == "past":
        verb = [forms[2]]
    elif tense == "future":
        verb = ["will", forms[0]]
    else:
        verb = [forms[0] if subj.plural else forms[1]]
    tgt = subj.target(rng) + verb + (obj.target(rng) if obj else [])
    tgt += [PREPOSITIONS[pp[0]]] + pp[1].target(rng) if pp else []
    tgt += [ADVERBS[adv]] if adv >= 0 else []
    return src, tgt


def sentence(rng: random.Random, lex: Lexicon) -> Tuple[List[str], List[str]]:
    src, tgt = clause(rng, lex)
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        c = rng.randrange(len(CONJUNCTIONS))
        s2, t2 = clause(rng, lex)
        src, tgt = src + [lex.conj[c]] + s2, tgt + [CONJUNCTIONS[c]] + t2
    return src + ["."], tgt + ["."]


def generate(n_pairs: int, rng: random.Random, lex: Lexicon, min_len: int = 5,
             max_len: int = 40, exclude: Sequence[str] = ()) -> List[Tuple[str, str]]:
    """Draw distinct pairs with both sides in [min_len, max_len] tokens, none in ``exclude``."""
    seen = set(exclude)
    pairs: List[Tuple[str, str]] = []
    while len(pairs) < n_pairs:
        src, tgt = sentence(rng, lex)
        if not (min_len <= len(src) <= max_len and min_len <= len(tgt) <= max_len):
            continue
        s = " ".join(src)
        if s in seen:
            continue
        seen.add(s)
        pairs.append((s, " ".join(tgt)))
    return pairs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--train", type=int, default=12000)
    parser.add_argument("--valid", type=int, default=500)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    lex = build_lexicon(rng)
    os.makedirs(args.outdir, exist_ok=True)
    used: List[str] = []
    # valid/test first, then train excluding them: no test sentence is seen in training
    for split, n in (("valid", args.valid), ("test", args.test), ("train", args.train)):
        pairs = generate(n, rng, lex, exclude=used)
        used += [s for s, _ in pairs]
        for side, col in (("syn", 0), ("en", 1)):
            with open(os.path.join(args.outdir, f"{split}.{side}"), "w", encoding="utf-8") as f:
                f.write("".join(p[col] + "\n" for p in pairs))


if __name__ == "__main__":
    main()
