"""Remote objects known by their metadata alone: the memo key of an ``s3://``, ``gs://``,
... object is (URL, size, stamp), where the stamp stands for its ETag (else its
version id, generation or modification time). One listing serves the rows that
share a directory; a lone row costs one ``info`` call. Nothing is downloaded."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..errors import AudioError, StorageAccessError
from .remote import short_url, storage_failure
from .sources import Source
from .storage import StorageOptions, check_storage_options

__all__ = ["ObjectStats", "object_stamp", "stat_objects"]

StatKey = tuple[str, int, int]

_INFO_THREADS = 16
_INFO_CHUNK = 256
"""``info`` calls in flight at once, and how many are made before failures are looked at."""

_STAMP_FIELDS = (
    "ETag",
    "etag",
    "md5Hash",
    "generation",
    "VersionId",
    "version_id",
    "LastModified",
    "last_modified",
    "mtime",
    "updated",
    "created",
)
"""What stands for an object's content, best first: S3/R2/Azure ETag, GCS md5 and
generation, version ids, then modification times."""


def object_stamp(info: Mapping[str, Any]) -> int | None:
    """A signed 64-bit number standing for the object's version, or None when the
    storage tells nothing that changes with the content."""
    for name in _STAMP_FIELDS:
        value = info.get(name)
        if value is not None and value != "":
            digest = hashlib.sha256(f"{name}={value}".encode()).digest()
            return int.from_bytes(digest[:8], "big", signed=True)
    return None


@dataclass
class ObjectStats:
    """The metadata of some fsspec sources.

    Attributes:
        keys: One entry a source: its memo key (URL, size, stamp); None when
            the storage gives no stamp (the object is read to be known); or
            the row's :class:`AudioError` (no such object, ...).
        stop: Set when the storage refused the credentials, has no such
            bucket or cannot be reached; the sources after it are left None.
    """

    keys: list[StatKey | AudioError | None]
    stop: StorageAccessError | None = None


def _stat_key(url: str, info: Mapping[str, Any]) -> StatKey | None:
    size, stamp = info.get("size"), object_stamp(info)
    if not isinstance(size, int) or stamp is None or info.get("type") == "directory":
        return None
    return (short_url(url), size, stamp)


class _Stat:
    """One :func:`stat_objects` call."""

    def __init__(
        self,
        sources: Sequence[Source],
        storage: StorageOptions | None,
        cancelled: Callable[[], bool],
    ) -> None:
        self.sources, self.storage, self.cancelled = sources, storage, cancelled
        self.stats = ObjectStats([None] * len(sources))
        self.fss: dict[str, Any] = {}
        self.seen: set[tuple[int, str]] = set()  # (fs, bucket) that answered once

    def locate(self, url: str) -> tuple[Any, str]:
        import fsspec

        scheme = url.split("://", 1)[0]
        if "::" in url or scheme not in self.fss:
            fs, path = fsspec.core.url_to_fs(url, **(self.storage.kwargs() if self.storage else {}))
            if "::" not in url:
                self.fss[scheme] = fs
            return fs, str(path)
        return self.fss[scheme], str(fsspec.core.strip_protocol(url))

    def failed(self, pos: int, exc: Exception, bucket: tuple[int, str]) -> bool:
        """Record a failure; True when it stops everything."""
        failure = storage_failure(
            exc, self.sources[pos].label, self.storage, first=bucket not in self.seen
        )
        if isinstance(failure, StorageAccessError):
            self.stats.stop = failure
            return True
        self.stats.keys[pos] = failure
        return False

    def run(self) -> ObjectStats:
        groups: dict[tuple[int, str], list[tuple[int, str]]] = {}
        fs_by_id: dict[int, Any] = {}
        for pos, source in enumerate(self.sources):
            try:
                fs, path = self.locate(source.url or "")
            except Exception as exc:
                if self.failed(pos, exc, (0, "")):
                    return self.stats
                continue
            fs_by_id[id(fs)] = fs
            groups.setdefault((id(fs), path.rpartition("/")[0]), []).append((pos, path))
        singles: list[tuple[Any, int, str]] = []
        for (fs_id, parent), members in groups.items():
            if self.cancelled():
                return self.stats
            if len(members) == 1:
                singles.append((fs_by_id[fs_id], *members[0]))
            elif self.listed(fs_by_id[fs_id], parent, members):
                return self.stats
        self.singles(singles)
        return self.stats

    def listed(self, fs: Any, parent: str, members: list[tuple[int, str]]) -> bool:
        """The rows of one directory, from one listing; True when the run must stop."""
        listing: dict[str, Any] = {}
        try:
            fs.invalidate_cache(parent)  # a listing cached by an earlier run may be stale
            listing = {e["name"]: e for e in fs.ls(parent, detail=True)}
        except Exception as exc:  # listing may be denied where reading is not
            label = (self.sources[members[0][0]].url or "").rpartition("/")[0] + "/"
            failure = storage_failure(exc, label, self.storage)
            if isinstance(failure, StorageAccessError):
                self.stats.stop = failure
                return True
        else:
            self.seen.add((id(fs), parent.split("/", 1)[0]))
        for pos, path in members:  # not listed: info (from the fresh listing, if any)
            if self.settle(fs, pos, path, listing.get(path) or _info(fs, path, not listing)):
                return True
        return False

    def singles(self, singles: list[tuple[Any, int, str]]) -> None:
        """Rows alone in their directory: ``info`` calls, several at once, a chunk at a
        time (refused credentials stop it after one chunk)."""
        if not singles:
            return
        with ThreadPoolExecutor(_INFO_THREADS, thread_name_prefix="cf-stat") as pool:
            for start in range(0, len(singles), _INFO_CHUNK):
                if self.cancelled():
                    return
                chunk = singles[start : start + _INFO_CHUNK]
                infos = pool.map(lambda s: _info(s[0], s[2], True), chunk)
                for (fs, pos, path), info in zip(chunk, infos, strict=True):
                    if self.settle(fs, pos, path, info):
                        return

    def settle(self, fs: Any, pos: int, path: str, info: Mapping[str, Any] | Exception) -> bool:
        """Record one row's metadata or failure; True when the run must stop."""
        bucket = (id(fs), path.split("/", 1)[0])
        if isinstance(info, Exception):
            return self.failed(pos, info, bucket)
        self.seen.add(bucket)
        self.stats.keys[pos] = _stat_key(self.sources[pos].url or "", info)
        return False


def _info(fs: Any, path: str, fresh: bool) -> Mapping[str, Any] | Exception:
    try:
        if fresh:
            fs.invalidate_cache(path)
        info: Mapping[str, Any] = fs.info(path)
    except Exception as exc:  # storages raise anything; storage_failure sorts it
        return exc
    return info


def stat_objects(
    sources: Sequence[Source],
    storage_options: Mapping[str, Any] | None,
    cancelled: Callable[[], bool] = lambda: False,
) -> ObjectStats:
    """The memo keys of fsspec sources, from metadata calls only (blocking).

    Rows in one directory share one listing (``fs.ls``, fresh: cached listings
    are dropped first); a row alone costs one ``fs.info``. An object missing
    is its row's ``file_not_found``; refused credentials, a missing bucket or
    an unreachable endpoint stop the lot (:attr:`ObjectStats.stop`).

    Args:
        sources: Sources of kind ``"fsspec"``.
        storage_options: The run's ``storage_options``.
        cancelled: Looked at between listings and chunks of ``info`` calls: when
            it turns True, the sources not done yet are left None.
    """
    return _Stat(sources, check_storage_options(storage_options), cancelled).run()
