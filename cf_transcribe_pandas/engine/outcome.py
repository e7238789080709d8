"""What one row ends with, and the row errors the engine makes itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cf_transcribe_pandas.cache import Hit
from cf_transcribe_pandas.errors import TranscribeError, redact

__all__ = ["Hit", "Outcome", "unexpected", "with_label"]

logger = logging.getLogger("cf_transcribe_pandas")


@dataclass(frozen=True)
class Outcome:
    """A sent row's outcome: its text, or its error.

    Attributes:
        text: The transcript, or None when the row failed.
        error: Why the row failed, or None.
        duration: Seconds of audio, when known (the model's own count when it says).
        model: The model that answered.
        language: The language the model detected, when it says.
        segments: Timed segments (``timestamps=``), in seconds into the recording.
    """

    text: str | None
    error: TranscribeError | None = None
    duration: float | None = None
    model: str | None = None
    language: str | None = None
    segments: list[dict[str, Any]] | None = None


def unexpected(exc: Exception, label: str, secret: str) -> TranscribeError:
    """A row's error for an exception outside the error tree: a bug, logged in full.

    Args:
        exc: The exception.
        label: The row's audio, as shown in messages.
        secret: The API token, kept out of the message.
    """
    what = redact(f"{type(exc).__name__}: {str(exc)[:300]}", secret)
    logger.error("%s: unexpected %s; the row failed", label, what, exc_info=exc)
    return TranscribeError(
        f"{label}: unexpected {what} (a bug in cf-transcribe-pandas or a library it uses; "
        "please report it with the log)",
        code="internal_error",
    )


def with_label(exc: TranscribeError, label: str) -> TranscribeError:
    """``exc``, its message starting with the row's ``label`` when it does not name it."""
    if label and label not in exc.message:
        return type(exc)(
            f"{label}: {exc.message}", code=exc.code, status=exc.status, retry_after=exc.retry_after
        )
    return exc
