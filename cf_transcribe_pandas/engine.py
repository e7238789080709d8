"""The async pipeline behind ``df.cfai.transcribe``.

One run, rows flowing one way::

    rows (in windows of WINDOW rows, never all at once)
      -> resolve: to_source, cheap key (bytes hash, URL, path memo), cache lookup
      -> queue (bounded) -> `concurrency` workers:
           read + hash (if the key was not known) -> cache lookup -> dedupe
           -> prepare audio (sniff, re-encode, split) -> rate limiter -> client
           -> retry layer (the only one) -> cache writer
      -> per-row results -> columns

Decisions (see DESIGN.md "Decisions that tests rely on"):

* 429/3040 answers slow the run (AIMD in :mod:`ratelimit`) and are retried
  after their Retry-After; they do not use up a row's attempts, but a row
  gives up after ``row_deadline`` seconds of them.
* Other retryable errors get ``max_retries`` retries with full-jitter
  exponential backoff (base 0.5 s, cap 30 s), honoring Retry-After.
* 3036/401/403/3023 stop the run: nothing is sent after the first such answer,
  in-flight work is cancelled, finished rows are flushed to the cache, and the
  error is raised carrying ``.partial``.
* ``errors="raise"``: the first row error stops taking new rows; requests
  already on the wire finish and are cached; then the error is raised.
* Finished rows are flushed to the cache at least every ``2 * concurrency``
  rows or 2 seconds, and on exit, cancel and error.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pandas as pd

from cf_transcribe_pandas import audio as audio_mod
from cf_transcribe_pandas.audio import EncodeMode
from cf_transcribe_pandas.cache import Cache, CachedRow, cache_key
from cf_transcribe_pandas.client import Client, Credentials, Gateway
from cf_transcribe_pandas.errors import (
    AccountError,
    RateLimitError,
    TranscribeError,
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
    "run_in_thread",
    "transcribe_rows",
]

logger = logging.getLogger("cf_transcribe_pandas")

T = TypeVar("T")

WINDOW = 1024
"""Rows resolved (source, cheap key, cache lookup) per step of the producer."""

MIN_SPLIT_SECONDS = 30.0
"""A part shorter than this is never split again for looking cut."""


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class RetryDetails:
    """A request is about to be sent again.

    Attributes:
        row: Position of the row in the input.
        label: The row's audio, as shown in messages.
        attempt: 1 for the first retry.
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
    """The adaptive send rate moved (requests/minute)."""

    old: float
    new: float


@dataclass(frozen=True)
class RowDone:
    """A row finished: ``status`` is "ok", "cached", "failed" or "skipped"."""

    row: int
    status: Literal["ok", "cached", "failed", "skipped"]
    error: TranscribeError | None = None


Event = RetryDetails | RateChange | RowDone
"""What ``on_event`` hooks receive."""


# ---------------------------------------------------------------- options and results


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs besides the rows; built and validated by the accessor."""

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
    max_bytes_in_flight: int = 256 * 1024 * 1024
    on_event: Callable[[Event], None] | None = None
    limiter: Limiter | None = field(default=None, compare=False)
    backoff_base: float = 0.5
    backoff_cap: float = 30.0


@dataclass
class RunResult:
    """Per-row outcome of a run, in input order."""

    n: int
    texts: list[str | None] = field(default_factory=list)
    errors: list[TranscribeError | None] = field(default_factory=list)
    cached: list[bool] = field(default_factory=list)
    models: list[str | None] = field(default_factory=list)
    durations: list[float | None] = field(default_factory=list)
    requests: int = 0
    from_cache: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        if not self.texts:
            self.texts = [None] * self.n
            self.errors = [None] * self.n
            self.cached = [False] * self.n
            self.models = [None] * self.n
            self.durations = [None] * self.n

    def summary(self) -> str | None:
        """One line about failed rows, or None when every row finished."""
        failed = [e for e in self.errors if e is not None]
        if not failed:
            return None
        kinds = collections.Counter(e.kind for e in failed)
        detail = ", ".join(f"{count:,} {kind}" for kind, count in kinds.most_common())
        return (
            f"{len(failed):,} of {self.n:,} rows failed: {detail}; "
            "rerun to retry them, finished rows come from the cache"
        )


@dataclass
class _Outcome:
    text: str | None
    error: TranscribeError | None
    duration: float | None
    model: str | None
    stopped: bool = False


class _Stopped(Exception):
    """Internal: the run is stopping; the row is left unfinished."""


# ---------------------------------------------------------------- the run


class _ByteBudget:
    """At most ``limit`` bytes of audio held for requests at once (one item may exceed it)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._cond = asyncio.Condition()

    async def acquire(self, n: int) -> int:
        n = max(0, n)
        async with self._cond:
            await self._cond.wait_for(lambda: self._used == 0 or self._used + n <= self._limit)
            self._used += n
        return n

    async def release(self, n: int) -> None:
        async with self._cond:
            self._used -= n
            self._cond.notify_all()


@dataclass
class _Item:
    row: int
    source: Source
    key: str | None
    sha256: str | None


class _Run:
    def __init__(
        self,
        values: Sequence[Any],
        languages: Sequence[str | None],
        prompts: Sequence[str | None],
        options: RunOptions,
    ) -> None:
        self.values = values
        self.languages = languages
        self.prompts = prompts
        self.opts = options
        self.n = len(values)
        self.result = RunResult(self.n)
        self.limiter: Limiter = options.limiter or RateLimiter(
            options.rate_limit, on_rate_change=self._rate_changed
        )
        self.cache = options.cache
        self.writer = (
            self.cache.writer(flush_rows=max(1, 2 * options.concurrency), flush_seconds=2.0)
            if self.cache is not None
            else None
        )
        self.memo_buffer: list[tuple[str, int, int, str]] = []
        self.inflight: dict[str, asyncio.Future[_Outcome]] = {}
        self.done_keys: dict[str, int] = {}
        self.fatal: AccountError | None = None
        self.first_row_error: TranscribeError | None = None
        self.draining = False
        self.fatal_event = asyncio.Event()
        self.budget = _ByteBudget(options.max_bytes_in_flight)
        self.bar: Any = None
        self._last_postfix = 0.0
        self.client: Client | None = None

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

    def _tick(self) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        now = time.monotonic()
        if now - self._last_postfix >= 0.5:
            self._last_postfix = now
            self.bar.set_postfix(
                cached=self.result.from_cache,
                failed=self.result.failed,
                rpm=int(self.limiter.recent_rpm()),
                refresh=False,
            )

    # -- recording outcomes

    def _record(self, row: int, outcome: _Outcome, *, cached: bool) -> None:
        res = self.result
        res.texts[row] = outcome.text
        res.errors[row] = outcome.error
        res.durations[row] = outcome.duration
        res.models[row] = outcome.model
        res.cached[row] = cached
        if outcome.error is not None:
            res.failed += 1
            status: Literal["ok", "cached", "failed"] = "failed"
        elif cached:
            res.from_cache += 1
            status = "cached"
        else:
            status = "ok"
        self._tick()
        self._emit(RowDone(row, status, outcome.error))

    def _record_error(self, row: int, error: TranscribeError) -> None:
        self._record(row, _Outcome(None, error, None, None), cached=False)
        self._note_error(error)

    def _record_na(self, row: int) -> None:
        self._tick()
        self._emit(RowDone(row, "skipped"))

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

    # -- producer: resolve windows of rows cheaply, in a worker thread

    def _resolve_window(
        self, start: int, stop: int
    ) -> tuple[list[_Item], list[tuple[int, TranscribeError]], list[int], dict[str, CachedRow]]:
        items: list[_Item] = []
        failures: list[tuple[int, TranscribeError]] = []
        nas: list[int] = []
        memo_wanted: list[tuple[int, tuple[str, int, int]]] = []
        for row in range(start, stop):
            try:
                source = audio_mod.to_source(self.values[row], fetch_urls=self.opts.fetch_urls)
            except TranscribeError as exc:
                failures.append((row, exc))
                continue
            if source.kind == "na":
                nas.append(row)
                continue
            item = _Item(row, source, None, None)
            items.append(item)
            try:
                if source.kind in ("bytes", "array") or source.passthrough:
                    item.sha256 = audio_mod.sha256_of(source)
                elif source.kind == "path" and self.cache is not None:
                    stat_key = source.stat_key()
                    if stat_key is not None:
                        memo_wanted.append((len(items) - 1, stat_key))
            except TranscribeError as exc:
                items.pop()
                failures.append((row, exc))
        if memo_wanted and self.cache is not None:
            found = self.cache.memo_get_many([k for _, k in memo_wanted])
            for pos, stat_key in memo_wanted:
                sha = found.get(stat_key)
                if sha is not None:
                    items[pos].sha256 = sha
        for item in items:
            if item.sha256 is not None:
                item.key = self._key(item.row, item.sha256)
        hits: dict[str, CachedRow] = {}
        if self.cache is not None:
            keys = [item.key for item in items if item.key is not None]
            if keys:
                hits = self.cache.lookup(keys)
        return items, failures, nas, hits

    async def _produce(self, queue: asyncio.Queue[_Item | None]) -> None:
        try:
            for start in range(0, self.n, WINDOW):
                if self.draining or self.fatal is not None:
                    break
                stop = min(self.n, start + WINDOW)
                items, failures, nas, hits = await asyncio.to_thread(
                    self._resolve_window, start, stop
                )
                for row, exc in failures:
                    self._record_error(row, exc)
                for row in nas:
                    self._record_na(row)
                for item in items:
                    hit = hits.get(item.key) if item.key is not None else None
                    if hit is not None:
                        self._record(
                            item.row,
                            _Outcome(hit.text, None, hit.duration_s, hit.model),
                            cached=True,
                        )
                    else:
                        await queue.put(item)
        finally:
            for _ in range(self.opts.concurrency):
                await queue.put(None)

    # -- workers

    async def _worker(self, queue: asyncio.Queue[_Item | None]) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            if self.draining:
                continue  # rows not started stay unfinished (NA, no error)
            try:
                await self._process(item)
            except _Stopped:
                pass

    async def _process(self, item: _Item) -> None:
        row, source = item.row, item.source
        held = 0
        data: bytes | None = None
        try:
            if item.key is None:
                size = source.size_hint() or 0
                held = await self.budget.acquire(size)
                try:
                    data, sha = await asyncio.to_thread(_read_and_hash, source)
                except TranscribeError as exc:
                    self._record_error(row, exc)
                    return
                item.sha256 = sha
                item.key = self._key(row, sha)
                stat_key = source.stat_key() if source.kind == "path" else None
                if stat_key is not None:
                    self.memo_buffer.append((*stat_key, sha))
                if self.cache is not None:
                    hits = await asyncio.to_thread(self.cache.lookup, [item.key])
                    hit = hits.get(item.key)
                    if hit is not None:
                        self._record(
                            row, _Outcome(hit.text, None, hit.duration_s, hit.model), cached=True
                        )
                        return
            key = item.key
            first = self.done_keys.get(key)
            if first is not None:
                self._copy_row(row, first)
                return
            pending = self.inflight.get(key)
            if pending is not None:
                outcome = await asyncio.shield(pending)
                if not outcome.stopped:
                    self._record(row, outcome, cached=False)
                    if outcome.error is not None:
                        self._note_error(outcome.error)
                return
            future: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
            self.inflight[key] = future
            outcome = _Outcome(None, None, None, None, stopped=True)
            try:
                if data is None and not source.passthrough:
                    size = source.size_hint() or 0
                    held = await self.budget.acquire(size)
                outcome = await self._transcribe_row(item, data)
            finally:
                future.set_result(outcome)
                self.inflight.pop(key, None)
            self.done_keys[key] = row
            self._record(row, outcome, cached=False)
            if outcome.error is not None:
                self._note_error(outcome.error)
            elif self.writer is not None and outcome.text is not None:
                language, prompt = self._params(row)
                self.writer.add(
                    CachedRow.new(
                        item.sha256 or "",
                        outcome.text,
                        model=self.opts.model,
                        language=language,
                        prompt=prompt,
                        temperature=self.opts.temperature,
                        encode=self.opts.encode,
                        duration_s=outcome.duration,
                    )
                )
        finally:
            if held:
                await self.budget.release(held)

    def _note_error(self, error: TranscribeError) -> None:
        if self.opts.errors == "raise" and self.first_row_error is None:
            self.first_row_error = error
            self.draining = True

    def _copy_row(self, row: int, first: int) -> None:
        res = self.result
        outcome = _Outcome(
            res.texts[first], res.errors[first], res.durations[first], res.models[first]
        )
        self._record(row, outcome, cached=False)

    async def _transcribe_row(self, item: _Item, data: bytes | None) -> _Outcome:
        source = item.source
        language, user_prompt = self._params(item.row)
        try:
            if source.passthrough:
                assert source.url is not None
                text = await self._send(item, source.url, language, user_prompt)
                return _Outcome(text, None, None, self.opts.model)
            if data is None:
                data = await asyncio.to_thread(source.read)
            parts = await asyncio.to_thread(
                audio_mod.prepare,
                data,
                label=source.label,
                encode=self.opts.encode,
                max_part_seconds=self.opts.max_part_seconds,
            )
            del data
            texts: list[str] = []
            queue = collections.deque(parts)
            tail: str | None = None
            while queue:
                part = queue.popleft()
                prompt = audio_mod.join_prompt(tail, user_prompt) if tail else user_prompt
                text = await self._send(item, part.data_uri, language, prompt)
                if (
                    audio_mod.looks_cut(text, part.duration_s)
                    and part.duration_s is not None
                    and part.duration_s >= MIN_SPLIT_SECONDS
                ):
                    logger.info(
                        "%s: part at %.0f s (%.0f s long) looks cut at the output cap; "
                        "splitting it in two",
                        source.label,
                        part.start_s,
                        part.duration_s,
                    )
                    halves = await asyncio.to_thread(audio_mod.split_part, part, label=source.label)
                    queue.extendleft(reversed(halves))
                    continue
                texts.append(text)
                tail = audio_mod.tail_words(text)
            durations = [p.duration_s for p in parts]
            total = sum(d for d in durations if d is not None) if None not in durations else None
            return _Outcome(audio_mod.join_texts(texts), None, total, self.opts.model)
        except AccountError:
            raise
        except TranscribeError as exc:
            return _Outcome(None, _with_label(exc, source.label), None, None)

    async def _send(self, item: _Item, file: str, language: str | None, prompt: str | None) -> str:
        assert self.client is not None
        opts = self.opts
        retries = 0
        throttles = 0
        deadline = time.monotonic() + opts.row_deadline
        while True:
            if self.fatal is not None or self.draining:
                raise _Stopped
            await self.limiter.acquire()
            if self.fatal is not None or self.draining:
                # Nothing is sent after an account-level stop or, with
                # errors="raise", after the first row error.
                raise _Stopped
            self.result.requests += 1
            try:
                return await self.client.transcribe(
                    file,
                    model=opts.model,
                    language=language,
                    prompt=prompt,
                    temperature=opts.temperature,
                )
            except AccountError as exc:
                self._stop(exc)
                raise _Stopped from exc
            except RateLimitError as exc:
                self.limiter.on_throttle(exc.retry_after)
                if time.monotonic() >= deadline:
                    raise
                delay = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else backoff_delay(throttles, base=opts.backoff_base, cap=opts.backoff_cap)
                )
                throttles += 1
                self._retrying(item, throttles + retries, delay, exc)
                await asyncio.sleep(delay)
            except TranscribeError as exc:
                if not exc.retryable or retries >= opts.max_retries:
                    raise
                delay = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else backoff_delay(retries, base=opts.backoff_base, cap=opts.backoff_cap)
                )
                retries += 1
                self._retrying(item, throttles + retries, delay, exc)
                await asyncio.sleep(delay)

    def _retrying(self, item: _Item, attempt: int, delay: float, exc: TranscribeError) -> None:
        logger.info("%s: %s; retry %d in %.1f s", item.source.label, exc.kind, attempt, delay)
        self._emit(RetryDetails(item.row, item.source.label, attempt, delay, exc))

    def _stop(self, exc: AccountError) -> None:
        if self.fatal is None:
            self.fatal = exc
            logger.error("stopping the run: %s", exc)
            self.fatal_event.set()

    # -- the whole run

    async def run(self) -> RunResult:
        opts = self.opts
        queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=2 * opts.concurrency)
        self._open_bar()
        tasks: list[asyncio.Task[None]] = []
        try:
            async with Client(
                opts.credentials,
                timeout=opts.timeout,
                max_connections=opts.concurrency,
                gateway=opts.gateway,
            ) as client:
                self.client = client
                producer = asyncio.create_task(self._produce(queue))
                tasks = [asyncio.create_task(self._worker(queue)) for _ in range(opts.concurrency)]
                tasks.append(producer)
                everything: asyncio.Future[list[None]] = asyncio.gather(*tasks)
                stop_wait: asyncio.Future[Any] = asyncio.ensure_future(self.fatal_event.wait())
                try:
                    await asyncio.wait([everything, stop_wait], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop_wait.cancel()
                if everything.done():
                    everything.result()  # re-raise a bug in a worker
                else:
                    everything.cancel()
                    await asyncio.gather(everything, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.shield(asyncio.to_thread(self._close_cache))
            if self.bar is not None:
                self.bar.set_postfix(
                    cached=self.result.from_cache, failed=self.result.failed, refresh=False
                )
                self.bar.close()
        if self.fatal is not None:
            raise self.fatal
        if self.first_row_error is not None:
            raise self.first_row_error
        summary = self.result.summary()
        if summary is not None:
            logger.warning(summary)
        return self.result

    def _close_cache(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.cache is not None and self.memo_buffer:
            self.cache.memo_put_many(self.memo_buffer)
            self.memo_buffer = []


def _read_and_hash(source: Source) -> tuple[bytes, str]:
    data = source.read()
    return data, hashlib.sha256(data).hexdigest()


def _with_label(exc: TranscribeError, label: str) -> TranscribeError:
    if label and label not in exc.message:
        new = type(exc)(
            f"{label}: {exc.message}", code=exc.code, status=exc.status, retry_after=exc.retry_after
        )
        return new
    return exc


async def transcribe_rows(
    values: Sequence[Any],
    *,
    languages: Sequence[str | None],
    prompts: Sequence[str | None],
    options: RunOptions,
) -> RunResult:
    """Transcribe ``values`` (one per row) and return per-row results.

    Raises:
        AccountError: the run stopped on 3036/401/403/3023; ``.result`` holds the
            finished rows.
        TranscribeError: with ``errors="raise"``, the first row error; ``.result``
            holds the finished rows.
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
    """
    state: dict[str, Any] = {}
    ready = threading.Event()

    def target() -> None:
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(make())
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
                loop.close()

    thread = threading.Thread(target=target, name="cf-transcribe-run", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        ready.wait()
        loop = state.get("loop")
        task = state.get("task")
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        thread.join()
        raise
    error = state.get("error")
    if error is not None:
        if isinstance(error, asyncio.CancelledError):
            raise KeyboardInterrupt from error
        raise error
    return state["value"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- columns


def assemble(
    df: pd.DataFrame,
    result: RunResult,
    *,
    output: str,
    errors: str,
    provenance: bool,
) -> pd.DataFrame:
    """A new DataFrame: ``df``'s columns plus the text (and error/provenance) columns."""
    out: pd.DataFrame = df.copy(deep=False)
    out[output] = pd.array(result.texts, dtype="string")
    if errors == "coerce":
        out[f"{output}_error"] = pd.array(
            [e.message if e is not None else None for e in result.errors], dtype="string"
        )
        out[f"{output}_error_code"] = pd.array(
            [e.error_code if e is not None else None for e in result.errors], dtype="string"
        )
    if provenance:
        out[f"{output}_cached"] = pd.array(result.cached, dtype="bool")
        out[f"{output}_model"] = pd.array(result.models, dtype="string")
        out[f"{output}_duration_s"] = pd.array(result.durations, dtype="Float64")
    return out
