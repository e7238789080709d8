"""The control routes under ``/__emulator__/``: never faulted, no token needed.

- ``POST reset``: clear log, counters, limits and run-time transcripts; restore
  the start settings.
- ``POST faults`` (JSON object of fields from ``FAULT_FIELDS``) -> ``{"ok",
  "faults"}``; ``GET faults`` -> the current values. Bad fields answer 400.
- ``POST transcripts`` (JSON object sha256 or https URL -> text) -> ``{"ok", "count"}``.
- ``GET log?since=I`` -> the request-log entries with index ``i >= I``.
- ``GET counters`` -> the counters; ``GET config`` -> the current settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from cf_transcribe_pandas.emulator.state import STATE_KEY

__all__ = ["CONTROL_PREFIX", "add_control_routes"]

CONTROL_PREFIX = "/__emulator__"


async def _control_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"ok": True})


async def _control_faults(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if request.method == "GET":
        return web.json_response(state.config.faults())
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise ValueError("the body must be a JSON object of fault fields")
        faults = state.set_faults(**changes)
    except (ValueError, TypeError) as exc:
        return web.json_response({"ok": False, "error": str(exc)}, status=400)
    return web.json_response({"ok": True, "faults": faults})


async def _control_transcripts(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        mapping = await request.json()
        if not isinstance(mapping, dict):
            raise ValueError("the body must be a JSON object: sha256 (or URL) -> text")
        count = state.register(mapping)
    except (ValueError, TypeError) as exc:
        return web.json_response({"ok": False, "error": str(exc)}, status=400)
    return web.json_response({"ok": True, "count": count})


async def _control_log(request: web.Request) -> web.Response:
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return web.json_response({"ok": False, "error": "since must be an int"}, status=400)
    return web.json_response(request.app[STATE_KEY].requests(since))


async def _control_counters(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].counters())


async def _control_config(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    data = state.config.to_dict()
    data["transcripts"] = len(state.transcripts)
    return web.json_response(data)


def add_control_routes(app: web.Application) -> None:
    """Add the control routes to ``app`` (which must hold ``app[STATE_KEY]``)."""
    routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]] = [
        ("POST", "reset", _control_reset),
        ("POST", "faults", _control_faults),
        ("GET", "faults", _control_faults),
        ("POST", "transcripts", _control_transcripts),
        ("GET", "log", _control_log),
        ("GET", "counters", _control_counters),
        ("GET", "config", _control_config),
    ]
    for method, name, handler in routes:
        app.router.add_route(method, f"{CONTROL_PREFIX}/{name}", handler)
