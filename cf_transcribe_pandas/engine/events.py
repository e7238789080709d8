"""The events a run hands to its ``on_event`` hook: retries, rate changes, finished rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cf_transcribe_pandas.errors import TranscribeError

__all__ = ["Event", "RateChange", "RetryDetails", "RowDone"]


@dataclass(frozen=True)
class RetryDetails:
    """A request is about to be sent again.

    Attributes:
        row: Position of the row in the input (0-based, not the index label).
        label: The row's audio, as shown in messages.
        attempt: 1 for the first retry, 2 for the second, ...
        delay: Seconds waited before the retry.
        error: What went wrong.
    """

    row: int
    label: str
    attempt: int
    delay: float
    error: TranscribeError


@dataclass(frozen=True)
class RateChange:
    """The adaptive send rate moved.

    Attributes:
        old: The previous rate, in requests/minute.
        new: The rate now, in requests/minute.
    """

    old: float
    new: float


@dataclass(frozen=True)
class RowDone:
    """A row finished.

    Attributes:
        row: Position of the row in the input (0-based, not the index label).
        status: ``"ok"`` (transcribed now), ``"cached"`` (from the cache),
            ``"failed"`` (see ``error``) or ``"skipped"`` (NA audio).
        error: The row's error when ``status`` is ``"failed"``.
    """

    row: int
    status: Literal["ok", "cached", "failed", "skipped"]
    error: TranscribeError | None = None


Event = RetryDetails | RateChange | RowDone
"""What ``on_event`` hooks receive."""
