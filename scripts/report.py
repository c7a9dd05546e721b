#!/usr/bin/env python3
"""Collect finished runs into ``results/`` and write the result table and convergence plot.

    python scripts/report.py --runs runs/multi30k.de-en --results results/multi30k

A finished run is ``RUNS/<algo>/seed<N>/`` with ``train.log`` (from scripts/train.sh, ending in
fairseq's "done training") and ``scores-test.json`` (from scripts/evaluate.sh); a run without its
scores is left out. Both small files are copied to
``RESULTS/<algo>/seed<N>/``, so the results survive without the checkpoints. The report is built from
``RESULTS`` only:

* ``RESULTS/table.md``: per algorithm, the number of seeds and test BLEU mean +- std (sample std;
  a single seed's score alone, as it has no spread to show), detokenized sacrebleu, or for
  summarization ROUGE-1/2/L and ROUGE-L without ``<unk>`` credit; next to them the gain over MLE
  and the paper's number and gain (Table 1 BLEU, Table 2 ROUGE-L), then both orderings;
  then each run's validation pick (best score, its epoch, and whether it falls in the run's last
  10%, where the budget may have cut the algorithm short);
* ``RESULTS/convergence.png``: validation BLEU (or ROUGE) against updates, mean over seeds, per
  algorithm (the paper's Figure 3).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
from pathlib import Path
from typing import Callable, Dict, List, Tuple

PAPER_ORDER = ["interpolation", "interpolation_paper", "raml", "raml_resampled", "scheduled_sampling",
               "scheduled_sampling_paper", "scheduled_sampling_per_epoch", "spg", "mixer", "mixer_running_mean",
               "data_noising", "mle"]
# the paper's results (mean, std over seeds) on IWSLT14 de-en (Table 1) and Gigaword (Table 2)
PAPER_BLEU = {"interpolation": (27.82, 0.11), "raml": (27.22, 0.14), "scheduled_sampling": (26.76, 0.17),
              "spg": (26.62, 0.05), "mixer": (26.53, 0.11), "mle": (26.44, 0.18)}
PAPER_ROUGE_L = {"interpolation": (32.95, 0.33), "raml": (32.49, 0.17), "scheduled_sampling": (32.77, 0.17),
                 "spg": (32.79, 0.26), "mixer": (32.57, 0.15), "mle": (32.32, 0.19)}
# our variant -> the paper's row it is compared with
PAPER_ROW = {"raml_resampled": "raml", "scheduled_sampling_per_epoch": "scheduled_sampling",
             "scheduled_sampling_paper": "scheduled_sampling", "interpolation_paper": "interpolation",
             "mixer_running_mean": "mixer"}
VALID_LINE = re.compile(r"\| valid on 'valid' subset \|.*?\| (bleu|rouge) ([\d.]+) \|.*?\| num_updates (\d+)")
VALID_EPOCH = re.compile(r"\| epoch (\d+) \| valid on 'valid' subset \|")
LATE = 0.9  # a best checkpoint after 90% of the run: the budget may have cut the algorithm short


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a temporary file beside ``path``, then rename it over ``path``: a reader (another
    queue job's report) sees the old file or the new one, never a half-written one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def collect(runs: Path, results: Path) -> int:
    copied = 0
    for log in sorted(runs.glob("*/seed*/train.log")):
        if "done training" not in log.read_text(errors="replace") or not (log.parent / "scores-test.json").exists():
            continue  # unfinished or not yet scored (reproduce.sh removes a shorter budget's scores)
        target = results / log.parent.parent.name / log.parent.name
        target.mkdir(parents=True, exist_ok=True)
        for name in ("train.log", "scores-test.json"):
            if (log.parent / name).exists():
                replace_atomically(target / name, lambda tmp: shutil.copyfile(log.parent / name, tmp))
                copied += 1
    return copied


def validation_curve(log: Path) -> Tuple[List[Tuple[int, float]], str]:
    """(updates, validation metric) for every validation in a train.log, and the metric's name."""
    points, metric = [], "BLEU"
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = VALID_LINE.search(line)
        if match:
            points.append((int(match.group(3)), float(match.group(2))))
            metric = match.group(1).upper()
    return points, metric


def validation_picks(results: Path) -> str:
    """Per run: the best validation score (the checkpoint that is tested: fairseq keeps the last of
    equal bests), its epoch, the run's epochs, and a flag where the best falls in the run's last 10%."""
    rows = []
    for log in sorted(results.glob("*/seed*/train.log")):
        best = None  # (value, epoch)
        epochs = 0
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            value, epoch = VALID_LINE.search(line), VALID_EPOCH.search(line)
            if value and epoch:
                epochs = max(epochs, int(epoch.group(1)))
                if best is None or float(value.group(2)) >= best[0]:
                    best = (float(value.group(2)), int(epoch.group(1)))
        if best is not None:
            late = "yes" if best[1] > LATE * epochs else "no"
            rows.append(f"| {log.parent.parent.name} | {log.parent.name[4:]} | {best[0]:.2f} | {best[1]} | {epochs} | {late} |")
    if not rows:
        return ""
    return ("\nValidation picks (the tested checkpoint of each run):\n\n"
            "| algorithm | seed | best validation | at epoch | epochs | in the last 10% |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")


def mean_std_cell(values: List[float]) -> str:
    """"mean ± sample std" over seeds; one seed has no spread, so its score stands alone."""
    if len(values) == 1:
        return "%.2f" % values[0]
    return "%.2f ± %.2f" % (statistics.mean(values), statistics.stdev(values))


def paper_columns(algo: str, ours: Dict[str, float], paper: Dict[str, Tuple[float, float]]) -> List[str]:
    """Our gain over MLE, the paper's number and the paper's gain over MLE for one row."""
    gain = "%+.2f" % (ours[algo] - ours["mle"]) if "mle" in ours else "n/a"
    row = paper.get(PAPER_ROW.get(algo, algo))
    if row is None:
        return [gain, "n/a", "n/a"]
    return [gain, "%.2f ± %.2f" % row, "%+.2f" % (row[0] - paper["mle"][0])]


def table(results: Path) -> Tuple[str, Dict[str, List[dict]]]:
    scores: Dict[str, List[dict]] = {}
    for path in sorted(results.glob("*/seed*/scores-test.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as err:  # never half-written (evaluate.sh renames it into place)
            raise SystemExit(f"{path}: not a scores file ({err}); rerun scripts/evaluate.sh for that run") from None
        scores.setdefault(path.parent.parent.name, []).append(record)
    order = [a for a in PAPER_ORDER if a in scores] + sorted(a for a in scores if a not in PAPER_ORDER)
    summarization = any("rouge1" in s for runs in scores.values() for s in runs)
    if summarization:
        # rouge-score credits <unk> = <unk>; without that credit, as validation scores (score_generate.py)
        head = ("| algorithm | seeds | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-L, no `<unk>` credit | ROUGE-L vs MLE "
                "| paper ROUGE-L (Table 2) | paper vs MLE |\n|---|---|---|---|---|---|---|---|---|\n")
        keys, main, paper = ("rouge1", "rouge2", "rougeL", "rougeL_no_unk_credit"), "rougeL", PAPER_ROUGE_L
    else:
        head = ("| algorithm | seeds | test BLEU (tokenized, multi-bleu) | detokenized sacrebleu | BLEU vs MLE "
                "| paper BLEU (Table 1, IWSLT14) | paper vs MLE |\n|---|---|---|---|---|---|---|\n")
        keys, main, paper = ("bleu", "sacrebleu"), "bleu", PAPER_BLEU
    means = {algo: statistics.mean(s[main] for s in runs) for algo, runs in scores.items()
             if all(main in s for s in runs)}
    rows = []
    for algo in order:
        cells = []
        for key in keys:
            values = [s[key] for s in scores[algo] if key in s]
            cells.append(mean_std_cell(values) if values else "n/a")
        if algo in means:
            cells += paper_columns(algo, means, paper)
        else:
            cells += ["n/a"] * 3
        rows.append(f"| {algo} | {len(scores[algo])} | " + " | ".join(cells) + " |")
    main_name = "ROUGE-L" if summarization else "BLEU"
    ours = sorted(means, key=means.get, reverse=True)
    theirs = sorted({a for a in ours if PAPER_ROW.get(a, a) in paper}, key=lambda a: paper[PAPER_ROW.get(a, a)][0],
                    reverse=True)
    orderings = (f"\nOrdering by mean {main_name}, best first. Ours: {' > '.join(ours)}. "
                 f"The paper's, same algorithms: {' > '.join(theirs)}.\n") if ours else ""
    return head + "\n".join(rows) + "\n" + orderings, scores


def plot(results: Path, out: Path) -> bool:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    metric = "BLEU"
    drawn = False
    for algo_dir in sorted(p for p in results.iterdir() if p.is_dir()):
        found = [validation_curve(log) for log in sorted(algo_dir.glob("seed*/train.log"))]
        curves = [points for points, _ in found if points]
        if not curves:
            continue
        by_update: Dict[int, List[float]] = {}
        for curve in curves:
            for updates, value in curve:
                by_update.setdefault(updates, []).append(value)
        xs = sorted(by_update)
        ax.plot(xs, [statistics.mean(by_update[x]) for x in xs], marker=".", label=f"{algo_dir.name} ({len(curves)})")
        drawn = True
        metric = found[0][1]
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("updates")
    ax.set_ylabel(f"validation {metric} (beam 5), mean over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    replace_atomically(out, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=None, help="training output folder to collect from")
    parser.add_argument("--results", type=Path, required=True)
    args = parser.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    if args.runs is not None:
        print(f"collected {collect(args.runs, args.results)} files from {args.runs}")
    text, scores = table(args.results)
    text += validation_picks(args.results)
    replace_atomically(args.results / "table.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(text, end="")
    if plot(args.results, args.results / "convergence.png"):
        print(f"wrote {args.results / 'convergence.png'}")


if __name__ == "__main__":
    main()
