"""Where training is, for criterions whose behaviour follows a schedule (scheduled sampling, MIXER).

fairseq never hands a criterion the update number or the epoch: the update count is read from the
root ``num_updates`` meter the trainer logs on every update (any task), the epoch, the update
it began with and the current update from ``--task erpo_translation``, which records them in
``begin_epoch`` and ``train_step``.
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


def updates_into_epoch(task) -> int:
    """Updates done in the current epoch before the current one (0 at the epoch's first update)."""
    first, current = getattr(task, "epoch_first_update", None), getattr(task, "update_num", None)
    if first is None or current is None:
        raise RuntimeError(f"{type(task).__name__} has not recorded the first update of this epoch: the "
                           "count within an epoch needs --task erpo_translation's train_step")
    return current - first
