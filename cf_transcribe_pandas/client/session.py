"""The :class:`Client`: one shared :class:`aiohttp.ClientSession`, one POST per
:meth:`Client.transcribe` call, and connection failures and timeouts mapped to
the exceptions of :mod:`cf_transcribe_pandas.errors`.

The model's adapter builds the body and reads the answer;
:mod:`~cf_transcribe_pandas.client.responses` maps error answers. The client
never retries: the engine owns the only retry layer. The API token is only
ever put in the ``Authorization`` header, and aiohttp's exceptions (which
carry the request headers) are never chained to the ones raised here.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import numbers
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from cf_transcribe_pandas._version import __version__
from cf_transcribe_pandas.client.credentials import Credentials
from cf_transcribe_pandas.client.failures import connection_failure, raise_unchained
from cf_transcribe_pandas.client.gateway import Gateway
from cf_transcribe_pandas.client.models import DEFAULT_MODEL, ModelAdapter, Transcript, adapter_for
from cf_transcribe_pandas.client.proxy import Proxies
from cf_transcribe_pandas.client.responses import (
    HttpAnswer,
    parse_retry_after,
    transcript_of,
)
from cf_transcribe_pandas.errors import (
    ConfigurationError,
    TranscribeError,
)

__all__ = ["USER_AGENT", "Client"]

logger = logging.getLogger("cf_transcribe_pandas.client")

USER_AGENT = f"cf-transcribe-pandas/{__version__} aiohttp/{aiohttp.__version__}"

_STREAM_BODY_OVER = 512 * 1024
"""Larger bodies are streamed from a BytesIO: aiohttp warns about (and writes in
one go) a bytes body over 1 MiB, and audio of a few MB is common."""


def _is_positive_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return False
    return math.isfinite(number) and number > 0


def _check_arguments(credentials: object, timeout: object, max_connections: object) -> None:
    """The checks of :class:`Client`'s arguments (a ConfigurationError for each)."""
    if not isinstance(credentials, Credentials):
        raise ConfigurationError(
            "Client needs a Credentials object; build one with Credentials.resolve().",
            code="invalid_credentials",
        )
    if not _is_positive_number(timeout):
        raise ConfigurationError(
            f"timeout must be a positive number of seconds, not {timeout!r}.",
            code="invalid_timeout",
        )
    if isinstance(max_connections, bool) or not isinstance(max_connections, int):
        raise ConfigurationError(
            f"max_connections must be a positive int, not {max_connections!r}.",
            code="invalid_max_connections",
        )
    if max_connections < 1:
        raise ConfigurationError(
            f"max_connections must be at least 1, not {max_connections}.",
            code="invalid_max_connections",
        )


def _describe_file(file: str) -> str:
    """The file for a log line: never the audio, the URL's path or a signed query."""
    if file.startswith("data:"):
        return f"{file.split(',', 1)[0][:60]},<{len(file)} chars>"
    parts = urlsplit(file)
    return f"{parts.scheme}://{parts.hostname}/...<url>"


def _log_request(
    url: str, model: str, file: str, prompt: str | None, options: dict[str, Any], size: int
) -> None:
    """A debug line for one request: the prompt's length only, never the audio or the token."""
    logger.debug(
        "POST %s model=%s file=%s language=%s prompt=%s temperature=%s bytes=%d",
        url,
        model,
        _describe_file(file),
        options.get("language"),
        f"<{len(prompt)} chars>" if prompt is not None else None,
        options.get("temperature"),
        size,
    )


def _headers(credentials: Credentials, gateway: Gateway | None) -> dict[str, str]:
    """Every request's headers: the token, and the gateway's when its URL is used."""
    headers = {
        "Authorization": f"Bearer {credentials.api_token}",
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    if gateway is not None and gateway.use_gateway_url:
        headers.update(gateway.headers())
    return headers


class Client:
    """An async client for Workers AI speech-to-text.

    Use it as an async context manager (or call :meth:`close`). The
    :class:`aiohttp.ClientSession` is created on first use, inside the running
    loop, with at most ``max_connections`` connections; a ``session`` passed in
    is used as is and left open.

    Args:
        credentials: Account, token and base URL.
        timeout: Seconds to wait for a whole request and its answer.
        max_connections: Cap on open connections of the session this client creates.
        gateway: An AI Gateway to route through (a :class:`Gateway`, its id, or
            a mapping; see :meth:`Gateway.coerce`).
        session: An existing session to use instead of creating one.
        proxy: An ``http://`` proxy URL every request goes through; None uses
            ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` from the environment,
            as the official SDKs do (see :mod:`~cf_transcribe_pandas.client.proxy`).

    Raises:
        ConfigurationError: ``timeout`` or ``max_connections`` is not positive,
            or ``gateway`` or ``proxy`` is invalid.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 300.0,
        max_connections: int = 100,
        gateway: Gateway | str | Mapping[str, Any] | None = None,
        session: aiohttp.ClientSession | None = None,
        proxy: str | None = None,
    ) -> None:
        _check_arguments(credentials, timeout, max_connections)
        self._proxies = Proxies(proxy)
        self._credentials = credentials
        self._timeout = float(timeout)
        self._client_timeout = aiohttp.ClientTimeout(
            total=self._timeout, sock_connect=min(self._timeout, 30.0)
        )
        self._max_connections = max_connections
        self._gateway = Gateway.coerce(gateway)
        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._headers = _headers(credentials, self._gateway)
        self._routes: dict[str, str] = {}  # model -> URL: both fixed for the client's life

    def __repr__(self) -> str:
        gateway = f", gateway={self._gateway.id!r}" if self._gateway is not None else ""
        return (
            f"Client(account_id={self._credentials.account_id!r}, url={self.url!r}"
            f"{gateway}, timeout={self._timeout:g})"
        )

    @property
    def credentials(self) -> Credentials:
        """The credentials this client sends with each request."""
        return self._credentials

    @property
    def gateway(self) -> Gateway | None:
        """The AI Gateway requests go through, if any."""
        return self._gateway

    @property
    def timeout(self) -> float:
        """Seconds allowed for one request and its answer."""
        return self._timeout

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def url(self) -> str:
        """The URL requests for :data:`DEFAULT_MODEL` are posted to."""
        return self.url_for(DEFAULT_MODEL)

    def url_for(self, model: str) -> str:
        """The URL a request for ``model`` is posted to.

        Args:
            model: The Workers AI model name.

        Returns:
            The model's route under the base URL (``.../ai/run`` for the unified
            endpoint), or the AI Gateway URL with the model in the path when the
            gateway has ``use_gateway_url``.

        Raises:
            ConfigurationError: ``model`` is not a model name.
        """
        return self._route(adapter_for(model))

    def _route(self, adapter: ModelAdapter) -> str:
        url = self._routes.get(adapter.name)
        if url is None:
            account_id = self._credentials.account_id
            if self._gateway is not None and self._gateway.use_gateway_url:
                url = self._gateway.url_for(account_id, adapter.name)
            else:
                url = self._credentials.base_url + adapter.path(account_id)
            self._routes[adapter.name] = url
        return url

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it. Safe to call twice."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("This Client is closed; create a new one.")
        loop = asyncio.get_running_loop()
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector)
            self._loop = loop
        elif self._owns_session and self._loop is not loop:
            raise RuntimeError(
                "This Client's session belongs to another event loop; "
                "create one Client per event loop (per asyncio.run)."
            )
        return self._session

    async def transcribe(
        self,
        file: str,
        *,
        model: str = DEFAULT_MODEL,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
        **more: Any,
    ) -> str:
        """Send one audio file and return its transcript. Never retries.

        Args:
            file: A data URI (``data:audio/wav;base64,...``) or an https:// URL.
            model: The Workers AI model name.
            language: None or an ISO-639-1 code such as ``"en"``.
            prompt: None or text that guides the transcription.
            temperature: None or a number from 0 to 1.
            **more: The model's other options (``task``, ``vad_filter``, ``prefix``).

        Returns:
            The transcript (``result.text``), possibly empty for silence.

        Raises:
            ConfigurationError: A parameter is invalid (nothing was sent).
            TranscribeError: A subclass for every failure of the request; see
                :mod:`cf_transcribe_pandas.errors` for which are retryable.
        """
        options = {"language": language, "prompt": prompt, "temperature": temperature, **more}
        return (await self.transcription(file, model=model, **options)).text

    async def transcription(
        self, file: str, *, model: str = DEFAULT_MODEL, **options: Any
    ) -> Transcript:
        """:meth:`transcribe` (same arguments and errors), with all the model says:
        segments, detected language, duration."""
        language, prompt = options.pop("language", None), options.pop("prompt", None)
        temperature = options.pop("temperature", None)
        more = options
        adapter = adapter_for(model)
        options = adapter.check(
            {"language": language, "temperature": temperature, "prompt": prompt, **more}
        )
        url = self._route(adapter)
        if self._gateway is not None and self._gateway.use_gateway_url:
            body = adapter.input(file, options)  # the model is in the gateway URL
        else:
            body = adapter.body(file, options, self._gateway)
        data = json.dumps(body, separators=(",", ":")).encode("ascii")
        if logger.isEnabledFor(logging.DEBUG):
            _log_request(url, model, file, prompt, options, len(data))
        session = self._get_session()
        started = time.monotonic()
        try:
            answer = await self._post(session, url, data)
            return transcript_of(
                answer,
                adapter,
                token=self._credentials.api_token,
                account_id=self._credentials.account_id,
            )
        except TranscribeError as exc:
            elapsed = time.monotonic() - started
            logger.debug("failed after %.3f s: %s %s", elapsed, type(exc).__name__, exc.message)
            raise

    async def _post(self, session: aiohttp.ClientSession, url: str, data: bytes) -> HttpAnswer:
        """POST ``data`` and read the whole answer; connection failures are raised mapped."""
        host = urlsplit(url).netloc
        body: bytes | io.BytesIO = io.BytesIO(data) if len(data) > _STREAM_BODY_OVER else data
        started = time.monotonic()
        try:
            async with session.post(
                url,
                data=body,
                headers=self._headers,
                timeout=self._client_timeout,
                allow_redirects=False,
                proxy=self._proxies.for_url(url),
            ) as resp:
                answer = HttpAnswer(
                    status=resp.status,
                    body=await resp.read(),
                    content_type=resp.headers.get("Content-Type", ""),
                    retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                    location=resp.headers.get("Location", ""),
                )
        except (asyncio.TimeoutError, TimeoutError, aiohttp.ClientError, OSError) as exc:
            failure = connection_failure(
                exc,
                host=host,
                timeout=self._timeout,
                secrets=(self._credentials.api_token, *self._proxies.secrets),
            )
        else:
            elapsed = time.monotonic() - started
            size = len(answer.body)
            logger.debug("HTTP %d from %s in %.3f s (%d bytes)", answer.status, host, elapsed, size)
            return answer
        # Raised outside the except block on purpose: aiohttp's exceptions carry our
        # request headers (the token) in request_info, so none is chained as context.
        raise_unchained(failure)
