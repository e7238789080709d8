"""What a run writes to its cache while it goes: finished rows and the path -> sha256 memo.

Finished rows go to a :class:`~cf_transcribe_pandas.cache.CacheWriter` whose
own thread flushes them at least every ``2 * concurrency`` rows or 2 seconds
(never the event loop), and on close. Memo entries (a local file's sha256 by
path, size and mtime) are written in batches during the run, so a rerun after
a ``kill -9`` need not hash the files again, and the rest on close.
"""

from __future__ import annotations

import logging
import time

from cf_transcribe_pandas.cache import Cache, CachedRow, CacheWriter
from cf_transcribe_pandas.engine.outcome import Hit

__all__ = ["LOOKUP_MAX_AGE", "MEMO_FLUSH_ROWS", "MEMO_FLUSH_SECONDS", "RunStore"]

logger = logging.getLogger("cf_transcribe_pandas")

MEMO_FLUSH_ROWS = 1024
MEMO_FLUSH_SECONDS = 30.0
"""Memo entries are written once this many wait, or the oldest waited this long."""

LOOKUP_MAX_AGE = 1.0
"""Seconds a run's one-key lookups trust the cache directory's last listing."""

StatKey = tuple[str, int, int]


class RunStore:
    """One run's cache: lookups of single keys, the writer, the memo buffer.

    Call :meth:`add` and :meth:`remember` on the event loop (they do not block);
    the other methods block: call them in a thread.

    Args:
        cache: The cache.
        flush_rows: Flush the writer at this many rows.
    """

    def __init__(self, cache: Cache, *, flush_rows: int) -> None:
        self.cache = cache
        self.writer: CacheWriter = cache.writer(
            flush_rows=max(1, flush_rows), flush_seconds=2.0, background=True
        )
        self._memo: list[tuple[str, int, int, str]] = []
        self._memo_since = 0.0

    def lookup(self, key: str) -> Hit | None:
        """The cache's hit for ``key``; a failed lookup is logged and counts as a miss.

        The directory is listed at most every :data:`LOOKUP_MAX_AGE` seconds: this
        run's own rows never need it (rows in flight with the same key are grouped),
        and another process's rows reach the disk only at its next flush (up to 2 s).
        """
        try:
            return self.cache.lookup_results([key], max_age=LOOKUP_MAX_AGE).get(key)
        except Exception as exc:  # the row is sent; the cache is only a saving
            logger.warning("cache lookup failed (%s); sending the row", exc)
            return None

    def add(self, row: CachedRow) -> None:
        """Queue a finished row for the writer's thread (does not block)."""
        self.writer.add(row)

    def remember(self, stat_key: StatKey, sha256: str) -> list[tuple[str, int, int, str]] | None:
        """Queue a memo entry; when the batch is due, take it out for :meth:`write_memo`."""
        if not self._memo:
            self._memo_since = time.monotonic()
        self._memo.append((*stat_key, sha256))
        due = (
            len(self._memo) >= MEMO_FLUSH_ROWS
            or time.monotonic() - self._memo_since >= MEMO_FLUSH_SECONDS
        )
        if not due:
            return None
        entries, self._memo = self._memo, []
        return entries

    def write_memo(self, entries: list[tuple[str, int, int, str]]) -> None:
        """Write memo entries (a failure is logged: the memo is only a saving)."""
        if not entries:
            return
        try:
            self.cache.memo_put_many(entries)
        except OSError as exc:
            logger.warning("could not write the path -> sha256 memo: %s", exc)

    def close(self) -> None:
        """Write every row and memo entry still waiting, end the writer's thread."""
        try:
            self.writer.close()
        except OSError as exc:  # the transcripts are still in the result
            logger.error(
                "could not write %d finished rows to the cache %s: %s",
                self.writer.pending,
                self.cache.path,
                exc,
            )
        finally:
            entries, self._memo = self._memo, []
            self.write_memo(entries)
