"""CacheWriter: finished rows go to the cache in small atomic part files.

A batch becomes one results part file when it reaches ``flush_rows`` rows,
when its oldest row is ``flush_seconds`` old (a daemon timer thread, alive
only while rows wait), on ``flush()`` and on ``close()``; so a ``kill -9``
loses at most one batch. After each file, small part files are merged, and
on close the writer merges the small files it made (see
:mod:`~cf_transcribe_pandas.cache.merge`). Writers still open at interpreter
exit are closed then.
"""

from __future__ import annotations

import atexit

# pyarrow loads its pandas support on first use, and with it this module, which may not
# be imported once the interpreter is shutting down (Python 3.10): imported here so that
# a writer closed at exit can still build its table.
import concurrent.futures.thread  # noqa: F401
import logging
import threading
import time
import weakref
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from cf_transcribe_pandas.cache.merge import merge_own, merge_small
from cf_transcribe_pandas.cache.rows import CachedRow, rows_table

if TYPE_CHECKING:
    from cf_transcribe_pandas.cache.store import Cache

__all__ = ["CacheWriter"]

logger = logging.getLogger("cf_transcribe_pandas.cache")


class CacheWriter:
    """Buffers finished rows and writes them to the cache in small atomic files.

    Thread-safe: :meth:`add` may be called from any thread. Use it as a
    context manager, or call :meth:`close`.

    Args:
        cache: The cache written to.
        flush_rows: Write a part file once this many rows are buffered.
        flush_seconds: Write a part file once the oldest buffered row is this
            old, even if no more rows come (a daemon timer thread does it).
            None turns the timer off.
        background: If True, :meth:`add` never writes: the timer thread also
            does the count-triggered flushes, so adding from an event loop
            never blocks on disk.

    Attributes:
        rows_written: Rows written so far.
        files_written: Part files written so far.
    """

    def __init__(
        self,
        cache: Cache,
        *,
        flush_rows: int = 50,
        flush_seconds: float | None = 2.0,
        background: bool = False,
    ) -> None:
        if flush_rows < 1:
            raise ValueError(f"flush_rows must be at least 1, not {flush_rows}")
        if flush_seconds is not None and not flush_seconds > 0:
            raise ValueError(f"flush_seconds must be positive or None, not {flush_seconds}")
        self.cache = cache
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.background = background
        self.rows_written = 0
        self.files_written = 0
        self._cond = threading.Condition()
        self._flush_lock = threading.Lock()
        self._buf: list[CachedRow] = []
        self._made: set[str] = set()  # part files written or merged into, merged on close
        self._oldest: float | None = None  # monotonic time the oldest buffered row came
        self._retry_at = 0.0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        _LIVE_WRITERS.add(self)

    def __repr__(self) -> str:
        return (
            f"CacheWriter({self.cache!r}, pending={self.pending}, "
            f"rows_written={self.rows_written}, closed={self._closed})"
        )

    @property
    def pending(self) -> int:
        """Rows added but not yet written."""
        with self._cond:
            return len(self._buf)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has finished."""
        return self._closed

    def add(self, row: CachedRow) -> None:
        """Buffer one row; write a part file if the batch is full.

        Raises:
            TypeError: ``row`` is not a :class:`CachedRow`.
            RuntimeError: The writer is closed.
            OSError: A count-triggered write failed (not in background mode);
                the rows stay buffered and are written by the next flush.
        """
        self.add_many((row,))

    def add_many(self, rows: Iterable[CachedRow]) -> None:
        """Buffer several rows; see :meth:`add`.

        When the buffer reaches ``flush_rows``, all buffered rows go to one
        part file (which may then hold more than ``flush_rows`` rows).
        """
        batch = list(rows)
        for row in batch:
            if not isinstance(row, CachedRow):
                raise TypeError(f"CacheWriter takes CachedRow objects, not {type(row).__name__}")
        if not batch:
            return
        with self._cond:
            if self._stopping:
                raise RuntimeError("CacheWriter is closed")
            was_empty = not self._buf
            self._buf.extend(batch)
            if self._oldest is None:
                self._oldest = time.monotonic()
            full = len(self._buf) >= self.flush_rows
            if self._thread is None:
                if self.background or self.flush_seconds is not None:
                    self._thread = threading.Thread(
                        target=self._run, name="cf-transcribe-cache-writer", daemon=True
                    )
                    self._thread.start()
            elif was_empty or (full and self.background):
                self._cond.notify_all()  # the thread's deadline moved
        if full and not self.background:
            self.flush()

    def _due_locked(self, now: float) -> float | None:
        """Monotonic time the buffered rows are due, or None for no deadline."""
        if not self._buf:
            return None
        due: float | None = None
        if self.background and len(self._buf) >= self.flush_rows:
            due = now
        if self.flush_seconds is not None and self._oldest is not None:
            by_age = self._oldest + self.flush_seconds
            due = by_age if due is None else min(due, by_age)
        return None if due is None else max(due, self._retry_at)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping or not self._buf:
                        self._thread = None  # idle: add() starts a new one
                        return
                    now = time.monotonic()
                    due = self._due_locked(now)
                    if due is not None and due <= now:
                        break
                    self._cond.wait(None if due is None else due - now)
            try:
                self.flush()
            except Exception:
                logger.warning("could not write cache rows; retrying later", exc_info=True)
                with self._cond:
                    self._retry_at = time.monotonic() + (self.flush_seconds or 1.0)

    def flush(self) -> int:
        """Write every buffered row now, as one part file.

        Returns when the rows are on disk. Rows added meanwhile by other
        threads go to the next batch.

        Returns:
            The number of rows written.

        Raises:
            OSError: The write failed; the rows stay buffered.
        """
        with self._flush_lock:
            with self._cond:
                batch, oldest = self._buf, self._oldest
                self._buf, self._oldest = [], None
            if not batch:
                return 0
            try:
                self._made.add(self.cache.result_parts.write([rows_table(batch)]))
            except BaseException:
                with self._cond:
                    self._buf[:0] = batch
                    if oldest is not None:
                        self._oldest = min(oldest, self._oldest or oldest)
                raise
            with self._cond:
                self.rows_written += len(batch)
                self.files_written += 1
                self._retry_at = 0.0
            self._made.update(merge_small(self.cache.result_parts))
            return len(batch)

    def close(self) -> None:
        """Write the buffered rows and stop the timer thread.

        Calling it again is a no-op once it succeeded; after a failed write
        (OSError) it may be called again to retry.
        """
        with self._cond:
            if self._closed:
                return
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush()
        with self._cond:
            self._closed = True
        _LIVE_WRITERS.discard(self)
        merge_own(self.cache.result_parts, self._made)

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_LIVE_WRITERS: weakref.WeakSet[CacheWriter] = weakref.WeakSet()


@atexit.register
def _close_live_writers() -> None:
    for writer in list(_LIVE_WRITERS):
        try:
            writer.close()
        except Exception:
            logger.warning("could not write cache rows at exit", exc_info=True)
