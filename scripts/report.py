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
  then each run's validation pick (best score, its epoch and update, and whether it falls in the
  run's last 10% of updates, where the budget may have cut the algorithm short). A fine-tuning
  table (runs started with ``train.sh --init``, i.e. fairseq's ``--finetune-from-model``) adds
  the gain over the model each run started from, seed by seed: ``collect`` copies that model's
  own test scores beside the run as ``scores-start.json``; its ``mle`` row is MLE continued, so
  "vs MLE" is the gain over MLE continued;
* ``RESULTS/convergence.png``: validation BLEU (or ROUGE) against updates, mean over seeds, per
  algorithm (the paper's Figure 3);
* ``RESULTS/gain-over-mle.png``: each algorithm's test gain over MLE beside the paper's (for
  summarization ROUGE-L: the paper's Figure 4).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

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
START = re.compile(r"'finetune_from_model': '([^']+)'")  # fairseq's config dump at the top of train.log
REPO = Path(__file__).resolve().parent.parent  # train.sh runs fairseq-train here: relative paths start here
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


def start_scores(log_text: str) -> Optional[Path]:
    """The test scores of the model a fine-tuning run started from (``--finetune-from-model``), or
    None for a run from scratch. They are that run's ``scores-test.json`` when the start is the
    checkpoint evaluate.sh scores there (``checkpoint_best.pt``, else ``checkpoint_last.pt``).
    Another checkpoint's score is unknown: a warning says so, and the run's gain over its start is
    left out rather than measured against a model it did not start from."""
    match = START.search(log_text)
    if match is None:
        return None
    start = Path(match.group(1))
    start = start if start.is_absolute() else REPO / start
    scored = "checkpoint_best.pt" if (start.parent / "checkpoint_best.pt").exists() else "checkpoint_last.pt"
    if start.name != scored or not (start.parent / "scores-test.json").exists():
        print(f"warning: {start}: the gain over this start is left out: {start.parent}/scores-test.json (the score of "
              f"its {scored}) is missing or is another checkpoint's; start from {scored} and score it with "
              f"scripts/evaluate.sh {start.parent} DATA", file=sys.stderr)
        return None
    return start.parent / "scores-test.json"


def collect(runs: Path, results: Path) -> int:
    copied = 0
    for log in sorted(runs.glob("*/seed*/train.log")):
        text = log.read_text(errors="replace")
        if "done training" not in text or not (log.parent / "scores-test.json").exists():
            continue  # unfinished or not yet scored (reproduce.sh removes a shorter budget's scores)
        target = results / log.parent.parent.name / log.parent.name
        target.mkdir(parents=True, exist_ok=True)
        sources = {name: log.parent / name for name in ("train.log", "scores-test.json")}
        start = start_scores(text)
        if start is not None:
            sources["scores-start.json"] = start
        elif (target / "scores-start.json").exists():
            (target / "scores-start.json").unlink()  # from an earlier start of this run: not this one's
        for name, source in sources.items():
            replace_atomically(target / name, lambda tmp: shutil.copyfile(source, tmp))
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
    equal bests), its epoch and update, the run's epochs and updates, and a flag where the best falls
    in the run's last 10% of updates. Updates, not epochs: a run that validates within epochs
    (``--validate-interval-updates``, as the fine-tuning runs do) can pick a checkpoint late in an
    early epoch, and its last epoch may be cut short by ``--max-update``."""
    rows = []
    for log in sorted(results.glob("*/seed*/train.log")):
        best = None  # (value, epoch, updates)
        epochs = updates = 0
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            value, epoch = VALID_LINE.search(line), VALID_EPOCH.search(line)
            if value and epoch:
                epochs, updates = max(epochs, int(epoch.group(1))), max(updates, int(value.group(3)))
                if best is None or float(value.group(2)) >= best[0]:
                    best = (float(value.group(2)), int(epoch.group(1)), int(value.group(3)))
        if best is not None:
            late = "yes" if best[2] > LATE * updates else "no"
            rows.append(f"| {log.parent.parent.name} | {log.parent.name[4:]} | {best[0]:.2f} | {best[1]} | {best[2]} "
                        f"| {epochs} | {updates} | {late} |")
    if not rows:
        return ""
    return ("\nValidation picks (the tested checkpoint of each run):\n\n"
            "| algorithm | seed | best validation | at epoch | at update | epochs | updates | in the last 10% |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def mean_std_cell(values: List[float], signed: bool = False) -> str:
    """"mean ± sample std" over seeds; one seed has no spread, so its score stands alone."""
    number = "%+.2f" if signed else "%.2f"
    if len(values) == 1:
        return number % values[0]
    return (number + " ± %.2f") % (statistics.mean(values), statistics.stdev(values))


def gain_over_start_cell(runs: List[dict], starts: Dict[str, dict], main: str) -> str:
    """A fine-tuning row's gain over the models its runs started from, seed by seed; n/a unless every
    seed's start is known (a mean over some seeds would not be the row's)."""
    if not all(run["_seed"] in starts and main in starts[run["_seed"]] and main in run for run in runs):
        return "n/a"
    return mean_std_cell([run[main] - starts[run["_seed"]][main] for run in runs], signed=True)


def paper_columns(algo: str, ours: Dict[str, float], paper: Dict[str, Tuple[float, float]]) -> List[str]:
    """Our gain over MLE, the paper's number and the paper's gain over MLE for one row."""
    gain = "%+.2f" % (ours[algo] - ours["mle"]) if "mle" in ours else "n/a"
    row = paper.get(PAPER_ROW.get(algo, algo))
    if row is None:
        return [gain, "n/a", "n/a"]
    return [gain, "%.2f ± %.2f" % row, "%+.2f" % (row[0] - paper["mle"][0])]


def read_scores(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:  # never half-written (evaluate.sh renames it into place)
        raise SystemExit(f"{path}: not a scores file ({err}); rerun scripts/evaluate.sh for that run") from None


def start_lines(starts: Dict[str, Dict[str, dict]], main: str, name: str) -> str:
    """Below a fine-tuning table: the models the runs started from (one per seed), their score."""
    if not starts:
        return ""
    by_seed: Dict[str, set] = {}
    for runs in starts.values():
        for seed, record in runs.items():
            if main in record:
                by_seed.setdefault(seed, set()).add(record[main])
    seeds = sorted(by_seed, key=int)
    values = [min(by_seed[seed]) for seed in seeds]
    differ = [seed for seed in seeds if len(by_seed[seed]) > 1]
    warning = f" Seed {', '.join(differ)}: the rows started from different models." if differ else ""
    return (f"\nFine-tuning: each run started from its seed's model (seeds {', '.join(seeds)}; test {name} "
            f"{mean_std_cell(values)}). \"vs start\" is each run's gain over its own start, mean ± std over "
            f"seeds; the `mle` row is MLE continued for the same updates, so \"vs MLE\" is the gain over MLE "
            f"continued.{warning}\n")


def table(results: Path) -> Tuple[str, Dict[str, List[dict]]]:
    scores: Dict[str, List[dict]] = {}
    starts: Dict[str, Dict[str, dict]] = {}  # algorithm -> seed -> the start model's scores (fine-tuning)
    for path in sorted(results.glob("*/seed*/scores-test.json")):
        algo, seed = path.parent.parent.name, path.parent.name[4:]
        scores.setdefault(algo, []).append(read_scores(path))
        if (path.parent / "scores-start.json").exists():
            starts.setdefault(algo, {})[seed] = read_scores(path.parent / "scores-start.json")
        scores[algo][-1]["_seed"] = seed
    order = [a for a in PAPER_ORDER if a in scores] + sorted(a for a in scores if a not in PAPER_ORDER)
    summarization, main, main_name, paper = main_metric(scores)
    if summarization:
        # rouge-score credits <unk> = <unk>; without that credit, as validation scores (score_generate.py)
        head = ("| algorithm | seeds | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-L, no `<unk>` credit | ROUGE-L vs MLE "
                "| paper ROUGE-L (Table 2) | paper vs MLE |\n|---|---|---|---|---|---|---|---|---|\n")
        keys = ("rouge1", "rouge2", "rougeL", "rougeL_no_unk_credit")
    else:
        head = ("| algorithm | seeds | test BLEU (tokenized, multi-bleu) | detokenized sacrebleu | BLEU vs MLE "
                "| paper BLEU (Table 1, IWSLT14) | paper vs MLE |\n|---|---|---|---|---|---|---|\n")
        keys = ("bleu", "sacrebleu")
    if starts:  # a fine-tuning table: each run's gain over the model it started from
        head = head.replace(" vs MLE |", " vs MLE | vs start |", 1).replace("|---|\n", "|---|---|\n", 1)
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
        if starts:  # after "vs MLE"
            cells.insert(len(keys) + 1, gain_over_start_cell(scores[algo], starts.get(algo, {}), main))
        rows.append(f"| {algo} | {len(scores[algo])} | " + " | ".join(cells) + " |")
    ours = sorted(means, key=means.get, reverse=True)
    theirs = sorted({a for a in ours if PAPER_ROW.get(a, a) in paper}, key=lambda a: paper[PAPER_ROW.get(a, a)][0],
                    reverse=True)
    orderings = (f"\nOrdering by mean {main_name}, best first. Ours: {' > '.join(ours)}. "
                 f"The paper's, same algorithms: {' > '.join(theirs)}.\n") if ours else ""
    return head + "\n".join(rows) + "\n" + orderings + start_lines(starts, main, main_name), scores


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


def main_metric(scores: Dict[str, List[dict]]) -> Tuple[bool, str, str, Dict[str, Tuple[float, float]]]:
    """(summarization?, the scores' key of the main metric, its name, the paper's table of it):
    ROUGE-L and Table 2 for summarization scores, else BLEU and Table 1."""
    if any("rouge1" in s for runs in scores.values() for s in runs):
        return True, "rougeL", "ROUGE-L", PAPER_ROUGE_L
    return False, "bleu", "BLEU", PAPER_BLEU


def gains_over_mle(scores: Dict[str, List[dict]]) -> Tuple[str, List[Tuple[str, int, float, float, Optional[float]]]]:
    """The main metric's name and, per algorithm but MLE (the paper's order): its seeds, our gain over
    MLE's mean, the sample std over its seeds (0 for one seed), and the paper's gain (None where the
    paper has no such row); no rows without an MLE score."""
    _, main, name, paper = main_metric(scores)
    values = {algo: [s[main] for s in runs if main in s] for algo, runs in scores.items()}
    if not values.get("mle"):
        return name, []
    mle = statistics.mean(values["mle"])
    algos = [a for a in PAPER_ORDER if a != "mle" and values.get(a)] + sorted(
        a for a in values if a not in PAPER_ORDER and values[a])
    return name, [(a, len(values[a]), statistics.mean(values[a]) - mle,
                   statistics.stdev(values[a]) if len(values[a]) > 1 else 0.0,
                   paper[PAPER_ROW.get(a, a)][0] - paper["mle"][0] if PAPER_ROW.get(a, a) in paper else None)
                  for a in algos]


def plot_gains(scores: Dict[str, List[dict]], out: Path) -> bool:
    """Our gains over MLE (a bar spanning the seeds' std) beside the paper's: for summarization the
    paper's Figure 4. False, drawing nothing, without an MLE row or another algorithm."""
    name, rows = gains_over_mle(scores)
    if not rows:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    ys = list(range(len(rows)))
    ax.barh([y - 0.2 for y in ys], [r[2] for r in rows], height=0.4, xerr=[r[3] for r in rows],
            label="ours (mean; the line: the seeds' std)", color="tab:blue")
    ax.barh([y + 0.2 for y in ys], [0.0 if r[4] is None else r[4] for r in rows], height=0.4,
            label="the paper", color="tab:orange")
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{r[0]} ({r[1]} seeds)" + ("" if r[4] is not None else ", not in the paper")
                        for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"test {name} gain over MLE")
    ax.grid(axis="x", alpha=0.3)
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
    if plot_gains(scores, args.results / "gain-over-mle.png"):
        print(f"wrote {args.results / 'gain-over-mle.png'}")


if __name__ == "__main__":
    main()
