"""Transcribe a pandas column of audio with Cloudflare Workers AI.

The exceptions, and what the library does with each Workers AI error code (stop
the run, fail the row, or retry), are tabled in :mod:`cf_transcribe_pandas.errors`.
"""

from __future__ import annotations

from cf_transcribe_pandas._version import __version__
from cf_transcribe_pandas.accessor import DataFrameAccessor, SeriesAccessor
from cf_transcribe_pandas.cache import Cache
from cf_transcribe_pandas.client import Gateway
from cf_transcribe_pandas.engine import Event, RateChange, RetryDetails, RowDone
from cf_transcribe_pandas.errors import (
    AccountError,
    AudioError,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    ModelAccessError,
    ModelError,
    ModelNotFoundError,
    NetworkError,
    OutdatedClientError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    ServiceError,
    ServiceTimeoutError,
    StorageAccessError,
    TranscribeError,
)
from cf_transcribe_pandas.options import TranscribeOptions
from cf_transcribe_pandas.subtitles import to_srt, to_vtt

__all__ = [
    "AccountError",
    "AudioError",
    "AuthenticationError",
    "Cache",
    "ConfigurationError",
    "DataFrameAccessor",
    "Event",
    "Gateway",
    "InvalidRequestError",
    "ModelAccessError",
    "ModelError",
    "ModelNotFoundError",
    "NetworkError",
    "OutdatedClientError",
    "QuotaExceededError",
    "RateChange",
    "RateLimitError",
    "RequestTooLargeError",
    "RetryDetails",
    "RowDone",
    "SeriesAccessor",
    "ServiceError",
    "ServiceTimeoutError",
    "StorageAccessError",
    "TranscribeError",
    "TranscribeOptions",
    "__version__",
    "to_srt",
    "to_vtt",
]
