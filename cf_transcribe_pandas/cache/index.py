"""The key index: one column of every part file in a directory, hashed for lookups.

The index reads the key column (``key`` of results, ``path`` of the memo) of
each part file once, as part files never change, and keeps it with a sorted
array of the values' hashes. A lookup lists the directory (reading only new
files, forgetting files merged away), finds every wanted value with one
vectorized ``searchsorted``, checks the candidates against the stored values,
and then reads the other columns only of the row groups that hold a hit.
Finding one key takes microseconds however big the cache (reading its row
group, about a millisecond); a million keys take one pass.

A file that vanishes while a lookup reads it was merged by a compaction,
which renamed the merged file into place before deleting its inputs: the
lookup lists the directory again and starts over, so no row is missed.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cf_transcribe_pandas.cache.parts import BadFile, PartDir, present

__all__ = ["Chunk", "IndexedPart", "KeyIndex"]

logger = logging.getLogger("cf_transcribe_pandas.cache")

_MAX_RESCANS = 20
_MTIME_SLACK_NS = 50_000_000
"""A listing counts as current only if it was made this long after the directory's last
change (as git does for racy files): a file added within one tick of the file system's
clock after a listing may leave the directory's mtime as it was."""
_IntArray = np.ndarray  # of int64
_NONE = np.zeros(0, np.int64)
_NONE.flags.writeable = False


def _hashes(values: Sequence[object]) -> np.ndarray:
    """Python's hash of every value, as int64 (the index lives in one process)."""
    return np.fromiter(map(hash, values), np.int64, len(values))


def _runs(values: _IntArray) -> list[tuple[int, slice]]:
    """The runs of equal values of a sorted array: (value, where)."""
    bounds = [0, *(np.flatnonzero(np.diff(values)) + 1).tolist(), len(values)]
    return [(int(values[a]), slice(a, b)) for a, b in itertools.pairwise(bounds) if a < b]


@dataclass(frozen=True, eq=False)
class IndexedPart:
    """The indexed column of one part file.

    Attributes:
        name: The file's name.
        values: The column's values.
        hashes: Their hashes.
        groups: The first row of every row group, then the number of rows.
        metadata: The file's Parquet footer (read once: the file never changes).
    """

    name: str
    values: pa.Array
    hashes: np.ndarray
    groups: np.ndarray
    metadata: pq.FileMetaData


@dataclass(frozen=True)
class Chunk:
    """Rows found by a lookup, from one row group of one part file.

    Attributes:
        wanted: Position in the wanted values of each row.
        rank: Rank of the file's name among the files (for tie-breaks).
        rows: Row numbers in the file.
        table: The columns asked for.
    """

    wanted: np.ndarray
    rank: int
    rows: np.ndarray
    table: pa.Table


class _Changed(Exception):
    """A file went away (or turned out bad) while a lookup read it."""


@dataclass(frozen=True)
class _View:
    """An immutable snapshot of the index: every part, hashes sorted."""

    parts: tuple[IndexedPart, ...]
    starts: np.ndarray  # first position of each part in the concatenation, then the total
    hashes: np.ndarray  # sorted
    order: np.ndarray  # position of each sorted hash
    ranks: np.ndarray  # rank of each part's name among the parts' names

    @classmethod
    def build(cls, parts: tuple[IndexedPart, ...], prev: _View | None) -> _View:
        """A view of ``parts``; cheaper when ``prev`` viewed a prefix of them."""
        sizes = [len(p.values) for p in parts]
        starts = np.cumsum([0, *sizes], dtype=np.int64)
        if prev is not None and prev.parts == parts[: len(prev.parts)]:
            new = parts[len(prev.parts) :]
            hashes = np.concatenate([prev.hashes, *(p.hashes for p in new)])
            order = np.concatenate([prev.order, np.arange(prev.starts[-1], starts[-1])])
            sort = np.argsort(hashes, kind="stable")  # a sorted run and a short tail: linear
        else:
            hashes = np.concatenate([np.zeros(0, np.int64), *(p.hashes for p in parts)])
            order = np.arange(starts[-1])
            sort = np.argsort(hashes)
        ranks = np.argsort(np.argsort([p.name for p in parts])) if parts else np.zeros(0, int)
        return cls(parts, starts, hashes[sort], order[sort], ranks)

    def find(self, wanted: Sequence[str]) -> tuple[_IntArray, _IntArray]:
        """Every (position in ``wanted``, position in the index) with equal values."""
        if len(wanted) == 1:
            return self._find_one(wanted[0])
        hashes = _hashes(wanted)
        by_hash = np.argsort(hashes)  # sorted needles search faster
        lo = np.empty(len(wanted), np.int64)
        lo[by_hash] = np.searchsorted(self.hashes, hashes[by_hash], "left")
        counts = np.empty(len(wanted), np.int64)
        counts[by_hash] = np.searchsorted(self.hashes, hashes[by_hash], "right")
        counts -= lo
        total = int(counts.sum())
        q = np.repeat(np.arange(len(wanted)), counts)
        within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = self.order[np.repeat(lo, counts) + within]
        if total:  # equal hashes: check the values themselves
            values = pa.chunked_array([p.values for p in self.parts], pa.string())
            same = pc.equal(values.take(pos), pa.array(wanted, pa.string()).take(q))
            keep = same.fill_null(False).to_numpy(zero_copy_only=False)
            q, pos = q[keep], pos[keep]
        return q, pos

    def _find_one(self, value: str) -> tuple[_IntArray, _IntArray]:
        """:meth:`find` for one value: a run's worker asks for one key per file it
        reads, and the vectorized path's fixed cost (tens of microseconds) would
        be most of a row's CPU."""
        h = hash(value)
        lo = int(self.hashes.searchsorted(h, "left"))
        if lo == len(self.hashes) or self.hashes[lo] != h:
            return _NONE, _NONE  # the usual answer: not cached
        hits = []
        while lo < len(self.hashes) and self.hashes[lo] == h:
            part, row = self.locate(self.order[lo : lo + 1])
            if self.parts[int(part[0])].values[int(row[0])].as_py() == value:
                hits.append(int(self.order[lo]))
            lo += 1
        return np.zeros(len(hits), np.int64), np.array(hits, np.int64)

    def locate(self, pos: _IntArray) -> tuple[_IntArray, _IntArray]:
        """(part, row) of index positions."""
        part = np.searchsorted(self.starts, pos, "right") - 1
        return part, pos - self.starts[part]


class KeyIndex:
    """The values of one column of every part file in a directory.

    Thread-safe. Refreshed by every lookup: new files are read, files that
    are gone forgotten, unreadable ones skipped with one warning.

    Args:
        parts: The directory.
        column: The column looked up (``"key"`` or ``"path"``).
    """

    def __init__(self, parts: PartDir, column: str) -> None:
        self.parts = parts
        self.column = column
        self._lock = threading.Lock()
        self._files: dict[str, IndexedPart] = {}
        self._bad: set[str] = set()
        self._view: _View | None = None
        self._listed: tuple[int, int] | None = None  # (directory mtime, when listed), ns
        self._listed_ns = 0  # when the directory was last listed
        # The row group read last: one-key lookups of the same group (a rerun whose memo
        # is gone finds its rows in write order) read it once. Part files never change.
        self._last_group: tuple[tuple[str, int, tuple[str, ...]], pa.Table] | None = None

    def _directory_mtime(self) -> int | None:
        try:
            return os.stat(self.parts.path).st_mtime_ns
        except OSError:
            return None

    def _unchanged(self, mtime: int | None) -> bool:
        """No file was added, renamed or removed since the last listing."""
        if self._view is None or self._listed is None or mtime is None:
            return False
        listed_mtime, listed_at = self._listed
        return mtime == listed_mtime and mtime < listed_at - _MTIME_SLACK_NS

    def _read_part(self, name: str) -> IndexedPart | None:
        """Index one file; None when it is gone. Bad files are remembered and warned about."""
        try:
            pf = self.parts.open(name, [self.column])
            table = pf.read(columns=[self.column], use_threads=False)
        except FileNotFoundError:
            return None
        except (BadFile, pa.ArrowException, OSError, ValueError) as exc:
            self._bad.add(name)
            self.parts.warn_bad(name, exc)
            return None
        values = self.parts.conform(table, [self.column])[self.column].combine_chunks()
        sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
        groups = np.cumsum([0, *sizes], dtype=np.int64)
        return IndexedPart(name, values, _hashes(values.to_pylist()), groups, pf.metadata)

    def refresh(self, max_age: float = 0.0) -> _View:
        """List the directory, index new files, forget gone ones; the current view.

        The directory is listed again only when its mtime says it changed (one
        ``stat`` instead of a listing for the one-key lookups of a run), or, with
        ``max_age``, when the last listing is older than that many seconds.
        """
        with self._lock:
            listed_at = time.time_ns()
            if self._view is not None and listed_at - self._listed_ns <= max_age * 1e9:
                return self._view
            mtime = self._directory_mtime()
            if self._unchanged(mtime):
                assert self._view is not None
                return self._view
            for _attempt in range(_MAX_RESCANS):
                names = self.parts.listing().parts
                present = set(names)
                self._bad &= present
                if any(name not in present for name in self._files):
                    self._files = {n: p for n, p in self._files.items() if n in present}
                    self._view = None
                vanished = False
                for name in names:
                    if name not in self._files and name not in self._bad:
                        part = self._read_part(name)
                        if part is not None:
                            self._files[name] = part
                        vanished |= part is None and name not in self._bad
                if not vanished:
                    break
            else:
                logger.warning("cache directory %s kept changing while read", self.parts.path)
                mtime = None  # list again next time
            self._listed = None if mtime is None else (mtime, listed_at)
            self._listed_ns = listed_at
            parts = tuple(self._files.values())
            if self._view is None or self._view.parts != parts:
                self._view = _View.build(parts, self._view)
            return self._view

    def count(self) -> int:
        """The number of distinct values."""
        view = self.refresh()
        if not view.parts:
            return 0
        values = pa.chunked_array([p.values for p in view.parts], pa.string())
        return int(pc.count_distinct(values).as_py())

    def lookup(
        self,
        wanted: Sequence[str],
        columns: Sequence[str],
        *,
        earliest: bool,
        max_age: float = 0.0,
    ) -> list[Chunk]:
        """The rows whose value is in ``wanted``, with ``columns`` read.

        Args:
            wanted: Values to find; duplicates are fine.
            columns: Columns to read of the rows found (none: only find them).
            earliest: Keep one row per wanted value: the earliest
                ``created_at``, then the smallest file name, then the first row.
            max_age: Trust a listing of the directory up to this many seconds old.

        Returns:
            The rows found, a chunk per row group read.
        """
        for attempt in range(_MAX_RESCANS):
            view = self.refresh(max_age if attempt == 0 else 0.0)
            try:
                q, pos = view.find(wanted)
                if not len(q):
                    return []
                if earliest:
                    q, pos = self._earliest(view, q, pos)
                return self._read(view, q, pos, columns)
            except _Changed:
                continue
        raise RuntimeError(f"cache directory {self.parts.path} kept changing while read")

    def _earliest(self, view: _View, q: _IntArray, pos: _IntArray) -> tuple[_IntArray, _IntArray]:
        """One row per wanted value, for the values found more than once."""
        dup = np.bincount(q, minlength=1)[q] > 1
        if not dup.any():
            return q, pos
        sort = np.argsort(pos[dup], kind="stable")  # the order _read returns the rows in
        q_d, pos_d = q[dup][sort], pos[dup][sort]
        part, row = view.locate(pos_d)
        chunks = self._read(view, q_d, pos_d, ["created_at"])
        micros = np.concatenate(
            [pc.cast(c.table["created_at"], pa.int64()).fill_null(2**62).to_numpy() for c in chunks]
        )
        best = np.lexsort((row, view.ranks[part], micros, q_d))
        first = np.ones(len(best), bool)
        first[1:] = q_d[best][1:] != q_d[best][:-1]
        winners = best[first]
        return np.concatenate([q[~dup], q_d[winners]]), np.concatenate([pos[~dup], pos_d[winners]])

    def _read(
        self, view: _View, q: _IntArray, pos: _IntArray, columns: Sequence[str]
    ) -> list[Chunk]:
        """Read ``columns`` of the rows at ``pos``, in file and row order; a chunk a row group."""
        sort = np.argsort(pos, kind="stable")  # file by file, row by row
        q, pos = q[sort], pos[sort]
        part, row = view.locate(pos)
        chunks: list[Chunk] = []
        for index, sel in _runs(part):
            rank = int(view.ranks[index])
            chunks += self._read_rows(view.parts[index], rank, q[sel], row[sel], columns)
        return chunks

    def _kept_group(self, name: str, g: int, columns: Sequence[str]) -> pa.Table | None:
        """Row group ``g`` of part file ``name`` if it is the one read last."""
        last = self._last_group
        return last[1] if last is not None and last[0] == (name, g, tuple(columns)) else None

    def _read_rows(
        self,
        indexed: IndexedPart,
        rank: int,
        q: _IntArray,
        rows: _IntArray,
        columns: Sequence[str],
    ) -> list[Chunk]:
        if not columns:
            return [Chunk(q, rank, rows, pa.table({}))]
        try:
            group = np.searchsorted(indexed.groups, rows, "right") - 1
            chunks = []
            pf: pq.ParquetFile | None = None
            for g, sel in _runs(group):
                table = self._kept_group(indexed.name, g, columns)
                if table is None:
                    if pf is None:
                        pf = self.parts.open(indexed.name, columns, indexed.metadata)
                    table = pf.read_row_group(g, columns=present(pf, columns), use_threads=False)
                    table = self.parts.conform(table, columns)
                    self._last_group = ((indexed.name, g, tuple(columns)), table)
                local = rows[sel] - indexed.groups[g]
                if len(local) != table.num_rows or np.any(np.diff(local) != 1):
                    table = table.take(pa.array(local))  # not every row once, in order
                chunks.append(Chunk(q[sel], rank, rows[sel], table))
            return chunks
        except FileNotFoundError:
            raise _Changed from None
        except (BadFile, pa.ArrowException, OSError, ValueError) as exc:
            with self._lock:
                self._bad.add(indexed.name)
                self._files.pop(indexed.name, None)
            self.parts.warn_bad(indexed.name, exc)
            raise _Changed from exc
