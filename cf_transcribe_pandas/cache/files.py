"""Part file names and atomic writes: a reader sees a whole file or no file.

A part file is named ``{created_ns:020d}-{pid}-{uuid4 hex}.parquet`` and is
written under a temporary name (``.<name>.tmp``, which readers ignore) in the
same directory, fsynced, renamed into place with :func:`os.replace`, and the
directory is fsynced.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cf_transcribe_pandas.cache.modes import create_file

__all__ = [
    "OWN_TEMP_RE",
    "PART_RE",
    "ROW_GROUP_ROWS",
    "dir_bytes",
    "new_part_name",
    "part_ns",
    "write_parquet_atomic",
]

#: Rows per row group of a part file (a lookup hit reads one row group).
ROW_GROUP_ROWS = 4096

PART_RE = re.compile(r"^(\d{20})-(\d+)-([0-9a-f]{32})\.parquet$")
OWN_TEMP_RE = re.compile(r"^\.\d{20}-\d+-[0-9a-f]{32}\.parquet\.tmp$")


def new_part_name(created_ns: int | None = None) -> str:
    """A fresh part file name, unique per process and call."""
    ns = time.time_ns() if created_ns is None else created_ns
    return f"{ns:020d}-{os.getpid()}-{uuid.uuid4().hex}.parquet"


def part_ns(name: str) -> int | None:
    """The creation time (ns) in a part file name, or None for another name."""
    match = PART_RE.match(name)
    return int(match.group(1)) if match else None


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


def write_parquet_atomic(
    tables: Sequence[pa.Table],
    final: Path,
    schema: pa.Schema,
    *,
    temp: str | None = None,
    mode: int = 0o666,
) -> int:
    """Write ``tables`` as one zstd Parquet file at ``final``, atomically.

    The rows go to a temporary file in the same directory (``temp``, default
    ``.<name>.tmp``), in row groups of :data:`ROW_GROUP_ROWS`; it is fsynced
    and renamed into place, then the directory is fsynced. On any error the
    temporary file is removed. The file is created with ``mode`` (less the umask).

    Returns:
        The number of rows written.
    """
    table = pa.concat_tables(
        [t.select(schema.names).cast(schema) for t in tables] or [schema.empty_table()]
    )
    tmp = final.with_name(temp or f".{final.name}.tmp")
    try:
        with create_file(tmp, mode) as fh:
            pq.write_table(table, fh, row_group_size=ROW_GROUP_ROWS, compression="zstd")
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
    return int(table.num_rows)


def dir_bytes(root: Path) -> int:
    """Size of every file under ``root``."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
