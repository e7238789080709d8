"""The one exception tree of cf-transcribe-pandas.

Every failure the library reports is a :class:`TranscribeError`. Each class
says what happened and what to do, carries the Cloudflare ``code`` and
``message`` when the service gave one, and knows whether trying again can help
(``retryable``) and whether it ends the whole run (``stops_run``)::

    TranscribeError                    base; .code .status .retryable .stops_run .kind
    ├── ConfigurationError             bad arguments or missing credentials, before any work
    ├── AccountError                   stops the run: nothing else can succeed
    │   ├── AuthenticationError        401/403, 3023: bad token, wrong account, blocked
    │   ├── QuotaExceededError         3036 (429): the account's daily limit is used up
    │   └── StorageAccessError         the object store refused the credentials or is unreachable
    ├── RateLimitError                 429, 3040: too fast / out of capacity; .retry_after
    ├── RequestTooLargeError           413, 3006: the request body is over 25 MB
    ├── InvalidRequestError            400: 5004 invalid data, 3003 incomplete request
    │   └── AudioError                 found locally, never sent: file_not_found,
    │                                  permission_denied, empty_file, unreadable_audio,
    │                                  no_audio_stream, unsupported_input, fetch_failed
    ├── ModelNotFoundError             5007 (400), 3042 (404): no such model
    ├── ServiceTimeoutError            408: 3007 timeout, 3008 aborted, or our own timeout
    ├── ServiceError                   5xx or an answer we could not understand
    └── NetworkError                   connection refused or reset, DNS failure

Retryable: RateLimitError, ServiceTimeoutError, ServiceError, NetworkError.
Stops the run: AuthenticationError, QuotaExceededError, StorageAccessError.

No message, ``str``, ``repr`` or ``args`` of these exceptions ever holds the API
token: the client scrubs every text it copies from the network with
:func:`redact` before building an exception.
"""

from __future__ import annotations

from typing import Any, ClassVar

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
    "StorageAccessError",
    "TranscribeError",
    "redact",
]

_REDACTED = "***"


def redact(text: str, *secrets: str | None) -> str:
    """Return ``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, _REDACTED)
    return text


class TranscribeError(Exception):
    """Base of every error this library raises.

    Attributes:
        message: What happened and what to do, in one or two sentences.
        code: The Cloudflare error code (an int such as 3040) or a short local
            kind (such as ``"unreadable_audio"``), or None.
        status: The HTTP status of the answer, or None when there was none.
        retry_after: Seconds the service asked us to wait, when it said.
        retryable: Whether sending the same request again may succeed.
        stops_run: Whether this error ends the whole run (not just one row).
        kind: A short human name for summaries ("invalid audio", "timeout").
    """

    retryable: ClassVar[bool] = False
    stops_run: ClassVar[bool] = False
    kind: ClassVar[str] = "error"

    partial: Any = None
    """When a run stopped on this error: the DataFrame with every finished row."""

    run_result: Any = None
    """When a run stopped on this error: the engine's per-row results (internal)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after

    @property
    def error_code(self) -> str:
        """The value for a row's ``{output}_error_code`` column."""
        if self.code is not None:
            return str(self.code)
        if self.status is not None:
            return f"http_{self.status}"
        return self.kind.replace(" ", "_")

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        if self.code is not None:
            parts.append(f"code={self.code!r}")
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.retry_after is not None:
            parts.append(f"retry_after={self.retry_after}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword attributes across pickling (Dask ships errors between processes).
        return (
            _rebuild,
            (type(self), self.message, self.code, self.status, self.retry_after),
            self.__dict__,
        )


def _rebuild(
    cls: type[TranscribeError],
    message: str,
    code: int | str | None,
    status: int | None,
    retry_after: float | None,
) -> TranscribeError:
    return cls(message, code=code, status=status, retry_after=retry_after)


class ConfigurationError(TranscribeError, ValueError):
    """Bad arguments or missing credentials, found before any request is sent."""

    kind = "configuration"


class AccountError(TranscribeError):
    """An answer about the account, not the row: the whole run stops."""

    stops_run = True
    kind = "account"


class AuthenticationError(AccountError):
    """401/403 or 3023: the token is wrong, lacks Workers AI permission, or the
    account id is wrong or blocked. Check CLOUDFLARE_API_TOKEN and
    CLOUDFLARE_ACCOUNT_ID."""

    kind = "authentication"


class QuotaExceededError(AccountError):
    """3036: the account's daily Workers AI allocation is used up. Retrying
    will not help until the quota resets or the plan is upgraded."""

    kind = "quota exceeded"


class StorageAccessError(AccountError):
    """The object store (S3, R2, GCS, ...) refused the credentials, has no such
    bucket, or cannot be reached: no object can be read, so the run stops. Check
    ``storage_options`` (``key``/``secret``, ``profile``, ``endpoint_url``)."""

    kind = "storage access"


class RateLimitError(TranscribeError):
    """429 or 3040: too many requests or the model is out of capacity."""

    retryable = True
    kind = "rate limited"


class RequestTooLargeError(TranscribeError):
    """413 or 3006: the request body is larger than the service accepts."""

    kind = "request too large"


class InvalidRequestError(TranscribeError):
    """400 (5004, 3003): the service could not use the audio or the request."""

    kind = "invalid request"


class AudioError(InvalidRequestError):
    """A row's audio could not be used; found locally, nothing was sent.

    ``code`` is one of ``file_not_found``, ``permission_denied``, ``empty_file``,
    ``unreadable_audio``, ``no_audio_stream``, ``unsupported_input``, ``fetch_failed``.
    """

    kind = "invalid audio"


class ModelNotFoundError(TranscribeError):
    """5007 or 3042: the model name is unknown to Workers AI."""

    kind = "model not found"


class ServiceTimeoutError(TranscribeError):
    """408 (3007 timeout, 3008 aborted) or no answer within our timeout."""

    retryable = True
    kind = "timeout"


class ServiceError(TranscribeError):
    """A 5xx answer, or an answer that could not be understood."""

    retryable = True
    kind = "service error"


class NetworkError(TranscribeError):
    """The connection failed or was reset before an answer arrived."""

    retryable = True
    kind = "connection error"
