"""``--reward-level word``: sequence rewards on the words that subword pieces make, exact against
sacrebleu and rouge-score on the words, with real subword-nmt and sentencepiece models learned on
Multi30k text; and a BPE Multi30k run that trains RAML and the interpolation with it."""
from __future__ import annotations

import re
import sys
from types import SimpleNamespace
from typing import Dict, List, Tuple

import pytest
import sacrebleu
import torch
from fairseq.data import Dictionary

import fairseq_erpo  # noqa: F401
from conftest import REPO, cli, shared_path
from fairseq_erpo.rewards import SpecialTokens, build_reward
from fairseq_erpo.rewards.words import WordLevelReward, WordMerger

sys.path.insert(0, str(REPO / "scripts"))
from subword_rewards import SENTENCES, learn_segmenters, piece_batch, text_pairs, to_ids  # noqa: E402


def multi30k(split: str) -> List[str]:
    text = shared_path("multi30k-de-en", "tok", f"{split}.en").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def segmenters(tmp_path_factory) -> Dict[str, callable]:
    """word string -> piece strings, for a real subword-nmt and a real sentencepiece model
    (scripts/subword_rewards.py learns the same two for the measurements in docs/rewards.md)."""
    return learn_segmenters(multi30k("train")[:SENTENCES], str(tmp_path_factory.mktemp("subwords")))


def pairs(n: int, seed: int) -> List[Tuple[str, str]]:
    return text_pairs(multi30k("valid"), n, seed)


def options(**fields) -> SimpleNamespace:
    return SimpleNamespace(reward_level="word", **fields)


@pytest.mark.parametrize("scheme", ["subword_nmt", "sentencepiece"])
def test_word_level_bleu_is_sacrebleu_on_the_words(segmenters, scheme):
    text_pairs = pairs(600, seed=1)
    hyps, refs, dictionary = piece_batch(segmenters[scheme], text_pairs)
    word = build_reward("bleu", dictionary, options(reward_bpe=scheme))
    assert isinstance(word, WordLevelReward) and word.scale == 0.01  # the wrapped reward's settings
    theirs = torch.tensor([sacrebleu.sentence_bleu(h, [r], tokenize="none", smooth_method="add-k").score
                           for h, r in text_pairs], dtype=torch.float64)
    assert (100 * word.score(hyps, refs) - theirs).abs().max() < 1e-9
    # on the pieces the scores differ for most pairs: what --reward-level word is for
    pieces = build_reward("bleu", dictionary, SimpleNamespace())
    differ = ((100 * pieces.score(hyps, refs) - theirs).abs() > 1e-6).float().mean()
    assert differ > 0.5
    assert float(hyps.size(1)) > max(len(h.split()) for h, _ in text_pairs)  # words were really split


@pytest.mark.parametrize("scheme", ["subword_nmt", "sentencepiece"])
def test_word_level_rouge_is_rouge_score_on_the_words(segmenters, scheme):
    from rouge_score import rouge_scorer

    text_pairs = pairs(300, seed=2)
    hyps, refs, dictionary = piece_batch(segmenters[scheme], text_pairs)
    word = build_reward("rouge", dictionary, options(reward_bpe=scheme))
    # rouge-score keeps only [a-z0-9] tokens: give every word an alphanumeric name
    names: Dict[str, str] = {}
    name = lambda text: " ".join(names.setdefault(w, f"w{len(names)}") for w in text.split())  # noqa: E731
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    theirs = []
    for h, r in text_pairs:
        s = scorer.score(name(r), name(h))
        theirs.append(s["rouge1"].fmeasure + s["rouge2"].fmeasure + s["rougeL"].fmeasure)
    assert (word.score(hyps, refs) - torch.tensor(theirs, dtype=torch.float64)).abs().max() < 1e-12


def test_merging_rules_and_unk():
    """subword-nmt: @@ continues a word (a row may end inside one); sentencepiece: \u2581 starts one;
    a word with an <unk> piece is <unk>; ids agree between the hypotheses and references of a call."""
    dictionary = Dictionary()
    for piece in ["mal@@", "es", "shes", "bu@@", "\u2581mal", "\u2581bu", "\u2581a"]:
        dictionary.add_symbol(piece)
    special = SpecialTokens.from_dictionary(dictionary)
    ids = lambda *pieces: torch.tensor([[dictionary.index(p) for p in pieces] + [dictionary.eos()]])  # noqa: E731
    nmt = WordMerger(list(dictionary.symbols), "@@ ", special)
    assert nmt.words(ids("mal@@", "es", "bu@@", "shes")[0].tolist()) == [
        [dictionary.index("mal@@"), dictionary.index("es")], [dictionary.index("bu@@"), dictionary.index("shes")]]
    assert len(nmt.words(ids("es", "bu@@")[0].tolist())) == 2  # a dangling piece is its own word
    first = len(dictionary)  # word ids start past every piece id
    shared: Dict[tuple, int] = {}
    a, b = nmt(ids("mal@@", "es", "shes"), shared), nmt(ids("shes", "mal@@", "es"), shared)
    assert a[0].tolist() == [first, first + 1, special.eos] and b[0].tolist() == [first + 1, first, special.eos]
    assert nmt(ids("mal@@", "<unk>", "es"), {})[0].tolist() == [special.unk, first, special.eos]
    spm = WordMerger(list(dictionary.symbols), "sentencepiece", special)
    assert spm.words(ids("\u2581mal", "es", "\u2581bu", "shes", "\u2581a")[0].tolist()) == [
        [dictionary.index("\u2581mal"), dictionary.index("es")],
        [dictionary.index("\u2581bu"), dictionary.index("shes")], [dictionary.index("\u2581a")]]


@pytest.mark.parametrize("scheme", ["subword_nmt", "sentencepiece"])
def test_piece_and_word_increments_measured_along_references(segmenters, scheme):
    """scripts/subword_rewards.py (the tables of docs/rewards.md): the word-level prefix BLEU it
    uses is sacrebleu's on the words; along references the piece-level increments always rank the
    next reference piece best, the two agree at EOS, and at the first piece of a split word the
    word-level increment cannot see the word coming."""
    from subword_rewards import increment_agreement, prefix_bleu

    text_pairs = pairs(50, seed=3)
    hyps, refs, dictionary = piece_batch(segmenters[scheme], text_pairs)
    word = build_reward("bleu", dictionary, options(reward_bpe=scheme, bleu_brevity="at-eos"))
    word_hyps, word_refs = word.to_words(hyps, refs)
    finished = prefix_bleu(word_hyps, word_refs, word.inner, brevity_paid=True)
    theirs = [sacrebleu.sentence_bleu(h, [r], tokenize="none", smooth_method="add-k").score for h, r in text_pairs]
    assert (100 * finished - torch.tensor(theirs, dtype=torch.float64)).abs().max() < 1e-9
    # unfinished: no brevity penalty, so a two-word prefix of the reference scores BLEU 100 (x 0.01)
    assert float(prefix_bleu(word_refs[:1, :2], word_refs[:1], word.inner, brevity_paid=False)[0]) == pytest.approx(1.0)

    references = [r for _, r in pairs(8, seed=4)]
    table = increment_agreement(segmenters[scheme], scheme, references)
    pieces = sum(len(segmenters[scheme](r)) for r in references)
    assert table["all steps"]["steps"] == pieces + len(references) == sum(
        row["steps"] for kind, row in table.items() if kind != "all steps")
    assert all(row["next_reference_piece_in_piece_argmax"] == 1.0 for row in table.values())
    assert table["eos"]["same_argmax"] == 1.0 and table["eos"]["steps"] == len(references)
    split = table["first piece of a longer word"]
    assert split["steps"] > 0 and split["same_argmax"] == 0.0 and split["next_reference_piece_in_word_argmax"] < 0.5
    assert table["one-piece word"]["next_reference_piece_in_word_argmax"] == 1.0


def test_subword_rewards_script_refuses_bad_options(tmp_path):
    proc = cli(sys.executable, "scripts/subword_rewards.py", "--text", str(tmp_path), check=False)
    assert proc.returncode == 2 and f"--text {tmp_path}: no train.en there" in proc.stderr


def test_the_issues_example_pair():
    """The reference ``... mal@@ es ... bu@@ shes .`` against ``... mal@@ shes ... bu@@ es .``:
    every piece matches, no word does but the rest."""
    ref, hyp = "two mal@@ es walk past bu@@ shes .", "two mal@@ shes walk past bu@@ es ."
    dictionary = Dictionary()
    for piece in (ref + " " + hyp).split():
        dictionary.add_symbol(piece)
    hyps, refs = to_ids([hyp.split()], dictionary), to_ids([ref.split()], dictionary)
    on_pieces = float(build_reward("bleu", dictionary, SimpleNamespace()).score(hyps, refs))
    on_words = float(build_reward("bleu", dictionary, options(reward_bpe="subword_nmt")).score(hyps, refs))
    merge = lambda text: text.replace("@@ ", "")  # noqa: E731
    assert on_pieces == pytest.approx(sacrebleu.sentence_bleu(hyp, [ref], tokenize="none",
                                                              smooth_method="add-k").score / 100, abs=1e-12)
    assert on_words == pytest.approx(sacrebleu.sentence_bleu(merge(hyp), [merge(ref)], tokenize="none",
                                                             smooth_method="add-k").score / 100, abs=1e-12)
    assert on_words < on_pieces


@pytest.mark.parametrize("fields,message", [
    ({}, "--reward-level word needs --reward-bpe subword_nmt or sentencepiece"),
    ({"reward_bpe": "wordpiece"}, "--reward-bpe 'wordpiece': choose subword_nmt"),
])
def test_bad_word_level_options(fields, message):
    dictionary = Dictionary()
    with pytest.raises(ValueError, match=message):
        build_reward("bleu", dictionary, options(**fields))
    with pytest.raises(ValueError, match="log-domain reward"):
        build_reward("delta", dictionary, options(reward_bpe="subword_nmt"))
    with pytest.raises(ValueError, match="--reward-level 'char': choose token or word"):
        build_reward("bleu", dictionary, SimpleNamespace(reward_level="char"))


def test_bpe_multi30k_trains_raml_and_the_interpolation_on_words(tmp_path):
    """A subword-nmt Multi30k data-bin (the real text, a 2,000-pair slice, 500 merges) trains RAML
    and the interpolation with --reward-level word; their logged rewards are word-level BLEU."""
    src = tmp_path / "text"
    src.mkdir()
    for split, lines in (("train", 2000), ("valid", 200), ("test2016", 200)):
        for lang in ("de", "en"):
            text = shared_path("multi30k-de-en", "tok", f"{split}.{lang}").read_text(encoding="utf-8")
            (src / f"{split}.{lang}").write_text("\n".join(text.splitlines()[:lines]) + "\n", encoding="utf-8")
    data = tmp_path / "bpe.de-en"
    prepare = cli("bash", "scripts/prepare-multi30k.sh", "--src", str(src), "--bpe", "subword-nmt", "--bpe-size", "500",
                  "--out", str(data), check=False)
    assert prepare.returncode == 0, prepare.stdout[-2000:] + prepare.stderr[-2000:]
    word = ["--reward-level", "word", "--reward-bpe", "subword_nmt"]
    runs = {"raml": ["--criterion", "raml", "--raml-samples", "4", *word],
            "interpolation": ["--criterion", "interpolation", "--lambdas", "0.3,0.3,0.4", *word]}
    for name, args in runs.items():
        log = cli("fairseq-train", str(data), "--user-dir", "fairseq_erpo", "--task", "erpo_translation", "--no-anneal",
                  "--arch", "lstm_erpo_iwslt_de_en", "--optimizer", "adam", "--lr", "1e-3", "--batch-size", "32",
                  "--max-update", "6", "--save-dir", str(tmp_path / name), "--no-progress-bar", "--log-interval", "3",
                  "--num-workers", "0", "--seed", "1", *args).stdout
        assert "num_updates 6" in log and "'reward_level': word" in log, name
        assert re.search(r"(raml_reward|reward)[=| ]+0\.\d+", log), name
