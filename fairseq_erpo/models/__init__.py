"""Architecture presets on fairseq's own models (no model code of our own)."""
from . import lstm_erpo  # noqa: F401  (registers the presets)
