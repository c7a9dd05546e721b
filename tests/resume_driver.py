"""fairseq-train, recording what every update drew and computed, for the resume tests.

    python tests/resume_driver.py RECORD_FILE [fairseq-train arguments...]

Runs fairseq's own training entry point (``fairseq_cli.train.cli_main``) unchanged, after wrapping
the functions that draw random targets or decoder inputs (the shared sampler, RAML's samplers,
scheduled sampling's model tokens, the risk criterion's candidate sets) so that each update
appends one JSON line to RECORD_FILE:
``{"update": n, "draws": [sha1 of each drawn tensor], "loss": exact loss as float.hex()}``.

With ``ERPO_KILL_AT_UPDATE=K`` the process sends itself SIGKILL as update K begins (after updates
0..K-1 completed and were recorded): a real ``kill -9`` at a deterministic point, never in the
middle of a checkpoint write.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import sys

import torch


def digest(tensor: torch.Tensor) -> str:
    return hashlib.sha1(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def main() -> None:
    record_path, args = sys.argv[1], sys.argv[2:]
    kill_at = int(os.environ.get("ERPO_KILL_AT_UPDATE", "-1"))
    sys.argv = ["fairseq-train", *args]

    import fairseq_erpo  # noqa: F401  (registers the criterions before they are wrapped)
    from fairseq.tasks.fairseq_task import FairseqTask
    from fairseq_cli import train
    from fairseq_erpo.criterions.raml import RamlCriterion
    from fairseq_erpo.criterions.risk import RiskCriterion
    from fairseq_erpo.criterions.scheduled_sampling import ScheduledSamplingCriterion
    from fairseq_erpo.sampling import SequenceSampler

    draws: list = []

    def recording(cls, name, pick=lambda out: out):
        original = getattr(cls, name)

        @functools.wraps(original)
        def wrapper(*a, **kw):
            out = original(*a, **kw)
            draws.append(f"{cls.__name__}.{name}:{digest(pick(out))}")
            return out
        setattr(cls, name, wrapper)

    recording(SequenceSampler, "sample", lambda drawn: drawn.sample["target"])
    recording(RamlCriterion, "draw_targets")
    recording(RamlCriterion, "resample", lambda out: out[0])
    recording(ScheduledSamplingCriterion, "model_tokens")
    recording(RiskCriterion, "candidates")

    train_step = FairseqTask.train_step

    @functools.wraps(train_step)
    def recorded_train_step(self, sample, model, criterion, optimizer, update_num, *a, **kw):
        if update_num == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        loss, sample_size, log = train_step(self, sample, model, criterion, optimizer, update_num, *a, **kw)
        with open(record_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"update": int(update_num), "draws": list(draws),
                                "loss": float(loss.detach()).hex()}) + "\n")
        draws.clear()
        return loss, sample_size, log

    FairseqTask.train_step = recorded_train_step
    train.cli_main()


if __name__ == "__main__":
    main()
