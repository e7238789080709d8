"""The run's own thread pool, for blocking work (reads, hashing, PyAV, Parquet).

A run owns its pool and ends it: a run leaves no thread behind, even when it
is cancelled (a cancelled await leaves its job running; :meth:`Offloader.close`
waits for it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["THREADS", "Offloader"]

T = TypeVar("T")

THREADS = min(8, (os.cpu_count() or 1) + 2)
"""Threads of a run's pool."""


class Offloader:
    """Runs blocking functions in a pool that :meth:`close` shuts down.

    Args:
        threads: Most threads of the pool (made on first use).
    """

    def __init__(self, threads: int = THREADS) -> None:
        self._threads = threads
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._jobs: set[concurrent.futures.Future[Any]] = set()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the pool and wait for it."""
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._threads, thread_name_prefix="cf-transcribe"
            )
        job = self._executor.submit(fn, *args)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return await asyncio.wrap_future(job)

    async def close(self) -> None:
        """Drop the jobs not started, wait for the running ones, end the threads."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        executor.shutdown(wait=False, cancel_futures=True)
        running = [asyncio.wrap_future(job) for job in list(self._jobs)]
        if running:
            await asyncio.wait(running)
            for future in running:  # nobody awaits these any more
                if not future.cancelled():
                    future.exception()
        executor.shutdown(wait=True)  # the threads are idle: this only joins them
