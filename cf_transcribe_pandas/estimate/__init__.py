"""What a transcription run would send and cost, found without sending anything.

:func:`estimate` looks at every row the way a run would, but only cheaply::

    rows -> to_source -> audio.probe (headers: format, duration, size)
         -> sha256 (or the cache's path memo) -> cache key per row
         -> dedupe by key -> cache lookup -> plan the parts of each row to send

and returns an :class:`Estimate`: rows, audio minutes, upload bytes, requests
(after re-encoding, splitting, dedupe and the cache), the expected cost at a
per-minute price and the expected wall time at the rate limit.

It is an estimate, not a promise:

* Probing reads headers, not every sample, so a file that is corrupt past its
  header counts as readable here and fails in the run.
* The size of re-encoded audio is estimated at
  :data:`REENCODED_BYTES_PER_SECOND` (measured on real speech).
* A part whose transcript comes back near the model's 2,000-token output cap
  is split in two and sent again during the run; nobody can know that before.
* Wall time is the rate limit's bound (requests / rate limit). Each request
  also takes the service's latency, and the parts of one split recording go
  one after another, so a small run takes longer than this.

Modules: ``dry_run.py`` (:func:`estimate`, the arguments, keys and dedupe),
``probe.py`` (headers and hashes in a thread pool), ``parts.py`` (send as
is, re-encode or split), ``result.py`` (:class:`Estimate` and the tally),
``prices.py``, ``units.py`` (numbers for people), ``compare.py`` (several
models' estimates of the same rows, ``compare_models=True``). Nothing here imports pandas
at module level except for :meth:`Estimate.to_frame`; the ``df.cfai.estimate``
accessor method is a thin wrapper in ``accessor.py``.
"""

from cf_transcribe_pandas.estimate.compare import ModelComparison
from cf_transcribe_pandas.estimate.dry_run import estimate
from cf_transcribe_pandas.estimate.parts import REENCODED_BYTES_PER_SECOND
from cf_transcribe_pandas.estimate.prices import (
    DEFAULT_PRICE_PER_MINUTE,
    PRICE_SOURCE,
    PRICES_PER_MINUTE,
)
from cf_transcribe_pandas.estimate.result import Estimate, RowStatus
from cf_transcribe_pandas.estimate.units import format_bytes

__all__ = [
    "DEFAULT_PRICE_PER_MINUTE",
    "PRICES_PER_MINUTE",
    "PRICE_SOURCE",
    "REENCODED_BYTES_PER_SECOND",
    "Estimate",
    "ModelComparison",
    "RowStatus",
    "estimate",
    "format_bytes",
]
