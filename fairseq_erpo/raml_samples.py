"""RAML samples files: the offline format of the authors' code (texar ``raml_main.py``, written by
Ma et al.'s ``process_samples.py``), for ``--criterion raml --raml-samples-file``.

One entry per training example, in the order of the training split::

    **************************************************
    source: <source sentence>
    <N> samples
    <target sample> ||| <reward>
    ... (N lines)
    **************************************************

Entries hold 1 sample (repeated, as the authors' reader does) or exactly ``--raml-samples``.
``scripts/raml_samples.py`` writes such a file with this package's samplers and rewards.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import IO, List, Sequence, Tuple

import torch
from fairseq.data import data_utils
from torch import Tensor

RULE = "*" * 50
_COUNT = re.compile(r"^(\d+) samples$")


@dataclass
class SamplesEntry:
    source: str
    targets: List[str]
    rewards: List[float]


def read_samples_file(path: str) -> List[SamplesEntry]:
    """All entries of a samples file; a ValueError names the line that breaks the format."""
    entries: List[SamplesEntry] = []
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    i = 0

    def fail(message: str):
        raise ValueError(f"--raml-samples-file {path}, line {i + 1}: {message} (expected the RAML samples "
                         "format: 'source: ...', '<N> samples', N lines '<target> ||| <reward>')")

    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("***"):
            i += 1
            continue
        if not line.startswith("source:"):
            fail("an entry must start with 'source:'")
        source = line[len("source:"):].strip()
        i += 1
        count = _COUNT.match(lines[i].strip()) if i < len(lines) else None
        if count is None:
            fail("expected '<N> samples'")
        n = int(count.group(1))
        targets, rewards = [], []
        for _ in range(n):
            i += 1
            if i >= len(lines) or "|||" not in lines[i]:
                fail(f"expected {n} lines '<target> ||| <reward>'")
            text, score = lines[i].rsplit("|||", 1)
            try:
                rewards.append(float(score))
            except ValueError:
                fail(f"reward {score.strip()!r} is not a number")
            targets.append(text.strip())
        entries.append(SamplesEntry(source, targets, rewards))
        i += 1
    if not entries:
        raise ValueError(f"--raml-samples-file {path}: no entries")
    return entries


def write_entry(f: IO[str], source: str, targets: Sequence[str], rewards: Sequence[float]) -> None:
    """One entry, samples ranked by reward (best first) as in the authors' files."""
    order = sorted(range(len(targets)), key=lambda k: rewards[k], reverse=True)
    f.write(f"{RULE}\nsource: {source}\n{len(targets)} samples\n")
    for k in order:
        f.write(f"{targets[k]} ||| {rewards[k]:f}\n")
    f.write(f"{RULE}\n")


class OfflineSamples:
    """A samples file encoded with the target dictionary, served per batch of example ids."""

    def __init__(self, path: str, dictionary, samples: int):
        self.entries = read_samples_file(path)
        bad = [k for k, e in enumerate(self.entries) if len(e.targets) not in (1, samples)]
        if bad:
            k = bad[0]
            raise ValueError(f"--raml-samples-file {path}: entry {k} has {len(self.entries[k].targets)} samples; "
                             f"each entry needs 1 or --raml-samples ({samples}) samples")
        self.path, self.samples, self.dictionary = path, samples, dictionary
        self.targets: List[List[Tensor]] = []
        self.rewards = torch.zeros(len(self.entries), samples, dtype=torch.float64)
        for k, entry in enumerate(self.entries):
            repeat = samples // len(entry.targets)  # one sample is repeated, as the authors' reader does
            encoded = [dictionary.encode_line(t, add_if_not_exist=False, append_eos=True).long()
                       for t in entry.targets]
            self.targets.append(encoded * repeat)
            self.rewards[k] = torch.tensor(entry.rewards * repeat, dtype=torch.float64)

    def __len__(self) -> int:
        return len(self.entries)

    def batch(self, ids: Tensor, pad: int) -> Tuple[Tensor, Tensor]:
        """[B * S, L] targets (example-major, right-padded) and their [B, S] rewards."""
        if int(ids.max()) >= len(self):
            raise ValueError(f"--raml-samples-file {self.path} has {len(self)} entries but the training data has "
                             f"example {int(ids.max())}: write it from the same training split "
                             "(scripts/raml_samples.py)")
        rows = [t for i in ids.tolist() for t in self.targets[i]]
        out = data_utils.collate_tokens(rows, pad)  # right-padded, as fairseq's collater pads targets
        return out.to(ids.device), self.rewards[ids.cpu()].to(ids.device)

    def check_sources(self, ids: Tensor, sources: Sequence[str], source_dictionary) -> None:
        """Entry i must be training example i: compare sources (through the dictionary, so words
        outside it compare as <unk>)."""
        for i, text in zip(ids.tolist(), sources):
            stored = source_dictionary.string(source_dictionary.encode_line(
                self.entries[i].source, add_if_not_exist=False, append_eos=False))
            if stored != text:
                raise ValueError(f"--raml-samples-file {self.path}: entry {i} has source {self.entries[i].source!r}, "
                                 f"but training example {i} is {text!r}: write the file from the same training "
                                 "split (scripts/raml_samples.py)")
