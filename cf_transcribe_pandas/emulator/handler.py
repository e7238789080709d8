"""The service handler: one request through the checks, the faults and the log.

:class:`ServiceHandler` answers every path that is not a control route. It
opens the request's log entry, runs the checks (``routes``, ``checks``,
``audio_file``), an error code asked for (``codes``), the limits and faults
(``faults``), and records the entry in the state however the request ends:
answered, refused, dropped, or left by its client (status 499).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from cf_transcribe_pandas.emulator.answers import ApiError, error_response, success_body
from cf_transcribe_pandas.emulator.audio_file import file_text
from cf_transcribe_pandas.emulator.checks import (
    check_body,
    check_credentials,
    check_input,
    check_model,
    read_json,
)
from cf_transcribe_pandas.emulator.codes import coded_answer
from cf_transcribe_pandas.emulator.config import WHISPER_MODEL
from cf_transcribe_pandas.emulator.faults import admit, deliver, run_faults
from cf_transcribe_pandas.emulator.routes import gateway_from_url, parse_path
from cf_transcribe_pandas.emulator.state import EmulatorState
from cf_transcribe_pandas.emulator.whisper import whisper_answer

__all__ = ["ServiceHandler", "new_entry"]

_ENTRY_KEYS = (
    "i",
    "t",
    "t_done",
    "method",
    "path",
    "form",
    "account",
    "status",
    "code",
    "fault",
    "retry_after",
    "model",
    "sha256",
    "mime",
    "container",
    "bytes",
    "language",
    "prompt",
    "temperature",
    "file_kind",
    "url",
    "body",
    "unknown_keys",
    "user_agent",
    "gateway",
)


def new_entry(request: web.Request) -> dict[str, Any]:
    """A request's log entry as it arrives: every key, most still None."""
    entry: dict[str, Any] = dict.fromkeys(_ENTRY_KEYS)
    entry["t"] = time.monotonic()
    entry["method"] = request.method
    entry["path"] = request.raw_path.partition("?")[0]
    entry["user_agent"] = request.headers.get("User-Agent")
    return entry


class ServiceHandler:
    """The service routes of one application.

    Args:
        state: The application's state.
    """

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one service request and record it in the log and counters."""
        state = self.state
        entry = new_entry(request)
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            return await self._serve(request, entry)
        except ApiError as err:
            entry["status"] = err.status
            entry["code"] = err.code
            if err.fault is not None:
                entry["fault"] = err.fault
            return error_response(err)
        except asyncio.CancelledError:
            entry["status"] = 499
            entry["fault"] = entry["fault"] or "client_gone"
            raise
        finally:
            state.in_flight -= 1
            state.record(entry)

    async def _serve(self, request: web.Request, entry: dict[str, Any]) -> web.StreamResponse:
        cfg = self.state.config
        route = parse_path(entry["path"])
        if route is None:
            raise ApiError(404, 7000, "No route for that URI")
        if request.method != "POST":
            raise ApiError(405, 7001, "Method not allowed", headers={"Allow": "POST"})
        entry["form"] = route.form
        entry["account"] = route.account
        if route.gateway is not None:
            entry["gateway"] = gateway_from_url(route.gateway, request)
        check_credentials(request, cfg, route.account)
        data = await read_json(request, cfg.max_body_bytes)
        model, inp, prefix = check_body(data, route.form, route.model, entry)
        entry["model"] = model
        check_model(model, cfg)
        if model == WHISPER_MODEL:
            return await self._run(request, entry, await whisper_answer(inp, entry, self.state))
        file = check_input(inp, prefix, entry)
        text = await file_text(file, prefix, entry, self.state)
        return await self._run(request, entry, success_body(route.form, text))

    async def _run(
        self, request: web.Request, entry: dict[str, Any], payload: bytes
    ) -> web.StreamResponse:
        """Admit the run, inject its faults, and deliver; only a delivered run uses quota."""
        state = self.state
        coded = coded_answer(state, entry)
        if coded is not None:
            return coded
        admit(state, entry)
        state.quota_used += 1
        delivered = False
        try:
            fault = await run_faults(request, entry, state)
            if fault is not None:
                return fault
            entry["status"] = 200
            delivered = True
            return await deliver(request, payload, state.config.slow_body)
        finally:
            if not delivered:
                state.quota_used = max(0, state.quota_used - 1)
