"""The emulator's aiohttp application: routes, checks, faults, request log.

Routes (all answers to the service routes are JSON unless an HTML 5xx fault):

- ``POST /client/v4/accounts/{account}/ai/run``: the unified form, body
  ``{"model", "input": {"file", "language"?, "prompt"?, "temperature"?},
  "options"?: {"gateway": {"id", "cacheTtl"?, "skipCache"?}}}``; success is
  ``{"gatewayMetadata": {"keySource": "Unified"}, "result": {"text"},
  "state": "Completed"}``.
- ``POST /client/v4/accounts/{account}/ai/run/{model}``: the per-model form
  (model URL-encoded or with literal slashes), body is the ``input`` object;
  success is the v4 envelope ``{"result": {"text"}, "success": true,
  "errors": [], "messages": []}``.
- ``POST /v1/{account}/{gateway_id}/workers-ai/{model}`` (per-model form) and
  ``.../workers-ai``, ``.../workers-ai/run``, ``.../workers-ai/ai/run``
  (unified form): the AI Gateway URL; the gateway id (and the
  ``cf-aig-cache-ttl`` / ``cf-aig-skip-cache`` headers) go to the log.
- ``/__emulator__/...``: control routes (reset, faults, transcripts, log,
  counters, config); never subject to faults, no token needed.

A service request is checked in this order; the first failure answers:

1. route (404 code 7000) and method (405 code 7001);
2. bearer token (401 code 10000), account id (403 code 10000), blocked
   account (403 code 3023);
3. size (413 code 3006, from ``Content-Length`` before reading, then the read
   length), JSON (400 code 3003), body and input fields (400 code 3003;
   unknown model 400 code 5007, malformed model id 404 code 3042), the file
   (400 code 5004: not a data URI or https URL, bad base64, empty, not an
   accepted container; 413 code 3006 if the decoded audio is too large);
4. limits: ``rpm_limit`` (429 code 3040 + ``Retry-After``), ``quota`` (429 code
   3036), ``p429`` (429 code 3040 + ``Retry-After``);
5. the run: ``latency`` (+ jitter), then ``p_reset`` (connection dropped),
   ``p408`` (408 code 3007), ``p500`` (a status from ``error_statuses`` with
   the envelope and code 3000, which is not documented for 5xx, or for a share
   ``p_html`` an HTML error page), else success, streamed over ``slow_body``
   seconds when set.

Every service request, whatever its answer, is one entry of the request log
(a ``dict``; see ``EmulatorState.record`` in ``state.py``) and counts in the counters.
A client that goes away before the answer is logged with status 499.
"""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import hashlib
import json
import math
import random
import re
import socket
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from aiohttp import web

from cf_transcribe_pandas.emulator.config import EmulatorConfig
from cf_transcribe_pandas.emulator.control import CONTROL_PREFIX, add_control_routes
from cf_transcribe_pandas.emulator.sniff import ACCEPTED, sniff
from cf_transcribe_pandas.emulator.state import STATE_KEY, EmulatorState
from cf_transcribe_pandas.emulator.transcripts import placeholder

__all__ = ["CONTROL_PREFIX", "STATE_KEY", "EmulatorState", "create_app"]

_API_PREFIX = "/client/v4/accounts/"
_GATEWAY_PREFIX = "/v1/"
_INPUT_KEYS = frozenset({"file", "language", "prompt", "temperature"})
_UNIFIED_KEYS = frozenset({"model", "input", "options"})
_LANGUAGE = re.compile(r"[a-z]{2}")
_JSON = "application/json"
_FILE_PREVIEW = 80
_ACCEPTED_LIST = ", ".join(sorted(ACCEPTED))
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_SERVER_ERROR_CODE = 3000  # not documented for 5xx; any code >= 1000 fits the envelope

if sys.version_info >= (3, 11):

    def _b64decode(text: str) -> bytes:
        return binascii.a2b_base64(text, strict_mode=True)

else:  # pragma: no cover - Python 3.10
    import base64

    def _b64decode(text: str) -> bytes:
        return base64.b64decode(text, validate=True)


def _decode_payload(payload: str, is_base64: bool) -> bytes:
    if not is_base64:
        return unquote_to_bytes(payload)
    try:
        return _b64decode(payload)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(
            400, 5004, f"Invalid data type for base64 input: not valid base64 ({exc})"
        ) from exc


class ApiError(Exception):
    """An answer in the v4 error envelope; raised inside a handler."""

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


def _envelope(code: int, message: str) -> bytes:
    errors = [{"code": code, "message": message}]
    return json.dumps({"success": False, "errors": errors, "messages": [], "result": None}).encode()


def _preview(text: str) -> str:
    return text if len(text) <= _FILE_PREVIEW else text[: _FILE_PREVIEW - 3] + "..."


def _short_body(data: dict[str, Any], form: str) -> dict[str, Any]:
    """Copy the body with ``file`` cut to 80 characters (no audio kept in the log)."""
    out = dict(data)
    if form == "unified":
        inp = out.get("input")
        if isinstance(inp, dict) and isinstance(inp.get("file"), str):
            inp = dict(inp)
            inp["file"] = _preview(inp["file"])
            out["input"] = inp
    elif isinstance(out.get("file"), str):
        out["file"] = _preview(out["file"])
    return out


def _parse_path(path: str) -> tuple[str, str, str | None, str | None] | None:
    """Split a service path into (form, account, model in path, gateway id)."""
    if path.startswith(_API_PREFIX):
        account, _, tail = path[len(_API_PREFIX) :].partition("/")
        if not account:
            return None
        if tail in ("ai/run", "ai/run/"):
            return "unified", unquote(account), None, None
        if tail.startswith("ai/run/"):
            return "per_model", unquote(account), unquote(tail[7:].rstrip("/")), None
        return None
    if path.startswith(_GATEWAY_PREFIX):
        parts = path[len(_GATEWAY_PREFIX) :].split("/", 3)
        if len(parts) < 3 or parts[2] != "workers-ai" or not parts[0] or not parts[1]:
            return None
        rest = parts[3].rstrip("/") if len(parts) == 4 else ""
        account, gateway = unquote(parts[0]), unquote(parts[1])
        if rest in ("", "run", "ai/run"):
            return "unified", account, None, gateway
        return "per_model", account, unquote(rest), gateway
    return None


def _gateway_from_url(gateway_id: str, request: web.Request) -> dict[str, Any]:
    """The gateway of an AI Gateway URL, with its ``cf-aig-*`` cache headers."""
    out: dict[str, Any] = {"id": gateway_id, "via": "url"}
    ttl = request.headers.get("cf-aig-cache-ttl")
    if ttl is not None:
        out["cacheTtl"] = int(ttl) if ttl.strip().isdigit() else ttl
    skip = request.headers.get("cf-aig-skip-cache")
    if skip is not None:
        out["skipCache"] = skip.strip().lower() == "true"
    return out


class _Handler:
    """The service routes; one instance per application."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def handle(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        entry: dict[str, Any] = {
            "i": None,
            "t": time.monotonic(),
            "t_done": None,
            "method": request.method,
            "path": request.raw_path.partition("?")[0],
            "form": None,
            "account": None,
            "status": None,
            "code": None,
            "fault": None,
            "retry_after": None,
            "model": None,
            "sha256": None,
            "mime": None,
            "container": None,
            "bytes": None,
            "language": None,
            "prompt": None,
            "temperature": None,
            "file_kind": None,
            "url": None,
            "body": None,
            "unknown_keys": None,
            "user_agent": request.headers.get("User-Agent"),
            "gateway": None,
        }
        state.in_flight += 1
        if state.in_flight > state.max_in_flight:
            state.max_in_flight = state.in_flight
        try:
            return await self._serve(request, entry)
        except ApiError as err:
            entry["status"] = err.status
            entry["code"] = err.code
            if err.fault is not None:
                entry["fault"] = err.fault
            headers = {"Content-Type": _JSON, **err.headers}
            return web.Response(
                status=err.status, body=_envelope(err.code, err.message), headers=headers
            )
        except asyncio.CancelledError:
            entry["status"] = 499
            entry["fault"] = entry["fault"] or "client_gone"
            raise
        finally:
            state.in_flight -= 1
            state.record(entry)

    async def _serve(self, request: web.Request, entry: dict[str, Any]) -> web.StreamResponse:
        state = self.state
        cfg = state.config
        route = _parse_path(entry["path"])
        if route is None:
            raise ApiError(404, 7000, "No route for that URI")
        if request.method != "POST":
            raise ApiError(405, 7001, "Method not allowed", headers={"Allow": "POST"})
        form, account, path_model, gateway_id = route
        entry["form"] = form
        entry["account"] = account
        if gateway_id is not None:
            entry["gateway"] = _gateway_from_url(gateway_id, request)

        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() != "bearer " or auth[7:].strip() != cfg.token:
            raise ApiError(401, 10000, "Authentication error")
        if account != cfg.account_id and account not in cfg.blocked_accounts:
            raise ApiError(
                403,
                10000,
                f"Authentication error: account {account!r} not found or not authorized "
                "for this token",
            )
        if cfg.blocked or account in cfg.blocked_accounts:
            raise ApiError(403, 3023, "Service unavailable for account")

        data = await self._read_json(request, cfg)
        if form == "unified":
            model, inp, prefix = self._check_unified(data, entry)
        else:
            if not isinstance(data, dict):
                raise ApiError(400, 3003, "Request is missing headers or body: a JSON object")
            entry["body"] = _short_body(data, form)
            model, inp, prefix = path_model or "", data, ""
        entry["model"] = model
        if not model or not model.isprintable() or " " in model:
            raise ApiError(404, 3042, f"The model name is invalid: {model!r}")
        if model not in cfg.models:
            raise ApiError(400, 5007, f"No such model {model} or task")
        text = await self._check_input(inp, prefix, entry, cfg)
        return await self._run(request, entry, text, form)

    async def _read_json(self, request: web.Request, cfg: EmulatorConfig) -> Any:
        limit = cfg.max_body_bytes
        length = request.content_length
        too_large = f"Request is too large: the body is over {limit} bytes"
        if length is not None and length > limit:
            raise ApiError(413, 3006, too_large)
        buf = bytearray()
        content = request.content
        while True:
            chunk = await content.readany()
            if not chunk:
                break
            buf += chunk
            if len(buf) > limit:
                raise ApiError(413, 3006, too_large)
        if not buf:
            raise ApiError(400, 3003, "Request is missing headers or body: the body is empty")
        try:
            return json.loads(buf)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(
                400, 3003, f"Request is missing headers or body: the body is not valid JSON ({exc})"
            ) from exc

    def _check_unified(self, data: Any, entry: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
        if not isinstance(data, dict):
            raise ApiError(400, 3003, "Request is missing headers or body: a JSON object")
        entry["body"] = _short_body(data, "unified")
        unknown = [k for k in data if k not in _UNIFIED_KEYS]
        if unknown:
            entry["unknown_keys"] = unknown
        model = data.get("model")
        if model is None:
            raise ApiError(400, 3003, "Request is missing headers or body: model")
        if not isinstance(model, str):
            raise ApiError(400, 3003, f"Invalid request: model must be a string, got {model!r}")
        inp = data.get("input")
        if inp is None:
            raise ApiError(400, 3003, "Request is missing headers or body: input")
        if not isinstance(inp, dict):
            raise ApiError(400, 3003, "Invalid request: input must be a JSON object")
        options = data.get("options")
        if options is not None:
            if not isinstance(options, dict):
                raise ApiError(400, 3003, "Invalid request: options must be a JSON object")
            gateway = options.get("gateway")
            if gateway is not None:
                entry["gateway"] = self._check_gateway(gateway, entry["gateway"])
        return model, inp, "input."

    @staticmethod
    def _check_gateway(gateway: Any, from_url: dict[str, Any] | None) -> dict[str, Any]:
        if not isinstance(gateway, dict):
            raise ApiError(400, 3003, "Invalid request: options.gateway must be a JSON object")
        gid = gateway.get("id")
        if not isinstance(gid, str) or not gid:
            raise ApiError(
                400, 3003, "Invalid request: options.gateway.id must be a non-empty string"
            )
        ttl = gateway.get("cacheTtl")
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0):
            raise ApiError(
                400,
                3003,
                f"Invalid request: options.gateway.cacheTtl must be an int >= 0, got {ttl!r}",
            )
        skip = gateway.get("skipCache")
        if skip is not None and not isinstance(skip, bool):
            raise ApiError(
                400,
                3003,
                f"Invalid request: options.gateway.skipCache must be a boolean, got {skip!r}",
            )
        out: dict[str, Any] = dict(from_url or {})
        out.update({"id": gid, "via": "url" if from_url else "body"})
        if ttl is not None:
            out["cacheTtl"] = ttl
        if skip is not None:
            out["skipCache"] = skip
        return out

    async def _check_input(
        self, inp: dict[str, Any], prefix: str, entry: dict[str, Any], cfg: EmulatorConfig
    ) -> str:
        unknown = [f"{prefix}{k}" for k in inp if k not in _INPUT_KEYS]
        if unknown:
            entry["unknown_keys"] = (entry["unknown_keys"] or []) + unknown
        if "language" in inp:
            language = inp["language"]
            if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
                raise ApiError(
                    400,
                    3003,
                    f"Invalid input: {prefix}language must be an ISO-639-1 code "
                    f"(two lowercase letters), got {language!r}",
                )
            entry["language"] = language
        if "prompt" in inp:
            prompt = inp["prompt"]
            if not isinstance(prompt, str):
                raise ApiError(
                    400, 3003, f"Invalid input: {prefix}prompt must be a string, got {prompt!r}"
                )
            entry["prompt"] = prompt
        if "temperature" in inp:
            temperature = inp["temperature"]
            if (
                not isinstance(temperature, (int, float))
                or isinstance(temperature, bool)
                or not 0.0 <= temperature <= 1.0
            ):
                raise ApiError(
                    400,
                    3003,
                    f"Invalid input: {prefix}temperature must be a number from 0 to 1, "
                    f"got {temperature!r}",
                )
            entry["temperature"] = temperature
        file = inp.get("file")
        if file is None:
            raise ApiError(400, 3003, f"Request is missing headers or body: {prefix}file")
        if not isinstance(file, str):
            raise ApiError(
                400,
                3003,
                f"Invalid input: {prefix}file must be a string, got {type(file).__name__}",
            )
        if file.startswith("data:"):
            return await self._data_file(file, entry, cfg)
        if file.startswith("https://"):
            entry["file_kind"] = "url"
            entry["url"] = file
            text = self.state.transcripts.get(file)
            if text is None:
                text = placeholder(hashlib.sha256(file.encode()).hexdigest())
            return text
        raise ApiError(
            400, 5004, f"Invalid data: {prefix}file must be a data URI or an https:// URL"
        )

    async def _data_file(self, file: str, entry: dict[str, Any], cfg: EmulatorConfig) -> str:
        entry["file_kind"] = "data"
        comma = file.find(",")
        if comma < 0:
            raise ApiError(400, 5004, "Invalid data: the data URI has no ','")
        params = file[5:comma].split(";")
        entry["mime"] = params[0] or "text/plain"
        payload = file[comma + 1 :]
        is_base64 = params[-1].lower() == "base64"
        state = self.state
        known = state.decoded.get(payload) if is_base64 else None
        audio: bytes | None = None
        if known is not None:
            sha, size, container = known
        else:
            audio = _decode_payload(payload, is_base64)
            size = len(audio)
            sha = hashlib.sha256(audio).hexdigest() if size else ""
            container = sniff(audio[:4096]) if size else None
            if is_base64 and 0 < size <= cfg.max_file_bytes:
                state.remember_decoded(payload, (sha, size, container))
        entry["bytes"] = size
        if size > cfg.max_file_bytes:
            raise ApiError(
                413,
                3006,
                f"Request is too large: the file is {size} bytes, over {cfg.max_file_bytes}",
            )
        if not size:
            raise ApiError(400, 5004, "Invalid data: the file is empty")
        entry["sha256"] = sha
        entry["container"] = container
        if container not in ACCEPTED:
            what = f"{container} audio" if container else "not an audio file"
            raise ApiError(
                400,
                5004,
                f"Invalid data type for base64 input: {what} (accepted: {_ACCEPTED_LIST})",
            )
        decoded = audio

        def load() -> bytes:
            return decoded if decoded is not None else _decode_payload(payload, True)

        try:
            return await state.text_for_audio(sha, load)
        except ValueError as exc:  # PyAV could not probe it (words_per_second)
            raise ApiError(400, 5004, f"Invalid data: {exc}") from exc

    async def _run(
        self, request: web.Request, entry: dict[str, Any], text: str, form: str
    ) -> web.StreamResponse:
        state = self.state
        cfg = state.config
        wait = state.admit_rate(time.monotonic())
        if wait is not None:
            entry["retry_after"] = wait
            raise ApiError(
                429,
                3040,
                f"Capacity temporarily exceeded: over {cfg.rpm_limit} requests per "
                f"{cfg.rate_window:g} s{'' if cfg.rate_block is None else ', account blocked'}; "
                f"retry after {wait} s",
                headers={"Retry-After": str(wait)},
                fault="rate_limit",
            )
        if cfg.quota is not None and state.quota_used >= cfg.quota:
            raise ApiError(
                429,
                3036,
                "The account has reached its daily allocation: you have used up your daily "
                "free allocation of 10,000 neurons",
                fault="quota",
            )
        rng = state.rng
        if cfg.p429 and rng.random() < cfg.p429:
            wait = max(0, math.ceil(cfg.retry_after))
            entry["retry_after"] = wait
            raise ApiError(
                429,
                3040,
                "Capacity temporarily exceeded: no more data centers to forward the request to",
                headers={"Retry-After": str(wait)},
                fault="p429",
            )
        state.quota_used += 1
        delivered = False
        try:
            delay = cfg.latency
            if cfg.latency_jitter:
                delay += rng.uniform(0.0, cfg.latency_jitter)
            if delay > 0:
                await asyncio.sleep(delay)
            if cfg.p_reset and rng.random() < cfg.p_reset:
                return self._drop(request, entry)
            if cfg.p408 and rng.random() < cfg.p408:
                raise ApiError(408, 3007, "Request timeout", fault="p408")
            if cfg.p500 and rng.random() < cfg.p500:
                return self._server_error(entry, rng.choice(cfg.error_statuses), cfg, rng)
            if form == "unified":
                body: dict[str, Any] = {
                    "gatewayMetadata": {"keySource": "Unified"},
                    "result": {"text": text},
                    "state": "Completed",
                }
            else:
                body = {"result": {"text": text}, "success": True, "errors": [], "messages": []}
            payload = json.dumps(body).encode()
            entry["status"] = 200
            delivered = True
            if cfg.slow_body > 0:
                return await self._slow(request, payload, cfg.slow_body)
            return web.Response(body=payload, headers={"Content-Type": _JSON})
        finally:
            if not delivered:
                state.quota_used = max(0, state.quota_used - 1)

    @staticmethod
    def _drop(request: web.Request, entry: dict[str, Any]) -> web.StreamResponse:
        """Close the connection with a TCP reset and no answer."""
        entry["fault"] = "reset"
        entry["status"] = None
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            transport.abort()
        # aiohttp cannot write this on the closed transport and ends the connection quietly.
        return web.Response(status=204)

    @staticmethod
    def _server_error(
        entry: dict[str, Any], status: int, cfg: EmulatorConfig, rng: random.Random
    ) -> web.Response:
        """A 5xx answer: the v4 envelope, or (share ``p_html``) an HTML error page."""
        entry["status"] = status
        entry["fault"] = "p500"
        reason = _REASONS.get(status, "Server Error")
        if cfg.p_html and rng.random() < cfg.p_html:
            html = (
                f"<html>\n<head><title>{status} {reason}</title></head>\n<body>\n"
                f"<center><h1>{status} {reason}</h1></center>\n<hr><center>cloudflare</center>\n"
                "</body>\n</html>\n"
            )
            return web.Response(status=status, text=html, content_type="text/html")
        entry["code"] = _SERVER_ERROR_CODE
        return web.Response(
            status=status,
            body=_envelope(_SERVER_ERROR_CODE, f"{reason}: the model run failed, try again"),
            headers={"Content-Type": _JSON},
        )

    @staticmethod
    async def _slow(request: web.Request, payload: bytes, seconds: float) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": _JSON})
        response.content_length = len(payload)
        await response.prepare(request)
        pieces = max(1, min(len(payload), 10))
        step = math.ceil(len(payload) / pieces)
        try:
            for start in range(0, len(payload), step):
                await asyncio.sleep(seconds / pieces)
                await response.write(payload[start : start + step])
            await response.write_eof()
        except ConnectionError:
            pass
        return response


def create_app(config: EmulatorConfig | None = None, **overrides: Any) -> web.Application:
    """Build the emulator's aiohttp application.

    Args:
        config: The settings; defaults to ``EmulatorConfig()``.
        **overrides: Fields of :class:`EmulatorConfig` that replace ``config``'s.

    Returns:
        The application; its :class:`EmulatorState` is ``app[STATE_KEY]``.
        Serve it with ``handler_cancellation=True`` so that a client that goes
        away stops its request (``Emulator`` and the CLI do).
    """
    cfg = config or EmulatorConfig()
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    state = EmulatorState(cfg)
    app = web.Application(client_max_size=cfg.max_body_bytes + 1)
    app[STATE_KEY] = state
    add_control_routes(app)
    app.router.add_route("*", "/{tail:.*}", _Handler(state).handle)
    return app
