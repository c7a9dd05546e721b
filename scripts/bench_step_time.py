#!/usr/bin/env python3
"""Time per update of each criterion divided by fairseq's ``cross_entropy``, measured side by side
in one run on the same batches (a benchmark, not a test).

Setting: the paper's LSTM preset (``lstm_erpo_iwslt_de_en``), Adam, batches of 64 real IWSLT14
de-en training sentences (``../shared/data/iwslt14-de-en/train-partial``), on the CPU or, with
``--device cuda``, on a GPU (each timing then waits for the GPU's queued work: ``cuda.synchronize``). The
dictionaries are built from those sentences and padded with unused symbols to the paper's
vocabulary sizes (32K German, 23K English) so that the output layer costs what it costs in the
paper's setup. Each batch is trained by every criterion in turn (each with its own model and
optimizer, all starting from the same weights), --repeats times from the same weights and optimizer
state (so the same samples and the same work), and each criterion keeps its fastest update on that
batch (a busy machine only adds time). Ratios are taken per batch against
cross_entropy's update on the same batch, then the median over batches is reported: per update and
per target token (samples from an untrained model may run longer than the references, up to
--max-len-b more tokens, which the M-step then also trains on).

    python scripts/bench_step_time.py [--batches 12] [--repeats 2] [--threads 2] [--only raml mixer]
                                      [--device cpu|cuda]

risk's rows run by default only with --batch-size 16 or less (its candidates' memory; see
RISK_MAX_DEFAULT_BATCH): python scripts/bench_step_time.py --only risk --batch-size 16
"""
import argparse
import copy
import logging
import math
import os
import statistics
import sys
import time
from types import SimpleNamespace
from typing import List, Optional

import torch

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "iwslt14-de-en",
                            "train-partial")
CRITERIONS = {
    "cross_entropy": {},
    "erpo (delta, a=0, b=1: MLE)": {"_name": "erpo", "reward": "delta", "alpha": 0.0, "beta": 1.0},
    "interpolation (0.04,0,0.96)": {"_name": "interpolation"},
    "interpolation (0.3,0.3,0.4)": {"_name": "interpolation", "lambdas": "0.3,0.3,0.4"},
    "spg (bang-bang: W 1e6, drop 0.2)": {"_name": "spg", "bang_bang_weight": 1e6, "bang_bang_drop": 0.2},
    "spg (plain Eq. 4: W 1, drop 0)": {"_name": "spg", "bang_bang_weight": 1.0, "bang_bang_drop": 0.0},
    "data_noising (unigram)": {"_name": "data_noising"},
    "scheduled_sampling (eps 0.5)": {"_name": "scheduled_sampling", "ss_schedule": "constant", "ss_eps": 0.5},
    "raml (10 samples)": {"_name": "raml"},
    "raml (10 samples, resample 1)": {"_name": "raml", "raml_resample": 1},
    # the benchmark runs in epoch 2: the last 6 tokens (a third of a median IWSLT sentence) by REINFORCE
    "mixer (last 6 tokens)": {"_name": "mixer", "mixer_delta": 6},
    "mixer (every token)": {"_name": "mixer", "mixer_delta": 1000},
    # minimum risk training as train.sh risk runs it (Edunov et al.: 16 candidates, NLL weight 0.5);
    # its tokens are the references' plus the candidates' (each candidate gets a forward and backward)
    "risk (16 beam candidates)": {"_name": "risk", "risk_candidates": 16, "risk_generation": "beam",
                                  "risk_nll_weight": 0.5},
    "risk (16 samples)": {"_name": "risk", "risk_candidates": 16, "risk_generation": "sample", "risk_nll_weight": 0.5},
}
# risk's K candidates per source each get the output layer's [tokens, V] log-probabilities and their
# gradients: at 64 sentences, K = 16 and V = 23K that exceeds the project's 24 GB (killed at 21.7 GB;
# 16 sentences peaked at 5.5 GB), so its rows run by default only at batches this small
RISK_MAX_DEFAULT_BATCH = 16
# per target token, relative to cross_entropy (the E-step speed issue: sampling criterions within 1.35x,
# scheduled sampling no slower than its 1.21x before that issue, data noising within 1.1x)
TARGETS = {"interpolation": 1.35, "spg (bang-bang": 1.35, "mixer": 1.35, "raml (10 samples)": 1.35, "data_noising": 1.1,
           "scheduled_sampling": 1.21}


def build_dictionary(path, size):
    from fairseq.data import Dictionary
    d = Dictionary()
    for line in open(path, encoding="utf-8"):
        for word in line.split():
            d.add_symbol(word)
    d.finalize(threshold=1)
    for i in range(size - len(d)):  # unused symbols up to the paper's vocabulary size
        d.add_symbol(f"<bench-unused-{i}>", n=1)
    return d


def make_batches(src_dict, tgt_dict, data, n_batches, bsz):
    from fairseq.data import LanguagePairDataset
    src = [src_dict.encode_line(line, add_if_not_exist=False).long()
           for line in open(os.path.join(data, "train.de"), encoding="utf-8")]
    tgt = [tgt_dict.encode_line(line, add_if_not_exist=False).long()
           for line in open(os.path.join(data, "train.en"), encoding="utf-8")]
    keep = [i for i in range(len(src)) if len(src[i]) <= 51 and len(tgt[i]) <= 51]
    dataset = LanguagePairDataset([src[i] for i in keep], [len(src[i]) for i in keep], src_dict,
                                  [tgt[i] for i in keep], [len(tgt[i]) for i in keep], tgt_dict)
    order = dataset.ordered_indices()  # fairseq's length-sorted order, as in training
    chunks = [order[i:i + bsz] for i in range(0, len(order) - bsz + 1, bsz)]
    gen = torch.Generator().manual_seed(0)
    picks = torch.randperm(len(chunks), generator=gen)[:n_batches].tolist()
    return [dataset.collater([dataset[int(j)] for j in chunks[p]]) for p in picks]


def build_model(src_dict, tgt_dict):
    from fairseq.models import ARCH_CONFIG_REGISTRY
    from fairseq.models.lstm import LSTMModel
    args = argparse.Namespace(max_source_positions=1024, max_target_positions=1024, criterion="cross_entropy")
    ARCH_CONFIG_REGISTRY["lstm_erpo_iwslt_de_en"](args)
    return LSTMModel.build_model(args, SimpleNamespace(source_dictionary=src_dict, target_dictionary=tgt_dict))


def build_criterion(spec, task):
    from fairseq.criterions import build_criterion as fairseq_build
    from fairseq_erpo.compat import criterion_config
    fields = {key: value for key, value in spec.items() if key != "_name"}
    return fairseq_build(criterion_config(spec.get("_name", "cross_entropy"), **fields), task)


def selected(label: str, only: Optional[List[str]], batch_size: int) -> bool:
    """Whether the row ``label`` runs: cross_entropy always; with --only, the rows it names; without,
    every row but risk's above RISK_MAX_DEFAULT_BATCH sentences per batch."""
    if label == "cross_entropy":
        return True
    if only:
        return any(label.startswith(prefix) for prefix in only)
    return not label.startswith("risk") or batch_size <= RISK_MAX_DEFAULT_BATCH


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2,
                        help="updates per batch and criterion; the fastest is kept (robust to a noisy machine)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--src-vocab", type=int, default=32000)
    parser.add_argument("--tgt-vocab", type=int, default=23000)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the models train; cuda times each update after torch.cuda.synchronize()")
    parser.add_argument("--only", nargs="*", default=None,
                        help="criterions whose label starts with one of these (cross_entropy always runs)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device (torch.cuda.is_available() is False); use --device cpu")
    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    import fairseq_erpo  # noqa: F401  (registers the criterions)

    src_dict = build_dictionary(os.path.join(args.data, "train.de"), args.src_vocab)
    tgt_dict = build_dictionary(os.path.join(args.data, "train.en"), args.tgt_vocab)
    from fairseq.tasks.fairseq_task import StatefulContainer
    batches = make_batches(src_dict, tgt_dict, args.data, args.batches + 1, args.batch_size)
    device = torch.device(args.device)
    if device.type == "cuda":
        from fairseq.utils import move_to_cuda
        batches = [move_to_cuda(batch) for batch in batches]

    def clock() -> float:  # on a GPU, the time once every queued kernel has run
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    torch.manual_seed(1)
    base = build_model(src_dict, tgt_dict).to(device)
    from fairseq_erpo.sampling import linear_output_projection
    # what the criterions read from --task erpo_translation: the epoch (MIXER's schedule), the
    # checkpointed state (MIXER's running-mean baseline) and the decoder's feature size (MIXER's
    # learned baseline, which the task records when it builds the model)
    task = SimpleNamespace(source_dictionary=src_dict, target_dictionary=tgt_dict, anneals_lambdas=True, epoch=2,
                           restores_state=True, state=StatefulContainer(),
                           decoder_feature_dim=int(linear_output_projection(base)[0].size(1)))
    runs = {}
    skipped_risk = False
    for label, spec in CRITERIONS.items():
        if not selected(label, args.only, args.batch_size):
            skipped_risk = skipped_risk or (label.startswith("risk") and not args.only)
            continue
        model = copy.deepcopy(base).train()
        criterion = build_criterion(spec, task).to(device)
        # fairseq's trainer optimizes the criterion's own parameters too (MIXER's learned baseline)
        parameters = list(model.parameters()) + list(criterion.parameters())
        runs[label] = (model, criterion, torch.optim.Adam(parameters, lr=1e-3), [], [], [])
    floor_times = []  # the E-step's floor: one no-grad forward of the model over the batch's tokens
    for k, batch in enumerate(batches):
        # each batch is trained --repeats times by every criterion in turn, and each criterion keeps
        # its fastest repeat: interference from the rest of the machine only ever adds time
        best = {}
        floor = math.inf
        # every repeat starts from the same weights and optimizer state: the same samples, the same work
        saved = {label: [copy.deepcopy(part.state_dict()) for part in run[:3]]
                 for label, run in runs.items()} if args.repeats > 1 else {}
        for repeat in range(args.repeats):
            for label, (model, criterion, optimizer, _, _, _) in runs.items():
                if repeat > 0:
                    for part, state in zip((model, criterion, optimizer), saved[label]):
                        part.load_state_dict(state)
                torch.manual_seed(k)
                start = clock()
                optimizer.zero_grad()
                loss, _, log = criterion(model, batch)
                loss.backward()
                optimizer.step()
                seconds = clock() - start
                if label not in best or seconds < best[label][0]:
                    # target tokens trained on: the samples' (they may be longer), RAML's 10 (or
                    # resampled M) per reference
                    per_ref = (criterion.cfg.raml_resample or criterion.cfg.raml_samples) \
                        if label.startswith("raml") else 1
                    # risk: the references' NLL and the K candidates per source it scores
                    trained = int(log["ntokens"]) * per_ref + int(log.get("candidate_tokens", 0))
                    best[label] = (seconds, log.get("sample_time"), trained)
            model = runs["cross_entropy"][0].eval()
            start = clock()
            with torch.no_grad():
                model(**batch["net_input"])
            floor = min(floor, clock() - start)
            model.train()
        if k > 0:  # the first batch warms up allocators and the compiled kernels
            for label, (_, _, _, times, sample_times, tokens) in runs.items():
                times.append(best[label][0])
                sample_times.append(best[label][1])
                tokens.append(best[label][2])
            floor_times.append(floor)
    ntok = statistics.median(int(b["ntokens"]) for b in batches[1:])
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"torch {torch.__version__}, {where}; LSTM preset, vocab {len(src_dict)} / {len(tgt_dict)}; "
          f"{args.batches} batches of {args.batch_size} IWSLT14 sentences (median {ntok} target tokens), the "
          f"fastest of {args.repeats} updates per batch")
    if skipped_risk:
        print(f"risk rows skipped: at {args.batch_size} sentences per batch its 16 candidates per source "
              f"outgrow the memory of a 24 GB machine; run them with --only risk --batch-size "
              f"{RISK_MAX_DEFAULT_BATCH} (or name them in --only to run them at this size)")
    ce_times, ce_tokens = runs["cross_entropy"][3], runs["cross_entropy"][5]
    floor = statistics.median(f / t for f, t in zip(floor_times, ce_times))
    print(f"E-step floor (one no-grad forward over the same tokens) = {floor:.2f} of an MLE update, so a "
          f"sampling criterion costs >= {1 + floor:.2f}x cross_entropy per target token")
    print(f"{'criterion':34} {'s/update':>8} {'E-step s':>8} {'E / M':>6} {'tokens':>6} {'per update':>10} "
          f"{'per token':>9} {'target':>8}")
    for label, (_, _, _, times, sample_times, tokens) in runs.items():
        med = statistics.median(times)
        # ratios per batch, each against cross_entropy's update on the same batch moments before
        # (the machine's speed drifts between batches; a ratio of medians would carry the drift)
        per_update = statistics.median(t / c for t, c in zip(times, ce_times))
        per_token = statistics.median((t / n) / (c / m) for t, n, c, m in zip(times, tokens, ce_times, ce_tokens))
        target = next((v for k, v in TARGETS.items() if label.startswith(k)), None)
        verdict = "" if target is None else f"<= {target}x" + ("" if per_token <= target else " MISSED")
        timed = [e for e in sample_times if e is not None]
        e_step = f"{statistics.median(timed):8.3f}" if timed else f"{'-':>8}"
        # E / M: the E-step's time over the rest of the update (forward, backward, optimizer)
        ratio = f"{statistics.median(e / (t - e) for e, t in zip(timed, times)):6.2f}" if timed else f"{'-':>6}"
        print(f"{label:34} {med:8.3f} {e_step} {ratio} {statistics.median(tokens):6.0f} {per_update:9.2f}x "
              f"{per_token:8.2f}x {verdict}")


if __name__ == "__main__":
    sys.exit(main())
