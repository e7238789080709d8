"""Cache: one cache directory, the facade over part files, key index, writer and memo.

A cache directory holds immutable Parquet part files; nothing is ever
appended to or rewritten in place::

    <cache dir>/
        VERSION                 cache format version ("1")
        README.txt              what this directory is, for people who find it
        results/                one row per finished transcript (successes only)
            01732701234567890123-4242-<uuid4 hex>.parquet
            .<same name>.tmp    a file being written; never read
        memo/                   (absolute path, size, mtime_ns) -> sha256 of the audio;
                                objects: (URL, size, ETag stamp)
            <same naming>.parquet

Any number of threads and processes may read and write one directory at
once, without locks. When the same key is in several rows, the row with the
earliest ``created_at`` wins, then the smallest file name, then the earliest
row in the file; so a transcript, once seen, never changes under a reader.
Failures are never cached: the engine only hands successes to the writer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cf_transcribe_pandas.cache import maintenance
from cf_transcribe_pandas.cache.index import KeyIndex
from cf_transcribe_pandas.cache.keys import CACHE_DIR_ENV, default_cache_dir
from cf_transcribe_pandas.cache.maintenance import CacheStats, ClearResult, CompactResult
from cf_transcribe_pandas.cache.memo import Memo, StrPath
from cf_transcribe_pandas.cache.parts import PartDir, WarnOnce
from cf_transcribe_pandas.cache.rows import (
    ADDED_COLUMNS,
    MEMO_SCHEMA,
    RESULT_COLUMNS,
    RESULT_SCHEMA,
    CachedRow,
    datetimes,
    shared_strings,
)
from cf_transcribe_pandas.cache.writer import CacheWriter

__all__ = ["Cache", "Hit"]

_RESULTS = "results"
_MEMO = "memo"
_HIT_COLUMNS = ("text", "duration_s", "model", "detected_language", "segments")

Hit = tuple[str, float | None, str, str | None, list[dict[str, Any]] | None]
"""What a run needs of a cached row: text, duration_s, model, detected_language, segments."""


def _segments(column: pa.ChunkedArray) -> list[Any]:
    """A segments column as Python lists (all None, cheaply, when no row has them)."""
    if column.null_count == len(column):
        return [None] * len(column)
    values: list[Any] = column.to_pylist()
    return values


class Cache:
    """A directory of Parquet part files holding finished transcripts.

    Creating a ``Cache`` touches nothing on disk: the directory is created on
    the first write, and reading a missing directory is reading an empty
    cache. All methods are safe to call from several threads and processes.
    A directory it creates is private to the user (0700, files 0600); one that
    exists keeps its mode (see :mod:`~cf_transcribe_pandas.cache.modes`).
    A ``Cache`` keeps a key index of the part files it has read (about 90
    bytes a row), so a later lookup reads only the files that are new.

    Args:
        path: The cache directory; :func:`default_cache_dir` when None (the per-user
            directory is made 0700 again if it is not).

    Attributes:
        path: The cache directory.
        result_parts: The ``results/`` part files.
        memo: The path -> sha256 memo.

    Example: ``with cache.writer() as w: w.add(CachedRow.new(sha, "hello", model=MODEL))``,
    then ``cache.lookup([key])[key].text == "hello"``.
    """

    def __init__(self, path: StrPath | None = None) -> None:
        self.path: Path = Path(path).expanduser() if path is not None else default_cache_dir()
        warn = WarnOnce()
        own = path is None and not os.environ.get(CACHE_DIR_ENV)  # the per-user default
        self.result_parts = PartDir(
            self.path, _RESULTS, RESULT_SCHEMA, warn, ADDED_COLUMNS, own=own
        )
        self.memo = Memo(PartDir(self.path, _MEMO, MEMO_SCHEMA, warn, own=own))
        self._index = KeyIndex(self.result_parts, "key")

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"

    @property
    def results_dir(self) -> Path:
        """Directory of the results part files."""
        return self.result_parts.path

    @property
    def memo_dir(self) -> Path:
        """Directory of the path-to-hash memo part files."""
        return self.memo.parts.path

    # ----------------------------------------------------------------- lookups

    def _hits(
        self, keys: Iterable[str], columns: Sequence[str], max_age: float = 0.0
    ) -> Iterator[tuple[list[str], pa.Table]]:
        """The keys found and ``columns`` of their rows, a row group at a time
        (each group's Arrow memory goes as the caller moves on)."""
        wanted = keys if isinstance(keys, list) else list(keys)
        if not wanted:
            return
        chunks = self._index.lookup(wanted, columns, earliest=True, max_age=max_age)
        if not chunks:
            return
        chunks.reverse()
        keys_at = np.array(wanted, dtype=object)
        while chunks:
            chunk = chunks.pop()
            yield keys_at[chunk.wanted].tolist(), chunk.table

    def lookup(self, keys: Iterable[str]) -> dict[str, CachedRow]:
        """Return the cached rows for ``keys``; keys not cached are absent.

        Matches all ``keys`` against the key index at once and reads the other
        columns only of the row groups holding a hit, so a million keys against
        a million rows costs one pass over the files, not one per key.

        Args:
            keys: Cache keys (see :func:`cache_key`); duplicates are fine.

        Returns:
            ``{key: CachedRow}`` for every key found.
        """
        found: dict[str, CachedRow] = {}
        for hit_keys, table in self._hits(keys, RESULT_COLUMNS[1:]):
            columns = [
                datetimes(table[c]) if c == "created_at" else table[c].to_pylist()
                for c in RESULT_COLUMNS[1:]
            ]
            found.update(zip(hit_keys, map(CachedRow, hit_keys, *columns), strict=True))
        return found

    def lookup_results(
        self, keys: Iterable[str], *, segments: bool = True, max_age: float = 0.0
    ) -> dict[str, Hit]:
        """Return ``{key: (text, duration_s, model, detected_language, segments)}``
        for the cached ``keys``.

        What a run needs of a hit: :meth:`lookup` without building
        :class:`CachedRow` objects (a million keys at corpus scale).

        Args:
            keys: Cache keys.
            segments: Read the segments column (else None in every hit).
            max_age: Trust the files listed up to this many seconds ago instead of
                looking at the directory again (a run's one-key lookups: rows other
                processes finish reach the disk only at their next flush anyway).
        """
        found: dict[str, Hit] = {}
        columns = _HIT_COLUMNS if segments else _HIT_COLUMNS[:-1]
        for hit_keys, table in self._hits(keys, columns, max_age):
            texts = table["text"].to_pylist()
            durations = table["duration_s"].to_pylist()
            models = shared_strings(table["model"])
            languages = shared_strings(table["detected_language"])
            timed = _segments(table["segments"]) if segments else [None] * len(texts)
            rows = zip(texts, durations, models, languages, timed, strict=True)
            found.update(zip(hit_keys, rows, strict=True))
        return found

    def lookup_texts(self, keys: Iterable[str]) -> dict[str, str]:
        """Return ``{key: text}`` for the cached ``keys``: :meth:`lookup`, text only."""
        found: dict[str, str] = {}
        for hit_keys, table in self._hits(keys, ["text"]):
            found.update(zip(hit_keys, table["text"].to_pylist(), strict=True))
        return found

    def contains(self, key: str) -> bool:
        """Return whether ``key`` is cached."""
        return next(self._hits([key], []), None) is not None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.contains(key)

    def __len__(self) -> int:
        """Return the number of distinct cached keys."""
        return self._index.count()

    # ----------------------------------------------------------------- writing

    def writer(
        self,
        *,
        flush_rows: int = 50,
        flush_seconds: float | None = 2.0,
        background: bool = False,
    ) -> CacheWriter:
        """Return a new :class:`CacheWriter` appending to this cache.

        Args:
            flush_rows: Write a part file once this many rows are buffered.
            flush_seconds: Write a part file once the oldest buffered row is
                this old, even if no more rows come (a daemon timer thread
                does it). None turns the timer off.
            background: If True, :meth:`CacheWriter.add` never writes: the
                timer thread also does the count-triggered flushes, so adding
                from an event loop never blocks on disk.
        """
        return CacheWriter(
            self, flush_rows=flush_rows, flush_seconds=flush_seconds, background=background
        )

    # ----------------------------------------------------------------- memo

    def memo_put_many(self, entries: Iterable[tuple[StrPath, int, int, str]]) -> int:
        """Remember the sha256 of files by (absolute path, size, mtime_ns).

        Writes one memo part file atomically (none for no entries).

        Args:
            entries: ``(path, size, mtime_ns, sha256)`` tuples; relative
                paths are made absolute, fsspec URLs are kept as they are.

        Returns:
            The number of entries written.
        """
        return self.memo.put_many(entries)

    def memo_put(self, path: StrPath, size: int, mtime_ns: int, sha256: str) -> None:
        """Remember one file's sha256; see :meth:`memo_put_many`."""
        self.memo.put_many([(path, size, mtime_ns, sha256)])

    def memo_get_many(
        self, entries: Iterable[tuple[StrPath, int, int]]
    ) -> dict[tuple[StrPath, int, int], str]:
        """Return the remembered sha256 of files whose path, size and mtime match.

        A file whose size or ``mtime_ns`` changed since it was remembered is a
        miss. When one (path, size, mtime_ns) was remembered with several
        hashes, the latest wins.

        Args:
            entries: ``(path, size, mtime_ns)`` tuples.

        Returns:
            ``{entry: sha256}`` for the entries found, keyed by the tuples as
            given.
        """
        return self.memo.get_many(entries)

    def memo_get(self, path: StrPath, size: int, mtime_ns: int) -> str | None:
        """Return one file's remembered sha256, or None; see :meth:`memo_get_many`."""
        return next(iter(self.memo.get_many([(path, size, mtime_ns)]).values()), None)

    # ----------------------------------------------------------------- tools

    def stats(self) -> CacheStats:
        """Count what the cache holds (reads the small columns of every file)."""
        return maintenance.stats(self.path, self.result_parts, self.memo.parts)

    def compact(self) -> CompactResult:
        """Merge the part files into one results file and one memo file.

        Safe while other threads and processes read and write: the merged
        file is written atomically before the files it replaces are deleted,
        and files written after the directory was listed are left alone.
        Duplicate keys are dropped (the row :meth:`lookup` would return is
        kept). Temporary files older than an hour are removed. Files the
        cache did not name are neither merged nor deleted.

        Returns:
            A :class:`CompactResult` with file and row counts before and after.
        """
        return maintenance.compact(self.path, self.result_parts, self.memo.parts)

    def export(self, out_path: StrPath) -> int:
        """Write every cached row, deduplicated, to one Parquet file.

        The file has the columns of :data:`RESULT_SCHEMA` (key, sha256, model,
        language, prompt, temperature, encode, text, duration_s, created_at,
        version), oldest first, and is written atomically (a temporary file
        in the same directory, then a rename).

        Args:
            out_path: Where to write; its directory must exist.

        Returns:
            The number of rows written.
        """
        return maintenance.export(self.result_parts, Path(out_path).expanduser())

    def clear(self) -> ClearResult:
        """Delete the cache's files and, when then empty, its directories.

        Only files the cache names (part files, its temporary files, VERSION
        and README.txt) are deleted; anything else is kept and reported.
        Rows that other processes write during or after the call survive.

        Returns:
            A :class:`ClearResult`.
        """
        return maintenance.clear(self.path, (_RESULTS, _MEMO))
