"""What a request that got no HTTP answer means: connection failures, timeouts,
proxy refusals and invalid URLs, as the exceptions of :mod:`cf_transcribe_pandas.errors`,
with every secret scrubbed from the message."""

from __future__ import annotations

import asyncio
from typing import NoReturn

import aiohttp

from cf_transcribe_pandas.client.responses import clip
from cf_transcribe_pandas.errors import (
    AccountError,
    ConfigurationError,
    NetworkError,
    ServiceError,
    ServiceTimeoutError,
    TranscribeError,
    redact,
)

__all__ = ["connection_failure", "raise_unchained"]


def connection_failure(
    exc: BaseException, *, host: str, timeout: float, secrets: tuple[str, ...]
) -> TranscribeError:
    """Map an exception raised while sending or reading to the error tree; ``secrets``
    (the token, the proxy URL and its password) are scrubbed from every message."""
    if isinstance(exc, (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError)):
        error = AccountError if getattr(exc, "status", None) == 407 else NetworkError
        return error(
            f"The proxy failed ({clip(redact(str(exc), *secrets))}). Check proxy= or "
            "HTTPS_PROXY / HTTP_PROXY (its host, port, user and password) and NO_PROXY."
        )
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return ServiceTimeoutError(
            f"No answer from {host} within {timeout:g} s. It is safe to try again; "
            "for long audio raise timeout=."
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return ConfigurationError(
            f"The request URL is not valid ({clip(redact(str(exc), *secrets))}). Check "
            "base_url and the gateway id.",
            code="invalid_base_url",
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return NetworkError(
            f"Could not connect to {host} ({clip(redact(str(exc), *secrets))}). "
            "Check the network connection and base_url; it is safe to try again."
        )
    if isinstance(exc, aiohttp.ClientResponseError):
        return ServiceError(
            f"{host} sent an answer that is not valid HTTP "
            f"({clip(redact(exc.message, *secrets))}). This is usually temporary; try again."
        )
    reason = clip(redact(str(exc), *secrets)) or "no details"
    return NetworkError(
        f"The connection to {host} failed before an answer arrived "
        f"({type(exc).__name__}: {reason}). It is safe to try again."
    )


def raise_unchained(error: TranscribeError) -> NoReturn:
    """Raise ``error`` with no exception chained to it as context.

    Python 3.10 can chain an exception aiohttp handled inside (a coroutine's stale
    exception state), and aiohttp's exceptions hold the request headers: the token.
    """
    try:
        raise error
    except TranscribeError:
        error.__context__ = None
        raise
