"""fairseq-erpo: entropy-regularized policy optimization (Tan et al., 2019) for fairseq.

``fairseq-train --user-dir fairseq_erpo`` imports this package, which registers every component
with fairseq's registries and applies the version shims in :mod:`fairseq_erpo.compat`.
"""
from . import compat

compat.apply()

from . import criterions, models, rewards, tasks  # noqa: E402,F401  (registration side effects)

__version__ = "0.1.0"
