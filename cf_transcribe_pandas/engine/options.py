"""The options of one run (built and validated by the accessor)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from cf_transcribe_pandas.audio import DEFAULT_MAX_PART_SECONDS, EncodeMode
from cf_transcribe_pandas.cache import Cache
from cf_transcribe_pandas.client import Credentials, Gateway
from cf_transcribe_pandas.engine.events import Event
from cf_transcribe_pandas.engine.pacing import Limiter

__all__ = ["RunOptions"]


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs besides the rows; built and validated by the accessor.

    Attributes:
        credentials: Account, token and base URL.
        model: The Workers AI model.
        temperature: Sent when not None.
        errors: ``"raise"`` or ``"coerce"``.
        cache: Where finished rows are kept, or None.
        concurrency: Most requests in flight.
        rate_limit: Requests per minute (the token bucket's rate).
        max_retries: Retries of 5xx, 408, resets and timeouts.
        timeout: Seconds for one request.
        progress: Show a tqdm bar.
        gateway: AI Gateway options.
        encode: How audio is prepared (see :func:`audio.prepare`).
        max_part_seconds: Longer audio is split.
        fetch_urls: Download https URLs instead of passing them through.
        row_deadline: Seconds a row keeps retrying 429/3040 answers.
        max_bytes_in_flight: Cap on the memory held for requests at once, counted
            as 4 times each file's size (the bytes, their data URI, the JSON
            body); one file larger than the cap still goes.
        on_event: Hook called (on the run's event loop thread) with every event.
        limiter: A shared rate limiter (Dask); default: one per run.
        backoff_base: First step of the exponential backoff, seconds.
        backoff_cap: Largest backoff, seconds.
    """

    credentials: Credentials
    model: str
    temperature: float | None = None
    errors: Literal["raise", "coerce"] = "raise"
    cache: Cache | None = None
    concurrency: int = 64
    rate_limit: float = 720.0
    max_retries: int = 6
    timeout: float = 300.0
    progress: bool = True
    gateway: Gateway | None = None
    encode: EncodeMode = "auto"
    max_part_seconds: float = DEFAULT_MAX_PART_SECONDS
    fetch_urls: bool = False
    row_deadline: float = 600.0
    max_bytes_in_flight: int = 96 * 1024 * 1024
    on_event: Callable[[Event], None] | None = None
    limiter: Limiter | None = field(default=None, compare=False)
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
