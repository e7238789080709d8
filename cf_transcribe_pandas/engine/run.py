"""One run: the plan (in a thread), then ``concurrency`` workers that send the jobs.

A worker takes the next job, within the byte budget. A job whose key is not
known yet (a local file not in the memo, an fsspec file, a downloaded URL) is
read, hashed, looked up alone and, when new, prepared (sniffed, re-encoded,
split) by :mod:`.load`; it joins a job with the same key if there is one.
Other jobs are read and prepared in a thread. The parts go through the
one retry layer (:mod:`.send`); the row and its followers are done; the text
goes to the cache writer. Blocking work runs in the run's own thread pool (a
small local file excepted: see :data:`.load.INLINE_READ_BYTES`); a run leaves
no thread or session behind, even when cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from cf_transcribe_pandas.audio import Part
from cf_transcribe_pandas.cache import CachedRow
from cf_transcribe_pandas.client import Client
from cf_transcribe_pandas.engine.budget import WORKING_SET_FACTOR, ByteBudget
from cf_transcribe_pandas.engine.context import RunContext
from cf_transcribe_pandas.engine.control import RunControl, Stopped
from cf_transcribe_pandas.engine.load import Loader, prepare_source
from cf_transcribe_pandas.engine.outcome import Outcome, unexpected, with_label
from cf_transcribe_pandas.engine.pacing import Limiter, RateLimiter
from cf_transcribe_pandas.engine.plan import Job, Plan, Planner
from cf_transcribe_pandas.engine.progress import Recorder
from cf_transcribe_pandas.engine.results import RunResult
from cf_transcribe_pandas.engine.send import Sender
from cf_transcribe_pandas.engine.store import RunStore
from cf_transcribe_pandas.engine.threads import Offloader
from cf_transcribe_pandas.errors import AccountError, TranscribeError

if TYPE_CHECKING:
    from cf_transcribe_pandas.options import TranscribeOptions

__all__ = ["Run", "transcribe_rows"]

logger = logging.getLogger("cf_transcribe_pandas")


class Run:
    """One call's rows, from plan to result (see the module docstring).

    Args:
        values: One audio value per row.
        languages: One language (or None) per row.
        prompts: One prompt (or None) per row.
        options: How to run.
        context: With what: credentials, cache, a shared limiter.
    """

    def __init__(
        self,
        values: Sequence[Any],
        languages: Sequence[str | None],
        prompts: Sequence[str | None],
        options: TranscribeOptions,
        context: RunContext,
    ) -> None:
        if not len(languages) == len(prompts) == len(values):
            raise ValueError("values, languages and prompts must have the same length")
        self.values, self.languages, self.prompts = values, languages, prompts
        self.opts, self.context = options, context
        cache = context.cache
        self.result = RunResult(len(values), cache_enabled=cache is not None)
        self.control = RunControl(options.errors)
        self.recorder = Recorder(
            self.result,
            progress=options.progress,
            on_event=options.on_event,
            rpm=lambda: self.limiter.recent_rpm(),
        )
        self.limiter: Limiter = context.limiter or RateLimiter(
            options.rate_limit, on_rate_change=self.recorder.rate_changed
        )
        self.budget = ByteBudget(options.max_bytes_in_flight)
        self.threads = Offloader()
        self.client = Client(  # its session is made by the first request
            context.credentials,
            timeout=options.timeout,
            max_connections=options.requests_in_flight,
            gateway=options.gateway,
            proxy=options.proxy,
        )
        self.sender = Sender(
            self.client,
            options,
            context,
            limiter=self.limiter,
            control=self.control,
            recorder=self.recorder,
            threads=self.threads,
        )
        self.store = (
            RunStore(cache, flush_rows=2 * options.requests_in_flight)
            if cache is not None
            else None
        )
        self.loader = Loader(options, languages, prompts, self.store, self.threads)
        self.groups: dict[str, Job] = {}
        self.cancelled = threading.Event()
        self.secret = context.credentials.api_token

    async def run(self) -> RunResult:
        """Transcribe every row; see :func:`transcribe_rows`."""
        self.recorder.open_bar()
        try:
            planner = Planner(
                self.values, self.languages, self.prompts, self.opts, self.context, self.cancelled
            )
            plan = await self.threads.run(planner.plan, self.result)
            self._record_plan(plan)
            if plan.jobs and not self.control.stopping:
                await self._send_jobs(plan.jobs)
        finally:
            await _to_the_end(self._cleanup())
        self.control.raise_for_stop(self.result)
        summary = self.result.summary()
        if summary is not None:
            logger.warning(summary)
        return self.result

    def _record_plan(self, plan: Plan) -> None:
        if plan.stop is not None:  # the storage refused the credentials: nothing is sent
            self.control.stop(plan.stop)
        self.groups = plan.groups
        self.recorder.cached_rows(plan.cached)
        for row, exc in plan.failed:
            self._fail(row, exc)
        for row in plan.skipped:
            self.recorder.skipped(row)

    async def _send_jobs(self, jobs: list[Job]) -> None:
        queue = iter(jobs)  # shared by the workers
        workers = min(self.opts.requests_in_flight, len(jobs))
        self.control.tasks = [asyncio.ensure_future(self._worker(queue)) for _ in range(workers)]
        done, _ = await asyncio.wait(self.control.tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                task.result()  # a bug: raise it (the cleanup cancels the rest)

    async def _cleanup(self) -> None:
        """Cancel what still runs (requests in flight first, then the session, so that
        no request fails for a closed session), flush the cache, end the threads."""
        self.cancelled.set()
        tasks = self.control.tasks
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        try:
            await self.client.close()
        finally:
            try:
                if self.store is not None:
                    await self.threads.run(self.store.close)
            finally:
                await self.threads.close()
                self.recorder.close_bar()

    # -- a worker

    async def _worker(self, jobs: Iterator[Job]) -> None:
        for job in jobs:
            if self.control.stopping:
                return
            try:
                await self._process(job)
            except Stopped:
                return

    async def _process(self, job: Job) -> None:
        source = job.source
        language, prompt = self.languages[job.row], self.prompts[job.row]
        held = 0
        if not source.passthrough:
            held = await self.budget.acquire(WORKING_SET_FACTOR * (job.size or 0))
        try:
            if source.passthrough:
                outcome = await self.sender.url(job, language, prompt)
            else:
                prepared = await (self._identify(job) if job.key is None else self._parts(job))
                if prepared is None:
                    return  # from the cache, or the copy of a row in flight
                if isinstance(prepared, Outcome):
                    outcome = prepared
                else:
                    outcome = await self.sender.parts(job, prepared, language, prompt)
            self._finish(job, outcome)
        finally:
            if held:
                self.budget.release(held)

    async def _identify(self, job: Job) -> list[Part] | Outcome | None:
        """A job whose key is not known: read, hash, look up, prepare, dedupe.

        Returns:
            The parts (or the preparation's error) to send; None when the row
            is settled (from the cache, as a copy of another row, or failed).
        """
        label = job.source.label
        try:
            hit, prepared = await self.loader.load(job)
        except AccountError as exc:  # the storage refused the credentials: no row can be read
            self.control.stop(exc)
            raise Stopped from None
        except TranscribeError as exc:
            self._fail(job.row, exc)
            return None
        except Exception as exc:  # a bug must cost one row, not the run
            self._fail(job.row, unexpected(exc, label, self.secret))
            return None
        assert job.key is not None
        assert job.sha256 is not None
        if job.stat_key is not None and self.store is not None:
            memo = self.store.remember(job.stat_key, job.sha256)
            if memo is not None:
                await self.threads.run(self.store.write_memo, memo)
        if hit is not None:
            self.recorder.cached(job.row, hit)
            return None
        group = self.groups.get(job.key)
        if group is not None:  # the same audio and parameters as a row already planned
            if group.outcome is not None:
                self.recorder.finished(job.row, group.outcome)
            else:
                group.followers.append(job.row)
            return None
        self.groups[job.key] = job
        if isinstance(prepared, TranscribeError):
            return Outcome(None, with_label(prepared, label))
        assert prepared is not None
        return prepared

    async def _parts(self, job: Job) -> list[Part] | Outcome:
        """The job's parts, read and prepared in a thread, or its error."""
        label = job.source.label
        try:
            return await self.threads.run(prepare_source, job.source, None, self.opts)
        except AccountError as exc:  # the storage refused the credentials: no row can be read
            self.control.stop(exc)
            raise Stopped from None
        except TranscribeError as exc:
            return Outcome(None, with_label(exc, label))
        except Exception as exc:  # a bug must cost one row, not the run
            return Outcome(None, unexpected(exc, label, self.secret))

    # -- finishing rows

    def _finish(self, job: Job, outcome: Outcome) -> None:
        """The job is done: its rows get the outcome; a text goes to the cache."""
        job.outcome = outcome
        for row in (job.row, *job.followers):
            self.recorder.finished(row, outcome)
        job.followers = []
        if outcome.error is not None:
            self.control.row_failed(outcome.error)
        elif self.store is not None and outcome.text is not None and job.key is not None:
            assert job.sha256 is not None
            opts = self.opts
            entry = CachedRow.new(
                job.sha256,
                outcome.text,
                model=opts.model,
                language=self.languages[job.row],
                prompt=self.prompts[job.row],
                temperature=opts.temperature,
                encode=opts.encode,
                duration_s=outcome.duration,
                key=job.key,  # keys_for made it of the same fields
                options=opts.model_options(),
                detected_language=outcome.language,
                segments=outcome.segments,
            )
            self.store.add(entry)

    def _fail(self, row: int, error: TranscribeError) -> None:
        self.recorder.failed(row, error)
        self.control.row_failed(error)


async def _to_the_end(cleanup: Coroutine[Any, Any, None]) -> None:
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


async def transcribe_rows(
    values: Sequence[Any],
    *,
    languages: Sequence[str | None],
    prompts: Sequence[str | None],
    options: TranscribeOptions,
    context: RunContext,
) -> RunResult:
    """Transcribe ``values`` (one per row) and return per-row results.

    Args:
        values: One audio value per row (see :func:`audio.to_source`).
        languages: One language code (or None) per row.
        prompts: One prompt (or None) per row.
        options: How to run (checked options; their per-row and output fields are
            the caller's business).
        context: With what: credentials, cache, a shared limiter.

    Returns:
        The per-row results, in input order.

    Raises:
        AccountError: the run stopped on 3036/401/403/3023; ``.run_result``
            holds the finished rows.
        TranscribeError: with ``errors="raise"``, the first row error;
            ``.run_result`` holds the finished rows.
    """
    run = Run(values, languages, prompts, options, context)
    try:
        return await run.run()
    except TranscribeError as exc:
        exc.run_result = run.result
        raise
