"""Part files: one directory of immutable Parquet files of one schema.

A part file is named ``{created_ns:020d}-{pid}-{uuid4 hex}.parquet`` and is
written under a temporary name (``.<name>.tmp``, which readers ignore) in the
same directory, fsynced, renamed into place with :func:`os.replace`, and the
directory is fsynced: a reader sees a whole file or no file. Files that are
not readable cache files (empty, truncated, foreign) are skipped with one
warning per file and :class:`PartDir`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cf_transcribe_pandas.cache.files import new_part_name, write_parquet_atomic
from cf_transcribe_pandas.cache.keys import CACHE_SCHEMA_VERSION
from cf_transcribe_pandas.cache.modes import PRIVATE_FILE, create_file, dir_mode, make_root

__all__ = [
    "README_FILE",
    "STALE_TEMP_SECONDS",
    "VERSION_FILE",
    "BadFile",
    "Listing",
    "PartDir",
    "WarnOnce",
    "present",
]

logger = logging.getLogger("cf_transcribe_pandas.cache")

#: A temporary file older than this (seconds) is left over from a killed writer.
STALE_TEMP_SECONDS = 3600.0

_TEMP_RE = re.compile(r"^\..+\.tmp$")

VERSION_FILE = "VERSION"
README_FILE = "README.txt"
_README_TEXT = """\
This directory is the result cache of cf-transcribe-pandas.

results/*.parquet  finished transcripts, one row per (audio sha256, model,
                   language, prompt, temperature, encode); read them with
                   pandas.read_parquet("results/").
memo/*.parquet     (path, size, mtime_ns) -> sha256, so reruns skip hashing
                   (for bucket objects: URL, size and a stamp of the ETag).

Files are immutable and written atomically; any number of processes may
write here at once. Manage it with `cf-transcribe cache stats|compact|export|clear`.
"""


class BadFile(Exception):
    """A part file that is not a readable cache file of the expected kind."""


class WarnOnce:
    """Logs a warning about a file once per (path, size, mtime); thread-safe."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, int, int]] = set()
        self._lock = threading.Lock()

    def __call__(self, path: Path, message: str, *args: object) -> None:
        try:
            st = path.stat()
            ident = (str(path), st.st_size, st.st_mtime_ns)
        except OSError:
            ident = (str(path), -1, -1)
        with self._lock:
            if ident in self._seen:
                return
            self._seen.add(ident)
        logger.warning(message, *args)


@dataclass(frozen=True)
class Listing:
    """The names in a part directory, sorted; sizes of the part files when asked for."""

    parts: list[str]
    temps: list[str]
    sizes: dict[str, int]


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if pa.types.is_null(actual):
        return True
    if pa.types.is_string(expected):
        return bool(pa.types.is_string(actual) or pa.types.is_large_string(actual))
    if pa.types.is_floating(expected):
        return bool(pa.types.is_floating(actual) or pa.types.is_integer(actual))
    if pa.types.is_integer(expected):
        return bool(pa.types.is_integer(actual))
    if pa.types.is_timestamp(expected):
        return bool(pa.types.is_timestamp(actual))
    if pa.types.is_list(expected):  # nested: the cast in `conform` checks the rest
        return bool(pa.types.is_list(actual) or pa.types.is_large_list(actual))
    return bool(actual == expected)


class PartDir:
    """One directory of part files (``results/`` or ``memo/``) of one schema.

    Creating one touches nothing on disk: the directory (and the cache's
    VERSION and README.txt beside it) is made by the first :meth:`write`, and
    again if it has gone since.

    Args:
        root: The cache directory.
        sub: The subdirectory's name.
        schema: The columns of its part files.
        warn: Where warnings about bad files go (shared by a Cache's directories).
        added: Nullable columns added to the schema later: a file without them
            is read with nulls there.
        own: ``root`` is the per-user default directory (see :mod:`.modes`).
    """

    def __init__(
        self,
        root: Path,
        sub: str,
        schema: pa.Schema,
        warn: WarnOnce,
        added: Sequence[str] = (),
        *,
        own: bool = False,
    ) -> None:
        self.root = root
        self.path = root / sub
        self.schema = schema
        self.warn = warn
        self.own = own
        self.file_mode = PRIVATE_FILE
        self.added = frozenset(added)
        self._made = False

    def listing(self, *, sizes: bool = False) -> Listing:
        """List the part files and temporary files; warn once about stale temporaries.

        Args:
            sizes: Also stat each part file for its size (else ``sizes`` is empty).
        """
        parts: list[str] = []
        temps: list[str] = []
        part_sizes: dict[str, int] = {}
        try:
            with os.scandir(self.path) as it:
                for entry in it:
                    name = entry.name
                    if name.startswith("."):
                        if _TEMP_RE.match(name):
                            temps.append(name)
                    elif name.endswith(".parquet"):
                        parts.append(name)
                        if sizes:
                            try:
                                part_sizes[name] = entry.stat().st_size
                            except OSError:
                                part_sizes[name] = 0
        except (FileNotFoundError, NotADirectoryError):
            pass
        parts.sort()
        temps.sort()
        self._warn_stale(temps)
        return Listing(parts, temps, part_sizes)

    def _warn_stale(self, temps: list[str]) -> None:
        now = time.time()
        for name in temps:
            path = self.path / name
            try:
                age = now - path.stat().st_mtime
            except OSError:
                continue
            if age > STALE_TEMP_SECONDS:
                self.warn(
                    path,
                    "ignoring temporary cache file %s left by a writer that did not finish "
                    "(%.0f s old); `cf-transcribe cache compact` removes it",
                    path,
                    age,
                )

    def warn_bad(self, name: str, error: BaseException) -> None:
        """Warn (once) that a part file is skipped."""
        path = self.path / name
        self.warn(path, "skipping unreadable cache file %s: %s", path, error)

    # ------------------------------------------------------------- writing

    def _ensure(self) -> None:
        self.file_mode = make_root(self.root, own=self.own)  # private unless shared on purpose
        self.path.mkdir(mode=dir_mode(self.file_mode), exist_ok=True)
        for name, text in (
            (VERSION_FILE, f"{CACHE_SCHEMA_VERSION}\n"),
            (README_FILE, _README_TEXT),
        ):
            target = self.root / name
            if target.exists():
                continue
            tmp = self.root / f".{name}.{uuid.uuid4().hex}.tmp"
            try:
                with create_file(tmp, self.file_mode) as fh:
                    fh.write(text.encode("utf-8"))
                os.replace(tmp, target)
            except OSError:  # not essential; never fail a write over it
                try:
                    tmp.unlink()
                except OSError:
                    pass

    def write(self, tables: Sequence[pa.Table], *, created_ns: int | None = None) -> str:
        """Write one part file atomically; return its name.

        Args:
            tables: The rows (any table with the schema's columns).
            created_ns: The time in its name (default now); a merged file is
                named after its oldest input so that it sorts where they did.
        """
        for attempt in range(2):
            if not self._made:  # once per PartDir, and again if the directory has gone
                self._ensure()
                self._made = True
            name = new_part_name(created_ns)
            try:
                write_parquet_atomic(tables, self.path / name, self.schema, mode=self.file_mode)
            except FileNotFoundError:
                self._made = False
                if attempt:
                    raise
            else:
                return name
        raise AssertionError("unreachable: the second attempt returns or raises")

    def remove(self, names: Iterable[str]) -> None:
        """Delete part files whose rows another file now holds."""
        for name in names:
            try:
                (self.path / name).unlink()
            except FileNotFoundError:  # merged by someone else meanwhile
                pass
            except OSError as exc:  # e.g. open on Windows; its rows are duplicates now
                logger.warning("could not remove merged cache file %s: %s", self.path / name, exc)

    # ------------------------------------------------------------- reading

    def open(
        self, name: str, columns: Sequence[str], metadata: pq.FileMetaData | None = None
    ) -> pq.ParquetFile:
        """Open a part file and check it has ``columns`` with the schema's types.

        Args:
            name: The file's name.
            columns: The columns that will be read.
            metadata: The file's footer, when it was read before (files never change).

        Raises:
            FileNotFoundError: The file is gone (merged by a compaction).
            BadFile: It is not a readable cache file.
        """
        path = self.path / name
        try:
            pf = pq.ParquetFile(path, metadata=metadata)
            file_schema = pf.schema_arrow
        except Exception as exc:
            if not path.exists():
                raise FileNotFoundError(str(path)) from exc
            if path.stat().st_size == 0:
                raise BadFile("empty file") from exc
            raise BadFile(f"not a readable Parquet file ({exc})") from exc
        if file_schema.equals(self.schema, check_metadata=False):
            return pf
        missing = [
            c for c in self.schema.names if c not in file_schema.names and c not in self.added
        ]
        if missing:
            raise BadFile(f"not a cache file: missing columns {missing}")
        for column in columns:
            if column not in file_schema.names:
                continue  # an added column, read as nulls
            actual = file_schema.field(column).type
            if not _compatible(actual, self.schema.field(column).type):
                raise BadFile(f"column {column!r} has type {actual}")
        return pf

    def conform(self, table: pa.Table, columns: Sequence[str]) -> pa.Table:
        """``columns`` of ``table`` in that order, typed as the schema says (all nullable);
        an added column the file lacks is all nulls."""
        for column in columns:
            if column not in table.column_names:
                kind = self.schema.field(column).type
                table = table.append_column(column, pa.nulls(table.num_rows, kind))
        table = table.select(list(columns))
        target = pa.schema([self.schema.field(c).with_nullable(True) for c in columns])
        return table if table.schema.equals(target) else table.cast(target)

    def read(self, name: str, columns: Sequence[str]) -> pa.Table:
        """Read ``columns`` of a whole part file (see :meth:`open` for errors)."""
        pf = self.open(name, columns)
        table = pf.read(columns=present(pf, columns), use_threads=False)
        return self.conform(table, columns)


def present(pf: pq.ParquetFile, columns: Sequence[str]) -> list[str]:
    """The ones of ``columns`` the file has (an older file lacks the added ones)."""
    names = pf.schema_arrow.names
    return [c for c in columns if c in names]
