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

from cf_transcribe_pandas.cache.files import PART_RE, part_ns
from cf_transcribe_pandas.cache.parts import BadFile, PartDir

__all__ = ["MERGE_FILES", "MERGE_MAX_BYTES", "merge", "merge_own", "merge_small"]

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


def _small_parts(parts: PartDir) -> list[tuple[str, int]]:
    """(name, size) of the part files the cache named that are small enough to merge."""
    listing = parts.listing(sizes=True)
    sizes = listing.sizes
    return [(n, sizes[n]) for n in listing.parts if PART_RE.match(n) and sizes[n] < MERGE_MAX_BYTES]


def _merge_each(parts: PartDir, batches: list[list[str]]) -> list[str]:
    written: list[str] = []
    for names in batches:
        try:
            merged = merge(parts, names)
        except Exception:  # the files are still there: nothing is lost
            logger.warning("could not merge cache part files in %s", parts.path, exc_info=True)
        else:
            written += [merged] if merged else []
    return written


def merge_small(parts: PartDir) -> list[str]:
    """Merge, :data:`MERGE_FILES` at a time, the small part files of every size
    class that holds that many. A failure is logged, not raised.

    Returns:
        The names of the files written.
    """
    classes: dict[int, list[str]] = {}
    for name, size in _small_parts(parts):
        classes.setdefault(_size_class(size), []).append(name)
    batches = [
        names[start : start + MERGE_FILES]
        for names in classes.values()
        for start in range(0, len(names) - MERGE_FILES + 1, MERGE_FILES)
    ]
    return _merge_each(parts, batches)


def merge_own(parts: PartDir, made: Collection[str]) -> None:
    """Merge the small part files in ``made`` that are still there into one
    (what a writer does with the files it made when it closes)."""
    names = [name for name, _size in _small_parts(parts) if name in made]
    _merge_each(parts, [names] if len(names) > 1 else [])
