"""The engine's rate limiter on a Dask worker: tokens leased from the cluster's token service.

:class:`ClusterLimiter` follows the engine's
:class:`~cf_transcribe_pandas.engine.Limiter` protocol, so the pandas engine runs
a partition unchanged; the pacing itself happens in the token service
(:mod:`cf_transcribe_pandas.dask.tokens`).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import logging
import time
from typing import Any

from cf_transcribe_pandas.dask.tokens import LEASE_WAIT_SECONDS, MAX_LEASE, TOKEN_TTL_SECONDS
from cf_transcribe_pandas.errors import TranscribeError

__all__ = ["ClusterLimiter", "RunStopped"]

logger = logging.getLogger("cf_transcribe_pandas")


class RunStopped(Exception):
    """The run was stopped by a partition; ``error`` is the run's stop error.

    Not a :class:`~cf_transcribe_pandas.errors.TranscribeError`, so the engine
    does not take it for a row's own error: it ends the partition's run, and
    the partition task raises ``error``.

    Args:
        error: The run's stop error.
    """

    def __init__(self, error: TranscribeError) -> None:
        super().__init__(error.message)
        self.error = error


class ClusterLimiter:
    """The engine's limiter on a worker, backed by the cluster's token service.

    Leases tokens a few at a time (as many as requests wait, at most
    ``MAX_LEASE``) and hands them out at once; reports 429s (the service lowers
    the rate for every worker) and successes (with the next lease); once any
    partition stopped the run, :meth:`acquire` raises :class:`RunStopped`
    instead of waiting, so nothing more is sent.

    Create it in the partition's task thread (it calls the service once there,
    which binds the Actor handle to the worker), use it from one event loop,
    then :meth:`close` it and report with :meth:`finish` in the task thread.

    Args:
        service: The ``distributed`` Actor handle of the token service.
        run_id: The compute's run id.
    """

    def __init__(self, service: Any, run_id: str) -> None:
        self._service = service
        self._run_id = run_id
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

    def _call(self, method: str, *args: Any) -> Any:
        """Call the service and wait for its answer (blocks: not on the event loop)."""
        return getattr(self._service, method)(*args).result()

    def _fire(self, method: str, *args: Any) -> None:
        """Call the service without waiting for the answer."""
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._call, method, *args))

    def _take_token(self) -> bool:
        now = time.monotonic()
        tokens = self._tokens
        while tokens and now - tokens[0] > TOKEN_TTL_SECONDS:
            tokens.popleft()
        if tokens:
            tokens.popleft()
            return True
        return False

    async def _lease(self) -> None:
        successes, self._successes = self._successes, 0
        want = max(1, min(MAX_LEASE, self._waiting))
        call = functools.partial(self._call, "lease", self._run_id, want, successes)
        reply = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        self._rate = float(reply["rate"])
        self._recent = float(reply["recent"])
        if reply["stop"] is not None and self._stop is None:
            self._stop = reply["stop"]
        self._tokens.extend([time.monotonic()] * int(reply["granted"]))

    def _raise_if_stopped(self) -> None:
        if self._stop is not None:
            raise RunStopped(self._stop)

    async def acquire(self) -> None:
        """Wait until one request may be sent.

        Raises:
            RunStopped: the run was stopped by any partition (an account-level
                answer, or a row error with ``errors="raise"``).
        """
        self._raise_if_stopped()
        if self._lock is None:
            self._lock = asyncio.Lock()
        self._waiting += 1
        try:
            async with self._lock:
                while True:
                    self._raise_if_stopped()
                    if self._take_token():
                        return
                    await self._lease()
        finally:
            self._waiting -= 1

    def on_success(self) -> None:
        """A request succeeded (reported to the service with the next lease)."""
        self._successes += 1

    def on_throttle(self, retry_after: float | None) -> None:
        """A request got 429/3040: the service lowers the rate for every worker."""
        del retry_after  # honored by the row that got it, as in the pandas engine
        self._fire("throttled")

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

    def stop(self, error: TranscribeError) -> TranscribeError:
        """Stop the run on every worker (call in the task thread).

        Returns:
            The run's first stop error: ``error``, or the one another partition
            recorded before.
        """
        first: TranscribeError = self._call("stop", self._run_id, error)
        self._stop = first
        return first

    def close(self) -> None:
        """Wait for the calls still on their way to the service, and stop the pool."""
        for future in self._pending:
            try:
                future.result(timeout=LEASE_WAIT_SECONDS + 10)
            except Exception:  # a lost service must not hide the partition's outcome
                logger.debug("token service call failed at close", exc_info=True)
        self._pending = []
        self._pool.shutdown(wait=True)

    def finish(self, partition: int, npartitions: int, counts: dict[str, int]) -> Any:
        """Report the partition's counts (and the successes not reported yet).

        Returns:
            The run's summary (a dict) when this was its last partition, else None.
        """
        successes, self._successes = self._successes, 0
        args = (self._run_id, partition, npartitions, counts, successes)
        return self._call("finish", *args)
