"""The emulator's aiohttp application: the service routes and the control routes.

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

A service request is checked in this order; the first failure answers
(``handler.py`` runs the steps; the module doing each is named):

1. route (404 code 7000) and method (405 code 7001): ``routes.py``;
2. bearer token (401 code 10000), account id (403 code 10000), blocked
   account (403 code 3023): ``checks.py``;
3. size (413 code 3006, from ``Content-Length`` before reading, then the read
   length), JSON (400 code 3003), body and input fields (400 code 3003;
   unknown model 400 code 5007, malformed model id 404 code 3042):
   ``checks.py``; the file (400 code 5004: not a data URI or https URL, bad
   base64, empty, not an accepted container; 413 code 3006 if the decoded
   audio is too large): ``audio_file.py``;
4. limits: ``rpm_limit`` (429 code 3040 + ``Retry-After``), ``quota`` (429 code
   3036), ``p429`` (429 code 3040 + ``Retry-After``): ``faults.py``;
5. the run: ``latency`` (+ jitter), then ``p_reset`` (connection dropped),
   ``p408`` (408 code 3007), ``p500`` (a status from ``error_statuses`` with
   the envelope and code 3000, which is not documented for 5xx, or for a share
   ``p_html`` an HTML error page), else success, streamed over ``slow_body``
   seconds when set: ``faults.py``.

Every service request, whatever its answer, is one entry of the request log
(a ``dict``; see ``EmulatorState.record`` in ``state.py``) and counts in the counters.
A client that goes away before the answer is logged with status 499.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from cf_transcribe_pandas.emulator.config import EmulatorConfig
from cf_transcribe_pandas.emulator.control import add_control_routes
from cf_transcribe_pandas.emulator.handler import ServiceHandler
from cf_transcribe_pandas.emulator.state import STATE_KEY, EmulatorState

__all__ = ["create_app"]


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
    app.router.add_route("*", "/{tail:.*}", ServiceHandler(state).handle)
    return app
