"""What a run uses besides its options: resolved by the caller before any work."""

from __future__ import annotations

from dataclasses import dataclass, field

from cf_transcribe_pandas.cache import Cache
from cf_transcribe_pandas.client import Credentials
from cf_transcribe_pandas.engine.pacing import Limiter

__all__ = ["RunContext"]


@dataclass(frozen=True)
class RunContext:
    """The account, the cache and the pacing of one run.

    The options (:class:`~cf_transcribe_pandas.options.TranscribeOptions`) say what
    to do; this says with what: the caller resolves the credentials and opens the
    cache once, and Dask hands every partition the cluster's shared limiter.

    Attributes:
        credentials: Account, token and base URL.
        cache: Where finished rows are kept, or None.
        limiter: A shared rate limiter (Dask); default: one for the run.
        backoff_base: First step of the retry layer's exponential backoff, seconds.
        backoff_cap: Largest backoff, seconds.
    """

    credentials: Credentials
    cache: Cache | None = None
    limiter: Limiter | None = field(default=None, compare=False)
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
