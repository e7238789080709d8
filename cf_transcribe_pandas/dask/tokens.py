"""The cluster's one token service: the engine's pacing core for every worker of a Client.

One :class:`TokenService` a Client and account lives on one worker as a
``distributed`` Actor. It holds a :class:`cf_transcribe_pandas.engine.TokenBucket`
(the token bucket, hard window and AIMD the pandas engine paces with), with a
window margin of ``WINDOW_MARGIN_SECONDS``, and the state of each run (one
compute): its stop error and the counts of its finished partitions.

Workers lease tokens a few at a time through
:class:`~cf_transcribe_pandas.dask.limiter.ClusterLimiter` and use them at
once (a token not used within ``TOKEN_TTL_SECONDS`` is dropped), so the sum
over all workers never exceeds ``rate_limit`` requests in any 60 s window.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
import time
import uuid
from typing import Any

from cf_transcribe_pandas.client import Credentials
from cf_transcribe_pandas.dask.summary import summarize
from cf_transcribe_pandas.engine import TokenBucket
from cf_transcribe_pandas.errors import TranscribeError

__all__ = [
    "LEASE_WAIT_SECONDS",
    "MAX_LEASE",
    "TOKEN_TTL_SECONDS",
    "TokenService",
    "forget_services",
    "service_for",
]

TOKEN_TTL_SECONDS = 0.5
"""A leased token not used within this many seconds is dropped (never sent late)."""

WINDOW_MARGIN_SECONDS = 1.0
"""The hard window's margin on the service: the engine's half second for the trip to
Cloudflare, plus ``TOKEN_TTL_SECONDS`` a leased token may wait on its worker."""

MAX_LEASE = 8
"""Most tokens one lease asks for (never more than the requests waiting for one)."""

LEASE_WAIT_SECONDS = 2.0
"""Longest a lease waits on the service before answering "none yet" (then asked again)."""

MAX_RUNS = 64
"""Runs whose state the service keeps (the oldest is dropped first)."""


@dataclasses.dataclass
class RunState:
    """What the token service knows about one compute (one run id)."""

    started: float
    stop: TranscribeError | None = None
    finished: dict[int, dict[str, int]] = dataclasses.field(default_factory=dict)
    summarized: bool = False
    leased: bool = False


class TokenService:
    """The cluster's rate limiter, run as a ``distributed`` Actor on one worker.

    Every method is a coroutine, so it runs on the hosting worker's event loop
    (one thread: no locks around the state). Workers reach it through
    :class:`~cf_transcribe_pandas.dask.limiter.ClusterLimiter`; a reply is a
    dict with ``granted`` (tokens), ``stop`` (the run's stop error or None),
    ``rate`` and ``recent`` (requests of the last 60 s, the whole cluster's).

    Args:
        limit: The account's limit in requests per minute.
    """

    def __init__(self, limit: float) -> None:
        self._bucket = TokenBucket(limit, margin=WINDOW_MARGIN_SECONDS)
        self._runs: collections.OrderedDict[str, RunState] = collections.OrderedDict()
        self._queue = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stats = {"granted": 0, "throttles": 0, "runs": 0, "lowest": float(limit)}

    def _run(self, run_id: str) -> RunState:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = RunState(started=time.monotonic())
            self._stats["runs"] += 1
            while len(self._runs) > MAX_RUNS:
                self._runs.popitem(last=False)
        return run

    def _reply(self, run: RunState, granted: int) -> dict[str, Any]:
        return {
            "granted": granted,
            "stop": run.stop,
            "rate": self._bucket.rate,
            "recent": self._bucket.recent(),
        }

    def _poke(self) -> None:
        """Wake every lease that waits for a token (a stop or a new limit)."""
        self._wake.set()
        self._wake = asyncio.Event()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, seconds))
        except asyncio.TimeoutError:
            pass

    async def configure(self, limit: float) -> None:
        """Set the limit in requests/minute (a new transcribe() call may change it)."""
        if float(limit) != self._bucket.limit:
            self._stats["lowest"] = float(limit)
        self._bucket.configure(limit)
        self._poke()

    async def enter(self, run_id: str) -> dict[str, Any]:
        """A partition starts: the run's stop error, the current rate (no token)."""
        return self._reply(self._run(run_id), 0)

    async def lease(self, run_id: str, want: int, successes: int = 0) -> dict[str, Any]:
        """Wait (at most ``LEASE_WAIT_SECONDS``) for tokens; grant up to ``want`` of them.

        Callers are served in arrival order; the first lease of a run finds at
        most one token (no opening burst). No token is granted once the run stopped.

        Args:
            run_id: The compute's run id.
            want: Tokens the worker has requests waiting for.
            successes: Successes the worker saw since its last lease (AIMD).
        """
        run = self._run(run_id)
        self._bucket.on_success(successes)
        async with self._queue:
            if not run.leased:
                run.leased = True
                self._bucket.start_run()
            deadline = time.monotonic() + LEASE_WAIT_SECONDS
            while run.stop is None:
                granted, wait = self._bucket.take(want)
                left = deadline - time.monotonic()
                if granted or left <= 0:
                    self._stats["granted"] += granted
                    return self._reply(run, granted)
                await self._sleep(min(wait, left))
            return self._reply(run, 0)

    async def throttled(self) -> float:
        """A worker got 429/3040: lower the rate for everyone; returns the new rate."""
        self._stats["throttles"] += 1
        self._bucket.on_throttle()
        self._stats["lowest"] = min(self._stats["lowest"], self._bucket.rate)
        return self._bucket.rate

    async def stop(self, run_id: str, error: TranscribeError) -> TranscribeError:
        """Stop the run: no more tokens for it. Returns the run's first stop error."""
        run = self._run(run_id)
        if run.stop is None:
            run.stop = error
            self._poke()
        return run.stop

    async def finish(
        self,
        run_id: str,
        partition: int,
        npartitions: int,
        counts: dict[str, int],
        successes: int = 0,
    ) -> dict[str, Any] | None:
        """A partition finished; returns the run's summary when it was the last one."""
        run = self._run(run_id)
        self._bucket.on_success(successes)
        run.finished[partition] = counts
        if run.summarized or len(run.finished) < npartitions:
            return None
        run.summarized = True
        return summarize(
            run.finished.values(),
            partitions=npartitions,
            seconds=time.monotonic() - run.started,
            error=repr(run.stop) if run.stop is not None else None,
        )

    async def snapshot(self) -> dict[str, Any]:
        """The service's state: limit, rate, lowest rate, granted, throttles, runs, recent."""
        return {
            "limit": self._bucket.limit,
            "rate": self._bucket.rate,
            "recent": self._bucket.recent(),
            **self._stats,
        }


_services: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
"""(client id, account, base URL) -> (Client, the Actor's future, the Actor handle)."""
_services_lock = threading.Lock()


def service_for(client: Any, credentials: Credentials, rate_limit: float) -> Any:
    """The token service of this Client and account, started on first use.

    Args:
        client: A running ``distributed.Client``.
        credentials: The account (its token is not used here).
        rate_limit: The account's limit in requests per minute; a service that
            runs already takes it (a new limit also resets its rate).

    Returns:
        The ``distributed`` Actor handle of the :class:`TokenService`.
    """
    forget_services()
    key = (str(client.id), credentials.account_id, credentials.base_url)
    with _services_lock:
        entry = _services.get(key)
    if entry is not None and entry[1].status == "finished":
        entry[2].configure(rate_limit).result()
        return entry[2]
    future = client.submit(
        TokenService, rate_limit, actor=True, key=f"cfai-token-service-{uuid.uuid4().hex}"
    )
    actor = future.result()
    with _services_lock:
        _services[key] = (client, future, actor)
    return actor


def forget_services(client: Any | None = None) -> None:
    """Let go of the token services of ``client`` and of every Client no longer running."""
    with _services_lock:
        for key, (owner, future, _actor) in list(_services.items()):
            if owner is client or owner.status != "running":
                del _services[key]
                future.release()
