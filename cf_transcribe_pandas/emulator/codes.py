"""Any documented Workers AI error, answered on demand: the ``answer_code`` fault.

:data:`CODES` holds every code of the Workers AI errors page (and the ones
users report beside it) with its HTTP status and message. Setting the fault
field ``answer_code`` (``Emulator.set_faults(answer_code={...})`` or ``POST
/__emulator__/faults``) makes model runs answer one of them. Its keys:

- ``code`` (required): the code; one of :data:`CODES`, or any int with ``status``.
- ``status``: the HTTP status (default: the code's own).
- ``message``: the message (default: the code's own).
- ``shape``: where the code is written. ``"envelope"`` (default):
  ``{"success": false, "errors": [{"code": N, "message": M}]}``; ``"message"``:
  only in the message, ``"N: M"``; ``"aierror"``: only in the message,
  ``"AiError: M (N)"``; ``"openai"``: the OpenAI-compatible
  ``{"error": {"message": "N: M", "type": "error", "code": null}}``.
- ``after``: runs (of the chosen audio) that go through before the first such answer (0).
- ``times``: how many runs get it, then runs go through again (None: every one).
- ``sha256``: only runs of the audio with this sha256 (default: every run).
- ``retry_after``: a ``Retry-After`` header, in seconds.

The answer comes after the credentials, body and audio checks, before the
rate limit; it is logged with ``fault="answer_code"``. Setting the field
again (or ``reset``) starts ``after`` and ``times`` over.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cf_transcribe_pandas.emulator.answers import JSON

if TYPE_CHECKING:
    from cf_transcribe_pandas.emulator.state import EmulatorState

__all__ = ["CODES", "SHAPES", "check_answer_code", "coded_answer"]

CODES: dict[int, tuple[int, str]] = {
    5007: (400, "No such model {model} or task"),
    5004: (400, "Invalid data type for base64 input: string"),
    3039: (400, "Finetune is missing required files (model.safetensors and config.json)"),
    3003: (400, "Request is missing headers or body: body"),
    5018: (403, "The account is not allowed to access this model"),
    5016: (403, "User has not agreed to the model terms"),
    3023: (403, "Service unavailable for account"),
    3041: (403, "The account is not allowed to access this model"),
    5019: (405, "Request trying to use deprecated SDK version"),
    5005: (405, "The model {model} does not support LoRa inference"),
    3042: (404, "The model name is invalid"),
    3006: (413, "Request is too large"),
    3007: (408, "Request timeout"),
    3008: (408, "Request was aborted"),
    3036: (
        429,
        "You have used up your daily free allocation of 10,000 neurons. Please upgrade to "
        "Cloudflare's Workers Paid plan if you would like to continue usage.",
    ),
    3040: (429, "No more data centers to forward the request to"),
    # Reported by users beside the errors page.
    4006: (
        429,
        "you have used up your daily free allocation of 10,000 neurons, please upgrade to "
        "Cloudflare's Workers Paid plan if you would like to continue usage.",
    ),
    5035: (403, "Model {model} is not available on the Workers Free plan"),
    5006: (400, "Error: required properties at '/audio' are 'audio'"),
    7009: (502, "Upstream service unavailable"),
    10000: (401, "Authentication error"),
}
"""Code -> (HTTP status, message); ``{model}`` is the model asked for."""

SHAPES = ("envelope", "message", "aierror", "openai")
_KEYS = frozenset({"code", "status", "message", "shape", "after", "times", "sha256", "retry_after"})


def check_answer_code(name: str, value: Any) -> None:
    """Check an ``answer_code`` setting (None, or a mapping as the module docstring says).

    Raises:
        ValueError: An unknown key, or a value of the wrong type.
    """
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a JSON object or None, got {value!r}")
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise ValueError(f"{name}: unknown keys {unknown}; known: {sorted(_KEYS)}")
    code = value.get("code")
    if not _is_int(code):
        raise ValueError(f"{name}.code must be an int, got {code!r}")
    status = value.get("status")
    if status is None and code not in CODES:
        raise ValueError(f"{name}: code {code} is not in CODES; give its status too")
    if status is not None and not (_is_int(status) and 400 <= status <= 599):
        raise ValueError(f"{name}.status must be an int from 400 to 599, got {status!r}")
    if value.get("shape", "envelope") not in SHAPES:
        raise ValueError(f"{name}.shape must be one of {SHAPES}, got {value.get('shape')!r}")
    for key in ("after", "times", "retry_after"):
        number = value.get(key)
        if number is not None and not (_is_int(number) and number >= 0):
            raise ValueError(f"{name}.{key} must be an int >= 0, got {number!r}")
    for key in ("message", "sha256"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise ValueError(f"{name}.{key} must be a string, got {value[key]!r}")


def coded_answer(state: EmulatorState, entry: dict[str, Any]) -> web.Response | None:
    """The ``answer_code`` answer for this run, or None when it goes through.

    Args:
        state: The emulator's state (its config's ``answer_code``, and
            ``code_seen``: the runs of the chosen audio since it was set).
        entry: The request's log entry (``sha256`` and ``model`` read; ``status``,
            ``code``, ``fault``, ``retry_after`` written).
    """
    spec = state.config.answer_code
    if spec is None or spec.get("sha256") not in (None, entry["sha256"]):
        return None
    seen, state.code_seen = state.code_seen, state.code_seen + 1
    after, times = spec.get("after") or 0, spec.get("times")
    if seen < after or (times is not None and seen >= after + times):
        return None
    code = int(spec["code"])
    status, text = CODES.get(code, (0, "Error {code}"))
    status = int(spec.get("status") or status)
    message = str(spec.get("message") or text).format(model=entry["model"], code=code)
    headers = {"Content-Type": JSON}
    if spec.get("retry_after") is not None:
        headers["Retry-After"] = str(spec["retry_after"])
        entry["retry_after"] = spec["retry_after"]
    entry.update(status=status, code=code, fault="answer_code")
    body = _body(spec.get("shape") or "envelope", code, message)
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)


def _body(shape: str, code: int, message: str) -> dict[str, Any]:
    if shape == "openai":
        return {"error": {"message": f"{code}: {message}", "type": "error", "code": None}}
    if shape == "envelope":
        errors: list[dict[str, Any]] = [{"code": code, "message": message}]
    elif shape == "aierror":
        errors = [{"message": f"AiError: {message} ({code})"}]
    else:
        errors = [{"message": f"{code}: {message}"}]
    return {"success": False, "errors": errors, "messages": [], "result": None}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
