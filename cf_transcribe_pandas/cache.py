"""The Parquet result store: finished transcripts, kept so nothing is bought twice.

A cache directory holds immutable Parquet *part files*; nothing is ever
appended to or rewritten in place::

    <cache dir>/
        VERSION                 cache format version ("1")
        README.txt              what this directory is, for people who find it
        results/                one row per finished transcript (successes only)
            01732701234567890123-4242-<uuid4 hex>.parquet
            .<same name>.tmp    a file being written; never read
        memo/                   (absolute path, size, mtime_ns) -> sha256 of the audio
            <same naming>.parquet

A part file is named ``{created_ns:020d}-{pid}-{uuid4 hex}.parquet``. Results
rows have the columns of :data:`RESULT_SCHEMA` (``key`` is :func:`cache_key`
of the audio hash and the request parameters); memo rows those of
:data:`MEMO_SCHEMA`.

Guarantees:

* **Atomic files.** A part file is written under a temporary name
  (``.<name>.tmp``, which readers ignore) in the same directory, fsynced,
  then renamed into place with :func:`os.replace`, and the directory is
  fsynced. A reader therefore sees a whole file or no file. A ``kill -9``
  loses at most the rows a :class:`CacheWriter` had not flushed yet (at most
  ``flush_rows`` rows or ``flush_seconds`` seconds of work) and may leave a
  temporary file behind, which is never read and which :meth:`Cache.compact`
  and :meth:`Cache.clear` remove.
* **Many writers.** Names are unique per process and batch, so any number of
  threads and processes may write the same directory at once without locks.
* **Readers take the union.** A lookup reads the key column of every part
  file once (not once per key; small files are read whole in that same
  pass, on a few threads), matches all wanted keys in one hash lookup, and
  reads the other columns of large row groups only where they hold a hit.
  When the same key is in several rows, the row with the earliest
  ``created_at`` wins, then the smallest file name, then the earliest row in
  the file; so a transcript, once seen, never changes under a reader.
* **Compaction is safe while others write and read.** :meth:`Cache.compact`
  lists the part files, writes their merged rows to a new part file
  atomically, and only then deletes the files it merged. Files that appeared
  after the listing are untouched. A reader that finds a listed file gone
  lists the directory again and reads the merged file, so it sees every row
  at every moment (duplicates in between are resolved as above).
* **Repeated lookups are cheap.** A :class:`Cache` remembers the key
  column of every part file it has read (about 70 bytes a row; part files
  never change), so a later lookup lists the directory, reads only new
  files, and opens only the files that hold hits.
* **Bad files are not fatal.** Zero-byte, truncated or corrupt files, a CSV
  named ``.parquet`` or a Parquet file with other columns are skipped with a
  warning on the ``cf_transcribe_pandas`` logger (once per file and
  :class:`Cache` instance); the other files still load.
* **The cache deletes only files it named.** Compaction and :meth:`Cache.clear`
  remove part files and temporary files whose names follow the pattern above,
  and never anything else found in the directory.

Failures are never cached: the engine only hands successes to the writer.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cf_transcribe_pandas._version import __version__

__all__ = [
    "CACHE_SCHEMA_VERSION",
    "MEMO_SCHEMA",
    "RESULT_SCHEMA",
    "Cache",
    "CacheStats",
    "CacheWriter",
    "CachedRow",
    "ClearResult",
    "CompactResult",
    "cache_key",
    "default_cache_dir",
    "key_maker",
]

logger = logging.getLogger("cf_transcribe_pandas.cache")

#: Bumped when the meaning of a cached row changes; part of every key.
CACHE_SCHEMA_VERSION = 1

#: Environment variable naming the cache directory.
CACHE_DIR_ENV = "CF_TRANSCRIBE_CACHE_DIR"

#: A temporary file older than this (seconds) is left over from a killed writer.
STALE_TEMP_SECONDS = 3600.0

StrPath: TypeAlias = "str | os.PathLike[str]"

_UTC = "UTC"
_TS = pa.timestamp("us", tz=_UTC)

#: Columns of a results part file (and of :meth:`Cache.export`), in order.
RESULT_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("language", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("temperature", pa.float64()),
        pa.field("encode", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("duration_s", pa.float64()),
        pa.field("created_at", _TS, nullable=False),
        pa.field("version", pa.string(), nullable=False),
    ],
    metadata={"cf_transcribe_pandas": f"results/{CACHE_SCHEMA_VERSION}"},
)

#: Columns of a memo part file: where the audio was and what it hashed to.
MEMO_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("created_at", _TS, nullable=False),
    ],
    metadata={"cf_transcribe_pandas": f"memo/{CACHE_SCHEMA_VERSION}"},
)

_RESULT_COLUMNS: tuple[str, ...] = tuple(RESULT_SCHEMA.names)
_MEMO_COLUMNS: tuple[str, ...] = tuple(MEMO_SCHEMA.names)
_MEMO_KEY = ["path", "size", "mtime_ns"]
#: Columns whose values repeat from row to row: worth a Parquet dictionary.
_REPEATING_COLUMNS = ("model", "language", "prompt", "temperature", "encode", "version")

_RESULTS = "results"
_MEMO = "memo"
_VERSION_FILE = "VERSION"
_README_FILE = "README.txt"
_README_TEXT = """\
This directory is the result cache of cf-transcribe-pandas.

results/*.parquet  finished transcripts, one row per (audio sha256, model,
                   language, prompt, temperature, encode); read them with
                   pandas.read_parquet("results/").
memo/*.parquet     (path, size, mtime_ns) -> sha256, so reruns skip hashing.

Files are immutable and written atomically; any number of processes may
write here at once. Manage it with `cf-transcribe cache stats|compact|export|clear`.
"""

_PART_RE = re.compile(r"^(\d{20})-(\d+)-([0-9a-f]{32})\.parquet$")
_TEMP_RE = re.compile(r"^\..+\.tmp$")
_OWN_TEMP_RE = re.compile(r"^\.\d{20}-\d+-[0-9a-f]{32}\.parquet\.tmp$")
_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MAX_RESCANS = 20
_COMPACT_ROW_GROUP = 16 * 1024  # rows; a lookup hit reads one row group
_SMALL_ROW_GROUP_BYTES = 256 * 1024  # read whole in a lookup's first pass
_REMEMBER_BYTES = 32 * 1024 * 1024  # part files a Cache wrote, kept whole for its lookups
_IN_MEMORY_WRITE_BYTES = 64 * 1024 * 1024  # a part file up to this is made in memory
_READ_THREADS = min(8, 2 * (os.cpu_count() or 1))


# --------------------------------------------------------------------------- keys


def _norm_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or not sha256:
        raise TypeError(f"sha256 must be a non-empty str, not {sha256!r}")
    return sha256.lower() if _HEX64_RE.match(sha256) else sha256


def _norm_temperature(temperature: float | None) -> float | None:
    if temperature is None:
        return None
    if isinstance(temperature, (bool, str, bytes)):
        raise TypeError(f"temperature must be a number or None, not {temperature!r}")
    value = float(temperature)
    if not math.isfinite(value):
        raise ValueError(f"temperature must be finite, not {temperature!r}")
    # Round away float noise (0.1 + 0.2, numpy float32) and fold -0.0 into 0.0.
    return round(value, 6) + 0.0


def cache_key(
    sha256: str,
    *,
    model: str,
    language: str | None,
    prompt: str | None,
    temperature: float | None,
    encode: str = "auto",
) -> str:
    """Return the cache key of one request: a hex sha256 of its canonical JSON.

    The JSON holds :data:`CACHE_SCHEMA_VERSION`, the sha256 of the audio bytes,
    and the parameters that change the transcript. It is serialized with
    sorted keys, no spaces and ASCII escapes, so the key is the same in every
    process, platform and Python version.

    Args:
        sha256: Hex sha256 of the audio bytes sent (lower-cased when it is 64
            hex digits; any other non-empty string is used as it is).
        model: Model name, exactly as sent.
        language: ISO-639-1 code, or None when the field is not sent.
        prompt: Prompt text, or None when the field is not sent ("" is a
            different key).
        temperature: Sampling temperature, or None when the field is not sent
            (None and 0.0 are different keys). Rounded to 6 decimals.
        encode: How the audio was prepared before sending (the engine's
            ``encode`` option).

    Returns:
        64 lowercase hex digits.

    Raises:
        TypeError: A parameter has the wrong type.
        ValueError: ``temperature`` is NaN or infinite.
    """
    for name, value in (("model", model), ("encode", encode)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, not {value!r}")
    for name, opt in (("language", language), ("prompt", prompt)):
        if opt is not None and not isinstance(opt, str):
            raise TypeError(f"{name} must be a str or None, not {opt!r}")
    payload = {
        "v": CACHE_SCHEMA_VERSION,
        "sha256": _norm_sha256(sha256),
        "model": model,
        "language": language,
        "prompt": prompt,
        "temperature": _norm_temperature(temperature),
        "encode": encode,
    }
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def key_maker(
    *,
    model: str,
    language: str | None,
    prompt: str | None,
    temperature: float | None,
    encode: str = "auto",
) -> Callable[[str], str]:
    """Return ``f`` with ``f(sha256) == cache_key(sha256, **params)``, several times faster.

    The canonical JSON of the parameters is built once; each call fills in
    the audio hash and hashes the text. For the many keys of one run.
    """
    probe = "0" * 64
    payload = {
        "v": CACHE_SCHEMA_VERSION,
        "sha256": probe,
        "model": model,
        "language": language,
        "prompt": prompt,
        "temperature": _norm_temperature(temperature),
        "encode": encode,
    }
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    marker = f'"sha256":"{probe}"'
    head, sep, tail = text.partition(marker)

    def slow(sha256: str) -> str:
        return cache_key(
            sha256,
            model=model,
            language=language,
            prompt=prompt,
            temperature=temperature,
            encode=encode,
        )

    if not sep or marker in tail:  # a parameter holds the marker: no shortcut
        return slow
    head += '"sha256":"'
    tail = '"' + tail
    sha256_hex = hashlib.sha256

    def make(sha256: str) -> str:
        if len(sha256) != 64 or not _HEX64_RE.match(sha256):
            return slow(sha256)
        return sha256_hex(f"{head}{sha256.lower()}{tail}".encode("ascii")).hexdigest()

    # Same answer as cache_key, or the format changed under us.
    assert make(probe) == slow(probe)
    return make


def default_cache_dir() -> Path:
    """Return the cache directory used when none is given.

    ``$CF_TRANSCRIBE_CACHE_DIR`` when set; else the per-user cache directory
    plus ``cf-transcribe-pandas``: ``$XDG_CACHE_HOME`` or ``~/.cache`` on
    Linux and other Unix, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on
    Windows. The directory is not created.
    """
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        base = Path(local) if local else home / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = home / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        # The XDG spec says relative paths are invalid and must be ignored.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache"
    return base / "cf-transcribe-pandas"


# --------------------------------------------------------------------------- rows


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class CachedRow:
    """One finished transcript, as stored in the cache.

    Build one with :meth:`new`, which computes the key; the fields match the
    columns of :data:`RESULT_SCHEMA`.

    Attributes:
        key: :func:`cache_key` of the fields below.
        sha256: Hex sha256 of the audio bytes.
        model: Model name sent.
        language: Language sent, or None.
        prompt: Prompt sent, or None.
        temperature: Temperature sent, or None.
        encode: The engine's ``encode`` option.
        text: The transcript.
        duration_s: Audio duration in seconds, when known.
        created_at: When the transcript was received (aware, UTC).
        version: Version of cf-transcribe-pandas that wrote the row.
    """

    key: str
    sha256: str
    model: str
    language: str | None
    prompt: str | None
    temperature: float | None
    encode: str
    text: str
    duration_s: float | None = None
    created_at: dt.datetime = field(default_factory=_utcnow)
    version: str = __version__

    @classmethod
    def new(
        cls,
        sha256: str,
        text: str,
        *,
        model: str,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
        encode: str = "auto",
        duration_s: float | None = None,
        created_at: dt.datetime | None = None,
        key: str | None = None,
    ) -> CachedRow:
        """Return a row for a transcript just received, with its key computed.

        Args:
            sha256: Hex sha256 of the audio bytes.
            text: The transcript.
            model: Model name sent.
            language: Language sent, or None.
            prompt: Prompt sent, or None.
            temperature: Temperature sent, or None.
            encode: The engine's ``encode`` option.
            duration_s: Audio duration in seconds, when known.
            created_at: Defaults to now (UTC).
            key: The key, when the caller computed it already for these
                parameters (with :func:`key_maker`); computed when None.
        """
        if key is None:
            key = cache_key(
                sha256,
                model=model,
                language=language,
                prompt=prompt,
                temperature=temperature,
                encode=encode,
            )
        return cls(
            key=key,
            sha256=_norm_sha256(sha256),
            model=model,
            language=language,
            prompt=prompt,
            temperature=_norm_temperature(temperature),
            encode=encode,
            text=text,
            duration_s=duration_s,
            created_at=created_at if created_at is not None else _utcnow(),
        )


_RowValues: TypeAlias = tuple[Any, ...]
"""A results row as a CacheWriter buffers it: the values of RESULT_SCHEMA's
columns in order, ``created_at`` in microseconds since the epoch."""

_MICROSECOND = dt.timedelta(microseconds=1)


def _row_values(row: CachedRow) -> _RowValues:
    if not isinstance(row, CachedRow):
        raise TypeError(f"CacheWriter takes CachedRow objects, not {type(row).__name__}")
    created = row.created_at
    if created.tzinfo is None:  # naive: UTC, as Arrow reads it
        created = created.replace(tzinfo=dt.timezone.utc)
    return (
        row.key,
        row.sha256,
        row.model,
        row.language,
        row.prompt,
        row.temperature,
        row.encode,
        row.text,
        row.duration_s,
        (created - _EPOCH) // _MICROSECOND,
        row.version,
    )


@dataclass(frozen=True)
class CacheStats:
    """What :meth:`Cache.stats` found.

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
    """What :meth:`Cache.compact` did.

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
    """What :meth:`Cache.clear` did.

    Attributes:
        files_removed: Files deleted.
        bytes_removed: Their total size.
        kept: Files and directories left because the cache did not create them.
    """

    files_removed: int
    bytes_removed: int
    kept: tuple[Path, ...]


# --------------------------------------------------------------------------- file helpers


def _new_part_name(created_ns: int | None = None) -> str:
    ns = time.time_ns() if created_ns is None else created_ns
    return f"{ns:020d}-{os.getpid()}-{uuid.uuid4().hex}.parquet"


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_parquet_atomic(
    table: pa.Table,
    final: Path,
    *,
    temp_name: str,
    row_group_size: int | None = None,
    quick: bool = False,
) -> None:
    """Write ``table`` to ``final`` via a fsynced temp file and ``os.replace``.

    ``quick``: for a writer's small batch files, which its merges and
    compaction rewrite: no compression and no statistics, dictionaries only
    for the columns that repeat (a third of the CPU of the zstd default).
    """
    tmp = final.with_name(temp_name)
    options: dict[str, Any] = (
        {
            "compression": "none",
            "write_statistics": False,
            "use_dictionary": [c for c in _REPEATING_COLUMNS if c in table.column_names],
        }
        if quick
        else {"compression": "zstd"}
    )
    # Up to a size, the file is made in memory and written in one call: Parquet
    # writing into a Python file object calls back into Python (taking the GIL)
    # for every piece, which a busy event loop beside it makes slow.
    data: pa.Buffer | None = None
    if table.nbytes <= _IN_MEMORY_WRITE_BYTES:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, row_group_size=row_group_size, **options)
        data = sink.getvalue()
    try:
        with open(tmp, "xb") as fh:
            if data is not None:
                fh.write(data)
            else:
                pq.write_table(table, fh, row_group_size=row_group_size, **options)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(final.parent)


def _string_like(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t))


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if pa.types.is_null(actual):
        return True
    if pa.types.is_string(expected):
        return _string_like(actual)
    if pa.types.is_floating(expected):
        return bool(pa.types.is_floating(actual) or pa.types.is_integer(actual))
    if pa.types.is_integer(expected):
        return bool(pa.types.is_integer(actual))
    if pa.types.is_timestamp(expected):
        return bool(pa.types.is_timestamp(actual))
    return bool(actual == expected)


class _BadFile(Exception):
    """A part file that is not a readable cache file of the expected kind."""


def _dir_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


@dataclass
class _Listing:
    parts: list[str]
    temps: list[str]


def _list_dir(directory: Path) -> _Listing:
    parts: list[str] = []
    temps: list[str] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                name = entry.name
                if name.startswith("."):
                    if _TEMP_RE.match(name):
                        temps.append(name)
                elif name.endswith(".parquet"):
                    parts.append(name)
    except (FileNotFoundError, NotADirectoryError):
        pass
    parts.sort()
    temps.sort()
    return _Listing(parts, temps)


@dataclass
class _Chunk:
    """A row group read from a part file (or the rows taken from it)."""

    row_group: int
    offset: int  # number of the row group's first row in the file
    values: pa.Array | pa.ChunkedArray  # filter column values, or row numbers in pass 2
    table: pa.Table | None  # the wanted columns, when read


@dataclass
class _PartRead:
    """The outcome of reading one part file."""

    name: str
    status: str  # "ok", "gone" (deleted meanwhile) or "bad"
    chunks: list[_Chunk] = field(default_factory=list)
    error: BaseException | None = None


def _map(fn: Callable[[str], _PartRead], names: list[str]) -> list[_PartRead]:
    """``[fn(n) for n in names]``, on a few threads when there are many files.

    pyarrow decodes without the GIL, so reading many small files is about
    twice as fast on threads.
    """
    if len(names) < 16 or _READ_THREADS < 2:
        return [fn(n) for n in names]
    with ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="cf-transcribe-cache-read") as ex:
        return list(ex.map(fn, names))


def _with_rows(table: pa.Table, rows: np.ndarray[Any, Any]) -> pa.Table:
    return table.append_column("_row", pa.array(rows, pa.int64()))


def _arange(n: int) -> pa.Array:
    return pa.array(np.arange(n, dtype=np.int64))


def _sort(table: pa.Table, *, latest: bool) -> pa.Table:
    """Sort by (created_at, file name, row), ascending or (latest) descending."""
    direction = "descending" if latest else "ascending"
    order = [("created_at", direction), ("_file", direction), ("_row", direction)]
    return table.take(pc.sort_indices(table, sort_keys=order))  # nulls sort last


def _dedupe(table: pa.Table, key_cols: Sequence[str], *, latest: bool) -> pa.Table:
    """Keep one row per key: the first by (created_at, file name, row), or the last.

    ``table`` carries the helper columns ``_file`` and ``_row``, and keeps
    them. Row order is unspecified.
    """
    n = table.num_rows
    if n == 0:
        return table
    if len(key_cols) == 1 and pc.count_distinct(table[key_cols[0]]).as_py() == n:
        return table  # nothing to choose between
    table = _sort(table, latest=latest)
    grouped = (
        pa.table({**{c: table[c] for c in key_cols}, "_pos": _arange(n)})
        .group_by(list(key_cols), use_threads=False)
        .aggregate([("_pos", "min")])
    )
    keep = np.sort(grouped["_pos_min"].to_numpy())
    return table.take(pa.array(keep))


def _oldest_ns(names: Iterable[str]) -> int:
    """The creation time (ns) in the oldest of these part file names."""
    return min(int(m.group(1)) for m in map(_PART_RE.match, names) if m)


def _remove_merged(paths: Iterable[Path]) -> None:
    """Delete part files whose rows a merged file now holds."""
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:  # merged by another compaction meanwhile
            pass
        except OSError as exc:  # e.g. open on Windows; its rows are duplicates now, harmless
            logger.warning("could not remove merged cache file %s: %s", path, exc)


def _conform(table: pa.Table, schema: pa.Schema, cols: Sequence[str]) -> pa.Table:
    """``cols`` of ``table``, in that order, typed as ``schema`` says (all nullable)."""
    table = table.select(list(cols))
    target = pa.schema([schema.field(c).with_nullable(True) for c in cols])
    if table.schema.equals(target, check_metadata=False):
        return table
    return table.cast(target)


def _abspath(path: StrPath) -> str:
    text = os.fspath(path)
    if "://" in text:  # fsspec URL: already absolute
        return text
    if (
        os.sep == "/"
        and text.startswith("/")
        and not text.endswith("/")
        and "/." not in text
        and "//" not in text
    ):
        return text  # already absolute and normal: skip the slow abspath
    return os.path.abspath(text)


def _datetimes(column: pa.ChunkedArray | pa.Array) -> list[dt.datetime | None]:
    # Much faster than to_pylist() on a tz-aware column (no zoneinfo per value).
    micros = pc.cast(column, pa.int64()).to_pylist()
    delta = dt.timedelta
    return [None if m is None else _EPOCH + delta(microseconds=m) for m in micros]


# --------------------------------------------------------------------------- the cache


class Cache:
    """A directory of Parquet part files holding finished transcripts.

    Creating a ``Cache`` touches nothing on disk: the directory is created on
    the first write, and reading a missing directory is reading an empty
    cache. All methods are safe to call from several threads and processes.

    Args:
        path: The cache directory; :func:`default_cache_dir` when None.

    Example:
        >>> cache = Cache(tmp_dir)                          # doctest: +SKIP
        >>> with cache.writer() as w:                       # doctest: +SKIP
        ...     w.add(CachedRow.new(sha, "hello", model=MODEL))
        >>> cache.lookup([key])[key].text                   # doctest: +SKIP
        'hello'
    """

    def __init__(self, path: StrPath | None = None) -> None:
        self.path: Path = Path(path).expanduser() if path is not None else default_cache_dir()
        self._lock = threading.Lock()
        self._warned: set[tuple[str, int, int]] = set()
        # Filter-column values of part files already read, per (directory, column):
        # part files never change once renamed into place, so these stay true.
        self._values: dict[tuple[str, str], dict[str, list[_Chunk]]] = {}
        self._remembered_bytes = 0  # of whole tables kept in _values (see _remember)
        self._made: set[str] = set()  # subdirectories made by this Cache (see _write_part)

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"

    # ----------------------------------------------------------------- layout

    @property
    def results_dir(self) -> Path:
        """Directory of the results part files."""
        return self.path / _RESULTS

    @property
    def memo_dir(self) -> Path:
        """Directory of the path-to-hash memo part files."""
        return self.path / _MEMO

    def _ensure_dir(self, sub: str) -> Path:
        directory = self.path / sub
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in (
            (_VERSION_FILE, f"{CACHE_SCHEMA_VERSION}\n"),
            (_README_FILE, _README_TEXT),
        ):
            target = self.path / name
            if not target.exists():
                tmp = self.path / f".{name}.{uuid.uuid4().hex}.tmp"
                try:
                    tmp.write_text(text, encoding="utf-8")
                    os.replace(tmp, target)
                except OSError:  # not essential; never fail a write over it
                    try:
                        tmp.unlink()
                    except OSError:
                        pass
        return directory

    def _write_part(
        self,
        sub: str,
        table: pa.Table,
        *,
        created_ns: int | None = None,
        row_group_size: int | None = None,
        quick: bool = False,
    ) -> Path:
        for attempt in range(2):
            # The directory is made (and VERSION, README.txt written) once per Cache,
            # and again if it has gone since (a `clear` from elsewhere).
            if sub not in self._made:
                self._ensure_dir(sub)
                self._made.add(sub)
            name = _new_part_name(created_ns)
            final = self.path / sub / name
            try:
                _write_parquet_atomic(
                    table,
                    final,
                    temp_name=f".{name}.tmp",
                    row_group_size=row_group_size,
                    quick=quick,
                )
            except FileNotFoundError:
                self._made.discard(sub)
                if attempt:
                    raise
            else:
                return final
        raise AssertionError("unreachable: the second attempt returns or raises")

    @staticmethod
    def _rows_table(rows: Sequence[_RowValues]) -> pa.Table:
        """A results table from :func:`_row_values` tuples."""
        columns = zip(*rows, strict=True)
        return pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(columns, RESULT_SCHEMA, strict=True)],
            schema=RESULT_SCHEMA,
        )

    def _write_results(
        self, table: pa.Table, *, created_ns: int | None = None, quick: bool = False
    ) -> Path:
        """Write a results part file (one row group) and remember it."""
        path = self._write_part(
            _RESULTS,
            table,
            created_ns=created_ns,
            row_group_size=max(1, table.num_rows),
            quick=quick,
        )
        self._remember(path, "key", table)
        return path

    def _merge_results(self, parts: list[tuple[Path, pa.Table]]) -> None:
        """Replace results part files written by this process with one file.

        The merged file is named after the oldest part (so it sorts where they
        did) and renamed into place before they are deleted: a reader sees the
        rows at every moment, maybe twice (duplicates resolve as usual).
        """
        first_ns = _oldest_ns(p.name for p, _ in parts)
        self._write_results(pa.concat_tables([t for _, t in parts]), created_ns=first_ns)
        _remove_merged([p for p, _ in parts])
        with self._lock:  # forget them, and the bytes their kept tables took
            for path, table in parts:
                known = self._values.get((str(path.parent), "key"), {})
                chunks = known.pop(path.name, None)
                if chunks and chunks[0].table is not None:
                    self._remembered_bytes -= table.nbytes

    def _remember(self, path: Path, filter_col: str, table: pa.Table) -> None:
        """Remember a part file just written (as one row group), as a lookup that
        read it would: its filter column, and the whole table while the tables
        remembered stay within _REMEMBER_BYTES. This process then never reads the
        file back for its keys, nor (within the budget) for its hits: a rerun in
        the same process (a notebook) reads no part file it wrote."""
        with self._lock:
            keep = self._remembered_bytes + table.nbytes <= _REMEMBER_BYTES
            if keep:
                self._remembered_bytes += table.nbytes
            known = self._values.setdefault((str(path.parent), filter_col), {})
            values = table[filter_col].combine_chunks()
            known[path.name] = [_Chunk(0, 0, values, table if keep else None)]

    # ----------------------------------------------------------------- reading

    def _warn_once(self, path: Path, message: str, *args: object) -> None:
        try:
            st = path.stat()
            ident = (str(path), st.st_size, st.st_mtime_ns)
        except OSError:
            ident = (str(path), -1, -1)
        with self._lock:
            if ident in self._warned:
                return
            self._warned.add(ident)
        logger.warning(message, *args)

    def _open(self, path: Path, schema: pa.Schema, columns: Sequence[str]) -> pq.ParquetFile:
        """Open a part file and check it has the columns of ``schema``."""
        try:
            pf = pq.ParquetFile(path)
            file_schema = pf.schema_arrow
        except Exception as exc:
            if not path.exists():
                raise FileNotFoundError(str(path)) from exc
            if path.stat().st_size == 0:
                raise _BadFile("empty file") from exc
            raise _BadFile(f"not a readable Parquet file ({exc})") from exc
        if file_schema.equals(schema, check_metadata=False):
            return pf  # written by us: skip the checks
        missing = [c for c in schema.names if c not in file_schema.names]
        if missing:
            raise _BadFile(f"not a cache file: missing columns {missing}")
        for name in columns:
            if not _compatible(file_schema.field(name).type, schema.field(name).type):
                raise _BadFile(f"column {name!r} has type {file_schema.field(name).type}")
        return pf

    @staticmethod
    def _read_columns(
        pf: pq.ParquetFile, schema: pa.Schema, columns: Sequence[str], row_group: int | None = None
    ) -> pa.Table:
        cols = list(columns)
        if row_group is None:
            table = pf.read(columns=cols, use_threads=False)
        else:
            table = pf.read_row_group(row_group, columns=cols, use_threads=False)
        return _conform(table, schema, cols)

    def _read_part(
        self, path: Path, schema: pa.Schema, cols: list[str], filter_col: str | None
    ) -> _PartRead:
        """Read one part file: all of ``cols``, or (filtered) the filter column.

        Without a filter, returns one chunk holding the whole table. With a
        filter, returns one chunk per row group with the filter column's
        values, and the whole row group too when it is small (one open per
        file beats two).
        """
        known = None
        if filter_col is not None and _PART_RE.match(path.name):
            with self._lock:
                known = self._values.setdefault((str(path.parent), filter_col), {})
                chunks = known.get(path.name)
            if chunks is not None:
                return _PartRead(path.name, "ok", chunks)
        try:
            pf = self._open(path, schema, cols)
            if filter_col is None:
                table = self._read_columns(pf, schema, cols)
                return _PartRead(path.name, "ok", [_Chunk(0, 0, table[cols[0]], table)])
            chunks = []
            offset = 0
            for rg in range(pf.metadata.num_row_groups):
                meta = pf.metadata.row_group(rg)
                whole = meta.total_byte_size <= _SMALL_ROW_GROUP_BYTES
                table = self._read_columns(pf, schema, cols if whole else [filter_col], rg)
                values = table[filter_col].combine_chunks()
                chunks.append(_Chunk(rg, offset, values, table if whole else None))
                offset += meta.num_rows
            if known is not None:
                with self._lock:  # keep the values only; hits are read again
                    known[path.name] = [
                        _Chunk(c.row_group, c.offset, c.values, None) for c in chunks
                    ]
            return _PartRead(path.name, "ok", chunks)
        except FileNotFoundError:
            return _PartRead(path.name, "gone")
        except (_BadFile, pa.ArrowException, OSError, ValueError) as exc:
            return _PartRead(path.name, "bad", error=exc)

    def _read_parts(
        self,
        directory: Path,
        names: list[str],
        schema: pa.Schema,
        cols: list[str],
        filter_col: str | None,
    ) -> list[_PartRead]:
        """:meth:`_read_part` for every name; remembered files need no thread."""
        known: dict[str, list[_Chunk]] = {}
        if filter_col is not None:
            with self._lock:
                known = dict(self._values.get((str(directory), filter_col), {}))
        todo = [n for n in names if n not in known]
        fresh = iter(_map(lambda n: self._read_part(directory / n, schema, cols, filter_col), todo))
        return [_PartRead(n, "ok", known[n]) if n in known else next(fresh) for n in names]

    def _read_hits(
        self, path: Path, schema: pa.Schema, cols: list[str], groups: list[tuple[_Chunk, Any]]
    ) -> _PartRead:
        """Pass 2 of a filtered read: ``cols`` of the given rows of large row groups."""
        try:
            pf = self._open(path, schema, cols)
            pieces = []
            for chunk, rows in groups:
                table = self._read_columns(pf, schema, cols, chunk.row_group)
                if len(rows) < table.num_rows:
                    table = table.take(pa.array(rows))
                pieces.append(_Chunk(chunk.row_group, chunk.offset, pa.array(rows), table))
            return _PartRead(path.name, "ok", pieces)
        except FileNotFoundError:
            return _PartRead(path.name, "gone")
        except (_BadFile, pa.ArrowException, OSError, ValueError) as exc:
            return _PartRead(path.name, "bad", error=exc)

    def _scan(
        self,
        sub: str,
        schema: pa.Schema,
        columns: Sequence[str],
        *,
        filter_col: str | None = None,
        wanted: pa.Array | None = None,
    ) -> tuple[pa.Table, list[str], list[str], list[str]]:
        """Read ``columns`` of every part file under ``sub``, as one table.

        With ``filter_col`` and ``wanted``, only rows whose ``filter_col`` is
        in ``wanted`` are returned: the filter column of every file is matched
        in one ``is_in`` (one hash table, not one per file or per key), and the
        other columns are read only for row groups with a hit.

        A file that vanishes while being read was merged by a compaction,
        which renamed the merged file into place before deleting: the
        directory is listed again and the new files read, so no row is missed.

        Returns:
            (rows plus the helper columns ``_file`` (rank of the file name)
            and ``_row`` (row number in the file), names read, names skipped
            as bad, temp names)
        """
        directory = self.path / sub
        cols = list(columns)
        if filter_col is not None and filter_col not in cols:
            cols.insert(0, filter_col)
        if wanted is None:
            filter_col = None
        done: dict[str, list[pa.Table]] = {}
        bad: list[str] = []
        listing = _Listing([], [])
        for _attempt in range(_MAX_RESCANS):
            listing = _list_dir(directory)
            if filter_col is not None:
                self._forget_missing(directory, filter_col, listing.parts)
            new = [n for n in listing.parts if n not in done and n not in bad]
            reads = self._read_parts(directory, new, schema, cols, filter_col)
            vanished = self._collect(directory, reads, done, bad)
            if filter_col is not None and wanted is not None:
                vanished |= self._filter(directory, schema, cols, reads, wanted, done, bad)
            else:
                for read in reads:
                    if read.status == "ok":
                        table = read.chunks[0].table
                        assert table is not None
                        done[read.name] = [_with_rows(table, np.arange(table.num_rows))]
            if not vanished:
                break
        else:
            logger.warning("cache directory %s kept changing while it was read", directory)
        self._warn_stale_temps(directory, listing.temps)

        names = sorted(done)
        tables = []
        for rank, name in enumerate(names):
            for table in done[name]:
                if table.num_rows:
                    ranks = pa.array(np.full(table.num_rows, rank, np.int64))
                    tables.append(table.append_column("_file", ranks))
        if tables:
            out = pa.concat_tables(tables)
        else:
            target = pa.schema([schema.field(c).with_nullable(True) for c in cols])
            out = target.empty_table()
            out = out.append_column("_row", pa.array([], pa.int64()))
            out = out.append_column("_file", pa.array([], pa.int64()))
        return out, names, bad, listing.temps

    def _forget_missing(self, directory: Path, filter_col: str, names: list[str]) -> None:
        """Drop remembered values of files no longer listed (merged by a compaction)."""
        with self._lock:
            known = self._values.get((str(directory), filter_col))
            if known:
                present = set(names)
                for name in [n for n in known if n not in present]:
                    del known[name]

    def _collect(
        self,
        directory: Path,
        reads: list[_PartRead],
        done: dict[str, list[pa.Table]],
        bad: list[str],
    ) -> bool:
        """Warn about the bad files of a pass (once each); True if a file vanished."""
        vanished = False
        for read in reads:
            if read.status == "gone":
                vanished = True
            elif read.status == "bad":
                bad.append(read.name)
                self._warn_once(
                    directory / read.name,
                    "skipping unreadable cache file %s: %s",
                    directory / read.name,
                    read.error,
                )
        return vanished

    def _filter(
        self,
        directory: Path,
        schema: pa.Schema,
        cols: list[str],
        reads: list[_PartRead],
        wanted: pa.Array,
        done: dict[str, list[pa.Table]],
        bad: list[str],
    ) -> bool:
        """Match every read chunk against ``wanted``; read pass 2; book the hits."""
        ok = [r for r in reads if r.status == "ok"]
        found: dict[str, list[pa.Table]] = {r.name: [] for r in ok}
        reread: dict[str, list[tuple[_Chunk, Any]]] = {}
        owners = [(r.name, c) for r in ok for c in r.chunks if len(c.values)]
        if owners:
            # One hash table of the wanted values, probed by every chunk (no copy).
            values = pa.chunked_array([c.values for _n, c in owners], type=wanted.type)
            hit = pc.is_in(values, value_set=wanted).to_numpy(zero_copy_only=False)
            starts = np.cumsum([0] + [len(c.values) for _n, c in owners])
            positions = np.flatnonzero(hit)
            which = np.searchsorted(starts, positions, side="right") - 1
            for index in np.unique(which):
                name, chunk = owners[index]
                rows = positions[which == index] - starts[index]
                if chunk.table is None:
                    reread.setdefault(name, []).append((chunk, rows))
                else:
                    table = _conform(chunk.table, schema, cols)
                    if len(rows) < table.num_rows:
                        table = table.take(pa.array(rows))
                    found[name].append(_with_rows(table, rows + chunk.offset))
        names = list(reread)
        second = _map(lambda n: self._read_hits(directory / n, schema, cols, reread[n]), names)
        vanished = self._collect(directory, second, done, bad)
        for read in second:
            if read.status != "ok":
                found.pop(read.name, None)
                continue
            for chunk in read.chunks:
                assert chunk.table is not None
                rows = chunk.values.to_numpy(zero_copy_only=False) + chunk.offset
                found[read.name].append(_with_rows(chunk.table, rows))
        done.update(found)
        return vanished

    def _warn_stale_temps(self, directory: Path, temps: list[str]) -> None:
        now = time.time()
        for name in temps:
            path = directory / name
            try:
                age = now - path.stat().st_mtime
            except OSError:
                continue
            if age > STALE_TEMP_SECONDS:
                self._warn_once(
                    path,
                    "ignoring temporary cache file %s left by a writer that did not finish "
                    "(%.0f s old); `cf-transcribe cache compact` removes it",
                    path,
                    age,
                )

    def _lookup_table(self, keys: Iterable[str], columns: Sequence[str]) -> pa.Table:
        wanted = pa.array(keys if isinstance(keys, (list, tuple)) else list(keys), pa.string())
        if not len(wanted):
            return pa.table({c: pa.array([], pa.string()) for c in columns})
        table, *_ = self._scan(
            _RESULTS,
            RESULT_SCHEMA,
            [*columns, "created_at"] if "created_at" not in columns else columns,
            filter_col="key",
            wanted=pc.unique(wanted),
        )
        return _dedupe(table, ["key"], latest=False)

    def lookup(self, keys: Iterable[str]) -> dict[str, CachedRow]:
        """Return the cached rows for ``keys``; keys not cached are absent.

        Reads the key column of every part file once per call and matches all
        ``keys`` in one hash lookup, so a million keys against a million rows
        costs one pass over the files, not one per key.

        Args:
            keys: Cache keys (see :func:`cache_key`); duplicates are fine.

        Returns:
            ``{key: CachedRow}`` for every key found.
        """
        table = self._lookup_table(keys, _RESULT_COLUMNS)
        if table.num_rows == 0:
            return {}
        values = [
            _datetimes(table[c]) if c == "created_at" else table[c].to_pylist()
            for c in _RESULT_COLUMNS
        ]
        return {row.key: row for row in map(CachedRow, *values)}

    def lookup_results(self, keys: Iterable[str]) -> dict[str, tuple[str, float | None, str]]:
        """Return ``{key: (text, duration_s, model)}`` for the cached ``keys``.

        What a run needs of a hit: :meth:`lookup` without building
        :class:`CachedRow` objects (several times faster for many keys).
        """
        table = self._lookup_table(keys, ["key", "text", "duration_s", "model"])
        columns = [table[c].to_pylist() for c in ("text", "duration_s", "model")]
        return dict(zip(table["key"].to_pylist(), zip(*columns, strict=True), strict=True))

    def lookup_texts(self, keys: Iterable[str]) -> dict[str, str]:
        """Return ``{key: text}`` for the cached ``keys``: :meth:`lookup`, text only.

        Several times faster than :meth:`lookup` for very many keys, as no
        :class:`CachedRow` objects are built.
        """
        table = self._lookup_table(keys, ["key", "text"])
        return dict(zip(table["key"].to_pylist(), table["text"].to_pylist(), strict=True))

    def contains(self, key: str) -> bool:
        """Return whether ``key`` is cached."""
        return bool(self._lookup_table([key], ["key"]).num_rows > 0)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.contains(key)

    def __len__(self) -> int:
        """Return the number of distinct cached keys."""
        table, *_ = self._scan(_RESULTS, RESULT_SCHEMA, ["key"])
        return int(pc.count_distinct(table["key"]).as_py()) if table.num_rows else 0

    def _all_rows(self) -> pa.Table:
        table, *_ = self._scan(_RESULTS, RESULT_SCHEMA, _RESULT_COLUMNS)
        return _dedupe(table, ["key"], latest=False)

    # ----------------------------------------------------------------- writing

    def writer(
        self,
        *,
        flush_rows: int = 50,
        flush_seconds: float | None = 2.0,
        background: bool = False,
        merge_files: int | None = None,
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
            merge_files: Once the writer has written this many part files,
                it merges them into one (written atomically before they are
                deleted), so that a long run leaves few files to read. None
                (the default) never merges.
        """
        return CacheWriter(
            self,
            flush_rows=flush_rows,
            flush_seconds=flush_seconds,
            background=background,
            merge_files=merge_files,
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
        paths: list[str] = []
        sizes: list[int] = []
        mtimes: list[int] = []
        hashes: list[str] = []
        for path, size, mtime_ns, sha256 in entries:
            paths.append(_abspath(path))
            sizes.append(int(size))
            mtimes.append(int(mtime_ns))
            hashes.append(_norm_sha256(sha256))
        if not paths:
            return 0
        now = _utcnow()
        table = pa.table(
            {
                "path": paths,
                "size": sizes,
                "mtime_ns": mtimes,
                "sha256": hashes,
                "created_at": pa.array([now] * len(paths), _TS),
            },
            schema=MEMO_SCHEMA,
        )
        path = self._write_part(_MEMO, table, row_group_size=len(paths))
        self._remember(path, "path", table)
        return len(paths)

    def memo_put(self, path: StrPath, size: int, mtime_ns: int, sha256: str) -> None:
        """Remember one file's sha256; see :meth:`memo_put_many`."""
        self.memo_put_many([(path, size, mtime_ns, sha256)])

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
        given: list[tuple[StrPath, int, int]] = [(p, s, m) for p, s, m in entries]
        if not given:
            return {}
        paths = [_abspath(p) for p, _s, _m in given]
        query = pa.table(
            {
                "path": pa.array(paths, pa.string()),
                "size": pa.array([int(s) for _p, s, _m in given], pa.int64()),
                "mtime_ns": pa.array([int(m) for _p, _s, m in given], pa.int64()),
                "_q": _arange(len(given)),
            }
        )
        memo, *_ = self._scan(
            _MEMO,
            MEMO_SCHEMA,
            _MEMO_COLUMNS,
            filter_col="path",
            wanted=pc.unique(query["path"]),
        )
        if memo.num_rows == 0:
            return {}
        memo = memo.select([*_MEMO_KEY, "sha256", "created_at", "_file", "_row"])
        joined = query.join(memo, keys=_MEMO_KEY, join_type="inner", use_threads=False)
        if joined.num_rows > pc.count_distinct(joined["_q"]).as_py():
            # Remembered more than once: the latest created_at (then file, row) wins.
            order = [("_q", "ascending")] + [
                (c, "descending") for c in ("created_at", "_file", "_row")
            ]
            joined = joined.take(pc.sort_indices(joined, sort_keys=order))
            q = joined["_q"].to_numpy()
            first = np.ones(len(q), dtype=bool)
            first[1:] = q[1:] != q[:-1]
            joined = joined.filter(pa.array(first))
        found = zip(joined["_q"].to_pylist(), joined["sha256"].to_pylist(), strict=True)
        return {given[i]: sha for i, sha in found}

    def memo_get(self, path: StrPath, size: int, mtime_ns: int) -> str | None:
        """Return one file's remembered sha256, or None; see :meth:`memo_get_many`."""
        return next(iter(self.memo_get_many([(path, size, mtime_ns)]).values()), None)

    # ----------------------------------------------------------------- tools

    def stats(self) -> CacheStats:
        """Count what the cache holds (reads the small columns of every file)."""
        table, names, bad, temps = self._scan(
            _RESULTS, RESULT_SCHEMA, ["key", "model", "created_at"]
        )
        table = _dedupe(table, ["key"], latest=False)
        memo, memo_names, memo_bad, memo_temps = self._scan(_MEMO, MEMO_SCHEMA, _MEMO_KEY)
        models: dict[str, int] = {}
        oldest = newest = None
        if table.num_rows:
            counts = table.group_by("model").aggregate([("key", "count")])
            models = dict(
                sorted(
                    zip(counts["model"].to_pylist(), counts["key_count"].to_pylist(), strict=True)
                )
            )
            bounds = pc.min_max(table["created_at"])
            oldest, newest = (
                _datetimes(pa.array([bounds[k].value], _TS))[0] for k in ("min", "max")
            )
        memo_entries = 0
        if memo.num_rows:
            memo_entries = memo.group_by(_MEMO_KEY).aggregate([]).num_rows
        return CacheStats(
            path=self.path,
            rows=table.num_rows,
            files=len(names),
            bytes_on_disk=_dir_bytes(self.path),
            models=models,
            oldest=oldest,
            newest=newest,
            memo_entries=memo_entries,
            memo_files=len(memo_names),
            bad_files=len(bad) + len(memo_bad),
            temp_files=len(temps) + len(memo_temps),
        )

    def _compact_dir(
        self, sub: str, schema: pa.Schema, key_cols: list[str], latest: bool
    ) -> tuple[int, int, int]:
        """Merge the part files of ``sub``; return (files before, rows before, rows after)."""
        table, names, bad, _temps = self._scan(sub, schema, schema.names)
        ours = [n for n in names if _PART_RE.match(n)]
        files_before = len(names) + len(bad)
        if not ours:
            return files_before, 0, 0
        ranks = {n: i for i, n in enumerate(names)}
        mine = pc.is_in(table["_file"], value_set=pa.array([ranks[n] for n in ours], pa.int64()))
        table = table.filter(mine)
        merged = _dedupe(table, key_cols, latest=latest)
        if len(ours) < 2 and merged.num_rows == table.num_rows:
            return files_before, table.num_rows, table.num_rows
        # Name the merged file after its oldest input so it sorts where they did.
        first_ns = _oldest_ns(ours)
        merged = _sort(merged, latest=latest).select(schema.names).cast(schema)
        self._write_part(sub, merged, created_ns=first_ns, row_group_size=_COMPACT_ROW_GROUP)
        _remove_merged([self.path / sub / name for name in ours])
        return files_before, table.num_rows, merged.num_rows

    def _remove_temps(self, *, older_than: float | None) -> tuple[int, int]:
        removed = size = 0
        now = time.time()
        for sub in (_RESULTS, _MEMO):
            directory = self.path / sub
            for name in _list_dir(directory).temps:
                if not _OWN_TEMP_RE.match(name):
                    continue
                path = directory / name
                try:
                    st = path.stat()
                    if older_than is not None and now - st.st_mtime <= older_than:
                        continue
                    path.unlink()
                except OSError:
                    continue
                removed += 1
                size += st.st_size
        return removed, size

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
        if not self.path.exists():
            return CompactResult(0, 0, 0, 0, 0, 0, 0, 0, 0)
        bytes_before = _dir_bytes(self.path)
        files_before, rows_before, rows_after = self._compact_dir(
            _RESULTS, RESULT_SCHEMA, ["key"], latest=False
        )
        memo_before, _mr, _ma = self._compact_dir(_MEMO, MEMO_SCHEMA, _MEMO_KEY, latest=True)
        temps, _size = self._remove_temps(older_than=STALE_TEMP_SECONDS)
        return CompactResult(
            files_before=files_before,
            files_after=len(_list_dir(self.results_dir).parts),
            rows_before=rows_before,
            rows_after=rows_after,
            memo_files_before=memo_before,
            memo_files_after=len(_list_dir(self.memo_dir).parts),
            temp_files_removed=temps,
            bytes_before=bytes_before,
            bytes_after=_dir_bytes(self.path),
        )

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
        out = Path(out_path).expanduser()
        table = _sort(self._all_rows(), latest=False)
        table = table.select(list(_RESULT_COLUMNS)).cast(RESULT_SCHEMA)
        _write_parquet_atomic(
            table,
            out,
            temp_name=f".{out.name}.{uuid.uuid4().hex}.tmp",
            row_group_size=_COMPACT_ROW_GROUP,
        )
        return int(table.num_rows)

    def clear(self) -> ClearResult:
        """Delete the cache's files and, when then empty, its directories.

        Only files the cache names (part files, its temporary files, VERSION
        and README.txt) are deleted; anything else is kept and reported.
        Rows that other processes write during or after the call survive.

        Returns:
            A :class:`ClearResult`.
        """
        removed = size = 0
        kept: list[Path] = []
        for sub in (_RESULTS, _MEMO):
            directory = self.path / sub
            if not directory.is_dir():
                continue
            for entry in sorted(directory.iterdir()):
                if _PART_RE.match(entry.name) or _OWN_TEMP_RE.match(entry.name):
                    try:
                        st = entry.stat()
                        entry.unlink()
                    except FileNotFoundError:
                        continue
                    removed += 1
                    size += st.st_size
                else:
                    kept.append(entry)
            try:
                directory.rmdir()
            except OSError:
                pass
        if self.path.is_dir():
            for entry in sorted(self.path.iterdir()):
                own = entry.name in (_VERSION_FILE, _README_FILE) or (
                    entry.name.startswith((f".{_VERSION_FILE}.", f".{_README_FILE}."))
                    and entry.name.endswith(".tmp")
                )
                if own and entry.is_file():
                    try:
                        st = entry.stat()
                        entry.unlink()
                    except FileNotFoundError:
                        continue
                    removed += 1
                    size += st.st_size
                elif entry.name not in (_RESULTS, _MEMO):
                    kept.append(entry)
            try:
                self.path.rmdir()
            except OSError:
                pass
        return ClearResult(files_removed=removed, bytes_removed=size, kept=tuple(kept))


# --------------------------------------------------------------------------- the writer

_LIVE_WRITERS: weakref.WeakSet[CacheWriter] = weakref.WeakSet()


class CacheWriter:
    """Buffers finished rows and writes them to the cache in small atomic files.

    Thread-safe: :meth:`add` may be called from any thread (the engine calls
    it from the event loop). A batch becomes one part file when it reaches
    ``flush_rows`` rows, when its oldest row is ``flush_seconds`` old (a
    daemon timer thread, alive only while rows wait), on :meth:`flush` and on
    :meth:`close`. Writers still open at interpreter exit are closed then.

    Use it as a context manager, or call :meth:`close`.

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
        merge_files: int | None = None,
    ) -> None:
        if flush_rows < 1:
            raise ValueError(f"flush_rows must be at least 1, not {flush_rows}")
        if flush_seconds is not None and not flush_seconds > 0:
            raise ValueError(f"flush_seconds must be positive or None, not {flush_seconds}")
        self.cache = cache
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.background = background
        self.merge_files = merge_files
        self._unmerged: list[tuple[Path, pa.Table]] = []  # part files to merge (see merge_files)
        self.rows_written = 0
        self.files_written = 0
        self._cond = threading.Condition()
        self._flush_lock = threading.Lock()
        self._buf: list[_RowValues] = []
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
        self._extend([_row_values(row) for row in rows])

    def _add_result(
        self,
        key: str,
        sha256: str,
        text: str,
        duration_s: float | None,
        *,
        model: str,
        language: str | None,
        prompt: str | None,
        temperature: float | None,
        encode: str,
    ) -> None:
        """For the engine: ``add(CachedRow.new(...))`` (created now, ``key``
        computed by the caller) without building the CachedRow."""
        self._extend(
            [
                (
                    key,
                    _norm_sha256(sha256),
                    model,
                    language,
                    prompt,
                    _norm_temperature(temperature),
                    encode,
                    text,
                    duration_s,
                    time.time_ns() // 1000,
                    __version__,
                )
            ]
        )

    def _extend(self, batch: list[_RowValues]) -> None:
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
                    self._start_timer_locked()
            elif was_empty or (full and self.background):
                # Wake the thread only when its deadline moved: a first row (a new
                # age deadline) or a full batch; not once per row.
                self._cond.notify_all()
        if full and not self.background:
            self.flush()

    def _start_timer_locked(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="cf-transcribe-cache-writer", daemon=True
        )
        self._thread.start()

    def _next_flush_locked(self, now: float) -> float | None:
        """Monotonic time the buffered rows are due, or None for no deadline."""
        if not self._buf:
            return None
        due: float | None = None
        if self.background and len(self._buf) >= self.flush_rows:
            due = now
        if self.flush_seconds is not None and self._oldest is not None:
            by_age = self._oldest + self.flush_seconds
            due = by_age if due is None else min(due, by_age)
        if due is not None:
            due = max(due, self._retry_at)
        return due

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping or not self._buf:
                        self._thread = None  # idle: add() starts a new one
                        return
                    now = time.monotonic()
                    due = self._next_flush_locked(now)
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
                table = self.cache._rows_table(batch)
                path = self.cache._write_results(table, quick=self.merge_files is not None)
            except BaseException:
                with self._cond:
                    self._buf[:0] = batch
                    self._oldest = (
                        oldest if self._oldest is None else min(oldest or 0.0, self._oldest)
                    )
                raise
            with self._cond:
                self.rows_written += len(batch)
                self.files_written += 1
                self._retry_at = 0.0
            if self.merge_files is not None:
                self._unmerged.append((path, table))
                if len(self._unmerged) >= self.merge_files:
                    parts, self._unmerged = self._unmerged, []
                    try:
                        self.cache._merge_results(parts)
                    except Exception:  # the small files are still there: nothing is lost
                        logger.warning("could not merge cache part files", exc_info=True)
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

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@atexit.register
def _close_live_writers() -> None:
    for writer in list(_LIVE_WRITERS):
        try:
            writer.close()
        except Exception:
            logger.warning("could not write cache rows at exit", exc_info=True)
