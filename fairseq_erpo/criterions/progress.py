"""Where training is, for criterions whose behaviour follows a schedule (scheduled sampling, MIXER).

fairseq never hands a criterion the update number or the epoch: the update count is read from the
root ``num_updates`` meter the trainer logs on every update (any task), the epoch from
``--task erpo_translation``, which records it in ``begin_epoch``.
"""
from typing import Optional

from fairseq.logging import metrics


def num_updates() -> int:
    """The trainer's update count (0 before the first update)."""
    meter = metrics.get_meter("default", "num_updates")
    return int(meter.val) if meter is not None and meter.val is not None else 0


def current_epoch(task) -> Optional[int]:
    """The 1-based training epoch, or None when the task does not record it."""
    epoch = getattr(task, "epoch", None)
    return int(epoch) if epoch is not None else None
