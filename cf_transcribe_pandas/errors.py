"""The one exception tree of cf-transcribe-pandas, and what each Workers AI code does.

Every failure the library reports is a :class:`TranscribeError`. Each class
says what happened and what to do, carries the Cloudflare ``code`` and
``message`` when the service gave one, and knows whether trying again can help
(``retryable``) and whether it ends the whole run (``stops_run``)::

    TranscribeError                    base; .code .status .retryable .stops_run .kind
    ├── ConfigurationError             bad arguments or missing credentials, before any work
    ├── AccountError                   stops the run: every other request would fail alike
    │   ├── AuthenticationError        401/403 10000, 3023, 7000/7003: token, account id, blocked
    │   ├── QuotaExceededError         3036, 4006: the daily allocation is used up
    │   ├── ModelError                 3039, 5005, 5006: the model cannot serve this run
    │   │   ├── ModelNotFoundError     5007, 3042: no such model
    │   │   └── ModelAccessError       5016, 5018, 3041, 5035: this account may not use it
    │   ├── OutdatedClientError        5019: this package's version is refused
    │   └── StorageAccessError         the object store refused the credentials or is unreachable
    ├── RateLimitError                 429, 3040: out of capacity / too fast; .retry_after
    ├── RequestTooLargeError           413, 3006: the request body is too large
    ├── InvalidRequestError            400: 5004 invalid data, 3003 incomplete request
    │   └── AudioError                 found locally, never sent: file_not_found,
    │                                  permission_denied, empty_file, unreadable_audio,
    │                                  no_audio_stream, unsupported_input, fetch_failed
    ├── ServiceTimeoutError            408: 3007 timeout, 3008 aborted, or our own timeout
    ├── ServiceError                   5xx, 7009, an unknown 429, or an answer we could not read
    └── NetworkError                   connection refused or reset, DNS failure, proxy

Retryable: RateLimitError, ServiceTimeoutError, ServiceError, NetworkError.
Stops the run: every AccountError (whatever ``errors=`` says). The exception
raised then carries ``.partial``, the DataFrame with every finished row (they
are in the cache too): fix the cause and rerun the same call to go on.

Every code of the Workers AI errors page, and the ones users report beside
it. A code is read from ``errors[].code``, or from the message alone
(``"4006: ..."``, ``"AiError: ... (3040)"``, also in the OpenAI-compatible
``{"error": {"message": ...}}``). *stop*: the run stops at once, finished rows
kept; *row*: that row fails (NA text, ``{output}_error_code``), the run goes
on; *retry*: sent again (``max_retries`` times; 3040 is paced instead, for up
to ``row_deadline`` seconds a row)::

    code   HTTP  action  class                 the message says
    5007   400   stop    ModelNotFoundError    Workers AI does not know the model; check model=
    3042   404   stop    ModelNotFoundError    (same: the model name is invalid)
    3039   400   stop    ModelError            the fine-tune lacks model.safetensors/config.json
    5005   405   stop    ModelError            the model takes no LoRA; check model= and base_url
    5006   400   stop    ModelError            the request's shape is wrong for the model; upgrade
    5016   403   stop    ModelAccessError      accept the model's terms for this account
    5018   403   stop    ModelAccessError      this account may not use this (private) model
    3041   403   stop    ModelAccessError      (same as 5018)
    5035   403   stop    ModelAccessError      the model is not on this plan; Workers Paid
    3023   403   stop    AuthenticationError   the account is blocked from Workers AI
    10000  401   stop    AuthenticationError   the token was rejected: check CLOUDFLARE_API_TOKEN
    10000  403   stop    AuthenticationError   token or account id: check both
    7000   404   stop    AuthenticationError   no route: check CLOUDFLARE_ACCOUNT_ID, base_url
    7003   400   stop    AuthenticationError   (same as 7000)
    other  403   stop    AccountError          Cloudflare refused the account (its own words)
    -      407   stop    AccountError          the proxy wants credentials: check proxy=
    5019   405   stop    OutdatedClientError   upgrade cf-transcribe-pandas (pip install -U)
    3036   429   stop    QuotaExceededError    daily allocation used up: resets 00:00 UTC,
    4006   429   stop    QuotaExceededError      or move the account to Workers Paid
    5004   400   row     InvalidRequestError   Workers AI could not use this audio/request
    3003   400   row     InvalidRequestError   (same: the request is incomplete)
    3006   413   row     RequestTooLargeError  too large even after the library's own split
    other  4xx   row     InvalidRequestError   Workers AI could not use this request
    3040   429   retry   RateLimitError        out of capacity; safe to try again (paced)
    none   429   retry   RateLimitError        too many requests (paced, like 3040)
    other  429   retry   ServiceError          unknown 429: max_retries times, then row error
    3007   408   retry   ServiceTimeoutError   Workers AI timed out; safe to try again
    3008   408   retry   ServiceTimeoutError   Workers AI aborted the request
    7009   5xx   retry   ServiceError          upstream service unavailable
    any    5xx   retry   ServiceError          usually temporary
    -      -     retry   NetworkError          connection reset, refused, DNS, proxy failure
    -      -     row     AudioError            found locally (file_not_found, ...), not sent

The rules live in :mod:`cf_transcribe_pandas.client.codes`. No message,
``str``, ``repr`` or ``args`` of these exceptions ever holds the API token:
the client scrubs every text it copies from the network with :func:`redact`
before building an exception.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccountError",
    "AudioError",
    "AuthenticationError",
    "ConfigurationError",
    "InvalidRequestError",
    "ModelAccessError",
    "ModelError",
    "ModelNotFoundError",
    "NetworkError",
    "OutdatedClientError",
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

    @property
    def label(self) -> str:
        """What the run summary counts this row as: its kind and real code.

        ``"file not found"`` for a local kind, ``"invalid request (5004)"`` for a
        Cloudflare code, else the kind (``"timeout"``).
        """
        if isinstance(self.code, str) and self.code:
            return self.code.replace("_", " ")
        if self.code is not None:
            return f"{self.kind} ({self.code})"
        return self.kind

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
    """An answer every other request would get too (token, account, plan, model,
    client version), not one about the row: the whole run stops."""

    stops_run = True
    kind = "account"


class AuthenticationError(AccountError):
    """401/403 or 3023: the token is wrong, lacks Workers AI permission, or the
    account id is wrong or blocked. Check CLOUDFLARE_API_TOKEN and
    CLOUDFLARE_ACCOUNT_ID."""

    kind = "authentication"


class QuotaExceededError(AccountError):
    """3036 or 4006: the account's daily Workers AI allocation is used up.
    Retrying will not help until it resets (00:00 UTC) or the account moves to
    the Workers Paid plan."""

    kind = "quota exceeded"


class ModelError(AccountError):
    """3039, 5005, 5006: the model cannot serve this run as asked; every row
    would get the same answer."""

    kind = "model error"


class ModelNotFoundError(ModelError):
    """5007 or 3042: the model name is unknown to Workers AI."""

    kind = "model not found"


class ModelAccessError(ModelError):
    """5016, 5018, 3041, 5035: the model exists, but this account may not use it
    (its terms are not accepted, it is private, or not on the account's plan)."""

    kind = "model not allowed"


class OutdatedClientError(AccountError):
    """5019: Workers AI refuses this version of the library; upgrade it."""

    kind = "outdated client"


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


class ServiceTimeoutError(TranscribeError):
    """408 (3007 timeout, 3008 aborted) or no answer within our timeout."""

    retryable = True
    kind = "timeout"


class ServiceError(TranscribeError):
    """A 5xx answer, a 429 with a code this library does not know, or an answer
    that could not be understood."""

    retryable = True
    kind = "service error"


class NetworkError(TranscribeError):
    """The connection failed or was reset before an answer arrived."""

    retryable = True
    kind = "connection error"
