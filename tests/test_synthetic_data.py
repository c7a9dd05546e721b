"""The embedded corpus: deterministic generator, and data-bin/synthetic is exactly its output."""
from __future__ import annotations

import sys
from collections import Counter

import pytest

from conftest import DATA_BIN, REPO
from fairseq.data import Dictionary, data_utils

sys.path.insert(0, str(REPO / "scripts"))
import make_synthetic_data  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    make_synthetic_data.main([str(out)])  # the defaults prepare-synthetic.sh uses
    return {f"{split}.{side}": (out / f"{split}.{side}").read_text().splitlines()
            for split in ("train", "valid", "test") for side in ("syn", "en")}


def test_generator_is_deterministic(tmp_path):
    args = ["--train", "300", "--valid", "20", "--test", "20", "--seed", "7"]
    make_synthetic_data.main([str(tmp_path / "a"), *args])
    make_synthetic_data.main([str(tmp_path / "b"), *args])
    for name in ("train.syn", "train.en", "test.en"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "train.en").read_text().count("\n") == 300


def test_sizes_lengths_and_disjoint_splits(corpus):
    assert [len(corpus[f"{s}.en"]) for s in ("train", "valid", "test")] == [12000, 500, 500]
    for lines in corpus.values():
        assert all(5 <= len(line.split()) <= 40 for line in lines)
    train = set(corpus["train.syn"])
    assert not train & set(corpus["test.syn"]) and not train & set(corpus["valid.syn"])


def test_structure_the_corpus_promises(corpus):
    en = " ".join(corpus["train.en"]).split()
    assert "will" in en and "ice" in en and "saw" in en  # one-to-many and many-to-one rules
    assert "large" in en and "big" in en  # free variation between synonyms


@pytest.mark.parametrize("side", ["syn", "en"])
def test_committed_binarized_data_is_the_generator_output(corpus, side):
    vocab = Dictionary.load(str(DATA_BIN / f"dict.{side}.txt"))
    counts = Counter(w for line in corpus[f"train.{side}"] for w in line.split())
    # fairseq pads the dictionary to a multiple of 8 with zero-count "madeupword" entries
    words = {vocab[i]: vocab.count[i] for i in range(vocab.nspecial, len(vocab))
             if vocab.count[i] > 0}
    assert words == dict(counts)
    for split in ("train", "test"):
        ds = data_utils.load_indexed_dataset(str(DATA_BIN / f"{split}.syn-en.{side}"), vocab)
        assert len(ds) == len(corpus[f"{split}.{side}"])
        assert [vocab.string(ds[i]) for i in range(0, len(ds), 97)] == \
            corpus[f"{split}.{side}"][::97]
