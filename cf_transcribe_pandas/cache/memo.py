"""The path -> sha256 memo: a rerun knows a file's hash by (path, size, mtime_ns), and a
bucket object's by (URL, size, a 64-bit stamp of its ETag or version) in the same columns.

Entries are memo part files (:data:`~cf_transcribe_pandas.cache.rows.MEMO_SCHEMA`)
under ``memo/``, looked up through a key index on ``path``. A file whose size
or mtime changed is a miss; when one (path, size, mtime_ns) was remembered
with several hashes, the latest ``created_at`` wins (then the file name,
then the row).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cf_transcribe_pandas.cache.index import KeyIndex
from cf_transcribe_pandas.cache.keys import norm_sha256
from cf_transcribe_pandas.cache.merge import merge_small
from cf_transcribe_pandas.cache.parts import PartDir
from cf_transcribe_pandas.cache.rows import MEMO_SCHEMA, TIMESTAMP

__all__ = ["Memo", "StrPath"]

StrPath = str | os.PathLike[str]

_KEY = ["path", "size", "mtime_ns"]


def _abspath(path: StrPath) -> str:
    text = os.fspath(path)
    return text if "://" in text else os.path.abspath(text)  # fsspec URLs are absolute


class Memo:
    """The memo part files of one cache directory.

    Args:
        parts: The ``memo/`` directory.
    """

    def __init__(self, parts: PartDir) -> None:
        self.parts = parts
        self.index = KeyIndex(parts, "path")

    def put_many(self, entries: Iterable[tuple[StrPath, int, int, str]]) -> int:
        """Write one memo part file of ``(path, size, mtime_ns, sha256)`` entries.

        Returns:
            The number of entries written.
        """
        rows = [(_abspath(p), int(s), int(m), norm_sha256(h)) for p, s, m, h in entries]
        if not rows:
            return 0
        paths, sizes, mtimes, hashes = zip(*rows, strict=True)
        now = dt.datetime.now(dt.timezone.utc)
        table = pa.table(
            {
                "path": pa.array(paths, pa.string()),
                "size": pa.array(sizes, pa.int64()),
                "mtime_ns": pa.array(mtimes, pa.int64()),
                "sha256": pa.array(hashes, pa.string()),
                "created_at": pa.array([now] * len(rows), TIMESTAMP),
            },
            schema=MEMO_SCHEMA,
        )
        self.parts.write([table])
        merge_small(self.parts)
        return len(rows)

    def get_many(
        self, entries: Iterable[tuple[StrPath, int, int]]
    ) -> dict[tuple[StrPath, int, int], str]:
        """The remembered sha256 of the entries found, keyed by the tuples as given."""
        given = [(p, s, m) for p, s, m in entries]
        if not given:
            return {}
        paths = [_abspath(p) for p, _s, _m in given]
        wanted = list(dict.fromkeys(paths))
        chunks = self.index.lookup(
            wanted, ["size", "mtime_ns", "sha256", "created_at"], earliest=False
        )
        if not chunks:
            return {}
        found = pa.concat_tables(
            [
                c.table.append_column("path", pa.array(wanted, pa.string()).take(c.wanted))
                .append_column("_file", pa.array(np.full(len(c.rows), c.rank, np.int64)))
                .append_column("_row", pa.array(c.rows, pa.int64()))
                for c in chunks
            ]
        )
        query = pa.table(
            {
                "path": pa.array(paths, pa.string()),
                "size": pa.array([int(s) for _p, s, _m in given], pa.int64()),
                "mtime_ns": pa.array([int(m) for _p, _s, m in given], pa.int64()),
                "_q": pa.array(np.arange(len(given), dtype=np.int64)),
            }
        )
        joined = query.join(found, keys=_KEY, join_type="inner", use_threads=False)
        # The latest created_at (then file, row) wins: sort so, keep each query's first.
        order = [("_q", "ascending")] + [(c, "descending") for c in ("created_at", "_file", "_row")]
        joined = joined.take(pc.sort_indices(joined, sort_keys=order))
        q = joined["_q"].to_numpy()
        first = np.ones(len(q), dtype=bool)
        first[1:] = q[1:] != q[:-1]
        hits = zip(
            q[first].tolist(), joined["sha256"].filter(pa.array(first)).to_pylist(), strict=True
        )
        return {given[i]: sha for i, sha in hits}
