"""Limits and injected faults of a model run, drawn from the current config.

In the order a request meets them:

1. :func:`admit`: ``rpm_limit`` (429 code 3040 + ``Retry-After``), ``quota``
   (429 code 3036), capacity refusals: ``p429``, or ``burst_share`` during a
   burst (429 code 3040 + ``Retry-After``, whatever the rate);
2. :func:`run_faults`: ``latency`` (+ jitter), then ``p_reset`` (connection
   dropped), ``p408`` (408 code 3007), ``p500`` (a status from
   ``error_statuses`` with the envelope and code 3000, or for a share
   ``p_html`` an HTML error page);
3. :func:`deliver`: the success body, streamed over ``slow_body`` seconds when set.

The random draws come from the state's seeded ``rng``, always in this order,
so a seed replays the same faults.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import time
from typing import Any

from aiohttp import web

from cf_transcribe_pandas.emulator.answers import (
    JSON,
    SERVER_ERROR_CODE,
    ApiError,
    server_error,
)
from cf_transcribe_pandas.emulator.state import EmulatorState

__all__ = ["admit", "deliver", "run_faults"]


def admit(state: EmulatorState, entry: dict[str, Any]) -> None:
    """Refuse the request over the rate limit, over the quota, or by ``p429``."""
    cfg = state.config
    wait = state.admit_rate(time.monotonic())
    if wait is not None:
        entry["retry_after"] = wait
        block = "" if cfg.rate_block is None else ", account blocked"
        raise ApiError(
            429,
            3040,
            f"Capacity temporarily exceeded: over {cfg.rpm_limit} requests per "
            f"{cfg.rate_window:g} s{block}; retry after {wait} s",
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
    share, burst = state.capacity_share(time.monotonic())
    if share and state.rng.random() < share:
        wait = max(0, math.ceil(cfg.retry_after))
        entry["retry_after"] = wait
        raise ApiError(
            429,
            3040,
            "Capacity temporarily exceeded: no more data centers to forward the request to",
            headers={"Retry-After": str(wait)},
            fault="capacity_burst" if burst else "p429",
        )


async def run_faults(
    request: web.Request, entry: dict[str, Any], state: EmulatorState
) -> web.StreamResponse | None:
    """Wait the latency, then answer a fault; None when the run succeeds."""
    cfg = state.config
    rng = state.rng
    delay = cfg.latency
    if cfg.latency_jitter:
        delay += rng.uniform(0.0, cfg.latency_jitter)
    if delay > 0:
        await asyncio.sleep(delay)
    if cfg.p_reset and rng.random() < cfg.p_reset:
        entry["fault"] = "reset"
        entry["status"] = None
        return _drop(request)
    if cfg.p408 and rng.random() < cfg.p408:
        raise ApiError(408, 3007, "Request timeout", fault="p408")
    if cfg.p500 and rng.random() < cfg.p500:
        status = rng.choice(cfg.error_statuses)
        html = bool(cfg.p_html) and rng.random() < cfg.p_html
        entry["status"] = status
        entry["fault"] = "p500"
        if not html:
            entry["code"] = SERVER_ERROR_CODE
        return server_error(status, html=html)
    return None


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection with a TCP reset and no answer."""
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


async def deliver(request: web.Request, payload: bytes, slow_body: float) -> web.StreamResponse:
    """Answer 200 with ``payload``, in ten pieces over ``slow_body`` seconds when > 0."""
    if slow_body <= 0:
        return web.Response(body=payload, headers={"Content-Type": JSON})
    response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
    response.content_length = len(payload)
    await response.prepare(request)
    pieces = max(1, min(len(payload), 10))
    step = math.ceil(len(payload) / pieces)
    try:
        for start in range(0, len(payload), step):
            await asyncio.sleep(slow_body / pieces)
            await response.write(payload[start : start + step])
        await response.write_eof()
    except ConnectionError:
        pass
    return response
