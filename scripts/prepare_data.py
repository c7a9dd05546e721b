#!/usr/bin/env python3
"""Text preparation for the paper's corpora, before BPE and fairseq-preprocess.

    prepare_data.py iwslt14 SRC_DIR OUT_DIR    # extracted IWSLT14 de-en folder (train.tags.*, *.xml)
    prepare_data.py multi30k SRC_DIR OUT_DIR   # Multi30k tok/ folder (already lowercased + tokenized)
    prepare_data.py gigaword SRC_DIR OUT_DIR   # Rush et al. {train,valid,test}.{article,title}.txt

IWSLT14 follows the MIXER / Ma et al. recipe the paper uses (Ranzato et al.'s prepareData.sh):
strip the XML, Moses-tokenize (sacremoses, with Moses' XML escaping) and lowercase; clean the
training pairs to 1-50 tokens with length ratio <= 1.5 (Moses clean-corpus-n); valid = every 23rd
line of the cleaned training stream, train = the rest; test = dev2010 + TEDX.dev2012 +
tst2010-2012, not length-filtered. Each step writes ``OUT_DIR/{train,valid,test}.{src,tgt}``.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Iterable, Iterator, List, Sequence, Tuple

IWSLT_TEST_SETS = ("IWSLT14.TED.dev2010", "IWSLT14.TEDX.dev2012", "IWSLT14.TED.tst2010",
                   "IWSLT14.TED.tst2011", "IWSLT14.TED.tst2012")
IWSLT_TRAIN_TAGS = ("<url>", "<talkid>", "<keywords>", "<speaker>", "<reviewer", "<translator", "<doc", "</doc>")
_SEG = re.compile(r'^\s*<seg id="\d+">\s*(.*?)\s*</seg>\s*$')


def xml_segments(path: str) -> Iterator[str]:
    """The text of each <seg> of an IWSLT dev/test XML file, in order."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            match = _SEG.match(line)
            if match:
                yield match.group(1)


def train_tag_lines(path: str) -> Iterator[str]:
    """The sentences of an IWSLT ``train.tags.*`` file: metadata lines dropped, title/description
    tags stripped (prepareData.sh's grep/sed)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if any(tag in line for tag in IWSLT_TRAIN_TAGS):
                continue
            for tag in ("<title>", "</title>", "<description>", "</description>"):
                line = line.replace(tag, "")
            yield line.strip()


def tokenize(lines: Iterable[str], lang: str) -> List[str]:
    """Moses tokenization (sacremoses, XML escaping on, as tokenizer.perl) and lowercasing."""
    from sacremoses import MosesTokenizer

    tok = MosesTokenizer(lang=lang)
    return [tok.tokenize(line.replace("\u2019", "'"), return_str=True, escape=True).lower() for line in lines]


def clean_pairs(src: Sequence[str], tgt: Sequence[str], min_len: int = 1, max_len: int = 50,
                ratio: float = 1.5) -> List[Tuple[str, str]]:
    """Moses clean-corpus-n: both sides within [min_len, max_len] tokens, length ratio <= ratio."""
    kept = []
    for s, t in zip(src, tgt):
        ns, nt = len(s.split()), len(t.split())
        if min_len <= ns <= max_len and min_len <= nt <= max_len and ns <= ratio * nt and nt <= ratio * ns:
            kept.append((s, t))
    return kept


def write(out_dir: str, split: str, lang: str, lines: Sequence[str]) -> None:
    with open(os.path.join(out_dir, f"{split}.{lang}"), "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def prepare_iwslt14(src_dir: str, out_dir: str, src: str = "de", tgt: str = "en") -> None:
    test = {lang: tokenize([line for name in IWSLT_TEST_SETS
                            for line in xml_segments(os.path.join(src_dir, f"{name}.{src}-{tgt}.{lang}.xml"))], lang)
            for lang in (src, tgt)}
    for lang in (src, tgt):
        write(out_dir, "test", lang, test[lang])
    train_files = {lang: os.path.join(src_dir, f"train.tags.{src}-{tgt}.{lang}") for lang in (src, tgt)}
    if not all(os.path.exists(p) for p in train_files.values()):
        print(f"prepare_data: no train.tags.{src}-{tgt}.* in {src_dir}: wrote the test set only", file=sys.stderr)
        return
    lines = {lang: tokenize(train_tag_lines(path), lang) for lang, path in train_files.items()}
    if len(lines[src]) != len(lines[tgt]):
        raise SystemExit(f"prepare_data: {train_files[src]} and {train_files[tgt]} differ in length")
    pairs = clean_pairs(lines[src], lines[tgt])
    valid = [p for i, p in enumerate(pairs, 1) if i % 23 == 0]  # awk 'NR % 23 == 0'
    train = [p for i, p in enumerate(pairs, 1) if i % 23 != 0]
    for split, rows in (("train", train), ("valid", valid)):
        write(out_dir, split, src, [s for s, _ in rows])
        write(out_dir, split, tgt, [t for _, t in rows])


def copy_splits(src_dir: str, out_dir: str, splits: Sequence[Tuple[str, str]], langs: Sequence[str],
                transform=lambda line: line) -> None:
    for name_in, name_out in splits:
        for lang_in, lang_out in langs:
            path = os.path.join(src_dir, name_in.format(lang=lang_in))
            with open(path, encoding="utf-8") as f:
                write(out_dir, name_out, lang_out, [transform(line.rstrip("\n")) for line in f])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", choices=["iwslt14", "multi30k", "gigaword"])
    parser.add_argument("src_dir")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    if not os.path.isdir(args.src_dir):
        raise SystemExit(f"prepare_data: {args.src_dir} is not a folder")
    os.makedirs(args.out_dir, exist_ok=True)
    if args.corpus == "iwslt14":
        prepare_iwslt14(args.src_dir, args.out_dir)
    elif args.corpus == "multi30k":  # held-out test2017/test2018/mscoco are never copied
        copy_splits(args.src_dir, args.out_dir, [("train.{lang}", "train"), ("valid.{lang}", "valid"),
                                                 ("test2016.{lang}", "test")], [("de", "de"), ("en", "en")])
    else:  # Gigaword: article -> title; the test set's "UNK" is fairseq's <unk>
        copy_splits(args.src_dir, args.out_dir, [(f"{s}.{{lang}}.txt", s) for s in ("train", "valid", "test")],
                    [("article", "article"), ("title", "title")],
                    transform=lambda line: re.sub(r"(?<!\S)UNK(?!\S)", "<unk>", line))


if __name__ == "__main__":
    main()
