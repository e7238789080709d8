"""Planning a run, in a thread, before anything is sent.

For every row: NA is skipped; the audio's :class:`~cf_transcribe_pandas.audio.Source`
(nothing read); its sha256 when that is cheap: in-memory audio is hashed now,
a passed-through URL hashes its text, local files and remote objects are
looked up in the path -> sha256 memo (one batched query on path, size and
mtime; for objects: URL, size and ETag, from one listing a directory or one
``info`` call, :func:`~cf_transcribe_pandas.audio.stat_objects`). Then ONE
cache lookup for every key known: cached rows are done here, written straight
into the :class:`RunResult` (no object per row). The other rows become jobs:
one per distinct key (later rows with the same audio and parameters follow
the first), and one per row whose key is known only once its audio is read
(local files and objects not in the memo, downloaded URLs). A storage that
refuses the credentials or cannot be reached stops the run (:attr:`Plan.stop`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

from cf_transcribe_pandas.audio import (
    Source,
    local_path,
    path_stat_key,
    sha256_of,
    stat_objects,
    to_source,
)
from cf_transcribe_pandas.cache import KeyMaker
from cf_transcribe_pandas.engine.context import RunContext
from cf_transcribe_pandas.engine.control import Stopped
from cf_transcribe_pandas.engine.outcome import Hit, Outcome, unexpected
from cf_transcribe_pandas.engine.results import RunResult
from cf_transcribe_pandas.errors import AudioError, StorageAccessError, TranscribeError

if TYPE_CHECKING:
    from cf_transcribe_pandas.options import TranscribeOptions

__all__ = ["Job", "Plan", "Planner", "StatKey", "keys_for"]

logger = logging.getLogger("cf_transcribe_pandas")

StatKey = tuple[str, int, int]
"""A memo key: a local file's (resolved path, size, mtime_ns), an object's (URL, size, stamp)."""

_CHECK_EVERY = 1024
"""Rows between two looks at whether the run was cancelled."""


@dataclass(slots=True, eq=False)
class Job:
    """Audio to send: its first row, and the later rows with the same key (followers).

    Attributes:
        row: The first row.
        source: Its audio.
        key: Its cache key; None until a worker has read and hashed the audio.
        sha256: The audio's sha256 (same rule as ``key``).
        stat_key: A local file's memo key, taken before the file is read.
        size: About how many bytes the audio has, when known.
        followers: Rows that copy this row's outcome.
        outcome: The outcome, once the job is done (later duplicates copy it).
    """

    row: int
    source: Source
    key: str | None = None
    sha256: str | None = None
    stat_key: StatKey | None = None
    size: int | None = None
    followers: list[int] = field(default_factory=list)
    outcome: Outcome | None = None


@dataclass
class Plan:
    """What is left to do once the cache has been asked.

    Attributes:
        jobs: Audio to send (or to read first), in row order.
        groups: The jobs whose key is known, by key.
        cached: Rows filled from the cache (already written into the result).
        failed: Rows that failed before anything was sent, with their error.
        skipped: NA rows.
        stop: Why nothing can be sent (the storage refused the credentials), or None.
    """

    jobs: list[Job]
    groups: dict[str, Job]
    cached: list[int]
    failed: list[tuple[int, TranscribeError]]
    skipped: list[int]
    stop: StorageAccessError | None = None


def keys_for(options: TranscribeOptions) -> KeyMaker:
    """The cache keys of a run's rows: ``keys_for(opts).key(sha256, language, prompt)``."""
    return KeyMaker(
        model=options.model,
        temperature=options.temperature,
        encode=options.encode,
        options=options.model_options(),
    )


def _check_https(source: Source) -> None:
    if not (source.url or "").lower().startswith("https://"):
        raise AudioError(
            f"{source.label}: the service takes https:// URLs only; use https, "
            "or fetch_urls=True to download the file and send its audio",
            code="unsupported_input",
        )


class Planner:
    """Makes a run's :class:`Plan` (blocking: call :meth:`plan` in a thread).

    Args:
        values: One audio value per row.
        languages: One language (or None) per row.
        prompts: One prompt (or None) per row.
        options: The run's options.
        context: The run's credentials, cache and pacing.
        cancelled: Set when the run is cancelled; the plan then stops early.
    """

    def __init__(
        self,
        values: Sequence[Any],
        languages: Sequence[str | None],
        prompts: Sequence[str | None],
        options: TranscribeOptions,
        context: RunContext,
        cancelled: threading.Event,
    ) -> None:
        self._values = values
        self._languages = languages
        self._prompts = prompts
        self._opts = options
        self._ctx = context
        self._cancelled = cancelled
        self._real_dirs: dict[str, str] = {}
        self._keyed: list[tuple[int, str, StatKey | None]] = []  # (row, sha256, stat key)
        self._paths: list[tuple[int, StatKey, str]] = []  # local files (row, key, fspath)
        self._objects: list[tuple[int, Source]] = []  # fsspec objects, for the memo
        self._stop: StorageAccessError | None = None
        self._unkeyed: list[Job] = []
        self._failed: list[tuple[int, TranscribeError]] = []
        self._skipped: list[int] = []

    def plan(self, result: RunResult) -> Plan:
        """Classify every row, ask the memo and the cache; fill ``result`` with the hits.

        Raises:
            Stopped: the run was cancelled meanwhile.
        """
        secret = self._ctx.credentials.api_token
        for row in range(len(self._values)):
            self._check(row)
            try:
                self._classify(row)
            except TranscribeError as exc:
                self._failed.append((row, exc))
            except Exception as exc:  # a bug must cost one row, not the run
                self._failed.append((row, unexpected(exc, f"row {row}", secret)))
        self._read_memo()
        self._keyed.sort(key=itemgetter(0))
        keys = self._keys()
        cache = self._ctx.cache
        timed = self._opts.timestamps is not None and self._opts.timestamps is not False
        hits = cache.lookup_results(keys, segments=timed) if cache is not None and keys else {}
        return self._group(keys, hits, result)

    def _classify(self, row: int) -> None:
        value = self._values[row]
        if type(value) is bytes and value:
            # In-memory audio is its own bytes: the sha256 that sha256_of(to_source(value))
            # gives, without a Source per row (a million cached rows: 5 s less).
            self._keyed.append((row, hashlib.sha256(value).hexdigest(), None))
            return
        fspath = local_path(value)
        if fspath is not None:  # the usual case: no Source needed yet
            self._paths.append((row, path_stat_key(fspath, self._real_dirs), fspath))
            return
        source = self._source(row)
        if source.kind == "na":
            self._skipped.append(row)
        elif source.kind == "path":
            stat_key = source.stat_key(self._real_dirs)
            assert stat_key is not None
            self._paths.append((row, stat_key, source.fspath or ""))
        elif source.passthrough:
            _check_https(source)
            self._keyed.append((row, sha256_of(source), None))
        elif source.kind in ("bytes", "array"):
            self._keyed.append((row, sha256_of(source), None))
        elif source.kind == "fsspec":
            self._objects.append((row, source))
        else:  # a URL to download: read and hashed by a worker
            self._unkeyed.append(Job(row, source))

    def _stat_objects(self) -> list[tuple[int, StatKey, Source]]:
        """Remote objects' memo keys from their metadata; a missing object fails its row."""
        if not self._objects:
            return []
        sources = [s for _, s in self._objects]
        stats = stat_objects(sources, self._opts.storage_options, self._cancelled.is_set)
        self._check(0)  # cancelled meanwhile: the rows not looked at are not jobs
        self._stop = stats.stop
        keyed: list[tuple[int, StatKey, Source]] = []
        for (row, source), key in zip(self._objects, stats.keys, strict=True):
            if isinstance(key, AudioError):
                self._failed.append((row, key))
            elif key is not None:
                keyed.append((row, key, source))
            elif stats.stop is None:  # no ETag or the like: read to be known
                self._unkeyed.append(Job(row, source))
        return keyed

    def _read_memo(self) -> None:
        """Local files and objects: known by the memo (keyed), or read and hashed by a worker."""
        cache = self._ctx.cache
        wanted: list[tuple[int, StatKey, Source | str]] = [*self._paths, *self._stat_objects()]
        if not wanted:
            return
        found = cache.memo_get_many([k for _, k, _ in wanted]) if cache is not None else {}
        for row, stat_key, where in wanted:
            sha = found.get(stat_key)
            if sha is not None:
                self._keyed.append((row, sha, stat_key))
            else:  # a Source only for the rows read: a rerun's million memo hits need none
                source = Source.from_path(where) if isinstance(where, str) else where
                self._unkeyed.append(Job(row, source, stat_key=stat_key, size=stat_key[1]))

    def _source(self, row: int) -> Source:
        opts = self._opts
        return to_source(
            self._values[row], fetch_urls=opts.fetch_urls, storage_options=opts.storage_options
        )

    def _check(self, i: int) -> None:
        if i % _CHECK_EVERY == 0 and self._cancelled.is_set():
            raise Stopped

    def _keys(self) -> list[str]:
        """The cache key of every row whose sha256 is known, in :attr:`_keyed` order."""
        maker, languages, prompts = keys_for(self._opts), self._languages, self._prompts
        keys: list[str] = []
        for i, (row, sha, _) in enumerate(self._keyed):
            self._check(i)
            keys.append(maker.key(sha, languages[row], prompts[row]))
        return keys

    def _group(self, keys: list[str], hits: dict[str, Hit], result: RunResult) -> Plan:
        cached: list[int] = []
        groups: dict[str, Job] = {}
        texts, durations, models, flags = (
            result.texts,
            result.durations,
            result.models,
            result.cached,
        )
        for i, ((row, sha, stat_key), key) in enumerate(zip(self._keyed, keys, strict=True)):
            self._check(i)
            hit = hits.get(key)
            if hit is not None:
                texts[row], durations[row], models[row], languages, segments = hit
                result.languages[row], result.segments[row] = languages, segments
                flags[row] = True
                cached.append(row)
                continue
            job = groups.get(key)
            if job is not None:
                job.followers.append(row)
                continue
            source = self._source(row)
            size = stat_key[1] if stat_key is not None else source.size_hint()
            groups[key] = Job(row, source, key, sha, stat_key, size)
        jobs = sorted([*groups.values(), *self._unkeyed], key=attrgetter("row"))
        logger.debug(
            "planned %d rows: %d cached, %d to send, %d failed, %d NA",
            len(self._values),
            len(cached),
            len(jobs),
            len(self._failed),
            len(self._skipped),
        )
        return Plan(jobs, groups, cached, self._failed, self._skipped, self._stop)
