"""Criterions: each a thin preset over the shared sampler (:mod:`fairseq_erpo.sampling`)."""
from . import data_noising, erpo, interpolation, mixer, raml, risk, scheduled_sampling, spg  # noqa: F401  (registration side effects)
