"""Merging part files, so that a long run never leaves the next one thousands to read.

A run writes a small part file every few seconds. After each write, the
directory's part files are sorted into size classes (powers of 16 bytes);
a class that holds :data:`MERGE_FILES` files below :data:`MERGE_MAX_BYTES`
is merged into one file, which lands in the next class. So a directory
holds at most ``MERGE_FILES - 1`` files per class plus large ones (even
after a ``kill -9``), and a row is rewritten about once per class (log16 of
the directory's size). A writer that closes merges the small files it made
into one, so a finished run leaves one or a few files.

A merge is crash-safe and safe beside other readers and writers: the merged
file is written atomically (named after its oldest input, so it sorts where
they did) before the inputs are deleted, and only the files it read are
deleted. Two processes merging the same files at once leave duplicate rows,
which lookups resolve and ``Cache.compact`` removes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Sequence

import pyarrow as pa

from cf_transcribe_pandas.cache.parts import PART_RE, BadFile, PartDir, part_ns

__all__ = ["MERGE_FILES", "MERGE_MAX_BYTES", "merge", "merge_small"]

logger = logging.getLogger("cf_transcribe_pandas.cache")

#: A size class is merged once it holds this many part files.
MERGE_FILES = 16

#: Part files this large are merged only by ``Cache.compact``.
MERGE_MAX_BYTES = 4 * 1024 * 1024


def _size_class(size: int) -> int:
    return int(math.log(max(size, 1), 16))


def merge(parts: PartDir, names: Sequence[str]) -> str | None:
    """Write the rows of the part files ``names`` as one part file, then delete them.

    Files that are gone (merged by someone else) or unreadable (warned about,
    and kept) are left out.

    Returns:
        The merged file's name, or None when fewer than two files were read.
    """
    read: list[str] = []
    tables: list[pa.Table] = []
    for name in names:
        try:
            tables.append(parts.read(name, parts.schema.names))
        except FileNotFoundError:
            continue
        except (BadFile, pa.ArrowException, OSError, ValueError) as exc:
            parts.warn_bad(name, exc)
            continue
        read.append(name)
    if len(read) < 2:
        return None
    merged = parts.write(tables, created_ns=min(part_ns(n) or 0 for n in read))
    parts.remove(read)
    return merged


def merge_small(parts: PartDir, *, among: Collection[str] | None = None) -> list[str]:
    """Merge small part files: every size class that has grown to :data:`MERGE_FILES`.

    A failure is logged, not raised: the files are still there, nothing is lost.

    Args:
        parts: The directory.
        among: Instead, merge these files (those still there and small) into
            one, whatever their classes: what a writer does with its own
            files when it closes.

    Returns:
        The names of the files written.
    """
    listing = parts.listing()
    groups: dict[int, list[str]] = {}
    for name in listing.parts:
        size = listing.sizes[name]
        if PART_RE.match(name) and size < MERGE_MAX_BYTES:
            if among is None:
                groups.setdefault(_size_class(size), []).append(name)
            elif name in among:
                groups.setdefault(0, []).append(name)
    written: list[str] = []
    for names in groups.values():
        if len(names) >= (MERGE_FILES if among is None else 2):
            try:
                merged = merge(parts, names)
            except Exception:
                logger.warning("could not merge cache part files in %s", parts.path, exc_info=True)
            else:
                written += [merged] if merged else []
    return written
