"""The async pipeline behind ``df.cfai.transcribe``.

One run, rows flowing one way::

    producer (rows in windows from WINDOW up to MAX_WINDOW, never the whole
    column at once)
      -> resolve: to_source, cheap key (bytes hash, URL, path memo), one
         cache lookup per window; local paths found in the memo and the cache
         are done here, with no object per row (with a cache, in a thread;
         without one, on the event loop a slice at a time while that is cheap)
      -> cached rows are done; a row whose key is already queued joins that
         row's group (dedupe)
      -> short clips (in memory, or small local files not in the memo) are
         read, hashed and prepared in batches, on the event loop while that is
         cheap (a thread hop costs more than the work), else in the thread
         pool, and looked up in the cache several batches at a time; the
         others go to the bounded queue as they are
    `concurrency` workers, each one row at a time:
      -> large files: read + hash, cache lookup, dedupe, prepare in a thread
         (sniff, re-encode, split), within a byte budget
      -> rate limiter -> client (one request) -> the retry layer (the only one)
      -> the row and its duplicates are done; the text goes to the cache writer
    -> per-row results -> columns (:func:`assemble`)

Decisions (see DESIGN.md "Decisions that tests rely on"):

* 429/3040 answers slow the run (AIMD in :mod:`ratelimit`) and are resent
  after their Retry-After (else a full-jitter backoff); they do not use up a
  row's attempts, but a row gives up after ``row_deadline`` seconds of them.
* Other retryable errors get ``max_retries`` retries with full-jitter
  exponential backoff (base 0.5 s, cap 30 s), honoring Retry-After.
* 3036/401/403/3023 stop the run: nothing is sent after the first such answer
  (every other task is cancelled at once, in-flight requests included), the
  finished rows are flushed to the cache, and the error is raised carrying
  the finished rows (``.partial`` once the accessor has built the frame).
* ``errors="raise"``: the first row error stops the run from sending
  anything new; requests already on the wire finish and are cached; then the
  error is raised.
* Finished rows are flushed to the cache at least every ``2 * concurrency``
  rows or 2 seconds (by the writer's own thread, never on the event loop),
  and on exit, cancel and error.
* Heavy or slow work (large files, decoding, slow cache lookups, window
  resolves with a cache) runs in a thread pool owned by the run and shut down
  with it: a run leaves no thread and no open session behind, even when
  cancelled. Short clips, quick lookups and quick window resolves run on the
  event loop (see ``_Run._prepare_ahead`` and ``_Run._resolve``); the cache
  writer merges every MERGE_FILES part files it wrote into one.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pandas as pd

from cf_transcribe_pandas import audio as audio_mod
from cf_transcribe_pandas.audio import EncodeMode
from cf_transcribe_pandas.cache import Cache, CachedRow, CacheWriter, cache_key
from cf_transcribe_pandas.client import Client, Credentials, Gateway
from cf_transcribe_pandas.errors import (
    AccountError,
    AudioError,
    RateLimitError,
    TranscribeError,
    redact,
)
from cf_transcribe_pandas.ratelimit import Limiter, RateLimiter, backoff_delay

if TYPE_CHECKING:
    from cf_transcribe_pandas.audio import Source

__all__ = [
    "Event",
    "RateChange",
    "RetryDetails",
    "RowDone",
    "RunOptions",
    "RunResult",
    "assemble",
    "result_columns",
    "run_in_thread",
    "transcribe_rows",
]

logger = logging.getLogger("cf_transcribe_pandas")

T = TypeVar("T")

Hit = tuple[str, float | None, str]
"""A cache hit as a run uses it: (text, duration_s, model)."""

_Cached = tuple[int, Hit]
"""A row settled from the cache while its window was resolved: (row, hit)."""

WINDOW = 1024
"""Rows resolved (source, cheap key, cache lookup) in the producer's first step."""

MAX_WINDOW = 65_536
"""Rows in the producer's largest step: its windows double from WINDOW up to this.

A cache lookup reads every part file holding one of its keys, so 1,024-key
lookups over rows in another order than they were written read every file
again and again (a shuffled rerun of 100,000 cached rows: 114 s, against 16 s
with doubling windows).
"""

MEMO_FLUSH = 1024
"""Path -> sha256 memo entries are written in batches of this many during a run
(and the rest at its end), so a rerun after a kill -9 need not re-hash."""

MERGE_FILES = 16
"""The run's cache writer merges every this many part files it wrote into one:
a run of 10,000 rows leaves about 6 files, not 80, for the next run to read."""

MIN_SPLIT_SECONDS = 30.0
"""A part shorter than this is never split again for looking cut."""

THREADS = min(8, (os.cpu_count() or 1) + 2)
"""Threads of a run's pool (hashing, audio preparation, cache I/O)."""

AHEAD_MAX_BYTES = 256 * 1024
"""In-memory audio up to this size is prepared by the producer, in batches (one
thread hop for many short clips instead of one each); larger audio is prepared
by the worker that sends it, so that little audio is held ahead of sending."""

AHEAD_BATCH_ROWS = 64
AHEAD_BATCH_BYTES = 1024 * 1024
"""A batch of prepared-ahead rows ends at this many rows or bytes."""

INLINE_ROW_SECONDS = 1e-3
INLINE_RETRY_BATCHES = 32
"""Batches prepared ahead run on the event loop while they take at most
INLINE_ROW_SECONDS a row; after two slower ones, the next INLINE_RETRY_BATCHES
go to the thread pool (see ``_Run._prepare_ahead``)."""

INLINE_LOOKUP_SECONDS = 2e-3
"""A cache lookup runs on the event loop when the last one took at most this
(its wall time on the loop, its CPU time in a thread)."""

RESOLVE_SLICE = 128
RESOLVE_SLICE_SECONDS = 5e-3
INLINE_RESOLVE_ROW_SECONDS = 5e-4
"""Without a cache, windows of rows are classified (sources, sizes, keys of
in-memory audio) on the event loop, a slice at a time: RESOLVE_SLICE rows
first, then as many as the last slice's pace fits in RESOLVE_SLICE_SECONDS,
so the loop is never held long. This goes on while a slice takes at most
INLINE_RESOLVE_ROW_SECONDS a row; after two slower ones in a row (slow
storage, large in-memory audio to hash) the rest of the run resolves in the
thread pool. A pool thread doing this beside the event loop costs more than
the work: the two trade the GIL at every system call. With a cache, whole
windows resolve in the pool: their memo and cache lookups are worth doing in
one go (a cached rerun reads each part file once, not once a slice)."""

_POSTFIX_EVERY = 0.5
"""Seconds between updates of the progress bar's counters."""


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class RetryDetails:
    """A request is about to be sent again.

    Attributes:
        row: Position of the row in the input (0-based, not the index label).
        label: The row's audio, as shown in messages.
        attempt: 1 for the first retry, 2 for the second, ...
        delay: Seconds waited before the retry.
        error: What went wrong.
    """

    row: int
    label: str
    attempt: int
    delay: float
    error: TranscribeError


@dataclass(frozen=True)
class RateChange:
    """The adaptive send rate moved.

    Attributes:
        old: The previous rate, in requests/minute.
        new: The rate now, in requests/minute.
    """

    old: float
    new: float


@dataclass(frozen=True)
class RowDone:
    """A row finished.

    Attributes:
        row: Position of the row in the input (0-based, not the index label).
        status: ``"ok"`` (transcribed now), ``"cached"`` (from the cache),
            ``"failed"`` (see ``error``) or ``"skipped"`` (NA audio).
        error: The row's error when ``status`` is ``"failed"``.
    """

    row: int
    status: Literal["ok", "cached", "failed", "skipped"]
    error: TranscribeError | None = None


Event = RetryDetails | RateChange | RowDone
"""What ``on_event`` hooks receive."""


# ---------------------------------------------------------------- options and results


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs besides the rows; built and validated by the accessor.

    Attributes:
        credentials: Account, token and base URL.
        model: The Workers AI model.
        temperature: Sent when not None.
        errors: ``"raise"`` or ``"coerce"``.
        cache: Where finished rows are kept, or None.
        concurrency: Most requests in flight.
        rate_limit: Requests per minute (the token bucket's rate).
        max_retries: Retries of 5xx, 408, resets and timeouts.
        timeout: Seconds for one request.
        progress: Show a tqdm bar.
        gateway: AI Gateway options.
        encode: How audio is prepared (see :func:`audio.prepare`).
        max_part_seconds: Longer audio is split.
        fetch_urls: Download https URLs instead of passing them through.
        row_deadline: Seconds a row keeps retrying 429/3040 answers.
        max_bytes_in_flight: Cap on the memory held for requests at once, counted
            as ``WORKING_SET_FACTOR`` times each file's size (the bytes, their
            data URI, the JSON body); one file larger than the cap still goes.
        on_event: Hook called (on the run's event loop thread) with every event.
        limiter: A shared rate limiter (Dask); default: one per run.
        backoff_base: First step of the exponential backoff, seconds.
        backoff_cap: Largest backoff, seconds.
    """

    credentials: Credentials
    model: str
    temperature: float | None = None
    errors: Literal["raise", "coerce"] = "raise"
    cache: Cache | None = None
    concurrency: int = 64
    rate_limit: float = 720.0
    max_retries: int = 6
    timeout: float = 300.0
    progress: bool = True
    gateway: Gateway | None = None
    encode: EncodeMode = "auto"
    max_part_seconds: float = audio_mod.DEFAULT_MAX_PART_SECONDS
    fetch_urls: bool = False
    row_deadline: float = 600.0
    max_bytes_in_flight: int = 96 * 1024 * 1024
    on_event: Callable[[Event], None] | None = None
    limiter: Limiter | None = field(default=None, compare=False)
    backoff_base: float = 0.5
    backoff_cap: float = 30.0


@dataclass
class RunResult:
    """Per-row outcome of a run, in input order.

    A row that is neither finished nor failed (the run stopped first) has
    ``texts[i] is None`` and ``errors[i] is None``.
    """

    n: int
    texts: list[str | None] = field(default_factory=list)
    errors: list[TranscribeError | None] = field(default_factory=list)
    cached: list[bool] = field(default_factory=list)
    models: list[str | None] = field(default_factory=list)
    durations: list[float | None] = field(default_factory=list)
    requests: int = 0
    done: int = 0
    from_cache: int = 0
    failed: int = 0
    cache_enabled: bool = True

    def __post_init__(self) -> None:
        if not self.texts:
            self.texts = [None] * self.n
            self.errors = [None] * self.n
            self.cached = [False] * self.n
            self.models = [None] * self.n
            self.durations = [None] * self.n

    def summary(self) -> str | None:
        """One line about failed rows, or None when no row failed.

        For example ``"12 of 5,000 rows failed: 9 invalid audio, 3 timeout;
        rerun to retry them, finished rows come from the cache"``.
        """
        failed = [e for e in self.errors if e is not None]
        if not failed:
            return None
        kinds = collections.Counter(e.kind for e in failed)
        detail = ", ".join(f"{count:,} {kind}" for kind, count in kinds.most_common())
        how = (
            "rerun to retry them, finished rows come from the cache"
            if self.cache_enabled
            else "rerun to retry them (with cache=False every row is sent again)"
        )
        return f"{len(failed):,} of {self.n:,} rows failed: {detail}; {how}"


@dataclass
class _Outcome:
    text: str | None
    error: TranscribeError | None
    duration: float | None
    model: str | None


@dataclass
class _Group:
    """Rows with the same cache key: the leader is sent, the followers copy it."""

    leader: int
    followers: list[int] = field(default_factory=list)
    outcome: _Outcome | None = None


@dataclass(slots=True)
class _Item:
    row: int
    source: Source
    key: str | None
    sha256: str | None
    parts: list[audio_mod.Part] | None = None  # prepared ahead
    error: TranscribeError | None = None  # found while preparing ahead
    size: int | None = None  # a local file's size, from the producer's stat
    stat_key: tuple[str, int, int] | None = None  # its path -> sha256 memo key
    loaded: bool = False  # read and hashed ahead, by the producer (key found there)


_Resolved = tuple[
    list[_Item], list[tuple[int, TranscribeError]], list[int], dict[str, Hit], list[_Cached]
]
"""What resolving a window gives: rows to send or read, failed rows, NA rows,
cache hits by key, rows settled from the cache (see ``_Run._resolve_window``)."""


class _Stopped(Exception):
    """Internal: the run is stopping; the row is left unfinished."""


WORKING_SET_FACTOR = 4
"""Memory a request holds per byte of audio: the bytes, the base64 data URI and
the JSON body each (the URI and body are 4/3 of the bytes)."""


class _ByteBudget:
    """At most ``limit`` bytes of audio held for requests at once (one item may exceed it)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self, n: int) -> int:
        n = max(0, n)
        while self._used and self._used + n > self._limit:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._used += n
        return n

    def release(self, n: int) -> None:
        self._used -= n
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


# ---------------------------------------------------------------- the run


class _Run:
    def __init__(
        self,
        values: Sequence[Any],
        languages: Sequence[str | None],
        prompts: Sequence[str | None],
        options: RunOptions,
    ) -> None:
        if not len(languages) == len(prompts) == len(values):
            raise ValueError("values, languages and prompts must have the same length")
        self.values = values
        self.languages = languages
        self.prompts = prompts
        self.opts = options
        self.n = len(values)
        self.cache = options.cache
        self.result = RunResult(self.n, cache_enabled=self.cache is not None)
        self.limiter: Limiter = options.limiter or RateLimiter(
            options.rate_limit, on_rate_change=self._rate_changed
        )
        self.writer: CacheWriter | None = None
        self.memo_buffer: list[tuple[str, int, int, str]] = []
        self.lookups: dict[str, list[asyncio.Future[Hit | None]]] = {}
        self.lookup_task: asyncio.Task[None] | None = None
        self.groups: dict[str, _Group] = {}
        self.fatal: AccountError | None = None
        self.first_row_error: TranscribeError | None = None
        self.stopping = False
        self.budget = _ByteBudget(options.max_bytes_in_flight)
        self.client: Client | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.sending: set[asyncio.Task[Any]] = set()
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.thread_jobs: set[concurrent.futures.Future[Any]] = set()
        self.bar: Any = None
        self._last_postfix = 0.0
        self._secret = options.credentials.api_token
        self._inline_skip = 0
        self._slow_batches = 0
        self._resolve_inline = self.cache is None  # see RESOLVE_SLICE_SECONDS
        self._slow_slices = 0
        self._slice_rows = RESOLVE_SLICE
        self._lookup_seconds = 0.0  # how long the last cache lookup took

    # -- threads

    async def _offload(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in the run's thread pool and wait for it."""
        if self.executor is None:
            self.executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=THREADS, thread_name_prefix="cf-transcribe"
            )
        job = self.executor.submit(fn, *args, **kwargs)
        self.thread_jobs.add(job)
        job.add_done_callback(self.thread_jobs.discard)
        return await asyncio.wrap_future(job)

    async def _close_threads(self) -> None:
        """Wait for the jobs still running (cancelled awaits leave them running); end the pool."""
        executor, self.executor = self.executor, None
        if executor is None:
            return
        executor.shutdown(wait=False, cancel_futures=True)
        running = [asyncio.wrap_future(job) for job in list(self.thread_jobs)]
        if running:
            await asyncio.wait(running)
        executor.shutdown(wait=True)  # the threads are idle: this only joins them

    # -- hooks and progress

    def _emit(self, event: Event) -> None:
        if self.opts.on_event is not None:
            try:
                self.opts.on_event(event)
            except Exception:  # a broken hook must not break the run
                logger.exception("on_event hook raised; ignoring")

    def _rate_changed(self, old: float, new: float) -> None:
        self._emit(RateChange(old, new))

    def _open_bar(self) -> None:
        if not self.opts.progress:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.n, unit="row", desc="transcribe", dynamic_ncols=True)

    def _postfix(self) -> None:
        self.bar.set_postfix(
            cached=self.result.from_cache,
            failed=self.result.failed,
            rpm=int(self.limiter.recent_rpm()),
            refresh=False,
        )

    def _close_bar(self) -> None:
        if self.bar is not None:
            self._postfix()
            self.bar.close()
            self.bar = None

    # -- recording outcomes

    def _record(self, row: int, outcome: _Outcome, *, cached: bool) -> None:
        self._store(row, outcome.text, outcome.error, outcome.duration, outcome.model, cached)

    def _record_cached(self, row: int, hit: Hit) -> None:
        """:meth:`_record` for a cache hit, with no _Outcome built (a cached rerun is all this)."""
        text, duration, model = hit
        self._store(row, text, None, duration, model, True)

    def _store(
        self,
        row: int,
        text: str | None,
        error: TranscribeError | None,
        duration: float | None,
        model: str | None,
        cached: bool,
    ) -> None:
        res = self.result
        res.texts[row] = text
        res.errors[row] = error
        res.durations[row] = duration
        res.models[row] = model
        res.cached[row] = cached
        res.done += 1
        status: Literal["ok", "cached", "failed"]
        if error is not None:
            res.failed += 1
            status = "failed"
        elif cached:
            res.from_cache += 1
            status = "cached"
        else:
            status = "ok"
        self._tick()
        if self.opts.on_event is not None:
            self._emit(RowDone(row, status, error))

    def _record_na(self, row: int) -> None:
        self.result.done += 1
        self._tick()
        if self.opts.on_event is not None:
            self._emit(RowDone(row, "skipped"))

    def _fail(self, row: int, error: TranscribeError) -> None:
        self._record(row, _Outcome(None, error, None, None), cached=False)
        self._note_error(error)

    def _tick(self) -> None:
        bar = self.bar
        if bar is None:
            return
        bar.update(1)
        now = time.monotonic()
        if now - self._last_postfix >= _POSTFIX_EVERY:
            self._last_postfix = now
            self._postfix()

    def _settled(self, row: int, key: str, hit: Hit | None) -> bool:
        """Settle ``row`` from its cache hit, or as a follower of a row with the same
        key (True); else it leads a new group and must be sent (False)."""
        if hit is not None:
            self._record_cached(row, hit)
            return True
        group = self.groups.get(key)
        if group is not None:
            self._join(group, row)
            return True
        self.groups[key] = _Group(row)
        return False

    def _join(self, group: _Group, row: int) -> None:
        """``row`` has the same audio and parameters as ``group``'s leader."""
        if group.outcome is not None:
            self._record(row, group.outcome, cached=False)
        else:
            group.followers.append(row)

    def _finish(self, item: _Item, group: _Group, outcome: _Outcome) -> None:
        group.outcome = outcome
        self._record(item.row, outcome, cached=False)
        for row in group.followers:
            self._record(row, outcome, cached=False)
        group.followers = []
        if outcome.error is not None:
            self._note_error(outcome.error)
        elif self.writer is not None and outcome.text is not None and item.sha256 is not None:
            language, prompt = self._params(item.row)
            assert item.key is not None
            self.writer.add(
                CachedRow.new(
                    item.sha256,
                    outcome.text,
                    model=self.opts.model,
                    language=language,
                    prompt=prompt,
                    temperature=self.opts.temperature,
                    encode=self.opts.encode,
                    duration_s=outcome.duration,
                )
            )

    # -- stopping

    def _note_error(self, error: TranscribeError) -> None:
        """A row failed: with errors="raise", stop sending (requests on the wire finish)."""
        if self.opts.errors != "raise" or self.first_row_error is not None:
            return
        self.first_row_error = error
        if self.fatal is None:
            logger.error(
                "stopping the run at the first failed row (errors='raise'): %s", error.message
            )
        self._halt(keep_sending=True)

    def _stop(self, exc: AccountError) -> None:
        """An account-level answer: cancel everything at once, in-flight requests included."""
        if self.fatal is not None:
            return
        self.fatal = exc
        logger.error("stopping the run: %s", exc.message)
        self._halt(keep_sending=False)

    def _halt(self, *, keep_sending: bool) -> None:
        self.stopping = True
        current = asyncio.current_task()
        for task in self.tasks:
            if task is current or task.done():
                continue
            if keep_sending and task in self.sending:
                continue  # its answer is on the way: let it finish and be cached
            task.cancel()

    # -- parameters

    def _params(self, row: int) -> tuple[str | None, str | None]:
        return self.languages[row], self.prompts[row]

    def _key(self, row: int, sha: str) -> str:
        language, prompt = self._params(row)
        return cache_key(
            sha,
            model=self.opts.model,
            language=language,
            prompt=prompt,
            temperature=self.opts.temperature,
            encode=self.opts.encode,
        )

    # -- producer: resolve windows of rows cheaply

    def _resolve_window(self, start: int, stop: int) -> _Resolved:
        """Classify rows ``start:stop``, find their keys (memo), look them up.

        Returns:
            (rows to send or to read, rows failed, NA rows, cache hits of those
            rows by key, rows settled from the cache: local paths whose memo
            and cache entries were both found, for which no Source is built)
        """
        items: list[_Item] = []
        failures: list[tuple[int, TranscribeError]] = []
        nas: list[int] = []
        memo_items: list[_Item] = []  # paths to look up in the memo, and their keys
        memo_wanted: list[tuple[str, int, int]] = []
        plain: list[tuple[int, str, tuple[str, int, int]]] = []  # (row, fspath, memo key)
        real_dirs: dict[str, str] = {}  # resolved directories, for stat_key
        to_source, values, fetch_urls = audio_mod.to_source, self.values, self.opts.fetch_urls
        local_path, path_stat_key = audio_mod.local_path, audio_mod.path_stat_key
        memo = self.cache is not None
        for row in range(start, stop):
            try:
                value = values[row]
                if memo:
                    fspath = local_path(value)
                    if fspath is not None:  # the usual case, with no objects per row
                        plain.append((row, fspath, path_stat_key(fspath, real_dirs)))
                        continue
                source = to_source(value, fetch_urls=fetch_urls)
                kind = source.kind
                item = _Item(row, source, None, None)
                if kind == "path":
                    if memo:
                        item.stat_key = stat_key = source.stat_key(real_dirs)
                        if stat_key is not None:
                            item.size = stat_key[1]
                            memo_items.append(item)
                            memo_wanted.append(stat_key)
                    else:
                        item.size = source.size_hint()
                elif kind == "na":
                    nas.append(row)
                    continue
                elif source.passthrough:
                    if not (source.url or "").lower().startswith("https://"):
                        raise AudioError(
                            f"{source.label}: the service takes https:// URLs only; use https, "
                            "or fetch_urls=True to download the file and send its audio",
                            code="unsupported_input",
                        )
                    item.sha256 = audio_mod.sha256_of(source)
                elif kind in ("bytes", "array"):
                    item.sha256 = audio_mod.sha256_of(source)
            except TranscribeError as exc:
                failures.append((row, exc))
                continue
            except Exception as exc:  # a bug must cost one row, not the run
                failures.append((row, _unexpected(exc, f"row {row}", self._secret)))
                continue
            items.append(item)
        cached: list[_Cached] = []
        found = (
            self.cache.memo_get_many([*memo_wanted, *(k for _r, _p, k in plain)])
            if self.cache is not None
            else {}
        )
        for item, stat_key in zip(memo_items, memo_wanted, strict=True):
            item.sha256 = found.get(stat_key)
        for item in items:
            if item.sha256 is not None:
                item.key = self._key(item.row, item.sha256)
        if self.cache is None:
            return items, failures, nas, {}, cached
        known = [(row, fspath, k, found.get(k)) for row, fspath, k in plain]
        plain_keys = [self._key(row, sha) if sha else None for row, _p, _k, sha in known]
        keys = [item.key for item in items if item.key is not None]
        keys += [key for key in plain_keys if key is not None]
        hits = self.cache.lookup_results(keys) if keys else {}
        for (row, fspath, stat_key, sha), key in zip(known, plain_keys, strict=True):
            hit = hits.get(key) if key is not None else None
            if hit is not None:
                cached.append((row, hit))
                continue
            source = audio_mod.Source("path", fspath, fspath=fspath)
            items.append(_Item(row, source, key, sha, size=stat_key[1], stat_key=stat_key))
        return items, failures, nas, hits, cached

    async def _resolve(self, start: int, stop: int) -> _Resolved:
        """:meth:`_resolve_window` for rows ``start:stop``: on the event loop, a
        slice at a time, while that is cheap and there is no cache (see
        RESOLVE_SLICE_SECONDS); else in a thread."""
        merged: _Resolved = ([], [], [], {}, [])
        items, failures, nas, hits, cached = merged
        pos = start
        while pos < stop:
            if not self._resolve_inline:
                part = await self._offload(self._resolve_window, pos, stop)
                end = stop
            else:
                end = min(stop, pos + self._slice_rows)
                started = time.perf_counter()
                part = self._resolve_window(pos, end)
                per_row = (time.perf_counter() - started) / (end - pos)
                if per_row <= INLINE_RESOLVE_ROW_SECONDS:
                    self._slow_slices = 0
                    fits = RESOLVE_SLICE_SECONDS / max(per_row, 1e-7)
                    self._slice_rows = max(RESOLVE_SLICE, min(MAX_WINDOW, int(fits)))
                else:  # one slow slice may be a hiccup (a collector pause); two are not
                    self._slow_slices += 1
                    self._resolve_inline = self._slow_slices < 2
            items += part[0]
            failures += part[1]
            nas += part[2]
            hits.update(part[3])
            cached += part[4]
            pos = end
            if pos < stop:
                await asyncio.sleep(0)  # let answers in between slices
        return merged

    async def _produce(self, queue: asyncio.Queue[_Item | None]) -> None:
        batches: collections.deque[asyncio.Future[list[_Item]]] = collections.deque()
        batch: list[_Item] = []
        batch_bytes = 0
        stop, window = 0, WINDOW // 2

        def resolve_next() -> asyncio.Future[Any] | None:
            """Start resolving the next window (twice the last, at most MAX_WINDOW)."""
            nonlocal stop, window
            if stop >= self.n or self.stopping:
                return None
            start, window = stop, min(2 * window, MAX_WINDOW)
            stop = min(self.n, start + window)
            return asyncio.ensure_future(self._resolve(start, stop))

        async def send_batch() -> None:
            """Prepare the batch (on the loop, or in a thread while the oldest
            batches' rows are queued); queue the oldest batch's rows, and those of
            every batch prepared after it, with one cache lookup for them all (a
            lookup costs about as much for 256 keys as for 64)."""
            nonlocal batch, batch_bytes
            if batch:
                prepared = self._prepare_ahead(batch)
                batches.append(prepared)
                batch, batch_bytes = [], 0
                if prepared.done():  # prepared on the loop: let answers in between batches
                    await asyncio.sleep(0)
            if len(batches) >= THREADS:
                ready = [batches.popleft()]
                while batches and batches[0].done():
                    ready.append(batches.popleft())
                await self._enqueue(ready, queue)

        async def ahead(item: _Item, size: int) -> None:
            nonlocal batch_bytes
            batch.append(item)
            batch_bytes += size
            if len(batch) >= AHEAD_BATCH_ROWS or batch_bytes >= AHEAD_BATCH_BYTES:
                await send_batch()

        window_future = resolve_next()
        try:
            while window_future is not None:
                items, failures, nas, hits, cached = await window_future
                window_future = resolve_next()  # resolved while this window's rows are queued
                for row, hit in cached:
                    self._record_cached(row, hit)
                for row, exc in failures:
                    self._fail(row, exc)
                for row in nas:
                    self._record_na(row)
                for item in items:
                    if self.stopping:
                        return
                    key = item.key
                    if key is None:
                        if item.size is not None and item.size <= AHEAD_MAX_BYTES:
                            # A small local file: read, hashed, looked up and prepared
                            # with its batch (one thread hop for many rows).
                            await ahead(item, item.size)
                        else:
                            await queue.put(item)  # the worker reads it, within the budget
                        continue
                    if self._settled(item.row, key, hits.get(key)):
                        continue
                    size = _ahead_size(item.source)
                    if size is not None:
                        await ahead(item, size)
                    else:
                        await queue.put(item)
                await send_batch()
                if batches:
                    ready = list(batches)
                    batches.clear()
                    await self._enqueue(ready, queue)
            if self.stopping:
                return
            for _ in range(self.opts.concurrency):
                await queue.put(None)
        finally:
            if window_future is not None:
                window_future.cancel()
            for future in batches:
                future.cancel()

    def _prepare_ahead(self, items: list[_Item]) -> asyncio.Future[list[_Item]]:
        """Prepare a batch of short clips: on the event loop while that is cheap
        (the future returned is then done already), else in the thread pool.

        A thread hop costs more CPU than preparing a short clip (the GIL changes
        hands around every read and hash), so batches run inline as long as
        they take at most INLINE_ROW_SECONDS a row. Two slower batches in a
        row (slow storage, audio to decode) send the next INLINE_RETRY_BATCHES
        to the thread pool, then the loop tries again.
        """
        if self._inline_skip > 0:
            self._inline_skip -= 1
            return asyncio.ensure_future(self._offload(self._prepare_items, items))
        started = time.perf_counter()
        self._prepare_items(items)
        if time.perf_counter() - started <= INLINE_ROW_SECONDS * len(items):
            self._slow_batches = 0
        else:  # one slow batch may be a hiccup (the first call, a busy core); two are not
            self._slow_batches += 1
            if self._slow_batches >= 2:
                self._slow_batches = 0
                self._inline_skip = INLINE_RETRY_BATCHES
        prepared: asyncio.Future[list[_Item]] = asyncio.get_running_loop().create_future()
        prepared.set_result(items)
        return prepared

    def _prepare_items(self, items: list[_Item]) -> list[_Item]:
        """In a thread: prepare a batch of short clips (reading and hashing local files)."""
        seen: set[str] = set()
        for item in items:
            try:
                if item.key is None:
                    item.loaded = True
                    data, _ = self._load(item)
                    assert item.key is not None
                    if item.key in seen:
                        continue  # the same audio as a row above: it joins that row
                    seen.add(item.key)
                    item.parts = _read_and_prepare(item.source, data, self.opts)
                else:
                    item.parts = _read_and_prepare(item.source, None, self.opts)
            except TranscribeError as exc:
                item.error = exc
            except Exception as exc:  # a bug must cost one row, not the run
                item.error = _unexpected(exc, item.source.label, self._secret)
        return items

    async def _enqueue(
        self, batches: list[asyncio.Future[list[_Item]]], queue: asyncio.Queue[_Item | None]
    ) -> None:
        items = [item for batch in batches for item in await batch]
        loaded = [item for item in items if item.loaded and item.key is not None]
        hits: dict[str, Hit] = {}
        if loaded and self.cache is not None:
            for item in loaded:
                if item.stat_key is not None and item.sha256 is not None:
                    self.memo_buffer.append((*item.stat_key, item.sha256))
            await self._flush_memo()
            hits = await self._lookup_many([item.key for item in loaded if item.key is not None])
        for item in items:
            if self.stopping:
                return
            key = item.key
            if key is None:  # a local file that could not be read
                assert item.error is not None
                self._fail(item.row, _with_label(item.error, item.source.label))
                continue
            if item.loaded and self._settled(item.row, key, hits.get(key)):
                continue
            if item.error is not None:
                error = _with_label(item.error, item.source.label)
                self._finish(item, self.groups[key], _Outcome(None, error, None, None))
            else:
                await queue.put(item)

    # -- workers

    async def _worker(self, queue: asyncio.Queue[_Item | None]) -> None:
        while not self.stopping:
            item = await queue.get()
            if item is None or self.stopping:
                return
            try:
                await self._process(item)
            except _Stopped:
                return

    async def _process(self, item: _Item) -> None:
        row, source = item.row, item.source
        held = 0
        try:
            if item.key is None:
                # A path (or fsspec file) the memo did not know: read and hash it in a
                # thread, look it up with the other workers' keys, prepare it if new.
                size = item.size if item.size is not None else source.size_hint()
                held = await self.budget.acquire(WORKING_SET_FACTOR * (size or 0))
                try:
                    data, stat_key = await self._offload(self._load, item)
                    assert item.sha256 is not None
                    assert item.key is not None
                    hit = await self._lookup(item.key) if self.cache is not None else None
                except TranscribeError as exc:
                    self._fail(row, exc)
                    return
                except Exception as exc:  # a bug must cost one row, not the run
                    self._fail(row, _unexpected(exc, source.label, self._secret))
                    return
                if stat_key is not None:
                    self.memo_buffer.append((*stat_key, item.sha256))
                    await self._flush_memo()
                if self._settled(row, item.key, hit):
                    return
                group = self.groups[item.key]
                await self._offload(self._prepare_loaded, item, data)
                del data
                if item.error is not None:
                    error = _with_label(item.error, source.label)
                    self._finish(item, group, _Outcome(None, error, None, None))
                    return
            else:
                group = self.groups[item.key]
                if not source.passthrough:
                    size = item.size if item.size is not None else source.size_hint()
                    held = await self.budget.acquire(WORKING_SET_FACTOR * (size or 0))
            outcome = await self._transcribe_row(item)
            self._finish(item, group, outcome)
        finally:
            if held:
                self.budget.release(held)

    def _load(self, item: _Item) -> tuple[bytes, tuple[str, int, int] | None]:
        """In a thread: read and hash a file; ``item`` gets its sha256 and key.

        Returns:
            (the bytes, the memo key of a local file or None).
        """
        source = item.source
        stat_key = item.stat_key  # taken by the producer, before this read
        data = source.read()
        item.sha256 = hashlib.sha256(data).hexdigest()
        item.key = self._key(item.row, item.sha256)
        return data, stat_key

    def _prepare_loaded(self, item: _Item, data: bytes) -> None:
        """In a thread: prepare new audio read by :meth:`_load` (parts, or the error)."""
        try:
            item.parts = audio_mod.prepare(
                data,
                label=item.source.label,
                encode=self.opts.encode,
                max_part_seconds=self.opts.max_part_seconds,
            )
        except TranscribeError as exc:
            item.error = exc
        except Exception as exc:  # a bug must cost one row, not the run
            item.error = _unexpected(exc, item.source.label, self._secret)

    # -- cache lookups of rows hashed by the workers, batched

    def _lookup_future(self, key: str) -> asyncio.Future[Hit | None]:
        future: asyncio.Future[Hit | None] = asyncio.get_running_loop().create_future()
        self.lookups.setdefault(key, []).append(future)
        if self.lookup_task is None:
            self.lookup_task = asyncio.ensure_future(self._drain_lookups())
        return future

    async def _lookup(self, key: str) -> Hit | None:
        """One key's cache hit, looked up together with the other workers' keys.

        A lookup lists the cache directory and probes every cached key (about
        7 ms against 100,000 cached rows, hit or miss), so it must not be paid
        per row: while one lookup runs in a thread, the keys asked for
        meanwhile wait and all go in the next one.
        """
        return await self._lookup_future(key)

    async def _lookup_many(self, keys: list[str]) -> dict[str, Hit]:
        """The cache hits among ``keys``: one lookup (see :meth:`_lookup_keys`),
        with no future per key.

        A failed lookup is logged and counts as no hit: the rows are sent.
        """
        try:
            return await self._lookup_keys(keys)
        except Exception as exc:
            logger.warning("cache lookup failed (%s); sending the rows", exc)
            return {}

    async def _lookup_keys(self, keys: list[str]) -> dict[str, Hit]:
        """Look ``keys`` up inline while lookups are quick (a small cache), as a
        thread hop costs more; in a thread once one was slow."""
        cache = self.cache
        assert cache is not None
        if self._lookup_seconds <= INLINE_LOOKUP_SECONDS:
            started = time.perf_counter()
            hits = cache.lookup_results(keys)
            self._lookup_seconds = time.perf_counter() - started
        else:
            hits, self._lookup_seconds = await self._offload(_timed_lookup, cache, keys)
        return hits

    async def _drain_lookups(self) -> None:
        try:
            while self.lookups:
                batch, self.lookups = self.lookups, {}
                try:
                    # The keys asked for while a lookup runs in a thread gather
                    # into the next one.
                    hits = await self._lookup_keys(list(batch))
                except Exception as exc:
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for key, futures in batch.items():
                    hit = hits.get(key)
                    for future in futures:
                        if not future.done():
                            future.set_result(hit)
        finally:
            self.lookup_task = None

    async def _transcribe_row(self, item: _Item) -> _Outcome:
        source = item.source
        language, user_prompt = self._params(item.row)
        try:
            if source.passthrough:
                assert source.url is not None
                text = await self._send(item, source.url, language, user_prompt, plain=False)
                return _Outcome(text, None, None, self.opts.model)
            parts, item.parts = item.parts, None  # held here only while sending
            if parts is None:
                parts = await self._offload(_read_and_prepare, source, None, self.opts)
            texts: list[str] = []
            queue = collections.deque(parts)
            tail: str | None = None
            while queue:
                part = queue.popleft()
                prompt = audio_mod.join_prompt(tail, user_prompt) if tail else user_prompt
                text = await self._send(item, part.data_uri, language, prompt, plain=True)
                if (
                    part.duration_s is not None
                    and part.duration_s >= MIN_SPLIT_SECONDS
                    and audio_mod.looks_cut(text, part.duration_s)
                ):
                    logger.info(
                        "%s: part at %.0f s (%.0f s long) looks cut at the output cap; "
                        "splitting it in two",
                        source.label,
                        part.start_s,
                        part.duration_s,
                    )
                    halves = await self._offload(audio_mod.split_part, part, label=source.label)
                    queue.extendleft(reversed(halves))
                    continue
                texts.append(text)
                tail = audio_mod.tail_words(text)
            durations = [p.duration_s for p in parts]
            total = sum(d for d in durations if d is not None) if None not in durations else None
            text = texts[0] if len(texts) == 1 else audio_mod.join_texts(texts)
            return _Outcome(text, None, total, self.opts.model)
        except TranscribeError as exc:
            return _Outcome(None, _with_label(exc, source.label), None, None)
        except _Stopped:
            raise
        except Exception as exc:  # a bug must cost one row, not the run
            return _Outcome(None, _unexpected(exc, source.label, self._secret), None, None)

    async def _send(
        self, item: _Item, file: str, language: str | None, prompt: str | None, *, plain: bool
    ) -> str:
        """One part of one row: send it, retrying as DESIGN.md says; the only retry layer.

        ``plain``: ``file`` is a Part's data URI (base64, made by the audio module).
        """
        client = self.client
        assert client is not None
        opts = self.opts
        task = asyncio.current_task()
        assert task is not None
        retries = 0
        throttles = 0
        deadline: float | None = None
        while True:
            if self.stopping:
                raise _Stopped
            try:
                await self.limiter.acquire()
            except AccountError as exc:  # a shared limiter saw the run stop elsewhere
                self._stop(exc)
                raise _Stopped from None
            if self.stopping:
                # Nothing is sent after an account-level stop or, with
                # errors="raise", after the first row error.
                raise _Stopped
            self.result.requests += 1
            self.sending.add(task)
            try:
                text = await client._transcribe(
                    file,
                    model=opts.model,
                    language=language,
                    prompt=prompt,
                    temperature=opts.temperature,
                    plain=plain,
                )
            except AccountError as exc:
                self._stop(exc)
                raise _Stopped from None
            except RateLimitError as exc:
                self.limiter.on_throttle(exc.retry_after)
                now = time.monotonic()
                if deadline is None:
                    deadline = now + opts.row_deadline
                if now >= deadline:
                    raise
                delay = self._retry_delay(exc, throttles)
                throttles += 1
                error: TranscribeError = exc
            except TranscribeError as exc:
                if not exc.retryable or retries >= opts.max_retries:
                    raise
                delay = self._retry_delay(exc, retries)
                retries += 1
                error = exc
            else:
                self.limiter.on_success()
                return text
            finally:
                self.sending.discard(task)
            if self.stopping:
                raise _Stopped
            self._retrying(item, throttles + retries, delay, error)
            if delay > 0:
                await asyncio.sleep(delay)

    def _retry_delay(self, exc: TranscribeError, attempt: int) -> float:
        """The service's Retry-After when it gave one, else full-jitter backoff."""
        if exc.retry_after is not None:
            return exc.retry_after
        return backoff_delay(attempt, base=self.opts.backoff_base, cap=self.opts.backoff_cap)

    def _retrying(self, item: _Item, attempt: int, delay: float, exc: TranscribeError) -> None:
        logger.info(
            "%s: %s (%s); retry %d in %.1f s",
            item.source.label,
            exc.kind,
            exc.error_code,
            attempt,
            delay,
        )
        if self.opts.on_event is not None:
            self._emit(RetryDetails(item.row, item.source.label, attempt, delay, exc))

    # -- the whole run

    async def run(self) -> RunResult:
        opts = self.opts
        queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=2 * opts.concurrency)
        if self.cache is not None:
            self.writer = self.cache.writer(
                flush_rows=max(1, 2 * opts.concurrency),
                flush_seconds=2.0,
                background=True,
            )
        self._open_bar()
        try:
            self.client = Client(
                opts.credentials,
                timeout=opts.timeout,
                max_connections=opts.concurrency,
                gateway=opts.gateway,
            )
            self.tasks = [asyncio.ensure_future(self._produce(queue))]
            self.tasks += [
                asyncio.ensure_future(self._worker(queue)) for _ in range(opts.concurrency)
            ]
            done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    task.result()  # a bug: raise it (the cleanup cancels the rest)
        finally:
            await _finally(self._cleanup())
        if self.fatal is not None:
            raise _stopped_error(self.fatal, self.result)
        if self.first_row_error is not None:
            raise self.first_row_error
        summary = self.result.summary()
        if summary is not None:
            logger.warning(summary)
        return self.result

    async def _cleanup(self) -> None:
        """Cancel what still runs (requests in flight first, then the session, so that
        no request fails for a closed session), flush the cache, end the threads."""
        tasks = [*self.tasks, *([self.lookup_task] if self.lookup_task is not None else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        try:
            if self.client is not None:
                await self.client.close()
        finally:
            try:
                await self._offload(self._close_cache)
            finally:
                await self._close_threads()
                self._close_bar()

    def _close_cache(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as exc:  # the transcripts are still in the result
                logger.error(
                    "could not write %d finished rows to the cache %s: %s",
                    self.writer.pending,
                    self.cache.path if self.cache is not None else "",
                    exc,
                )
        if self.memo_buffer:
            memo, self.memo_buffer = self.memo_buffer, []
            self._put_memo(memo)

    async def _flush_memo(self) -> None:
        """Write the memo buffer when it is full (see MEMO_FLUSH)."""
        if len(self.memo_buffer) >= MEMO_FLUSH:
            memo, self.memo_buffer = self.memo_buffer, []
            await self._offload(self._put_memo, memo)

    def _put_memo(self, memo: list[tuple[str, int, int, str]]) -> None:
        if self.cache is None:
            return
        try:
            self.cache.memo_put_many(memo)
        except OSError as exc:  # only a speed-up for the next run
            logger.warning("could not write the path -> sha256 memo: %s", exc)


async def _finally(cleanup: Coroutine[Any, Any, None]) -> None:
    """Await ``cleanup`` to its end even if the caller is cancelled meanwhile, then re-raise."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


def _ahead_size(source: Source) -> int | None:
    """The size of in-memory audio small enough to prepare ahead, else None."""
    if source.kind not in ("bytes", "array"):
        return None
    size = source.size_hint()
    return size if size is not None and size <= AHEAD_MAX_BYTES else None


def _timed_lookup(cache: Cache, keys: list[str]) -> tuple[dict[str, Hit], float]:
    """In a thread: :meth:`Cache.lookup_results`, and the CPU seconds it took.

    CPU time, not wall time: in a thread the wall time counts the waits for the
    GIL while the event loop runs, and would keep every lookup in the thread
    (where it costs the loop more) however quick it is.
    """
    started = time.thread_time()
    hits = cache.lookup_results(keys)
    return hits, time.thread_time() - started


def _read_and_prepare(source: Source, data: bytes | None, opts: RunOptions) -> list[audio_mod.Part]:
    if data is None:
        data = source.read()
    return audio_mod.prepare(
        data, label=source.label, encode=opts.encode, max_part_seconds=opts.max_part_seconds
    )


def _unexpected(exc: Exception, label: str, secret: str) -> TranscribeError:
    """A row's error for an exception that is not in the error tree: a bug, logged in full."""
    what = redact(f"{type(exc).__name__}: {str(exc)[:300]}", secret)
    logger.error("%s: unexpected %s; the row failed", label, what, exc_info=True)
    return TranscribeError(
        f"{label}: unexpected {what} (a bug in cf-transcribe-pandas or a library it uses; "
        "please report it with the log)",
        code="internal_error",
    )


def _with_label(exc: TranscribeError, label: str) -> TranscribeError:
    if label and label not in exc.message:
        return type(exc)(
            f"{label}: {exc.message}", code=exc.code, status=exc.status, retry_after=exc.retry_after
        )
    return exc


def _stopped_error(exc: AccountError, result: RunResult) -> AccountError:
    """The stop error, saying how far the run got and how to go on."""
    kept = (
        "in the cache and in this error's .partial"
        if result.cache_enabled
        else ("in this error's .partial")
    )
    message = (
        f"{exc.message} The run stopped: {result.done:,} of {result.n:,} rows are done "
        f"(kept {kept}); fix the cause and rerun the same call to continue."
    )
    return type(exc)(message, code=exc.code, status=exc.status, retry_after=exc.retry_after)


async def transcribe_rows(
    values: Sequence[Any],
    *,
    languages: Sequence[str | None],
    prompts: Sequence[str | None],
    options: RunOptions,
) -> RunResult:
    """Transcribe ``values`` (one per row) and return per-row results.

    Args:
        values: One audio value per row (see :func:`audio.to_source`).
        languages: One language code (or None) per row.
        prompts: One prompt (or None) per row.
        options: How to run.

    Returns:
        The per-row results, in input order.

    Raises:
        AccountError: the run stopped on 3036/401/403/3023; ``.run_result``
            holds the finished rows.
        TranscribeError: with ``errors="raise"``, the first row error;
            ``.run_result`` holds the finished rows.
    """
    run = _Run(values, languages, prompts, options)
    try:
        return await run.run()
    except TranscribeError as exc:
        exc.run_result = run.result
        raise


# ---------------------------------------------------------------- sync entry


def run_in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a private event loop in a background thread and wait.

    Works whether or not the calling thread already runs an event loop
    (Jupyter, IPython, async frameworks). Ctrl-C cancels the coroutine (which
    flushes the cache and closes its session), waits for the thread to end,
    and re-raises ``KeyboardInterrupt``.

    Args:
        make: Called in the background thread to create the coroutine.

    Returns:
        What the coroutine returned.
    """
    state: dict[str, Any] = {}
    ready = threading.Event()
    done = threading.Event()

    def target() -> None:
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            try:
                task = loop.create_task(make())
            except BaseException as exc:
                state["error"] = exc
                return
            state["loop"], state["task"] = loop, task
            ready.set()
            try:
                state["value"] = loop.run_until_complete(task)
            except BaseException as exc:
                state["error"] = exc
        finally:
            ready.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                try:
                    loop.close()
                finally:
                    done.set()

    thread = threading.Thread(target=target, name="cf-transcribe-run", daemon=True)
    thread.start()
    # Wait on an Event, not Thread.join: on Python < 3.12 a join interrupted by
    # Ctrl-C marks the thread stopped, and a second join returns at once (gh-90882),
    # before the run has flushed its cache.
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        ready.wait()
        loop = state.get("loop")
        task = state.get("task")
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop already closed: the run had ended
                pass
        done.wait()
        raise
    thread.join()
    error = state.get("error")
    if error is not None:
        if isinstance(error, asyncio.CancelledError):
            raise KeyboardInterrupt from error
        raise error
    return state["value"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- columns


def result_columns(output: str, *, errors: str, provenance: bool) -> list[str]:
    """The columns :func:`assemble` adds, in order, for these options."""
    names = [output]
    if errors == "coerce":
        names += [f"{output}_error", f"{output}_error_code"]
    if provenance:
        names += [f"{output}_cached", f"{output}_model", f"{output}_duration_s"]
    return names


def assemble(
    df: pd.DataFrame,
    result: RunResult,
    *,
    output: str,
    errors: str,
    provenance: bool,
) -> pd.DataFrame:
    """A new DataFrame: ``df``'s columns plus the text (and error/provenance) columns.

    Args:
        df: The input frame (not modified).
        result: The run's per-row results, in ``df``'s row order.
        output: Name of the text column.
        errors: ``"coerce"`` adds ``{output}_error`` and ``{output}_error_code``.
        provenance: Adds ``{output}_cached``, ``{output}_model`` and
            ``{output}_duration_s``.

    Returns:
        The new frame, same index and row order as ``df``.
    """
    arrays: list[Any] = [pd.array(result.texts, dtype="string")]
    if errors == "coerce":
        errs = result.errors
        arrays += [
            pd.array([e.message if e is not None else None for e in errs], dtype="string"),
            pd.array([e.error_code if e is not None else None for e in errs], dtype="string"),
        ]
    if provenance:
        arrays += [
            pd.array(result.cached, dtype="bool"),
            pd.array(result.models, dtype="string"),
            pd.array(result.durations, dtype="Float64"),
        ]
    names = result_columns(output, errors=errors, provenance=provenance)
    out: pd.DataFrame = df.copy(deep=False)
    for name, values in zip(names, arrays, strict=True):
        out[name] = values
    return out
