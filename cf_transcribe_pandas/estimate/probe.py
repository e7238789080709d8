"""Look at every row cheaply: classify it, read its headers, hash its audio.

:func:`probe_rows` turns each value into a :class:`RowProbe` in a thread pool,
a window of rows at a time so that a million rows never sit in the pool at
once; the hashes of local files and remote objects (by URL, size and ETag:
metadata calls only) come from the cache's path memo when it knows them (one
lookup a window), else from reading the bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from cf_transcribe_pandas import audio as audio_mod
from cf_transcribe_pandas.audio import Source
from cf_transcribe_pandas.cache import Cache
from cf_transcribe_pandas.errors import AudioError, TranscribeError

__all__ = ["RowProbe", "probe_rows"]

_WINDOW = 1024  # rows handed to the thread pool at a time (bounded memory)


@dataclass(slots=True)
class RowProbe:
    """One row, kept small: a million of them stay in memory until the end.

    Attributes:
        status: ``"ok"`` (readable), ``"na"`` (no audio) or ``"unreadable"``.
        source: The row's source until its headers are read, then None.
        passthrough: An https URL passed to the service as it is.
        fmt: The container (``"wav"``, ``"flac"``, ...).
        mime: Its media type.
        duration_s: Seconds of audio, or None when unknown.
        size: Bytes of the input.
        accepted: Whether the service accepts the container as it is.
        sha256: The audio's hash.
        error_code: Why the row is unreadable.
        error: The message, for an unreadable row.
    """

    status: Literal["ok", "na", "unreadable"]
    source: Source | None = None
    passthrough: bool = False
    fmt: str | None = None
    mime: str | None = None
    duration_s: float | None = None
    size: int = 0
    accepted: bool = False
    sha256: str | None = None
    error_code: str | None = None
    error: str | None = None


def probe_rows(
    values: Sequence[Any],
    *,
    cache: Cache | None,
    fetch_urls: bool,
    workers: int | None,
    progress: bool,
    storage_options: Mapping[str, Any] | None = None,
) -> list[RowProbe]:
    """Probe every row, in order.

    Args:
        values: One audio value per row.
        cache: Whose path memo stands in for hashing, or None.
        fetch_urls: Download https URLs to probe them (else they pass through).
        workers: Threads (default: CPU count + 4, at most 32).
        progress: Show a tqdm progress bar.
        storage_options: Given to fsspec for ``s3://``, ... rows.

    Raises:
        StorageAccessError: the storage refused the credentials or cannot be reached.
    """
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(values), unit="row", desc="estimate", dynamic_ncols=True)
    tick: Callable[[int], object] = bar.update if bar is not None else lambda _: None
    try:
        return list(
            _probe_windows(
                values,
                cache=cache,
                fetch_urls=fetch_urls,
                storage=storage_options,
                workers=workers or min(32, (os.cpu_count() or 1) + 4),
                tick=tick,
            )
        )
    finally:
        if bar is not None:
            bar.close()


def _probe_windows(
    values: Sequence[Any],
    *,
    cache: Cache | None,
    fetch_urls: bool,
    storage: Mapping[str, Any] | None,
    workers: int,
    tick: Callable[[int], object],
) -> Iterator[RowProbe]:
    """Probe every row in order, a window at a time, in a thread pool."""
    want = cache is not None

    def resolve(value: object) -> tuple[RowProbe, Any]:
        return _resolve(value, fetch_urls, want, storage)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cf-estimate") as pool:
        for start in range(0, len(values), _WINDOW):
            window = [values[i] for i in range(start, min(len(values), start + _WINDOW))]
            resolved = list(pool.map(resolve, window))
            if want:
                _stat_objects(resolved, storage)
            known: dict[Any, str] = {}
            stat_keys = [key for _, key in resolved if key is not None]
            if cache is not None and stat_keys:
                known = dict(cache.memo_get_many(stat_keys))
            jobs = [
                (probe, value, known.get(key) if key is not None else None)
                for (probe, key), value in zip(resolved, window, strict=True)
            ]
            for probe in pool.map(lambda job: _inspect(*job), jobs):
                tick(1)
                yield probe


def _fail(exc: BaseException, value: object) -> RowProbe:
    if isinstance(exc, TranscribeError):
        return RowProbe("unreadable", error_code=exc.error_code, error=exc.message)
    label = value if isinstance(value, str) and len(value) < 300 else type(value).__name__
    return RowProbe(
        "unreadable",
        error_code="probe_failed",
        error=f"{label}: cannot be probed ({type(exc).__name__}: {exc})",
    )


def _stat_objects(resolved: list[tuple[RowProbe, Any]], storage: Mapping[str, Any] | None) -> None:
    """Give the window's remote objects their memo keys (metadata calls only), in place.

    Raises:
        StorageAccessError: the storage refused the credentials or cannot be reached.
    """
    at = [
        i
        for i, (probe, _) in enumerate(resolved)
        if probe.source is not None and probe.source.kind == "fsspec"
    ]
    if not at:
        return
    sources = [s for i in at if (s := resolved[i][0].source) is not None]
    stats = audio_mod.stat_objects(sources, storage)
    if stats.stop is not None:
        raise stats.stop
    for i, key in zip(at, stats.keys, strict=True):
        if isinstance(key, AudioError):
            resolved[i] = (_fail(key, None), None)
        else:
            resolved[i] = (resolved[i][0], key)


def _resolve(
    value: object, fetch_urls: bool, want_stat: bool, storage: Mapping[str, Any] | None
) -> tuple[RowProbe, Any]:
    """Classify one value; return its probe so far and its memo key (paths only)."""
    try:
        source = audio_mod.to_source(value, fetch_urls=fetch_urls, storage_options=storage)
        if source.kind == "na":
            return RowProbe("na"), None
        stat_key = source.stat_key() if want_stat and source.kind == "path" else None
    except Exception as exc:  # one bad row never stops the estimate
        return _fail(exc, value), None
    return RowProbe("ok", source=source), stat_key


def _inspect(probe: RowProbe, value: object, known_sha: str | None) -> RowProbe:
    """Read the headers and hash the audio of one row (in a worker thread)."""
    source = probe.source
    if probe.status != "ok" or source is None:
        return probe
    try:
        info = audio_mod.probe(source)
        probe.sha256 = known_sha or audio_mod.sha256_of(source)
    except Exception as exc:
        return _fail(exc, value)
    probe.source = None
    probe.passthrough = source.passthrough
    probe.fmt, probe.mime, probe.accepted = info.format, info.mime, info.accepted
    probe.duration_s, probe.size = info.duration_s, info.bytes
    return probe
