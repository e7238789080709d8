"""Reading Workers AI's answers: the transcript of a success, and for every
other answer (HTTP status, Cloudflare code, garbage body) the exception of
:mod:`cf_transcribe_pandas.errors` that says what happened and what to do.

Error bodies are parsed defensively: the unified endpoint's error body is not
documented, so the v4 envelope ``{"success": false, "errors": [{"code",
"message"}]}``, a bare ``{"error": ...}``, HTML pages, plain text and
non-UTF-8 bytes are all read. Every text copied from an answer is clipped and
goes through :func:`~cf_transcribe_pandas.errors.redact` before it reaches a
message.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from dataclasses import dataclass
from datetime import timezone
from typing import Any

from cf_transcribe_pandas._version import __version__
from cf_transcribe_pandas.client.codes import match
from cf_transcribe_pandas.client.credentials import (
    DEFAULT_BASE_URL,
    ENV_ACCOUNT_ID,
    ENV_API_TOKEN,
    ENV_BASE_URL,
)
from cf_transcribe_pandas.client.models import MODELS, ModelAdapter, Transcript
from cf_transcribe_pandas.errors import ServiceError, TranscribeError, redact

__all__ = [
    "HttpAnswer",
    "clip",
    "code_in_message",
    "describe_error_body",
    "error_for",
    "parse_retry_after",
    "transcript_of",
]

_MAX_DETAIL_CHARS = 300
_HTML_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")
_SPACE_RE = re.compile(r"\s+")
_MESSAGE_CODE_RES = (
    re.compile(r"^\s*(?:\w*Error:\s*)*(\d{4,5})\s*:"),  # "4006: ...", "AiError: 4006: ..."
    re.compile(r"\((\d{4,5})\)\W*$"),  # "AiError: ... (3040)"
    re.compile(r"\berror code:?\s*(\d{4,5})\b", re.IGNORECASE),  # "error code: 1015"
)


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP answer, read whole.

    Attributes:
        status: The HTTP status.
        body: The body bytes.
        content_type: The ``Content-Type`` header, or "".
        retry_after: The ``Retry-After`` header in seconds (see
            :func:`parse_retry_after`), or None.
        location: The ``Location`` header (redirects), or "".
    """

    status: int
    body: bytes
    content_type: str = ""
    retry_after: float | None = None
    location: str = ""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: seconds (int or float) or an HTTP date.

    Args:
        value: The header value, or None.
        now: The current POSIX time (for tests); defaults to ``time.time()``.

    Returns:
        Seconds to wait (>= 0), or None when absent or unreadable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
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


def clip(text: str) -> str:
    """``text`` on one line, cut to a few hundred characters for a message."""
    text = _SPACE_RE.sub(" ", text).strip()
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[: _MAX_DETAIL_CHARS - 3].rstrip() + "..."
    return text


def _load_json(text: str) -> Any:
    """The parsed body, or None when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None


# --------------------------------------------------------------------------- error bodies


def _error_items(data: dict[str, Any]) -> list[Any]:
    """The error objects of an envelope: ``errors`` (a list or one), else ``error``."""
    errors = data.get("errors")
    if isinstance(errors, dict):
        return [errors]
    if isinstance(errors, list):
        return errors
    single = data.get("error")
    return [single] if single is not None else []


def _code_of(value: object) -> int | None:
    """A Cloudflare code given as an int or a string of digits; else None."""
    if isinstance(value, str) and value.strip().isdecimal():
        try:
            return int(value.strip())
        except ValueError:  # more digits than int() reads from a str
            return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def code_in_message(text: str) -> int | None:
    """A Cloudflare code written only in a message, else None.

    Reads ``"4006: you have used up ..."`` (also after ``"AiError: "``),
    ``"AiError: ... (3040)"`` and ``"error code: 1015"``.
    """
    for pattern in _MESSAGE_CODE_RES:
        found = pattern.search(text)
        if found:
            return int(found.group(1))
    return None


def _describe_item(item: object) -> tuple[int | None, str]:
    """The code and the text ("" if none) of one error object."""
    if isinstance(item, str):
        return code_in_message(item), item.strip()
    if not isinstance(item, dict):
        return None, ""
    code = _code_of(item.get("code"))
    message = item.get("message")
    if isinstance(message, str) and message.strip():
        if code is None:
            return code_in_message(message), message.strip()
        return code, f"code {code}: {message.strip()}"
    return code, "" if code is None else f"code {code}"


def _describe_envelope(data: dict[str, Any]) -> tuple[list[int], str]:
    codes: list[int] = []
    messages: list[str] = []
    for item in _error_items(data):
        code, message = _describe_item(item)
        if code is not None:
            codes.append(code)
        if message:
            messages.append(message)
    if not messages and isinstance(data.get("message"), str):
        messages.append(data["message"])
        code = code_in_message(data["message"])
        codes += [code] if code is not None else []
    return codes, "; ".join(messages) if messages else "a JSON answer without error details"


def _describe_text(text: str, content_type: str) -> str:
    if not text.strip():
        return "an empty answer"
    if "html" in content_type.lower() or text.lstrip()[:1] == "<":
        title = _HTML_TITLE_RE.search(text)
        body_text = title.group(1) if title else _TAG_RE.sub(" ", text)
        return f"an HTML page: {clip(body_text)!r}"
    return f"a non-JSON answer: {clip(text)!r}"


def describe_error_body(raw: bytes, content_type: str, token: str) -> tuple[list[int], str]:
    """Read an error body whatever its shape.

    Args:
        raw: The body bytes.
        content_type: The ``Content-Type`` header.
        token: The API token, scrubbed from the description.

    Returns:
        The Cloudflare codes found, in order, and a short redacted description
        such as ``"code 3040: Capacity temporarily exceeded"``.
    """
    text = raw.decode("utf-8", errors="replace")
    data = _load_json(text)
    if isinstance(data, dict):
        codes, description = _describe_envelope(data)
    elif data is not None:
        codes, description = [], f"an unexpected JSON answer {clip(text)!r}"
    else:
        code = code_in_message(text) if len(text) < 2000 else None
        codes, description = ([] if code is None else [code]), _describe_text(text, content_type)
    return codes, clip(redact(description, token))


# --------------------------------------------------------------------------- the mapping


def error_for(answer: HttpAnswer, *, token: str, account_id: str, model: str) -> TranscribeError:
    """The exception for an error answer (or a 2xx envelope with ``success: false``).

    Args:
        answer: The answer.
        token: The API token, scrubbed from every text copied from the answer.
        account_id: The account, named in account errors.
        model: The model asked for, named when Workers AI does not know it.

    Returns:
        An exception of the tree: the class, ``code``, ``status`` and
        ``retry_after`` say what happened and whether to retry.
    """
    codes, detail = describe_error_body(answer.body, answer.content_type, token)
    rule, code = match(codes, answer.status)
    retry_after = answer.retry_after
    message = rule.message.format(
        where=f"HTTP {answer.status}" + (f", {detail}" if detail else ""),
        wait=f" (the service asked to wait {retry_after:g} s)" if retry_after is not None else "",
        location=f" to {clip(redact(answer.location, token))}" if answer.location else "",
        verb="aborted" if code == 3008 else "timed out on",
        account_id=account_id,
        model=model,
        known_models=", ".join(map(repr, MODELS)),
        version=__version__,
        env_account=ENV_ACCOUNT_ID,
        env_token=ENV_API_TOKEN,
        env_base_url=ENV_BASE_URL,
        default_base_url=DEFAULT_BASE_URL,
    )
    return rule.error(message, code=code, status=answer.status, retry_after=retry_after)


def transcript_of(
    answer: HttpAnswer, adapter: ModelAdapter, *, token: str, account_id: str
) -> Transcript:
    """The transcript in ``answer``, or the exception that says why there is none.

    Args:
        answer: The answer to one request.
        adapter: The model's adapter, which reads a successful answer.
        token: The API token, scrubbed from every message.
        account_id: The account, named in account errors.

    Returns:
        The transcript (its text possibly empty for silence), as the adapter reads it.

    Raises:
        TranscribeError: The answer is an error, or a 2xx without a transcript
            (a retryable :class:`~cf_transcribe_pandas.errors.ServiceError`).
    """
    if not 200 <= answer.status < 300:
        raise error_for(answer, token=token, account_id=account_id, model=adapter.name)
    data = _load_json(answer.body.decode("utf-8", errors="replace"))
    if isinstance(data, dict) and data.get("success") is False:
        raise error_for(answer, token=token, account_id=account_id, model=adapter.name)
    transcript = adapter.parse(data)
    if transcript is not None:
        return transcript
    _, detail = describe_error_body(answer.body, answer.content_type, token)
    what = "without result.text" if isinstance(data, dict) else f"with {detail}"
    raise ServiceError(
        f"Workers AI answered HTTP {answer.status} but {what}, so there is no transcript. "
        "This is usually temporary; try again.",
        status=answer.status,
        retry_after=answer.retry_after,
    )
