"""Transcribe a pandas column of audio with Cloudflare Workers AI."""

from __future__ import annotations

from cf_transcribe_pandas._version import __version__
from cf_transcribe_pandas.errors import (
    AccountError,
    AudioError,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    ModelNotFoundError,
    NetworkError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    ServiceError,
    ServiceTimeoutError,
    TranscribeError,
)

__all__ = [
    "AccountError",
    "AudioError",
    "AuthenticationError",
    "ConfigurationError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "NetworkError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceError",
    "ServiceTimeoutError",
    "TranscribeError",
    "__version__",
]
