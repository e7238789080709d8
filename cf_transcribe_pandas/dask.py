"""Scale-out on Dask distributed: one shared rate limit, one shared cache, the same columns.

::

    import cf_transcribe_pandas.dask                  # registers ddf.cfai
    out = ddf.cfai.transcribe("audio", cache="/shared/cf-cache")   # lazy
    df = out.compute()

How a run is laid out::

    client   transcribe(): checks every argument and credential, resolves the
             cache directory, finds the Client (or starts a LocalCluster for
             the session), gets the account's token service, builds the graph:

                 cfai-run-id (1 task per compute) --+
                 token service (a distributed Actor) +--> cfai-transcribe, partition i
                 partition i of the input -----------+       (one task per partition)

    worker   each partition task runs the pandas engine on its rows, with a
             ClusterLimiter as the engine's rate limiter and its own Cache on
             the shared directory. The limiter leases tokens from the token
             service; 429/3040 answers lower the service's rate (AIMD) for
             every worker; an account stop (3036, 401, 403, 3023), or with
             errors="raise" a row error, is recorded in the service and every
             other partition of the compute sees it before its next request.

The token service (:class:`_TokenService`) is one object per Client and
account, living on one worker as a ``distributed`` Actor. It keeps a token
bucket (at most about one second of tokens), a hard window of
``SERVICE_WINDOW_SECONDS`` (60 s plus a margin for the time a leased token
takes to become a request at the service) holding at most ``rate_limit``
grants, and the AIMD rate. Workers lease tokens a few at a time and use them
at once (a token not used within ``TOKEN_TTL_SECONDS`` is dropped), so the
sum over all workers never exceeds ``rate_limit`` requests in any 60 s window.

Each compute of the returned collection is one run: a tiny ``cfai-run-id``
task gives all its partitions the same id, under which the service keeps the
run's stop flag and its summary. When every partition has finished, the
summary (rows, from cache, failed, requests) is sent to the client as a
``distributed`` event, logged on the ``cf_transcribe_pandas`` logger and kept
for :func:`last_summary`.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import copy
import dataclasses
import functools
import importlib.util
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from cf_transcribe_pandas.accessor import FrameJob
from cf_transcribe_pandas.audio import DEFAULT_MAX_PART_SECONDS
from cf_transcribe_pandas.cache import Cache, default_cache_dir
from cf_transcribe_pandas.client import DEFAULT_MODEL, Credentials, Gateway
from cf_transcribe_pandas.engine import Event, RunContext, RunResult, transcribe_rows
from cf_transcribe_pandas.errors import ConfigurationError, TranscribeError
from cf_transcribe_pandas.options import TranscribeOptions

if TYPE_CHECKING:
    import dask.dataframe as dd
    import distributed

__all__ = [
    "ClusterLimiter",
    "DaskDataFrameAccessor",
    "RunSummary",
    "close_local_cluster",
    "last_summary",
    "transcribe",
]

logger = logging.getLogger("cf_transcribe_pandas")

INSTALL_HINT = 'pip install "cf-transcribe-pandas[dask]"'

SERVICE_WINDOW_SECONDS = 61.0
"""The token service's hard window: at most ``rate_limit`` grants in any such span.

60 s is the account's window; the extra second covers the time between a
grant on the service's clock and the request's arrival at Cloudflare (a token
is used at once, or dropped after ``TOKEN_TTL_SECONDS``), so that no 60 s
window at the service ever holds more than ``rate_limit`` requests.
"""

TOKEN_TTL_SECONDS = 0.5
"""A leased token not used within this many seconds is dropped (never sent late)."""

MAX_LEASE = 8
"""Most tokens one lease asks for (never more than the requests waiting for one)."""

LEASE_WAIT_SECONDS = 2.0
"""Longest a lease waits on the service before answering "none yet" (then asked again)."""

EVENT_TOPIC = "cf-transcribe-pandas"
"""The ``distributed`` event topic the run summaries travel on."""

_MAX_RUNS = 64


def _require() -> None:
    """Raise ImportError with the install hint when dask or distributed is missing."""
    names = ("dask", "dask.dataframe", "distributed")
    missing = [name for name in names if _find_spec(name) is None]
    if missing:
        raise ImportError(
            f"cf_transcribe_pandas.dask needs {' and '.join(missing)}: {INSTALL_HINT}"
        )


def _module(name: str) -> Any:
    """Import ``name`` untyped (dask and distributed are only partly typed)."""
    return importlib.import_module(name)


def _find_spec(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


# ---------------------------------------------------------------- the shared state


class _Bucket:
    """Token bucket + hard window + AIMD on one clock (the token service's).

    Same rules as :class:`cf_transcribe_pandas.engine.pacing.RateLimiter`, but
    non-blocking (``take`` says how long to wait) so one object can serve
    many remote callers, and with a window of ``window`` seconds.

    Args:
        limit: Requests per minute (> 0).
        window: The hard window in seconds; at most ``limit`` grants in any such span.
        decrease: Factor applied to the rate on a 429/3040.
        increase: Fraction of ``limit`` added back per success.
        min_fraction: The rate never drops below ``limit * min_fraction``.
        cooldown: Seconds during which further 429s do not lower the rate again.
        clock: Monotonic clock (seconds).
    """

    def __init__(
        self,
        limit: float,
        *,
        window: float = SERVICE_WINDOW_SECONDS,
        decrease: float = 0.75,
        increase: float = 0.01,
        min_fraction: float = 0.05,
        cooldown: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._window_s = window
        # Tokens arrive at the hard window's pace, as in RateLimiter (engine.pacing.PACE).
        self._pace = min(1.0, 60.0 / window)
        self._decrease = decrease
        self._increase = increase
        self._min_fraction = min_fraction
        self._cooldown = cooldown
        self.limit = -1.0  # set by configure()
        self.rate = 1.0
        self._tokens = 1.0
        self._last = clock()
        self._last_decrease = -1e18
        self._grants: collections.deque[float] = collections.deque()
        self.granted = 0
        self.throttles = 0
        self.lowest = float(limit)
        self.configure(limit)

    def configure(self, limit: float) -> None:
        """Set the limit (requests/minute); a new limit also resets the AIMD rate to it."""
        if not limit > 0:
            raise ValueError(f"rate limit must be > 0 requests/minute, got {limit!r}")
        if float(limit) != self.limit:
            self.limit = float(limit)
            self.rate = self.lowest = float(limit)
            self._min_rate = max(self.limit * self._min_fraction, 1e-3)
            self._tokens = min(self._tokens, self.capacity)

    @property
    def capacity(self) -> float:
        """Most tokens the bucket holds: about one second of requests, at least 1."""
        return max(1.0, self.rate / 60.0)

    def start_run(self) -> None:
        """A run starts with at most one token, as in the pandas engine (no opening burst)."""
        self._advance(self._clock())
        self._tokens = min(self._tokens, 1.0)

    def _advance(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate * self._pace / 60.0)
        grants = self._grants
        while grants and now - grants[0] >= self._window_s:
            grants.popleft()

    def take(self, want: int) -> tuple[int, float]:
        """Grant up to ``want`` tokens now.

        Returns:
            (tokens granted, seconds until one may be granted when none was).
        """
        now = self._clock()
        self._advance(now)
        room = max(1, int(self.limit)) - len(self._grants)
        n = min(max(1, want), int(self._tokens + 1e-9), room)
        if n >= 1:
            self._tokens -= n
            self._grants.extend([now] * n)
            self.granted += n
            return n, 0.0
        waits = [1e-3]
        if self._tokens < 1.0:
            waits.append((1.0 - self._tokens) * 60.0 / (self.rate * self._pace))
        if room <= 0:
            waits.append(self._grants[0] + self._window_s - now)
        return 0, max(waits)

    def recent(self) -> int:
        """Grants in the last 60 seconds."""
        now = self._clock()
        return sum(1 for t in self._grants if now - t < 60.0)

    def on_success(self, n: int = 1) -> None:
        """Additive increase after ``n`` successes, up to the limit."""
        if n > 0 and self.rate < self.limit:
            self._set_rate(min(self.limit, self.rate + self.limit * self._increase * n))

    def on_throttle(self) -> bool:
        """Multiplicative decrease, at most once per cooldown; True if the rate moved."""
        self.throttles += 1
        now = self._clock()
        if now - self._last_decrease < self._cooldown:
            return False
        self._last_decrease = now
        self._set_rate(max(self._min_rate, self.rate * self._decrease))
        return True

    def _set_rate(self, new: float) -> None:
        self.rate = new
        self.lowest = min(self.lowest, new)
        self._tokens = min(self._tokens, self.capacity)


@dataclasses.dataclass
class _RunState:
    """What the token service knows about one compute (one run id)."""

    started: float
    stop: TranscribeError | None = None
    finished: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    summarized: bool = False
    leased: bool = False


class _TokenService:
    """The cluster's rate limiter: a ``distributed`` Actor on one worker.

    Every method is a coroutine, so it runs on the hosting worker's event loop
    (one thread: no locks needed around the state). Workers reach it through
    :class:`ClusterLimiter`.
    """

    def __init__(self, limit: float) -> None:
        self._bucket = _Bucket(limit)
        self._runs: collections.OrderedDict[str, _RunState] = collections.OrderedDict()
        self._queue: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None

    # -- helpers (event loop only)

    def _run(self, run_id: str) -> _RunState:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _RunState(started=time.monotonic())
            while len(self._runs) > _MAX_RUNS:
                self._runs.popitem(last=False)
        return run

    def _reply(self, run: _RunState, granted: int) -> dict[str, Any]:
        return {
            "granted": granted,
            "stop": run.stop,
            "rate": self._bucket.rate,
            "recent": self._bucket.recent(),
        }

    def _poke(self) -> None:
        """Wake every lease that waits for a token (a stop or a new limit)."""
        if self._wake is not None:
            self._wake.set()
        self._wake = asyncio.Event()

    async def _sleep(self, seconds: float) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, seconds))
        except asyncio.TimeoutError:
            pass

    # -- the methods workers call

    async def configure(self, limit: float) -> None:
        """Set the limit in requests/minute (a new transcribe() call may change it)."""
        self._bucket.configure(limit)
        self._poke()

    async def enter(self, run_id: str) -> dict[str, Any]:
        """A partition starts: the run's stop flag and the current rate."""
        return self._reply(self._run(run_id), 0)

    async def lease(self, run_id: str, want: int, successes: int = 0) -> dict[str, Any]:
        """Wait (at most ``LEASE_WAIT_SECONDS``) for tokens; grant up to ``want`` of them.

        Callers are served in arrival order. No token is granted once the run stopped.
        """
        run = self._run(run_id)
        self._bucket.on_success(successes)
        if self._queue is None:
            self._queue = asyncio.Lock()
        async with self._queue:
            if not run.leased:
                run.leased = True
                self._bucket.start_run()
            deadline = time.monotonic() + LEASE_WAIT_SECONDS
            while True:
                if run.stop is not None:
                    return self._reply(run, 0)
                granted, wait = self._bucket.take(want)
                now = time.monotonic()
                if granted or now >= deadline:
                    return self._reply(run, granted)
                await self._sleep(min(wait, deadline - now))

    async def throttled(self, retry_after: float | None = None) -> float:
        """A worker got 429/3040: lower the rate for everyone; return the new rate."""
        del retry_after  # honored by the row that got it, as in the pandas engine
        if self._bucket.on_throttle():
            logger.info("cluster send rate lowered to %.0f requests/min", self._bucket.rate)
        return self._bucket.rate

    async def stop(self, run_id: str, error: TranscribeError) -> TranscribeError:
        """Stop the run: no more tokens for it. Returns the run's first stop error."""
        run = self._run(run_id)
        if run.stop is None:
            run.stop = error
            self._poke()
        return run.stop

    async def finish(
        self, run_id: str, partition: int, npartitions: int, stats: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A partition finished; returns the run's summary when it was the last one."""
        run = self._run(run_id)
        self._bucket.on_success(int(stats.pop("successes", 0)))
        run.finished[partition] = stats
        if run.summarized or len(run.finished) < npartitions:
            return None
        run.summarized = True
        totals = {
            name: sum(int(s[name]) for s in run.finished.values())
            for name in ("rows", "transcribed", "from_cache", "failed", "requests")
        }
        return {
            **totals,
            "partitions": npartitions,
            "seconds": round(time.monotonic() - run.started, 3),
            "error": repr(run.stop) if run.stop is not None else None,
        }

    async def snapshot(self) -> dict[str, Any]:
        """The service's state, for tests and benchmarks."""
        b = self._bucket
        return {
            "limit": b.limit,
            "rate": b.rate,
            "lowest": b.lowest,
            "granted": b.granted,
            "throttles": b.throttles,
            "recent": b.recent(),
        }


# ---------------------------------------------------------------- the worker side


class _Halted(Exception):
    """Internal: the run was stopped (by any partition); ``.error`` is the run's stop error."""

    def __init__(self, error: TranscribeError) -> None:
        super().__init__(error.message)
        self.error = error


class ClusterLimiter:
    """The engine's :class:`~cf_transcribe_pandas.engine.pacing.Limiter` on a Dask worker.

    Leases tokens from the run's token service a few at a time (as many as
    requests wait, at most ``MAX_LEASE``) and hands them out at once;
    forwards 429s (the service lowers the rate for every worker) and
    successes (batched on the next lease); once any partition stopped the
    run, :meth:`acquire` raises instead of waiting, so nothing more is sent.

    Create it in the partition's task thread (it calls the service once there,
    which binds the Actor handle to the worker), use it from one event loop,
    and :meth:`close` it at the end.

    Args:
        service: The ``distributed`` Actor handle of the token service.
        run_id: The compute's run id.
        cached: Whether the run keeps finished rows in a cache (for the stop message).
    """

    def __init__(self, service: Any, run_id: str, *, cached: bool = True) -> None:
        self._service = service
        self._run_id = run_id
        self._cached = cached
        state = service.enter(run_id).result()  # in the task thread: binds the handle
        self._rate = float(state["rate"])
        self._recent = float(state["recent"])
        self._stop: TranscribeError | None = state["stop"]
        self._tokens: collections.deque[float] = collections.deque()
        self._waiting = 0
        self._successes = 0
        self._lock: asyncio.Lock | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="cfai-limiter"
        )
        self._pending: list[concurrent.futures.Future[Any]] = []

    # -- talking to the service (blocking calls run in the pool)

    def _call_sync(self, method: str, *args: Any) -> Any:
        return getattr(self._service, method)(*args).result()

    async def _call(self, method: str, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, functools.partial(self._call_sync, method, *args)
        )

    def _fire(self, method: str, *args: Any) -> None:
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._call_sync, method, *args))

    def _apply(self, reply: dict[str, Any]) -> None:
        self._rate = float(reply["rate"])
        self._recent = float(reply["recent"])
        if reply["stop"] is not None and self._stop is None:
            self._stop = reply["stop"]
        now = time.monotonic()
        self._tokens.extend([now] * int(reply["granted"]))

    def _raise_if_stopped(self) -> None:
        if self._stop is not None:
            # Not a TranscribeError: the engine must not take it for this row's
            # own error; it ends the partition's run, and the partition task
            # raises the run's stop error (see _transcribe_partition).
            raise _Halted(self._stop)

    # -- the Limiter protocol

    async def acquire(self) -> None:
        """Wait until one request may be sent.

        Raises:
            _Halted: the run was stopped by any partition (an account-level
                answer, or a row error with ``errors="raise"``); it carries the
                run's stop error.
        """
        self._raise_if_stopped()
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._waiting += 1
        try:
            async with self._lock:
                while True:
                    self._raise_if_stopped()
                    now = time.monotonic()
                    tokens = self._tokens
                    while tokens and now - tokens[0] > TOKEN_TTL_SECONDS:
                        tokens.popleft()
                    if tokens:
                        tokens.popleft()
                        return
                    successes, self._successes = self._successes, 0
                    want = max(1, min(MAX_LEASE, self._waiting))
                    reply = await self._call("lease", self._run_id, want, successes)
                    self._apply(reply)
        finally:
            self._waiting -= 1

    def on_success(self) -> None:
        """A request succeeded (reported to the service with the next lease)."""
        self._successes += 1

    def on_throttle(self, retry_after: float | None) -> None:
        """A request got 429/3040: the service lowers the rate for every worker."""
        self._fire("throttled", retry_after)

    def on_stop(self, error: TranscribeError) -> None:
        """The engine stopped on an account-level answer: stop every partition now."""
        if self._stop is None:
            self._stop = error
        self._fire("stop", self._run_id, _cluster_error(error, cached=self._cached))

    @property
    def rate(self) -> float:
        """The cluster's send rate in requests per minute (as of the last lease)."""
        return self._rate

    def recent_rpm(self) -> float:
        """Requests the whole cluster started in the last 60 s (as of the last lease)."""
        return self._recent

    @property
    def stopped(self) -> TranscribeError | None:
        """The run's stop error, once this limiter has seen one."""
        return self._stop

    def take_successes(self) -> int:
        """Successes not reported yet (the caller reports them)."""
        n, self._successes = self._successes, 0
        return n

    def close(self) -> None:
        """Wait for calls still on their way to the service and stop the pool."""
        for future in self._pending:
            try:
                future.result(timeout=LEASE_WAIT_SECONDS + 10)
            except Exception:  # a lost service must not hide the partition's outcome
                logger.debug("token service call failed at close", exc_info=True)
        self._pending = []
        self._pool.shutdown(wait=True)


def _portable(error: TranscribeError) -> TranscribeError:
    """A copy of ``error`` without ``.partial``/``.run_result``, cheap to ship between processes."""
    clone = copy.copy(error)
    clone.__dict__.pop("partial", None)
    clone.__dict__.pop("run_result", None)
    clone.__traceback__ = None
    return clone


_ENGINE_STOP_NOTE = " The run stopped: "
_CLUSTER_STOP_NOTE = " The run stopped on every worker before its next request; "


def _cluster_error(error: TranscribeError, *, cached: bool) -> TranscribeError:
    """The error a stopped cluster run raises: the service's words, then what to do here.

    The engine words its stop errors for one pandas call (rows done, ``.partial``);
    on the cluster ``.partial`` is None and the count would be one partition's.
    """
    if not error.stops_run or _CLUSTER_STOP_NOTE in error.message:
        return _portable(error)
    head = error.message.split(_ENGINE_STOP_NOTE, 1)[0]
    kept = (
        "every finished row is in the cache, so computing again pays only for the rest"
        if cached
        else "with cache=False the finished rows are not kept"
    )
    message = f"{head}{_CLUSTER_STOP_NOTE}{kept}. Fix the cause, then compute again."
    return type(error)(message, code=error.code, status=error.status, retry_after=error.retry_after)


# ---------------------------------------------------------------- one partition


@dataclasses.dataclass(frozen=True)
class _Job:
    """Everything a partition task needs besides its rows (pickled into the graph)."""

    column: Hashable
    options: TranscribeOptions  # credentials resolved, cache and progress off
    cache_path: str | None
    npartitions: int


def _stats(n: int, result: RunResult | None, successes: int) -> dict[str, Any]:
    if result is None:
        return {
            "rows": n,
            "transcribed": 0,
            "from_cache": 0,
            "failed": 0,
            "requests": 0,
            "successes": successes,
        }
    transcribed = sum(
        1
        for text, cached in zip(result.texts, result.cached, strict=True)
        if text is not None and not cached
    )
    return {
        "rows": result.n,
        "transcribed": transcribed,
        "from_cache": result.from_cache,
        "failed": result.failed,
        "requests": result.requests,
        "successes": successes,
    }


def _new_run_id() -> str:
    return uuid.uuid4().hex


def _transcribe_partition(
    pdf: pd.DataFrame,
    service: Any,
    run_id: str,
    job: _Job,
    partition_info: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The task of one partition: the pandas engine with the cluster's limiter."""
    number = int(partition_info["number"]) if partition_info else 0
    limiter = ClusterLimiter(service, run_id, cached=job.cache_path is not None)
    result: RunResult | None = None
    error: TranscribeError | None = None
    out: pd.DataFrame | None = None
    try:
        if limiter.stopped is not None:
            raise _Halted(limiter.stopped)
        frame_job = FrameJob.build(pdf, job.column, job.options)
        context = RunContext(
            frame_job.credentials,
            cache=Cache(job.cache_path) if job.cache_path is not None else None,
            limiter=limiter,
        )
        result = asyncio.run(
            transcribe_rows(
                frame_job.values,
                languages=frame_job.languages,
                prompts=frame_job.prompts,
                options=job.options,
                context=context,
            )
        )
        out = frame_job.assemble(result)
    except (_Halted, TranscribeError) as exc:
        if isinstance(exc, _Halted):
            cause = exc.error  # stopped by another partition (or by this engine's on_stop)
        else:
            cause = exc
            if isinstance(exc.run_result, RunResult):
                result = exc.run_result
        # The first stop of the run wins: every partition raises that one.
        candidate = _cluster_error(cause, cached=job.cache_path is not None)
        error = service.stop(run_id, candidate).result()
    finally:
        limiter.close()
    summary = service.finish(
        run_id, number, job.npartitions, _stats(len(pdf), result, limiter.take_successes())
    ).result()
    if summary is not None:
        _module("distributed").get_worker().log_event(EVENT_TOPIC, {"kind": "summary", **summary})
    if error is not None:
        raise _portable(error)
    assert out is not None
    return out


# ---------------------------------------------------------------- the summary


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What one compute of a Dask transcription did, over all its partitions.

    Attributes:
        rows: Rows in the DataFrame.
        transcribed: Rows transcribed in this run (not from the cache).
        from_cache: Rows whose transcript came from the cache.
        failed: Rows that failed (with ``errors="coerce"``).
        requests: HTTP requests sent, retries included.
        partitions: Partitions of the DataFrame.
        seconds: From the first partition's start to the last one's end.
        error: The error that stopped the run, or None.
    """

    rows: int
    transcribed: int
    from_cache: int
    failed: int
    requests: int
    partitions: int
    seconds: float
    error: str | None = None

    def __str__(self) -> str:
        text = (
            f"{self.rows:,} rows in {self.partitions:,} partitions: "
            f"{self.transcribed:,} transcribed, {self.from_cache:,} from the cache, "
            f"{self.failed:,} failed; {self.requests:,} requests in {self.seconds:.1f} s"
        )
        if self.failed:
            text += "; rerun to retry the failed rows, finished rows come from the cache"
        if self.error is not None:
            text += f"; stopped by {self.error}"
        return text


_last_summary: RunSummary | None = None
_summary_lock = threading.Lock()


def last_summary() -> RunSummary | None:
    """The summary of the last Dask transcription this process saw finish, or None.

    The summary arrives as a ``distributed`` event shortly after the last
    partition ends, so it may lag ``compute()`` by a moment.
    """
    with _summary_lock:
        return _last_summary


def _on_event(event: Any) -> None:
    global _last_summary
    _, message = event
    if not isinstance(message, Mapping) or message.get("kind") != "summary":
        return
    fields = {f.name for f in dataclasses.fields(RunSummary)}
    summary = RunSummary(**{k: v for k, v in message.items() if k in fields})
    with _summary_lock:
        _last_summary = summary
    level = logging.WARNING if summary.failed or summary.error else logging.INFO
    logger.log(level, "transcribed on the cluster: %s", summary)


# ---------------------------------------------------------------- clients and services

_session: tuple[Any, Any] | None = None  # (LocalCluster, Client) this module started
_session_lock = threading.Lock()
_atexit_registered = False
_LOCAL_CLUSTER_KWARGS: dict[str, Any] = {}
"""Extra arguments for the LocalCluster started when no Client is running."""

_services: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
_services_lock = threading.Lock()


def _ensure_client(client: distributed.Client | None) -> Any:
    """The given Client, else the running default one, else a session LocalCluster."""
    global _session, _atexit_registered
    dist = _module("distributed")
    if client is not None:
        return client
    try:
        return dist.default_client()
    except ValueError:
        pass
    with _session_lock:
        if _session is not None and _session[1].status == "running":
            return _session[1]
        cluster = dist.LocalCluster(**_LOCAL_CLUSTER_KWARGS)
        new = dist.Client(cluster)
        _session = (cluster, new)
        if not _atexit_registered:
            atexit.register(close_local_cluster)
            _atexit_registered = True
    logger.warning(
        "no dask Client was running: started a LocalCluster with %d workers for this "
        "session (dashboard: %s); cf_transcribe_pandas.dask.close_local_cluster() "
        "shuts it down",
        len(cluster.workers),
        new.dashboard_link,
    )
    return new


def close_local_cluster() -> None:
    """Shut down the LocalCluster that :func:`transcribe` started, if any.

    Clusters and Clients you created yourself are never touched.
    """
    global _session
    with _session_lock:
        session, _session = _session, None
    if session is None:
        return
    cluster, client = session
    _forget_services(client)
    client.close()
    cluster.close()


def _forget_services(client: Any | None = None) -> None:
    """Drop the token services of ``client`` and of every Client that is not running."""
    with _services_lock:
        for key, (owner, future, _actor) in list(_services.items()):
            if owner is client or owner.status != "running":
                del _services[key]
                future.release()


def _service_for(client: Any, credentials: Credentials, rate_limit: float) -> Any:
    """The token service of this Client and account (started on first use)."""
    _forget_services()
    key = (str(client.id), credentials.account_id, credentials.base_url)
    with _services_lock:
        entry = _services.get(key)
    if entry is not None and entry[1].status == "finished":
        actor = entry[2]
        actor.configure(rate_limit).result()
        return actor
    future = client.submit(
        _TokenService, rate_limit, actor=True, key=f"cfai-token-service-{uuid.uuid4().hex}"
    )
    actor = future.result()
    with _services_lock:
        _services[key] = (client, future, actor)
    client.subscribe_topic(EVENT_TOPIC, _on_event)
    return actor


# ---------------------------------------------------------------- the entry points


def _cache_path(cache: bool | str | os.PathLike[str] | Cache) -> str | None:
    if cache is False:
        return None
    if cache is True:
        return str(default_cache_dir().expanduser().absolute())
    if isinstance(cache, Cache):
        return str(cache.path.absolute())
    if isinstance(cache, (str, os.PathLike)):
        text = os.fspath(cache)
        if "://" in text:
            raise ConfigurationError(
                f"cache= must be a directory every worker can reach (a shared filesystem), "
                f"not the URL {text!r}; mount the bucket (s3fs, gcsfuse) and pass the path",
                code="invalid_cache",
            )
        path = Path(text).expanduser().absolute()
        if path.exists() and not path.is_dir():
            raise ConfigurationError(
                f"cache= {str(path)!r} is a file, not a directory; pass a directory "
                "(it is created if missing) or cache=False",
                code="invalid_cache",
            )
        return str(path)
    raise ConfigurationError(
        f"cache= must be True, False, a directory path or a Cache, not {cache!r}",
        code="invalid_cache",
    )


def _scalar_or_column(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigurationError(
        f"{name}= must be a string or a column name on a dask DataFrame, not "
        f"{type(value).__name__}; add per-row values as a column and pass its name",
        code=f"invalid_{name}",
    )


def transcribe(
    ddf: dd.DataFrame,
    column: Hashable,
    output: str | None = None,
    *,
    language: str | None = None,
    prompt: str | None = None,
    temperature: float | None = None,
    model: str = DEFAULT_MODEL,
    errors: Literal["raise", "coerce"] = "raise",
    cache: bool | str | os.PathLike[str] | Cache = True,
    concurrency: int | None = None,
    rate_limit: float = 720,
    max_retries: int = 6,
    timeout: float = 300.0,
    progress: bool = True,
    account_id: str | None = None,
    api_token: str | None = None,
    base_url: str | None = None,
    gateway: str | Mapping[str, Any] | Gateway | None = None,
    encode: Literal["auto", "original", "flac", "opus"] = "auto",
    max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
    fetch_urls: bool = False,
    provenance: bool = False,
    on_event: Callable[[Event], None] | None = None,
    client: distributed.Client | None = None,
) -> dd.DataFrame:
    """Transcribe a dask DataFrame's audio column on a ``distributed`` cluster (lazily).

    Takes the arguments of ``df.cfai.transcribe`` (see
    :meth:`cf_transcribe_pandas.DataFrameAccessor.transcribe`) and returns a
    lazy dask DataFrame with the same partitions, index and columns as the
    pandas path would give (text as pandas ``string``, error and provenance
    columns). Differences:

    * ``rate_limit`` is for the whole cluster: every worker leases tokens from
      one token service, so the sum never exceeds it in any 60 s window, and a
      429 seen by any worker slows all of them.
    * ``concurrency`` is per running partition.
    * ``cache`` must be a directory every worker can reach (``True`` means
      the default directory as resolved on this machine).
    * ``language`` and ``prompt`` are a string or a column name (no Series).
    * ``progress`` has no effect on workers: watch the dashboard
      (``client.dashboard_link``) or ``distributed.progress``; a summary is
      logged when a compute finishes (see :func:`last_summary`).
    * An account stop (or, with ``errors="raise"``, a row error) in one
      partition stops every partition of that compute; ``compute()`` raises
      it. Its ``.partial`` is None: every finished row is in the cache, so
      the next compute gets them without paying.

    Credentials are resolved here (arguments, else this machine's
    environment) and shipped to the workers with the graph.

    Args:
        ddf: The dask DataFrame.
        column: The audio column (paths, bytes, URLs, ... as in pandas).
        output: Name of the text column (default ``f"{column}_text"``).
        language: ISO-639-1 code, or a column name for per-row codes.
        prompt: Prompt text, or a column name for per-row prompts.
        temperature: Sampling temperature in 0..1 (left out when None).
        model: The Workers AI model.
        errors: ``"raise"`` or ``"coerce"``, as in pandas.
        cache: True (default directory), a shared directory path, a Cache, or False.
        concurrency: Most requests in flight per running partition (default 64).
        rate_limit: The account's limit in requests per minute, for the whole cluster.
        max_retries: Retries for 5xx, timeouts and resets.
        timeout: Seconds to wait for one answer.
        progress: Ignored on the cluster (see above).
        account_id: Cloudflare account id (default ``CLOUDFLARE_ACCOUNT_ID``).
        api_token: API token (default ``CLOUDFLARE_API_TOKEN``).
        base_url: API base URL (default ``CLOUDFLARE_BASE_URL`` or Cloudflare's).
        gateway: AI Gateway id or settings.
        encode: ``"auto"``, ``"original"``, ``"flac"`` or ``"opus"``.
        max_part_seconds: Longer audio is split into parts of at most this.
        fetch_urls: Download https URLs instead of passing them on.
        provenance: Add ``{output}_cached``, ``{output}_model``, ``{output}_duration_s``.
        on_event: Hook called on the workers (it must pickle).
        client: The ``distributed.Client`` to use; default the running one, else a
            LocalCluster started for the session (see :func:`close_local_cluster`).

    Returns:
        A lazy dask DataFrame.

    Raises:
        ImportError: dask or distributed is not installed.
        ConfigurationError: bad arguments or missing credentials (before any work).
    """
    _require()
    dask_mod, dd_mod = _module("dask"), _module("dask.dataframe")
    del progress
    if not isinstance(ddf, dd_mod.DataFrame):
        raise ConfigurationError(
            f"expected a dask DataFrame, not {type(ddf).__name__}; "
            "for pandas use df.cfai.transcribe(...)",
            code="invalid_frame",
        )
    options = TranscribeOptions(
        output=output,
        language=_scalar_or_column("language", language),
        prompt=_scalar_or_column("prompt", prompt),
        temperature=temperature,
        model=model,
        errors=errors,
        cache=cache,
        concurrency=concurrency,
        rate_limit=rate_limit,
        max_retries=max_retries,
        timeout=timeout,
        account_id=account_id,
        api_token=api_token,
        base_url=base_url,
        gateway=gateway,
        encode=encode,
        max_part_seconds=max_part_seconds,
        fetch_urls=fetch_urls,
        provenance=provenance,
        on_event=on_event,
    )
    cache_path = options.cache_path()
    credentials = options.credentials()
    # The workers open the shared directory themselves, show no bar, need no environment.
    options = options.replace(
        cache=False,
        progress=False,
        account_id=credentials.account_id,
        api_token=credentials.api_token,
        base_url=credentials.base_url,
    )
    # The pandas path's checks, on the empty meta: column, output, per-row values.
    meta_df: pd.DataFrame = ddf._meta
    frame_job = FrameJob.build(meta_df, column, options)
    job = _Job(column=column, options=options, cache_path=cache_path, npartitions=ddf.npartitions)
    meta = frame_job.assemble(RunResult(0))
    client = _ensure_client(client)
    service = _service_for(client, credentials, options.rate_limit)
    run_id = dask_mod.delayed(_new_run_id, pure=False)(
        dask_key_name=f"cfai-run-id-{uuid.uuid4().hex}"
    )
    logger.info("transcribing on the cluster; dashboard: %s", client.dashboard_link)
    frame: Any = ddf
    return frame.map_partitions(  # type: ignore[no-any-return]
        _transcribe_partition, service, run_id, job, meta=meta, token="cfai-transcribe"
    )


class DaskDataFrameAccessor:
    """``ddf.cfai``: transcribe a dask DataFrame's audio column on a cluster."""

    def __init__(self, ddf: dd.DataFrame) -> None:
        self._ddf = ddf

    def transcribe(self, column: Hashable, output: str | None = None, **kwargs: Any) -> Any:
        """Same as :func:`cf_transcribe_pandas.dask.transcribe` on this DataFrame.

        Returns:
            A lazy dask DataFrame with the text (and error/provenance) columns.
        """
        return transcribe(self._ddf, column, output, **kwargs)


def _register() -> None:
    if _find_spec("dask.dataframe") is None:
        return
    extensions = _module("dask.dataframe.extensions")
    extensions.register_dataframe_accessor("cfai")(DaskDataFrameAccessor)


_register()
