"""The cache's tools: stats, compact, export and clear (``cf-transcribe cache ...``).

These read every part file whole (they are not on a run's path). Compaction
is safe while other threads and processes read and write: the merged file is
written atomically before the files it replaces are deleted, and files that
appear after the directory was listed are left alone. The cache deletes only
files whose names it makes.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cf_transcribe_pandas.cache.files import (
    OWN_TEMP_RE,
    PART_RE,
    dir_bytes,
    part_ns,
    write_parquet_atomic,
)
from cf_transcribe_pandas.cache.parts import (
    README_FILE,
    STALE_TEMP_SECONDS,
    VERSION_FILE,
    BadFile,
    PartDir,
)
from cf_transcribe_pandas.cache.rows import RESULT_SCHEMA, TIMESTAMP, datetimes

__all__ = [
    "CacheStats",
    "ClearResult",
    "CompactResult",
    "clear",
    "compact",
    "export",
    "read_all",
    "stats",
]

logger = logging.getLogger("cf_transcribe_pandas.cache")

_MAX_RESCANS = 20
_MEMO_KEY = ["path", "size", "mtime_ns"]


@dataclass(frozen=True)
class CacheStats:
    """What ``Cache.stats`` found.

    Attributes:
        path: The cache directory.
        rows: Distinct cached transcripts (keys).
        files: Results part files that could be read.
        bytes_on_disk: Size of every file under ``path``.
        models: Distinct keys per model.
        oldest: Earliest ``created_at``, or None when empty.
        newest: Latest ``created_at``, or None when empty.
        memo_entries: Distinct (path, size, mtime_ns) memo entries.
        memo_files: Memo part files that could be read.
        bad_files: Part files skipped as unreadable or foreign.
        temp_files: Temporary files (being written, or left by a killed writer).
    """

    path: Path
    rows: int
    files: int
    bytes_on_disk: int
    models: Mapping[str, int]
    oldest: dt.datetime | None
    newest: dt.datetime | None
    memo_entries: int
    memo_files: int
    bad_files: int
    temp_files: int

    def as_dict(self) -> dict[str, Any]:
        """Return the stats as JSON-ready values (paths and times as strings)."""
        return {
            "path": str(self.path),
            "rows": self.rows,
            "files": self.files,
            "bytes_on_disk": self.bytes_on_disk,
            "models": dict(self.models),
            "oldest": self.oldest.isoformat() if self.oldest else None,
            "newest": self.newest.isoformat() if self.newest else None,
            "memo_entries": self.memo_entries,
            "memo_files": self.memo_files,
            "bad_files": self.bad_files,
            "temp_files": self.temp_files,
        }


@dataclass(frozen=True)
class CompactResult:
    """What ``Cache.compact`` did.

    Attributes:
        files_before: Results part files (``*.parquet``) before, bad ones included.
        files_after: Results part files after, bad ones included, as are
            files that other processes wrote meanwhile.
        rows_before: Rows in the merged results files, duplicates included.
        rows_after: Rows in the merged results file.
        memo_files_before: Memo part files before.
        memo_files_after: Memo part files after.
        temp_files_removed: Stale temporary files removed.
        bytes_before: Bytes on disk before.
        bytes_after: Bytes on disk after.
    """

    files_before: int
    files_after: int
    rows_before: int
    rows_after: int
    memo_files_before: int
    memo_files_after: int
    temp_files_removed: int
    bytes_before: int
    bytes_after: int


@dataclass(frozen=True)
class ClearResult:
    """What ``Cache.clear`` did.

    Attributes:
        files_removed: Files deleted.
        bytes_removed: Their total size.
        kept: Files and directories left because the cache did not create them.
    """

    files_removed: int
    bytes_removed: int
    kept: tuple[Path, ...]


# --------------------------------------------------------------------------- reading


def read_all(parts: PartDir, columns: Sequence[str]) -> tuple[pa.Table, list[str], list[str]]:
    """Read ``columns`` of every part file, as one table.

    A file that vanishes meanwhile was merged: the directory is listed again
    and the new files read, so no row is missed (some may come twice).

    Returns:
        (the rows plus ``_file``, the rank of their file's name, and ``_row``,
        their row in the file; the names read; the names skipped as bad)
    """
    done: dict[str, pa.Table] = {}
    bad: list[str] = []
    for _attempt in range(_MAX_RESCANS):
        vanished = False
        for name in parts.listing().parts:
            if name in done or name in bad:
                continue
            try:
                done[name] = parts.read(name, columns)
            except FileNotFoundError:
                vanished = True
            except (BadFile, pa.ArrowException, OSError, ValueError) as exc:
                bad.append(name)
                parts.warn_bad(name, exc)
        if not vanished:
            break
    names = sorted(done)
    tables = [
        done[name]
        .append_column("_file", pa.array(np.full(done[name].num_rows, rank, np.int64)))
        .append_column("_row", pa.array(np.arange(done[name].num_rows, dtype=np.int64)))
        for rank, name in enumerate(names)
    ]
    if not tables:
        empty = pa.schema([parts.schema.field(c).with_nullable(True) for c in columns])
        tables = [
            empty.empty_table()
            .append_column("_file", pa.array([], pa.int64()))
            .append_column("_row", pa.array([], pa.int64()))
        ]
    return pa.concat_tables(tables), names, bad


def _sorted(table: pa.Table, *, latest: bool) -> pa.Table:
    """Sort by (created_at, file name, row), ascending or (latest) descending."""
    direction = "descending" if latest else "ascending"
    keys = [(c, direction) for c in ("created_at", "_file", "_row")]
    return table.take(pc.sort_indices(table, sort_keys=keys))


def _dedupe(table: pa.Table, key_cols: Sequence[str], *, latest: bool) -> pa.Table:
    """One row per key: the first by (created_at, file name, row), or the last; sorted so."""
    table = _sorted(table, latest=latest)
    if table.num_rows == 0:
        return table
    positions = pa.array(np.arange(table.num_rows, dtype=np.int64))
    grouped = (
        pa.table({**{c: table[c] for c in key_cols}, "_pos": positions})
        .group_by(list(key_cols), use_threads=False)
        .aggregate([("_pos", "min")])
    )
    return table.take(pa.array(np.sort(grouped["_pos_min"].to_numpy())))


# --------------------------------------------------------------------------- the tools


def stats(root: Path, results: PartDir, memo: PartDir) -> CacheStats:
    """Count what the cache holds (reads the small columns of every file)."""
    table, names, bad = read_all(results, ["key", "model", "created_at"])
    table = _dedupe(table, ["key"], latest=False)
    memo_table, memo_names, memo_bad = read_all(memo, _MEMO_KEY)
    models: dict[str, int] = {}
    oldest = newest = None
    if table.num_rows:
        counts = table.group_by("model").aggregate([("key", "count")])
        pairs = zip(counts["model"].to_pylist(), counts["key_count"].to_pylist(), strict=True)
        models = dict(sorted(pairs))
        bounds = pc.min_max(table["created_at"])
        oldest, newest = datetimes(pa.array([bounds["min"].value, bounds["max"].value], TIMESTAMP))
    memo_entries = memo_table.group_by(_MEMO_KEY).aggregate([]).num_rows
    return CacheStats(
        path=root,
        rows=table.num_rows,
        files=len(names),
        bytes_on_disk=dir_bytes(root),
        models=models,
        oldest=oldest,
        newest=newest,
        memo_entries=memo_entries,
        memo_files=len(memo_names),
        bad_files=len(bad) + len(memo_bad),
        temp_files=len(results.listing().temps) + len(memo.listing().temps),
    )


def _compact_dir(parts: PartDir, key_cols: list[str], latest: bool) -> tuple[int, int, int]:
    """Merge and dedupe the part files of one directory.

    Returns:
        (files before, rows before, rows after)
    """
    table, names, bad = read_all(parts, parts.schema.names)
    files_before = len(names) + len(bad)
    ours = [n for n in names if PART_RE.match(n)]
    if not ours:
        return files_before, 0, 0
    ranks = pa.array([i for i, n in enumerate(names) if PART_RE.match(n)], pa.int64())
    table = table.filter(pc.is_in(table["_file"], value_set=ranks))
    merged = _dedupe(table, key_cols, latest=latest)
    if len(ours) > 1 or merged.num_rows < table.num_rows:
        parts.write([merged], created_ns=min(part_ns(n) or 0 for n in ours))
        parts.remove(ours)
    return files_before, table.num_rows, merged.num_rows


def _remove_temps(parts: Sequence[PartDir], older_than: float) -> int:
    removed = 0
    now = time.time()
    for part_dir in parts:
        for name in part_dir.listing().temps:
            path = part_dir.path / name
            try:
                if OWN_TEMP_RE.match(name) and now - path.stat().st_mtime > older_than:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
    return removed


def compact(root: Path, results: PartDir, memo: PartDir) -> CompactResult:
    """See ``Cache.compact``."""
    if not root.exists():
        return CompactResult(0, 0, 0, 0, 0, 0, 0, 0, 0)
    bytes_before = dir_bytes(root)
    files_before, rows_before, rows_after = _compact_dir(results, ["key"], latest=False)
    memo_before, _rows, _after = _compact_dir(memo, _MEMO_KEY, latest=True)
    temps = _remove_temps([results, memo], STALE_TEMP_SECONDS)
    return CompactResult(
        files_before=files_before,
        files_after=len(results.listing().parts),
        rows_before=rows_before,
        rows_after=rows_after,
        memo_files_before=memo_before,
        memo_files_after=len(memo.listing().parts),
        temp_files_removed=temps,
        bytes_before=bytes_before,
        bytes_after=dir_bytes(root),
    )


def export(results: PartDir, out: Path) -> int:
    """See ``Cache.export``."""
    table, _names, _bad = read_all(results, RESULT_SCHEMA.names)
    table = _dedupe(table, ["key"], latest=False)
    temp = f".{out.name}.{uuid.uuid4().hex}.tmp"
    return write_parquet_atomic([table], out, RESULT_SCHEMA, temp=temp)


def _unlink(path: Path) -> int | None:
    """Delete a file; its size, or None when it was gone."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return None
    return size


def clear(root: Path, subs: Sequence[str]) -> ClearResult:
    """See ``Cache.clear``."""
    sizes: list[int | None] = []
    kept: list[Path] = []
    for sub in subs:
        directory = root / sub
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            if PART_RE.match(entry.name) or OWN_TEMP_RE.match(entry.name):
                sizes.append(_unlink(entry))
            else:
                kept.append(entry)
        try:
            directory.rmdir()
        except OSError:
            pass
    if root.is_dir():
        own_temps = tuple(f".{name}." for name in (VERSION_FILE, README_FILE))
        for entry in sorted(root.iterdir()):
            own = entry.name in (VERSION_FILE, README_FILE) or (
                entry.name.startswith(own_temps) and entry.name.endswith(".tmp")
            )
            if own and entry.is_file():
                sizes.append(_unlink(entry))
            elif entry.name not in subs:
                kept.append(entry)
        try:
            root.rmdir()
        except OSError:
            pass
    done = [s for s in sizes if s is not None]
    return ClearResult(files_removed=len(done), bytes_removed=sum(done), kept=tuple(kept))
