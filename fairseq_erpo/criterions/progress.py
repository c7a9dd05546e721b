"""Where training is, for criterions whose behaviour follows a schedule (scheduled sampling, MIXER),
and where such a criterion keeps what must survive a resume (MIXER's running-mean baseline).

Everything here comes from what fairseq hands over or from checkpointed state, so that a run resumed
from a checkpoint (after a crash, or with ``--restore-file``) continues exactly as the uninterrupted
run would:

* the update number: ``--task erpo_translation`` records the ``update_num`` fairseq passes to
  ``train_step``. Under any other task it is read off fairseq's per-update seed: at the start of every
  update the trainer seeds torch with ``--seed`` + the update count (``Trainer._set_seed``, fairseq's
  own way of making a resumed run replay the same dropout), so ``torch.initial_seed() - seed`` is the
  update count, restored with the optimizer history on resume;
* the epoch and the update it began with: recorded by ``erpo_translation`` (``begin_epoch`` and its
  checkpointed task state);
* criterion state: entries of ``erpo_translation``'s task state, which fairseq saves in every
  checkpoint and the task restores on resume. fairseq's own tasks save their state but do not read it
  back when training resumes, so a criterion that keeps state refuses them at start-up.

Not fairseq's ``num_updates`` meter: on resume ``metrics.load_state_dict`` installs a new meter set
that the trainer no longer writes to, so a reader of the meter saw the checkpoint's count forever.
"""
from typing import Any, Optional

import torch


def update_number(task, seed: int) -> int:
    """The number of the update being computed: 0 for the first, the trainer's count before it."""
    recorded = getattr(task, "update_num", None)
    if recorded is not None:
        return int(recorded)
    count = torch.initial_seed() - int(seed)
    if count < 0:
        raise RuntimeError(f"the update count comes from fairseq's per-update seed (--seed {seed} + updates), "
                           f"but torch's seed is {torch.initial_seed()}: train through fairseq's Trainer, or "
                           "use --task erpo_translation, which records the update number")
    return count


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


def restores_state(task) -> bool:
    """Whether ``task`` gives its state back on resume (``--task erpo_translation`` does)."""
    return bool(getattr(task, "restores_state", False))


def saved_value(task, key: str) -> Any:
    """A criterion's entry of the task's checkpointed state (None when absent)."""
    return task.state.state_dict.get(key)


def save_value(task, key: str, value: Any) -> None:
    """Keep ``value`` (plain data) in the task's checkpointed state under ``key``."""
    task.state.merge_state_dict({key: value})
