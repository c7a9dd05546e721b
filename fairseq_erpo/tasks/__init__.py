"""Tasks: ``erpo_translation`` (sampling before the loss, validation reward, lambda annealing)."""
from . import erpo_translation  # noqa: F401  (registration side effects)
