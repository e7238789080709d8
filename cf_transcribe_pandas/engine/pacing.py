"""Pacing requests: a token bucket at a requests/minute rate, a hard 60-second
window, and an adaptive slow-down when the service says "too many".

* **Token bucket.** Tokens arrive at ``rate`` per ``WINDOW_SECONDS +
  WINDOW_MARGIN`` seconds (the hard window's own pace, a hair under ``rate /
  60`` per second) and the bucket holds at most about one second of them
  (``max(1, rate / 60)``), so a run never opens with a burst of a minute's
  worth of requests. It starts with one token. Pacing at the hard window's pace
  means a run at the limit never stalls on the window, and a service whose
  window is shorter than a minute sees requests spaced a little wider than its
  limit allows, so its window's edge does not catch one request too many.
* **Hard window.** Whatever the bucket says, no more than ``limit`` requests are
  started in any 60-second window. This is what the account's limit means, and
  it keeps a run that idled (full bucket) from overshooting. The window is
  ``WINDOW_SECONDS + WINDOW_MARGIN`` long on our side: a request reaches the
  service a little after we start it, by a delay that varies, so a run paced
  exactly at the limit would otherwise see the request that starts a new
  minute land just inside the service's old one about half the time.
* **AIMD.** A 429/3040 answer multiplies the send rate by ``decrease`` (at most
  once per ``cooldown``, so a burst of 429s from one moment counts once); each
  success adds ``limit * increase`` back, up to the configured limit. The
  ``Retry-After`` of a 429 is honored by the row that got it (the engine waits
  that long before resending it); it does not freeze the whole run, because
  capacity answers arrive per request and a run-wide pause per 429 would stall
  a run that sees a steady trickle of them.

Rate limiters are shared by every task of a run (one event loop). The Dask
backend plugs a cluster-wide limiter in behind the same :class:`Limiter`
protocol.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["Limiter", "RateLimiter", "backoff_delay"]

logger = logging.getLogger("cf_transcribe_pandas")

WINDOW_SECONDS = 60.0
"""The service's rate-limit window."""

WINDOW_MARGIN = 0.5
"""Seconds added to our copy of the window, for the varying delay between
starting a request and the service counting it. At the limit it costs
``WINDOW_MARGIN / WINDOW_SECONDS`` of the rate (under 1 %)."""


PACE = WINDOW_SECONDS / (WINDOW_SECONDS + WINDOW_MARGIN)
"""Tokens arrive at ``rate * PACE`` requests per minute (see the module docstring)."""


def backoff_delay(
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 30.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)).

    Args:
        attempt: 0 for the first retry, 1 for the second, ...
        base: Seconds of the first step.
        cap: Largest possible delay in seconds.
        rng: Source of uniform [0, 1) numbers (tests pass a fixed one).
    """
    return rng() * min(cap, base * (2.0 ** max(0, attempt)))


class Limiter(Protocol):
    """What the engine needs from a rate limiter."""

    async def acquire(self) -> None:
        """Wait until one request may be sent.

        It may raise to end the run (a shared limiter whose run was stopped
        elsewhere): an :class:`~cf_transcribe_pandas.errors.AccountError` stops
        the run as that answer from the service would; any other exception
        cancels the run and is raised from it.
        """

    def on_success(self) -> None:
        """A request succeeded."""

    def on_throttle(self, retry_after: float | None) -> None:
        """A request was answered 429/3040."""

    @property
    def rate(self) -> float:
        """The current send rate in requests per minute."""

    def recent_rpm(self) -> float:
        """Requests started in the last 60 seconds."""


class RateLimiter:
    """Token bucket + 60 s window + AIMD, for one event loop.

    Args:
        limit: The account's limit in requests per minute (> 0).
        decrease: Factor applied to the rate on a 429/3040.
        increase: Fraction of ``limit`` added back per success.
        min_fraction: The rate never drops below ``limit * min_fraction``.
        cooldown: Seconds during which further 429s do not lower the rate again.
        clock: Monotonic clock (seconds).
        sleep: Coroutine function that waits (tests pass one that moves ``clock``).
        on_rate_change: Called with (old_rate, new_rate) whenever the rate moves
            by at least 5 % of the limit or returns to the limit.
    """

    def __init__(
        self,
        limit: float,
        *,
        decrease: float = 0.75,
        increase: float = 0.01,
        min_fraction: float = 0.05,
        cooldown: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_rate_change: Callable[[float, float], None] | None = None,
    ) -> None:
        if not limit > 0:
            raise ValueError(f"rate limit must be > 0 requests/minute, got {limit!r}")
        self.limit = float(limit)
        self._rate = float(limit)
        self._decrease = decrease
        self._increase = increase
        self._min_rate = max(self.limit * min_fraction, 1e-3)
        self._cooldown = cooldown
        self._clock = clock
        self._sleep = sleep
        self._on_rate_change = on_rate_change
        self._tokens = 1.0
        self._last = clock()
        self._last_decrease = -1e9
        self._reported_rate = self._rate
        # Start times of the requests of the last 60 s (at most `limit` entries).
        self._window: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    @property
    def rate(self) -> float:
        """The current send rate in requests per minute."""
        return self._rate

    @property
    def capacity(self) -> float:
        """Most tokens the bucket holds: about one second of requests, at least 1."""
        return max(1.0, self._rate / 60.0)

    def recent_rpm(self) -> float:
        """Requests started in the last 60 seconds."""
        now = self._clock()
        self._trim(now)
        window = self._window
        if not window:
            return 0.0
        # The window keeps the margin's worth of older starts too: skip them.
        horizon = now - WINDOW_SECONDS
        old = 0
        for start in window:
            if start >= horizon:
                break
            old += 1
        return float(len(window) - old)

    def _trim(self, now: float) -> None:
        window = self._window
        while window and now - window[0] >= WINDOW_SECONDS + WINDOW_MARGIN:
            window.popleft()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self._rate * PACE / 60.0)

    def _wait_time(self, now: float) -> float:
        """Seconds until a request may start (0 when it may start now)."""
        waits = [0.0]
        self._refill(now)
        if self._tokens < 1.0:
            waits.append((1.0 - self._tokens) * 60.0 / (self._rate * PACE))
        self._trim(now)
        hard_cap = int(self.limit)
        if len(self._window) >= max(1, hard_cap):
            waits.append(self._window[0] + WINDOW_SECONDS + WINDOW_MARGIN - now)
        return max(0.0, *waits)

    async def acquire(self) -> None:
        """Wait until one request may be sent, then take its token."""
        # The lock makes waiters queue in order (no thundering herd).
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._wait_time(now)
                if wait <= 1e-9:  # float dust counts as now
                    self._tokens -= 1.0
                    self._window.append(now)
                    return
                await self._sleep(wait)

    def on_success(self) -> None:
        """Additive increase after a success, up to the limit."""
        if self._rate < self.limit:
            self._set_rate(min(self.limit, self._rate + self.limit * self._increase))

    def on_throttle(self, retry_after: float | None) -> None:
        """Multiplicative decrease, at most once per cooldown."""
        del retry_after  # honored by the row that got it; see the module docstring
        now = self._clock()
        if now - self._last_decrease >= self._cooldown:
            self._last_decrease = now
            self._set_rate(max(self._min_rate, self._rate * self._decrease))

    def _set_rate(self, new: float) -> None:
        self._rate = new
        self._tokens = min(self._tokens, self.capacity)
        moved = abs(new - self._reported_rate) >= 0.05 * self.limit
        if moved or (new == self.limit and self._reported_rate != self.limit):
            logger.info("send rate %.0f -> %.0f requests/min", self._reported_rate, new)
            if self._on_rate_change is not None:
                self._on_rate_change(self._reported_rate, new)
            self._reported_rate = new
