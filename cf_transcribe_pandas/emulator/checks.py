"""The checks of a service request, before its file: token, account, body, input fields.

Each check raises :class:`~cf_transcribe_pandas.emulator.answers.ApiError`
with the service's status and code, and notes what it learned in the request's
log entry (a ``dict``; see ``EmulatorState.record``). The order is the
service's: credentials (401/403), size (413 3006), JSON (400 3003), body and
input fields (400 3003), model (404 3042, 400 5007).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from cf_transcribe_pandas.emulator.answers import ApiError
from cf_transcribe_pandas.emulator.config import EmulatorConfig

__all__ = [
    "check_body",
    "check_credentials",
    "check_input",
    "check_model",
    "read_json",
]

_INPUT_KEYS = frozenset({"file", "language", "prompt", "temperature"})
_UNIFIED_KEYS = frozenset({"model", "input", "options"})
_LANGUAGE = re.compile(r"[a-z]{2}")
_FILE_PREVIEW = 80
_MISSING = "Request is missing headers or body"


def _is_language(value: object) -> bool:
    return isinstance(value, str) and _LANGUAGE.fullmatch(value) is not None


def _is_temperature(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def _is_str(value: object) -> bool:
    return isinstance(value, str)


_OPTIONAL_INPUTS: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("language", _is_language, "an ISO-639-1 code (two lowercase letters)"),
    ("prompt", _is_str, "a string"),
    ("temperature", _is_temperature, "a number from 0 to 1"),
)
"""The optional input fields: name, check, and the rule a bad value breaks."""


def check_credentials(request: web.Request, cfg: EmulatorConfig, account: str) -> None:
    """Check the bearer token (401 10000), the account (403 10000) and a block (403 3023)."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() != "bearer " or auth[7:].strip() != cfg.token:
        raise ApiError(401, 10000, "Authentication error")
    if account != cfg.account_id and account not in cfg.blocked_accounts:
        raise ApiError(
            403,
            10000,
            f"Authentication error: account {account!r} not found or not authorized for this token",
        )
    if cfg.blocked or account in cfg.blocked_accounts:
        raise ApiError(403, 3023, "Service unavailable for account")


async def read_json(request: web.Request, limit: int) -> Any:
    """Read the body (413 3006 over ``limit`` bytes) and parse it (400 3003)."""
    length = request.content_length
    too_large = f"Request is too large: the body is over {limit} bytes"
    if length is not None and length > limit:
        raise ApiError(413, 3006, too_large)
    buf = bytearray()
    while chunk := await request.content.readany():
        buf += chunk
        if len(buf) > limit:
            raise ApiError(413, 3006, too_large)
    if not buf:
        raise ApiError(400, 3003, f"{_MISSING}: the body is empty")
    try:
        return json.loads(buf)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, 3003, f"{_MISSING}: the body is not valid JSON ({exc})") from exc


def check_body(
    data: Any, form: str, path_model: str | None, entry: dict[str, Any]
) -> tuple[str, dict[str, Any], str]:
    """Check the body of either form.

    Returns:
        (model, the input object, the prefix of input field names in messages).
    """
    if not isinstance(data, dict):
        raise ApiError(400, 3003, f"{_MISSING}: a JSON object")
    entry["body"] = _short_body(data, form)
    if form != "unified":
        return path_model or "", data, ""
    unknown = [k for k in data if k not in _UNIFIED_KEYS]
    if unknown:
        entry["unknown_keys"] = unknown
    model = data.get("model")
    if model is None:
        raise ApiError(400, 3003, f"{_MISSING}: model")
    if not isinstance(model, str):
        raise ApiError(400, 3003, f"Invalid request: model must be a string, got {model!r}")
    inp = data.get("input")
    if inp is None:
        raise ApiError(400, 3003, f"{_MISSING}: input")
    if not isinstance(inp, dict):
        raise ApiError(400, 3003, "Invalid request: input must be a JSON object")
    options = data.get("options")
    if options is not None:
        if not isinstance(options, dict):
            raise ApiError(400, 3003, "Invalid request: options must be a JSON object")
        gateway = options.get("gateway")
        if gateway is not None:
            entry["gateway"] = _check_gateway(gateway, entry["gateway"])
    return model, inp, "input."


def _check_gateway(gateway: Any, from_url: dict[str, Any] | None) -> dict[str, Any]:
    """Check ``options.gateway``; return it as the log shows it (merged with the URL's)."""
    where = "Invalid request: options.gateway"
    if not isinstance(gateway, dict):
        raise ApiError(400, 3003, f"{where} must be a JSON object")
    gid = gateway.get("id")
    if not isinstance(gid, str) or not gid:
        raise ApiError(400, 3003, f"{where}.id must be a non-empty string")
    ttl = gateway.get("cacheTtl")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0):
        raise ApiError(400, 3003, f"{where}.cacheTtl must be an int >= 0, got {ttl!r}")
    skip = gateway.get("skipCache")
    if skip is not None and not isinstance(skip, bool):
        raise ApiError(400, 3003, f"{where}.skipCache must be a boolean, got {skip!r}")
    out: dict[str, Any] = dict(from_url or {})
    out.update({"id": gid, "via": "url" if from_url else "body"})
    if ttl is not None:
        out["cacheTtl"] = ttl
    if skip is not None:
        out["skipCache"] = skip
    return out


def check_model(model: str, cfg: EmulatorConfig) -> None:
    """Check the model id (404 3042 if malformed) and that it is known (400 5007)."""
    if not model or not model.isprintable() or " " in model:
        raise ApiError(404, 3042, f"The model name is invalid: {model!r}")
    if model not in cfg.models:
        raise ApiError(400, 5007, f"No such model {model} or task")


def check_input(inp: dict[str, Any], prefix: str, entry: dict[str, Any]) -> str:
    """Check the optional input fields (logging them) and return ``file``, a string."""
    unknown = [f"{prefix}{k}" for k in inp if k not in _INPUT_KEYS]
    if unknown:
        entry["unknown_keys"] = (entry["unknown_keys"] or []) + unknown
    for key, valid, rule in _OPTIONAL_INPUTS:
        if key in inp:
            value = inp[key]
            if not valid(value):
                raise ApiError(
                    400, 3003, f"Invalid input: {prefix}{key} must be {rule}, got {value!r}"
                )
            entry[key] = value
    file = inp.get("file")
    if file is None:
        raise ApiError(400, 3003, f"{_MISSING}: {prefix}file")
    if not isinstance(file, str):
        raise ApiError(
            400, 3003, f"Invalid input: {prefix}file must be a string, got {type(file).__name__}"
        )
    return file


def _preview(text: str) -> str:
    return text if len(text) <= _FILE_PREVIEW else text[: _FILE_PREVIEW - 3] + "..."


def _short_body(data: dict[str, Any], form: str) -> dict[str, Any]:
    """Copy the body with ``file`` cut to 80 characters (no audio kept in the log)."""
    out = dict(data)
    if form == "unified":
        inp = out.get("input")
        if isinstance(inp, dict) and isinstance(inp.get("file"), str):
            out["input"] = {**inp, "file": _preview(inp["file"])}
    else:
        for name in ("file", "audio"):  # the unified input, or whisper's raw base64
            if isinstance(out.get(name), str):
                out[name] = _preview(out[name])
    return out
