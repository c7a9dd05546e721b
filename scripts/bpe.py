#!/usr/bin/env python3
"""Joint subword segmentation shared by every prepare-*.sh script (the same options everywhere).

    bpe.py TEXT_DIR SRC TGT --bpe none|subword-nmt|sentencepiece [--size 10000]

Learns one joint model on TEXT_DIR/train.{SRC,TGT}, applies it to every {train,valid,test} file in
place of the word-level text (the originals are kept as *.tok), and leaves the model next to
them (bpe.codes or spm.model). ``none`` leaves the word-level text as it is.
"""
import argparse
import os
import shutil
import subprocess
import sys

SPLITS = ("train", "valid", "test")


def files(text_dir, src, tgt):
    for split in SPLITS:
        for lang in (src, tgt):
            path = os.path.join(text_dir, f"{split}.{lang}")
            if os.path.exists(path):
                yield path, lang


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("text_dir")
    parser.add_argument("src")
    parser.add_argument("tgt")
    parser.add_argument("--bpe", choices=["none", "subword-nmt", "sentencepiece"], default="none")
    parser.add_argument("--size", type=int, default=10000, help="merge operations / vocabulary size")
    args = parser.parse_args()
    if args.bpe == "none":
        return
    if args.size < 1:
        raise SystemExit(f"--bpe-size must be >= 1, got {args.size}")
    train = [os.path.join(args.text_dir, f"train.{lang}") for lang in (args.src, args.tgt)]
    for path in train:
        if not os.path.exists(path):
            raise SystemExit(f"bpe: {path} is missing (a joint model is learned on the training text)")
    for path, _ in files(args.text_dir, args.src, args.tgt):
        shutil.copyfile(path, path + ".tok")
    if args.bpe == "subword-nmt":
        codes = os.path.join(args.text_dir, "bpe.codes")
        vocab = {lang: os.path.join(args.text_dir, f"bpe.vocab.{lang}") for lang in (args.src, args.tgt)}
        subprocess.run(["subword-nmt", "learn-joint-bpe-and-vocab", "--input", *[p + ".tok" for p in train],
                        "-s", str(args.size), "-o", codes, "--write-vocabulary",
                        vocab[args.src], vocab[args.tgt]], check=True)
        for path, _ in files(args.text_dir, args.src, args.tgt):
            with open(path + ".tok", encoding="utf-8") as fin, open(path, "w", encoding="utf-8") as fout:
                # codes only, as fairseq's prepare-iwslt14.sh (a vocabulary threshold fragments
                # small corpora such as Multi30k)
                subprocess.run(["subword-nmt", "apply-bpe", "-c", codes], stdin=fin, stdout=fout, check=True)
    else:
        import sentencepiece as spm
        prefix = os.path.join(args.text_dir, "spm")
        spm.SentencePieceTrainer.train(input=",".join(p + ".tok" for p in train), model_prefix=prefix,
                                       vocab_size=args.size, model_type="bpe", character_coverage=1.0,
                                       bos_id=-1, eos_id=-1, unk_surface="<unk>")
        model = spm.SentencePieceProcessor(model_file=prefix + ".model")
        for path, _ in files(args.text_dir, args.src, args.tgt):
            with open(path + ".tok", encoding="utf-8") as fin, open(path, "w", encoding="utf-8") as fout:
                for line in fin:
                    fout.write(" ".join(model.encode(line.rstrip("\n"), out_type=str)) + "\n")


if __name__ == "__main__":
    sys.exit(main())
