"""The bodies the emulator answers with: the v4 error envelope, success, 5xx pages.

A check that fails raises :class:`ApiError`; the handler turns it into the
service's error envelope ``{"success": false, "errors": [{"code",
"message"}], "messages": [], "result": null}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

__all__ = [
    "JSON",
    "SERVER_ERROR_CODE",
    "ApiError",
    "envelope",
    "error_response",
    "server_error",
    "success_body",
]

JSON = "application/json"

_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
SERVER_ERROR_CODE = 3000
"""The code of 5xx answers: not documented for 5xx; any code >= 1000 fits the envelope."""


class ApiError(Exception):
    """An answer in the v4 error envelope; raised by a check, answered by the handler.

    Args:
        status: The HTTP status.
        code: The Cloudflare error code.
        message: The error message.
        headers: Extra headers (``Retry-After``, ``Allow``).
        fault: The injected fault that caused it, for the log and counters.
    """

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        fault: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.fault = fault


def envelope(code: int, message: str) -> bytes:
    """Return the v4 error envelope with one error."""
    errors = [{"code": code, "message": message}]
    return json.dumps({"success": False, "errors": errors, "messages": [], "result": None}).encode()


def error_response(err: ApiError) -> web.Response:
    """Return the answer of an :class:`ApiError`."""
    headers = {"Content-Type": JSON, **err.headers}
    return web.Response(status=err.status, body=envelope(err.code, err.message), headers=headers)


def success_body(form: str, text: str) -> bytes:
    """Return the success body of the unified or the per-model form."""
    if form == "unified":
        body: dict[str, object] = {
            "gatewayMetadata": {"keySource": "Unified"},
            "result": {"text": text},
            "state": "Completed",
        }
    else:
        body = {"result": {"text": text}, "success": True, "errors": [], "messages": []}
    return json.dumps(body).encode()


def server_error(status: int, *, html: bool) -> web.Response:
    """Return a 5xx answer: the v4 envelope (code 3000), or an HTML error page."""
    reason = _REASONS.get(status, "Server Error")
    if html:
        page = (
            f"<html>\n<head><title>{status} {reason}</title></head>\n<body>\n"
            f"<center><h1>{status} {reason}</h1></center>\n<hr><center>cloudflare</center>\n"
            "</body>\n</html>\n"
        )
        return web.Response(status=status, text=page, content_type="text/html")
    return web.Response(
        status=status,
        body=envelope(SERVER_ERROR_CODE, f"{reason}: the model run failed, try again"),
        headers={"Content-Type": JSON},
    )
