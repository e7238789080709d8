"""Pacing requests: a token bucket at a requests/minute rate, a hard 60-second
window, and an adaptive slow-down when the service says "too many".

* **Token bucket.** Tokens arrive at ``rate`` per ``WINDOW_SECONDS +
  margin`` seconds (the hard window's own pace, a hair under ``rate / 60``
  per second) and the bucket holds at most about one second of them
  (``max(1, rate / 60)``), so a run never opens with a burst of a minute's
  worth of requests. It starts with one token. Pacing at the hard window's pace
  means a run at the limit never stalls on the window, and a service whose
  window is shorter than a minute sees requests spaced a little wider than its
  limit allows, so its window's edge does not catch one request too many.
* **Hard window.** Whatever the bucket says, no more than ``limit`` requests are
  started in any 60-second window. This is what the account's limit means, and
  it keeps a run that idled (full bucket) from overshooting. The window is
  ``WINDOW_SECONDS + margin`` long on our side (``WINDOW_MARGIN`` by default):
  a request reaches the service a little after we start it, by a delay that
  varies, so a run paced exactly at the limit would otherwise see the request
  that starts a new minute land just inside the service's old one about half
  the time.
* **AIMD, for refusals that depend on the pace.** A 429/3040 answer is either
  the account's rate limit or the model's capacity, and only the first should
  slow the run. :class:`~.refusals.RefusalJudge` tells them apart: refusals
  multiply the send rate by ``decrease``, or less when they were frequent (at
  most once per ``cooldown``), and open a probe of a few seconds; if the share
  of refusals falls as a rate limit's would, the lower rate stays, else the rate
  before the cut comes back at once and refusals at that share cut nothing for
  a minute. Each success adds ``limit * increase`` back (not during a probe),
  up to the configured limit, and after ``cooldown`` seconds without a refusal
  the rate doubles every second: once a burst is over, the pace is back in
  seconds (a true limit then refuses again, and the next probe cuts again).
  The ``Retry-After`` of a 429 is honored by the row that got it (the engine
  waits that long before resending it); it does not freeze the whole run,
  because capacity answers arrive per request and a run-wide pause per 429
  would stall a run that sees a steady trickle of them.

The three rules live in one place, :class:`TokenBucket`: synchronous and
non-blocking (``take`` says how long to wait), on an injected clock.
:class:`RateLimiter` is the engine's limiter for one event loop, a bucket and a
queue of waiters. The Dask backend's token service holds a :class:`TokenBucket`
for the whole cluster and plugs a cluster-wide limiter in behind the same
:class:`Limiter` protocol.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from cf_transcribe_pandas.engine.refusals import RefusalJudge, Verdict

__all__ = ["Limiter", "RateLimiter", "TokenBucket", "backoff_delay"]

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


class TokenBucket:
    """Token bucket + hard window + AIMD on one clock; it never waits itself.

    Args:
        limit: The account's limit in requests per minute (> 0).
        margin: Seconds added to the 60 s hard window (see the module docstring);
            a caller whose grants reach the service later (a token handed on to
            another process) passes a larger one.
        decrease: Factor applied to the rate on a 429/3040.
        increase: Fraction of ``limit`` added back per success.
        min_fraction: The rate never drops below ``limit * min_fraction``.
        cooldown: Seconds during which further 429s do not lower the rate again.
        clock: Monotonic clock (seconds).
        on_rate_change: Called with (old_rate, new_rate) whenever the rate moves
            by at least 5 % of the limit or returns to the limit.
    """

    def __init__(
        self,
        limit: float,
        *,
        margin: float = WINDOW_MARGIN,
        decrease: float = 0.75,
        increase: float = 0.01,
        min_fraction: float = 0.05,
        cooldown: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_rate_change: Callable[[float, float], None] | None = None,
    ) -> None:
        self._window_s = WINDOW_SECONDS + margin
        self._pace = WINDOW_SECONDS / self._window_s
        self._increase = increase
        self._min_fraction = min_fraction
        self._clock = clock
        self._on_rate_change = on_rate_change
        self.limit = -1.0  # set by configure()
        self.rate = self._reported_rate = 1.0
        self._tokens = 1.0
        self._last = clock()
        self.judge = RefusalJudge(decrease=decrease, cooldown=cooldown, clock=clock)
        self._cooldown, self._last_success = cooldown, clock()
        self._rate_before_cut, self._unresolved = 1.0, False
        # Start times of the grants of the last window (at most `limit` of them).
        self._window: collections.deque[float] = collections.deque()
        self.configure(limit)

    def configure(self, limit: float) -> None:
        """Set the limit (requests/minute); a new limit also resets the rate to it.

        Raises:
            ValueError: ``limit`` is not > 0.
        """
        if not limit > 0:
            raise ValueError(f"rate limit must be > 0 requests/minute, got {limit!r}")
        if float(limit) != self.limit:
            self.limit = float(limit)
            self.rate = self._reported_rate = float(limit)
            self._min_rate = max(self.limit * self._min_fraction, 1e-3)
            self._tokens = min(self._tokens, self.capacity)

    @property
    def capacity(self) -> float:
        """Most tokens the bucket holds: about one second of requests, at least 1."""
        return max(1.0, self.rate / 60.0)

    def start_run(self) -> None:
        """A new run opens with at most one token (no burst from an idle bucket)."""
        self._advance(self._clock())
        self._tokens = min(self._tokens, 1.0)

    def take(self, want: int = 1) -> tuple[int, float]:
        """Grant up to ``want`` tokens now.

        Returns:
            (tokens granted, seconds until one may be granted when none was).
        """
        now = self._clock()
        self._advance(now)
        room = max(1, int(self.limit)) - len(self._window)
        n = min(max(1, want), int(self._tokens + 1e-9), room)  # float dust counts as a token
        if n >= 1:
            self._tokens -= n
            self._window.extend([now] * n)
            return n, 0.0
        waits = [1e-6]
        if self._tokens < 1.0:
            waits.append((1.0 - self._tokens) * 60.0 / (self.rate * self._pace))
        if room <= 0:
            waits.append(self._window[0] + self._window_s - now)
        return 0, max(waits)

    def recent(self) -> int:
        """Grants in the last 60 seconds."""
        now = self._clock()
        self._advance(now)
        horizon = now - WINDOW_SECONDS
        # The window keeps the margin's worth of older grants too: skip them.
        return sum(1 for start in self._window if start >= horizon)

    def on_success(self, n: int = 1) -> None:
        """``n`` successes: additive increase, up to the limit (not while a probe runs);
        after ``cooldown`` seconds without a refusal the rate doubles every second."""
        self._follow(self.judge.outcome(False, n))
        now, since = self._clock(), self._last_success
        self._last_success = now
        if n > 0 and self.rate < self.limit and not self.judge.probing:
            grown = self.rate + self.limit * self._increase * n
            if now - self.judge.last_refused >= self._cooldown:  # quiet: recover quickly
                grown = max(grown, self.rate * 2 ** min(1.0, now - since))
            self._set_rate(min(self.limit, grown))

    def on_throttle(self) -> bool:
        """A 429/3040 refusal: cut the rate, or not, as the :class:`RefusalJudge` says.

        Returns:
            Whether the rate moved.
        """
        return self._follow(self.judge.outcome(True))

    def _follow(self, verdict: Verdict | None) -> bool:
        if verdict == "cut":
            if not self._unresolved:  # the first cut since the last verdict
                self._rate_before_cut, self._unresolved = self.rate, True
            self._set_rate(max(self._min_rate, self.rate * self.judge.factor))
            return True
        if verdict in ("keep", "restore"):
            self._unresolved = False
        if verdict == "restore" and self._rate_before_cut > self.rate:
            logger.info("the refusals are the model's capacity, not our pace")
            self._set_rate(min(self.limit, self._rate_before_cut))
            return True
        return False

    def _advance(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate * self._pace / 60.0)
        window = self._window
        while window and now - window[0] >= self._window_s:
            window.popleft()

    def _set_rate(self, new: float) -> None:
        self.rate = new
        self._tokens = min(self._tokens, self.capacity)
        moved = abs(new - self._reported_rate) >= 0.05 * self.limit
        if moved or (new == self.limit and self._reported_rate != self.limit):
            logger.info("send rate %.0f -> %.0f requests/min", self._reported_rate, new)
            if self._on_rate_change is not None:
                self._on_rate_change(self._reported_rate, new)
            self._reported_rate = new


class RateLimiter:
    """The engine's :class:`Limiter` for one event loop: a :class:`TokenBucket` and a queue.

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

    Raises:
        ValueError: ``limit`` is not > 0.
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
        self.bucket = TokenBucket(
            limit,
            decrease=decrease,
            increase=increase,
            min_fraction=min_fraction,
            cooldown=cooldown,
            clock=clock,
            on_rate_change=on_rate_change,
        )
        self._sleep = sleep
        self._lock = asyncio.Lock()

    @property
    def limit(self) -> float:
        """The configured limit in requests per minute."""
        return self.bucket.limit

    @property
    def rate(self) -> float:
        """The current send rate in requests per minute."""
        return self.bucket.rate

    @property
    def capacity(self) -> float:
        """Most tokens the bucket holds: about one second of requests, at least 1."""
        return self.bucket.capacity

    def recent_rpm(self) -> float:
        """Requests started in the last 60 seconds."""
        return float(self.bucket.recent())

    async def acquire(self) -> None:
        """Wait until one request may be sent, then take its token."""
        # The lock makes waiters queue in order (no thundering herd).
        async with self._lock:
            while True:
                granted, wait = self.bucket.take(1)
                if granted:
                    return
                await self._sleep(wait)

    def on_success(self) -> None:
        """Additive increase after a success, up to the limit."""
        self.bucket.on_success()

    def on_throttle(self, retry_after: float | None) -> None:
        """Multiplicative decrease, at most once per cooldown."""
        del retry_after  # honored by the row that got it; see the module docstring
        self.bucket.on_throttle()
