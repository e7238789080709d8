"""The HTTP client for Workers AI ``openai/gpt-4o-transcribe``.

One :class:`Client` holds one shared :class:`aiohttp.ClientSession` and sends
one request per :meth:`Client.transcribe` call. It builds the request body,
authenticates, parses the answer, and turns every failure (HTTP status,
Cloudflare error code, garbage body, connection reset, timeout) into one of the
exceptions of :mod:`cf_transcribe_pandas.errors`. It never retries: the engine
owns the only retry layer.

Two ways to reach the model:

* the unified endpoint (default)::

      POST {base_url}/accounts/{account_id}/ai/run
      {"model": "openai/gpt-4o-transcribe", "input": {"file": ..., ...},
       "options": {"gateway": {"id": ..., "cacheTtl": ..., "skipCache": ...}}}

  ``options`` is only sent when an AI Gateway is configured.

* the AI Gateway URL (``Gateway(use_gateway_url=True)``), the form Cloudflare
  documents for the ``workers-ai`` provider::

      POST https://gateway.ai.cloudflare.com/v1/{account_id}/{gateway_id}/workers-ai/{model}
      {"file": ..., ...}

  The body is the ``input`` object itself (the model is in the path, its ``/``
  kept as is, as in Cloudflare's examples), and the cache options go in the
  ``cf-aig-cache-ttl`` and ``cf-aig-skip-cache`` headers, since there is no
  ``options`` object in that form.

The API token is only ever put in the ``Authorization`` header. Every text
copied from an answer goes through :func:`~cf_transcribe_pandas.errors.redact`
before it reaches an exception or a log record.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import json
import logging
import math
import numbers
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timezone
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from cf_transcribe_pandas._version import __version__
from cf_transcribe_pandas.errors import (
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
    redact,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "GATEWAY_BASE_URL",
    "USER_AGENT",
    "Client",
    "Credentials",
    "Gateway",
    "build_body",
    "encode_body",
    "normalize_language",
    "parse_retry_after",
    "validate_params",
]

logger = logging.getLogger("cf_transcribe_pandas.client")

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_MODEL = "openai/gpt-4o-transcribe"
GATEWAY_BASE_URL = "https://gateway.ai.cloudflare.com/v1"
USER_AGENT = f"cf-transcribe-pandas/{__version__} aiohttp/{aiohttp.__version__}"
_STREAM_BODY_OVER = 512 * 1024
"""Request bodies larger than this are streamed from a BytesIO (aiohttp warns at 1 MiB)."""

ENV_ACCOUNT_ID = "CLOUDFLARE_ACCOUNT_ID"
ENV_API_TOKEN = "CLOUDFLARE_API_TOKEN"
ENV_BASE_URL = "CLOUDFLARE_BASE_URL"

# Cloudflare error codes (Workers AI errors page and the v4 API).
_QUOTA_CODES = frozenset({3036})
_AUTH_CODES = frozenset({3023, 10000, 9109})
# 7000 "No route for that URI", 7003 "Could not route to ..., perhaps your object identifier
# is invalid?": our path is fixed, so the account id or base_url is wrong; every request
# would fail the same way, so these stop the run like a bad token.
_NO_ROUTE_CODES = frozenset({7000, 7003})
_RATE_CODES = frozenset({3040})
_TOO_LARGE_CODES = frozenset({3006})
_MODEL_CODES = frozenset({5007, 3042})
_TIMEOUT_CODES = frozenset({3007, 3008})
_INVALID_CODES = frozenset({5004, 3003})

_MAX_DETAIL_CHARS = 300
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2}$")
_REGION_RE = re.compile(r"^([a-z]{2})[-_][a-z0-9]{2,8}$")
_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: a valid header value
_HTML_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")
_SPACE_RE = re.compile(r"\s+")


# --------------------------------------------------------------------------- credentials


def _missing_message(missing: list[tuple[str, str, str]]) -> str:
    names = " and ".join(what for what, _, _ in missing)
    how = "; ".join(
        f"pass {arg}=... or set the {env} environment variable" for _, arg, env in missing
    )
    return (
        f"Missing Cloudflare {names}: {how}. "
        "Both are on the Workers AI page of the Cloudflare dashboard "
        "(use the REST API button to create a token with Workers AI permission)."
    )


@dataclass(frozen=True)
class Credentials:
    """Where to send requests and how to authenticate.

    The token is kept out of ``repr`` and ``str``. Prefer :meth:`resolve`, which
    also reads the ``CLOUDFLARE_*`` environment variables.

    Attributes:
        account_id: The Cloudflare account id.
        api_token: An API token with Workers AI permission (never shown).
        base_url: The API root, ``https://api.cloudflare.com/client/v4`` by
            default; point it at the emulator for tests. A trailing slash is
            removed.

    Raises:
        ConfigurationError: A value is empty or malformed.
    """

    account_id: str
    api_token: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        missing: list[tuple[str, str, str]] = []
        if not isinstance(self.account_id, str) or not self.account_id.strip():
            missing.append(("account id", "account_id", ENV_ACCOUNT_ID))
        if not isinstance(self.api_token, str) or not self.api_token.strip():
            missing.append(("API token", "api_token", ENV_API_TOKEN))
        if missing:
            raise ConfigurationError(_missing_message(missing), code="missing_credentials")
        account_id = self.account_id.strip()
        api_token = self.api_token.strip()
        if not _ID_RE.match(account_id):
            raise ConfigurationError(
                f"The Cloudflare account id {account_id!r} is not valid: it should be the "
                f"32-character hex id from the dashboard. Check {ENV_ACCOUNT_ID} or account_id=.",
                code="invalid_account_id",
            )
        if not _TOKEN_RE.match(api_token):
            raise ConfigurationError(
                "The Cloudflare API token contains spaces or non-printable characters, so it "
                f"cannot be sent in a header. Check {ENV_API_TOKEN} or api_token= "
                "(copy the token again, without quotes or line breaks).",
                code="invalid_api_token",
            )
        object.__setattr__(self, "account_id", account_id)
        object.__setattr__(self, "api_token", api_token)
        object.__setattr__(self, "base_url", _check_base_url(self.base_url, ENV_BASE_URL))

    @classmethod
    def resolve(
        cls,
        account_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
    ) -> Credentials:
        """Build credentials from arguments, else from the environment.

        Each argument that is None is read from ``CLOUDFLARE_ACCOUNT_ID``,
        ``CLOUDFLARE_API_TOKEN`` or ``CLOUDFLARE_BASE_URL``; the base URL falls
        back to :data:`DEFAULT_BASE_URL`.

        Args:
            account_id: The Cloudflare account id.
            api_token: An API token with Workers AI permission.
            base_url: The API root (``http://`` or ``https://``).

        Returns:
            Validated credentials.

        Raises:
            ConfigurationError: Something is missing, empty or malformed; the
                message names what and how to set it. Raised before any request.
        """
        env = os.environ
        acc = account_id if account_id is not None else env.get(ENV_ACCOUNT_ID)
        tok = api_token if api_token is not None else env.get(ENV_API_TOKEN)
        url = base_url if base_url is not None else env.get(ENV_BASE_URL)
        if url is None or (base_url is None and not url.strip()):
            url = DEFAULT_BASE_URL
        missing: list[tuple[str, str, str]] = []
        if acc is None or not isinstance(acc, str) or not acc.strip():
            missing.append(("account id", "account_id", ENV_ACCOUNT_ID))
        if tok is None or not isinstance(tok, str) or not tok.strip():
            missing.append(("API token", "api_token", ENV_API_TOKEN))
        if missing:
            raise ConfigurationError(_missing_message(missing), code="missing_credentials")
        assert acc is not None
        assert tok is not None
        return cls(account_id=acc, api_token=tok, base_url=url)


def _check_base_url(value: object, env_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"The base URL is empty. Leave it unset to use {DEFAULT_BASE_URL}, or set "
            f"base_url= / {env_name} to an http(s):// URL.",
            code="invalid_base_url",
        )
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"The base URL {url!r} must start with https:// (or http:// for a local "
            f"emulator), for example {DEFAULT_BASE_URL}. Check base_url= or {env_name}.",
            code="invalid_base_url",
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            f"The base URL must not hold a user name or password (the token goes in "
            f"api_token= / {ENV_API_TOKEN}). Check base_url= or {env_name}.",
            code="invalid_base_url",
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"The base URL {url!r} must not have a query string or fragment. "
            f"Check base_url= or {env_name}.",
            code="invalid_base_url",
        )
    return url


# --------------------------------------------------------------------------- gateway


_GATEWAY_KEYS = {
    "id": "id",
    "cache_ttl": "cache_ttl",
    "cacheTtl": "cache_ttl",
    "skip_cache": "skip_cache",
    "skipCache": "skip_cache",
    "use_gateway_url": "use_gateway_url",
    "base_url": "base_url",
}


@dataclass(frozen=True)
class Gateway:
    """An AI Gateway to route requests through (analytics, caching, limits).

    Attributes:
        id: The gateway's name in the dashboard.
        cache_ttl: Seconds AI Gateway may cache an answer (``cacheTtl``).
        skip_cache: True to bypass the gateway cache (``skipCache``).
        use_gateway_url: False (default) sends to the usual Workers AI URL with
            ``options.gateway`` in the body; True posts to the gateway's own URL
            ``{base_url}/{account_id}/{id}/workers-ai/{model}`` with the input
            object as the body and the cache options as ``cf-aig-*`` headers.
        base_url: The AI Gateway root, only used with ``use_gateway_url``;
            change it only for a proxy or a test server.

    Raises:
        ConfigurationError: A value has the wrong type or range.
    """

    id: str
    cache_ttl: int | None = None
    skip_cache: bool | None = None
    use_gateway_url: bool = False
    base_url: str = GATEWAY_BASE_URL

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_RE.match(self.id.strip()):
            raise ConfigurationError(
                f"The AI Gateway id {self.id!r} is not valid: use the gateway's name from the "
                "AI Gateway page of the dashboard (letters, digits, '-' and '_').",
                code="invalid_gateway",
            )
        object.__setattr__(self, "id", self.id.strip())
        ttl: object = self.cache_ttl
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, numbers.Integral) or ttl < 0
        ):
            raise ConfigurationError(
                f"The AI Gateway cache_ttl must be a whole number of seconds >= 0, not {ttl!r}.",
                code="invalid_gateway",
            )
        if ttl is not None:
            object.__setattr__(self, "cache_ttl", int(ttl))
        if self.skip_cache is not None and not isinstance(self.skip_cache, bool):
            raise ConfigurationError(
                f"The AI Gateway skip_cache must be True, False or None, not {self.skip_cache!r}.",
                code="invalid_gateway",
            )
        if not isinstance(self.use_gateway_url, bool):
            raise ConfigurationError(
                "The AI Gateway use_gateway_url must be True or False, "
                f"not {self.use_gateway_url!r}.",
                code="invalid_gateway",
            )
        object.__setattr__(self, "base_url", _check_base_url(self.base_url, "Gateway.base_url"))

    @classmethod
    def coerce(cls, value: str | Mapping[str, Any] | Gateway | None) -> Gateway | None:
        """Turn what users pass as ``gateway=`` into a :class:`Gateway`.

        Args:
            value: None, a gateway id, a mapping with ``id`` and optionally
                ``cache_ttl``/``cacheTtl``, ``skip_cache``/``skipCache``,
                ``use_gateway_url`` and ``base_url``, or a :class:`Gateway`.

        Returns:
            The gateway, or None when ``value`` is None.

        Raises:
            ConfigurationError: The value cannot be understood.
        """
        if value is None or isinstance(value, Gateway):
            return value
        if isinstance(value, str):
            return cls(id=value)
        if isinstance(value, Mapping):
            kwargs: dict[str, Any] = {}
            for key, item in value.items():
                name = _GATEWAY_KEYS.get(key)
                if name is None:
                    known = ", ".join(sorted(_GATEWAY_KEYS))
                    raise ConfigurationError(
                        f"Unknown AI Gateway option {key!r}; known options are {known}.",
                        code="invalid_gateway",
                    )
                kwargs[name] = item
            if "id" not in kwargs:
                raise ConfigurationError(
                    "The AI Gateway mapping needs an 'id' (the gateway's name).",
                    code="invalid_gateway",
                )
            return cls(**kwargs)
        raise ConfigurationError(
            "gateway= takes a gateway id (str), a dict such as {'id': 'my-gateway', "
            f"'cache_ttl': 3600}}, or a Gateway, not {type(value).__name__}.",
            code="invalid_gateway",
        )

    def options(self) -> dict[str, Any]:
        """The ``options.gateway`` object for the request body (set keys only).

        Returns:
            ``{"id": ..., "cacheTtl": ..., "skipCache": ...}`` without unset keys.
        """
        out: dict[str, Any] = {"id": self.id}
        if self.cache_ttl is not None:
            out["cacheTtl"] = self.cache_ttl
        if self.skip_cache is not None:
            out["skipCache"] = self.skip_cache
        return out

    def headers(self) -> dict[str, str]:
        """The ``cf-aig-*`` headers used with the gateway URL (set keys only).

        Returns:
            A possibly empty dict of header names to values.
        """
        out: dict[str, str] = {}
        if self.cache_ttl is not None:
            out["cf-aig-cache-ttl"] = str(self.cache_ttl)
        if self.skip_cache is not None:
            out["cf-aig-skip-cache"] = "true" if self.skip_cache else "false"
        return out


# --------------------------------------------------------------------------- parameters


def normalize_language(language: object) -> str | None:
    """Return the ISO-639-1 code the service expects, or None.

    Upper case and surrounding spaces are forgiven (``" EN "`` becomes
    ``"en"``); anything else that is not two ASCII letters is refused with a
    hint (``"en-US"`` suggests ``"en"``).

    Args:
        language: None or a language code.

    Returns:
        The lower-case two-letter code, or None when ``language`` is None.

    Raises:
        ConfigurationError: ``language`` is not a two-letter ISO-639-1 code.
    """
    if language is None:
        return None
    if not isinstance(language, str):
        raise ConfigurationError(
            "language must be a two-letter ISO-639-1 code such as 'en' (a str), "
            f"not {type(language).__name__}.",
            code="invalid_language",
        )
    code = language.strip().lower()
    if _LANGUAGE_RE.match(code):
        return code
    hint = "such as 'en', 'fr' or 'de'"
    region = _REGION_RE.match(code)
    if region:
        hint = f"here {region.group(1)!r} (leave out the region)"
    raise ConfigurationError(
        f"language {language!r} is not an ISO-639-1 code: use two letters, {hint}, "
        "or None to let the model detect the language.",
        code="invalid_language",
    )


def validate_params(
    *,
    model: object,
    language: object,
    temperature: object,
    prompt: object = None,
) -> None:
    """Check the request parameters before anything is sent.

    Args:
        model: The Workers AI model name, a non-empty str.
        language: None or an ISO-639-1 code (see :func:`normalize_language`;
            upper case is accepted and lowered when the body is built).
        temperature: None or a real number from 0 to 1 (bool is refused).
        prompt: None or a str.

    Raises:
        ConfigurationError: A parameter is invalid; the message says which and why.
    """
    if not isinstance(model, str) or not model.strip() or _SPACE_RE.search(model):
        raise ConfigurationError(
            f"model must be a Workers AI model name such as {DEFAULT_MODEL!r}, not {model!r}.",
            code="invalid_model",
        )
    normalize_language(language)
    if temperature is not None and not _is_number_in(temperature, 0.0, 1.0):
        raise ConfigurationError(
            f"temperature must be a number from 0 to 1 (or None for the default 0), "
            f"not {temperature!r}.",
            code="invalid_temperature",
        )
    if prompt is not None and not isinstance(prompt, str):
        raise ConfigurationError(
            f"prompt must be a str or None, not {type(prompt).__name__}.",
            code="invalid_prompt",
        )


def _is_number_in(value: object, low: float, high: float) -> bool:
    """A real number (not bool, not NaN) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    number = float(value)
    return math.isfinite(number) and low <= number <= high


def _is_positive_number(value: object) -> bool:
    return _is_number_in(value, math.ulp(0.0), math.inf)


def _check_file(file: object) -> str:
    if not isinstance(file, str) or not (
        file.startswith("data:") or file[:8].lower() == "https://"
    ):
        raise ConfigurationError(
            "file must be a data URI ('data:audio/...;base64,...') or an https:// URL.",
            code="invalid_file",
        )
    return file


def _build_input(
    file: str,
    *,
    language: str | None,
    prompt: str | None,
    temperature: float | None,
) -> dict[str, Any]:
    inp: dict[str, Any] = {"file": file}
    if language is not None:
        inp["language"] = language
    if prompt is not None:
        inp["prompt"] = prompt
    if temperature is not None:
        inp["temperature"] = temperature
    return inp


def build_body(
    file: str,
    *,
    model: str = DEFAULT_MODEL,
    language: str | None = None,
    prompt: str | None = None,
    temperature: float | None = None,
    gateway: Gateway | None = None,
) -> dict[str, Any]:
    """Build the JSON body of the unified ``/ai/run`` request.

    Optional fields that are None are left out, never sent as null. The
    language is normalized (``"EN"`` becomes ``"en"``) and the temperature
    sent as a float.

    Args:
        file: A data URI or an https:// URL.
        model: The Workers AI model name.
        language: None or an ISO-639-1 code.
        prompt: None or text that guides the transcription.
        temperature: None or a number from 0 to 1.
        gateway: When given (and not ``use_gateway_url``), added as
            ``options.gateway``.

    Returns:
        ``{"model": ..., "input": {"file": ..., ...}}`` plus ``options`` when a
        gateway is given.

    Raises:
        ConfigurationError: A parameter is invalid.
    """
    validate_params(model=model, language=language, temperature=temperature, prompt=prompt)
    body: dict[str, Any] = {
        "model": model,
        "input": _build_input(
            _check_file(file),
            language=normalize_language(language),
            prompt=prompt,
            temperature=None if temperature is None else float(temperature),
        ),
    }
    if gateway is not None and not gateway.use_gateway_url:
        body["options"] = {"gateway": gateway.options()}
    return body


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_MAX_TEMPLATES = 1024  # request templates a Client keeps (see Client._template)


def encode_body(payload: dict[str, Any]) -> bytes:
    """Serialize a request body (from :func:`build_body`) to UTF-8 JSON bytes.

    Equal to ``json.dumps(payload, ensure_ascii=False, separators=(",", ":"))``
    encoded as UTF-8, but a base64 data URI in ``file`` (almost all of the
    body) is copied in as it is rather than run through the JSON string
    escaper, which costs about 40 µs per 10 kB: base64 needs no escaping.
    The URI is copied twice (to bytes, then into the body), not five times.
    Any other ``file`` value goes through ``json`` as usual.

    Args:
        payload: ``{"model": ..., "input": {"file": ..., ...}, ...}``, or the
            ``input`` mapping itself (the AI Gateway URL form).

    Returns:
        The body bytes.
    """
    inp = payload.get("input", payload)
    raw = _plain_data_uri(inp.get("file") if isinstance(inp, dict) else None)
    if raw is not None:
        around = _around_file(payload)
        if around is not None:
            return b"".join((around[0], raw, around[1]))
    return _JSON.encode(payload).encode("utf-8")


def _plain_data_uri(file: object) -> bytes | None:
    """``file`` as ASCII bytes when it is a base64 data URI that JSON needs not
    escape (nothing but its header is outside the base64 alphabet); else None."""
    if not (isinstance(file, str) and file.startswith("data:") and file.isascii()):
        return None
    comma = file.find(",")
    head = file[: comma + 1]
    if comma <= 0 or _NEEDS_ESCAPE.search(head):
        return None
    raw = file.encode("ascii")
    if raw.translate(None, _BASE64_ALPHABET) != head.encode().translate(None, _BASE64_ALPHABET):
        return None
    return raw


def _around_file(payload: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """``payload`` (a body, or its ``input`` alone) encoded, as the bytes before
    and after the file's value (None if the key is not there once).

    Inside a JSON string every quote is escaped, so '"file":""' is a key with an
    empty value: ours, unless the payload has another.
    """
    inp = payload.get("input", payload)
    blank = {**inp, "file": ""}
    encoded = _JSON.encode({**payload, "input": blank} if inp is not payload else blank)
    before, *after = encoded.split('"file":""')
    if len(after) != 1:
        return None
    return before.encode() + b'"file":"', b'"' + after[0].encode()


# --------------------------------------------------------------------------- answers


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: seconds (int or float) or an HTTP date.

    Args:
        value: The header value, or None.
        now: The current POSIX time (for tests); defaults to ``time.time()``.

    Returns:
        Seconds to wait (>= 0), or None when absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _clip(text: str) -> str:
    text = _SPACE_RE.sub(" ", text).strip()
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[: _MAX_DETAIL_CHARS - 3].rstrip() + "..."
    return text


@dataclass
class _Answer:
    """What we understood of an error answer."""

    status: int
    codes: list[int]
    detail: str  # "HTTP 429, code 3036: ..." (already redacted)
    retry_after: float | None
    location: str = ""  # " to <url>" for redirects (already redacted)


def _describe_error_body(raw: bytes, content_type: str, token: str) -> tuple[list[int], str]:
    """Return the Cloudflare codes and a short redacted description of an error body."""
    text = raw.decode("utf-8", errors="replace")
    data: Any = None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        data = None
    codes: list[int] = []
    messages: list[str] = []
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, dict):
            errors = [errors]
        if not isinstance(errors, list):
            single = data.get("error")
            errors = [single] if single is not None else []
        for err in errors:
            if isinstance(err, dict):
                code = err.get("code")
                if isinstance(code, bool):
                    code = None
                if isinstance(code, str) and code.strip().isdigit():
                    code = int(code.strip())
                if isinstance(code, int):
                    codes.append(code)
                message = err.get("message")
                if isinstance(message, str) and message.strip():
                    messages.append(
                        f"code {code}: {message.strip()}" if isinstance(code, int) else message
                    )
                elif isinstance(code, int):
                    messages.append(f"code {code}")
            elif isinstance(err, str) and err.strip():
                messages.append(err.strip())
        if not messages and isinstance(data.get("message"), str):
            messages.append(data["message"])
        description = "; ".join(messages) if messages else "a JSON answer without error details"
    elif data is not None:
        description = f"an unexpected JSON answer {_clip(text)!r}"
    elif not text.strip():
        description = "an empty answer"
    elif "html" in content_type.lower() or text.lstrip()[:1] == "<":
        title = _HTML_TITLE_RE.search(text)
        body_text = title.group(1) if title else _TAG_RE.sub(" ", text)
        description = f"an HTML page: {_clip(body_text)!r}"
    else:
        description = f"a non-JSON answer: {_clip(text)!r}"
    return codes, _clip(redact(description, token))


def _error_for(answer: _Answer, *, account_id: str, model: str) -> TranscribeError:
    """Map an HTTP error answer to the exception tree."""
    status, codes, retry_after = answer.status, answer.codes, answer.retry_after
    code: int | None = codes[0] if codes else None
    detail = answer.detail
    where = f"HTTP {status}" + (f", {detail}" if detail else "")
    wait = f" (the service asked to wait {retry_after:g} s)" if retry_after is not None else ""

    def has(known: frozenset[int]) -> int | None:
        for c in codes:
            if c in known:
                return c
        return None

    if (c := has(_QUOTA_CODES)) is not None:
        return QuotaExceededError(
            f"The account's daily Workers AI allocation is used up ({where}). Retrying will "
            "not help until it resets (daily, at 00:00 UTC) or the account moves to the "
            "Workers Paid plan.",
            code=c,
            status=status,
            retry_after=retry_after,
        )
    if (c := has(_AUTH_CODES)) == 3023:
        return AuthenticationError(
            f"Cloudflare refused account {account_id} ({where}): the account is blocked from "
            "Workers AI. Check the account's status in the Cloudflare dashboard.",
            code=c,
            status=status,
            retry_after=retry_after,
        )
    if (c := has(_NO_ROUTE_CODES)) is not None:
        return AuthenticationError(
            f"Cloudflare found no Workers AI route for account {account_id} ({where}). "
            f"Check {ENV_ACCOUNT_ID} (the 32-character account id from the dashboard) and "
            f"base_url / {ENV_BASE_URL} (normally {DEFAULT_BASE_URL}).",
            code=c,
            status=status,
            retry_after=retry_after,
        )
    if has(_AUTH_CODES) is not None or status in (401, 403):
        return AuthenticationError(
            f"Cloudflare rejected the API token ({where}). Check {ENV_API_TOKEN}: it needs "
            f"the Workers AI Read/Edit permission for account {account_id}, and "
            f"{ENV_ACCOUNT_ID} must be that account's id.",
            code=has(_AUTH_CODES) or code,
            status=status,
            retry_after=retry_after,
        )
    if (c := has(_RATE_CODES)) is not None or status == 429:
        return RateLimitError(
            f"Workers AI is rate limiting this account or the model is out of capacity "
            f"({where}){wait}. Slow down and try again.",
            code=c if c is not None else code,
            status=status,
            retry_after=retry_after,
        )
    if (c := has(_TOO_LARGE_CODES)) is not None or status == 413:
        return RequestTooLargeError(
            f"The request is larger than Workers AI accepts ({where}). Send audio under "
            "25 MB: split it into shorter parts or re-encode it to a compressed format.",
            code=c if c is not None else code,
            status=status,
            retry_after=retry_after,
        )
    if (c := has(_MODEL_CODES)) is not None:
        return ModelNotFoundError(
            f"Workers AI does not know the model {model!r} ({where}). Check the model name; "
            f"this library is made for {DEFAULT_MODEL!r}.",
            code=c,
            status=status,
            retry_after=retry_after,
        )
    if (c := has(_TIMEOUT_CODES)) is not None or status == 408:
        verb = "aborted" if c == 3008 else "timed out on"
        return ServiceTimeoutError(
            f"Workers AI {verb} the request ({where}). It is safe to try again.",
            code=c if c is not None else code,
            status=status,
            retry_after=retry_after,
        )
    if (c := has(_INVALID_CODES)) is not None or 400 <= status < 500:
        return InvalidRequestError(
            f"Workers AI could not use this request ({where}). Check that the audio is "
            "readable and in a supported format (flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, "
            "webm), and that the parameters are valid.",
            code=c if c is not None else code,
            status=status,
            retry_after=retry_after,
        )
    if 300 <= status < 400:
        return ServiceError(
            f"Workers AI answered with a redirect ({where}){answer.location}. Check base_url: "
            f"it should be {DEFAULT_BASE_URL} or an emulator's URL.",
            code=code,
            status=status,
            retry_after=retry_after,
        )
    return ServiceError(
        f"Workers AI answered with an error ({where}){wait}. This is usually temporary; "
        "try again later.",
        code=code,
        status=status,
        retry_after=retry_after,
    )


def _success_text(data: Any) -> str | None:
    """result.text of a unified answer or a v4 envelope, else None."""
    if not isinstance(data, dict) or data.get("success") is False:
        return None
    result = data.get("result")
    if isinstance(result, dict):
        text = result.get("text")
        if isinstance(text, str):
            return text
    return None


# --------------------------------------------------------------------------- client


def _describe_file(file: str) -> str:
    if file.startswith("data:"):
        head = file.split(",", 1)[0]
        return f"{head[:60]},<{len(file)} chars>"
    parts = urlsplit(file)
    return f"{parts.scheme}://{parts.hostname}/...<url>"  # never the path or a signed query


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

    Raises:
        ConfigurationError: ``timeout`` or ``max_connections`` is not positive,
            or ``gateway`` is invalid.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 300.0,
        max_connections: int = 100,
        gateway: Gateway | str | Mapping[str, Any] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
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
        self._credentials = credentials
        self._timeout = float(timeout)
        self._client_timeout = aiohttp.ClientTimeout(
            total=self._timeout, sock_connect=min(self._timeout, 30.0)
        )
        self._hosts: dict[str, str] = {}
        self._templates: dict[tuple[Any, ...], tuple[str, bytes, bytes]] = {}
        self._max_connections = max_connections
        self._gateway = Gateway.coerce(gateway)
        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._headers = {
            "Authorization": f"Bearer {credentials.api_token}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        if self._gateway is not None and self._gateway.use_gateway_url:
            self._headers.update(self._gateway.headers())

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
            The unified ``.../ai/run`` URL, or the AI Gateway URL with the model
            in the path when the gateway has ``use_gateway_url``.
        """
        account = quote(self._credentials.account_id, safe="")
        gw = self._gateway
        if gw is not None and gw.use_gateway_url:
            return (
                f"{gw.base_url}/{account}/{quote(gw.id, safe='')}/workers-ai/"
                f"{quote(model, safe='/@')}"
            )
        return f"{self._credentials.base_url}/accounts/{account}/ai/run"

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
    ) -> str:
        """Send one audio file and return its transcript. Never retries.

        Args:
            file: A data URI (``data:audio/wav;base64,...``) or an https:// URL.
            model: The Workers AI model name.
            language: None or an ISO-639-1 code such as ``"en"``.
            prompt: None or text that guides the transcription.
            temperature: None or a number from 0 to 1.

        Returns:
            The transcript (``result.text``), possibly empty for silence.

        Raises:
            ConfigurationError: A parameter is invalid (nothing was sent).
            TranscribeError: A subclass for every failure of the request; see
                :mod:`cf_transcribe_pandas.errors` for which are retryable.
        """
        return await self._transcribe(
            file, model=model, language=language, prompt=prompt, temperature=temperature
        )

    async def _transcribe(
        self,
        file: str,
        *,
        model: str,
        language: str | None,
        prompt: str | None,
        temperature: float | None,
        plain: bool = False,
    ) -> str:
        """:meth:`transcribe`; ``plain``: ``file`` is a base64 data URI made by
        :mod:`cf_transcribe_pandas.audio` (JSON needs not escape it), not checked again."""
        template = self._template(model, language, prompt, temperature)
        raw = file.encode("ascii") if plain else _plain_data_uri(file)
        if template is not None and raw is not None:
            url, before, after = template
            data = b"".join((before, raw, after))
        else:
            data = encode_body(self._payload(file, model, language, prompt, temperature))
            url = self.url_for(model)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "POST %s model=%s file=%s language=%s prompt=%s temperature=%s bytes=%d",
                url,
                model,
                _describe_file(file),
                normalize_language(language),
                f"<{len(prompt)} chars>" if prompt is not None else None,
                None if temperature is None else float(temperature),
                len(data),
            )
        session = self._get_session()
        started = time.monotonic()
        try:
            return await self._post(session, url, data, model)
        except TranscribeError as exc:
            logger.debug(
                "failed after %.3f s: %s %s",
                time.monotonic() - started,
                type(exc).__name__,
                exc.message,
            )
            raise

    def _payload(
        self,
        file: str,
        model: str,
        language: str | None,
        prompt: str | None,
        temperature: float | None,
    ) -> dict[str, Any]:
        """What is posted: :func:`build_body`, or its ``input`` alone for the AI
        Gateway URL form.

        Raises:
            ConfigurationError: A parameter is invalid.
        """
        body = build_body(
            file,
            model=model,
            language=language,
            prompt=prompt,
            temperature=temperature,
            gateway=self._gateway,
        )
        gw = self._gateway
        payload: dict[str, Any] = body["input"] if gw is not None and gw.use_gateway_url else body
        return payload

    def _template(
        self, model: str, language: str | None, prompt: str | None, temperature: float | None
    ) -> tuple[str, bytes, bytes] | None:
        """The URL and the body around the file's value for these parameters:
        checked and encoded once per Client, not once per request.

        Returns:
            (url, body bytes before the file's value, after it); None when the
            parameters cannot be a dict key (:func:`build_body` then says why).

        Raises:
            ConfigurationError: A parameter is invalid.
        """
        # The type is in the key: True == 1 and hash alike, but a bool is no temperature.
        key = (model, language, prompt, temperature, type(temperature))
        try:
            template = self._templates.get(key)
        except TypeError:
            return None
        if template is None:
            around = _around_file(self._payload("data:,", model, language, prompt, temperature))
            if around is None:
                return None
            if len(self._templates) >= _MAX_TEMPLATES:  # e.g. a prompt per row
                self._templates.clear()
            template = self._templates[key] = (self.url_for(model), *around)
        return template

    def _connection_failure(self, exc: BaseException, host: str) -> TranscribeError:
        """Map an exception raised while sending or reading to the error tree."""
        token = self._credentials.api_token
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return ServiceTimeoutError(
                f"No answer from {host} within {self._timeout:g} s. It is safe to try again; "
                "for long audio raise timeout=."
            )
        if isinstance(exc, aiohttp.InvalidURL):
            return ConfigurationError(
                f"The request URL is not valid ({_clip(redact(str(exc), token))}). Check "
                "base_url and the gateway id.",
                code="invalid_base_url",
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return NetworkError(
                f"Could not connect to {host} ({_clip(redact(str(exc), token))}). "
                "Check the network connection and base_url; it is safe to try again."
            )
        if isinstance(exc, aiohttp.ClientResponseError):
            return ServiceError(
                f"{host} sent an answer that is not valid HTTP "
                f"({_clip(redact(exc.message, token))}). This is usually temporary; try again."
            )
        reason = _clip(redact(str(exc), token)) or "no details"
        return NetworkError(
            f"The connection to {host} failed before an answer arrived "
            f"({type(exc).__name__}: {reason}). It is safe to try again."
        )

    async def _post(self, session: aiohttp.ClientSession, url: str, data: bytes, model: str) -> str:
        token = self._credentials.api_token
        timeout = self._client_timeout
        host = self._hosts.get(url)
        if host is None:
            host = self._hosts[url] = urlsplit(url).netloc
        started = time.monotonic()
        failure: TranscribeError | None
        # aiohttp writes a large bytes body in one go (and warns about it); a
        # file-like body is streamed in chunks, keeping the event loop responsive.
        body: bytes | io.BytesIO = io.BytesIO(data) if len(data) > _STREAM_BODY_OVER else data
        try:
            async with session.post(
                url, data=body, headers=self._headers, timeout=timeout, allow_redirects=False
            ) as resp:
                raw = await resp.read()
                status = resp.status
                content_type = resp.headers.get("Content-Type", "")
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                location = resp.headers.get("Location", "")
        except (asyncio.TimeoutError, TimeoutError, aiohttp.ClientError, OSError) as exc:
            failure = self._connection_failure(exc, host)
        else:
            failure = None
        if failure is not None:
            # Raised outside the except block on purpose: aiohttp's exceptions carry our
            # request headers (the token) in request_info, so none is chained as context.
            raise failure
        elapsed = time.monotonic() - started
        logger.debug("HTTP %d from %s in %.3f s (%d bytes)", status, host, elapsed, len(raw))

        if 200 <= status < 300:
            try:
                parsed: Any = json.loads(raw.decode("utf-8", errors="replace"))
            except (ValueError, RecursionError):
                parsed = None
            text = _success_text(parsed)
            if text is not None:
                return text
            if isinstance(parsed, dict) and parsed.get("success") is False:
                codes, detail = _describe_error_body(raw, content_type, token)
                raise _error_for(
                    _Answer(status, codes, detail, retry_after),
                    account_id=self._credentials.account_id,
                    model=model,
                )
            _, detail = _describe_error_body(raw, content_type, token)
            what = "without result.text" if isinstance(parsed, dict) else f"with {detail}"
            raise ServiceError(
                f"Workers AI answered HTTP {status} but {what}, so there is no transcript. "
                "This is usually temporary; try again.",
                status=status,
                retry_after=retry_after,
            )
        codes, detail = _describe_error_body(raw, content_type, token)
        moved = f" to {_clip(redact(location, token))}" if location else ""
        raise _error_for(
            _Answer(status, codes, detail, retry_after, moved),
            account_id=self._credentials.account_id,
            model=model,
        )
