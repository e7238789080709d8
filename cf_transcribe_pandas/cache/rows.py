"""Cached rows: the Parquet schemas of the part files, and :class:`CachedRow`.

Results rows have the columns of :data:`RESULT_SCHEMA` (``key`` is
:func:`~cf_transcribe_pandas.cache.cache_key` of the audio hash and the
request parameters); memo rows those of :data:`MEMO_SCHEMA`. This module also
turns rows into Arrow tables and Arrow columns back into Python values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cf_transcribe_pandas._version import __version__
from cf_transcribe_pandas.cache.keys import (
    CACHE_SCHEMA_VERSION,
    cache_key,
    model_options,
    norm_sha256,
    norm_temperature,
)

__all__ = [
    "ADDED_COLUMNS",
    "MEMO_SCHEMA",
    "RESULT_COLUMNS",
    "RESULT_SCHEMA",
    "SEGMENTS",
    "TIMESTAMP",
    "CachedRow",
    "datetimes",
    "rows_table",
    "shared_strings",
]

#: The type of ``created_at`` columns.
TIMESTAMP = pa.timestamp("us", tz="UTC")

#: A transcript's timed segments: ``[{start, end, text, words: [{word, start, end}]}]``.
SEGMENTS = pa.list_(
    pa.struct(
        [
            pa.field("start", pa.float64()),
            pa.field("end", pa.float64()),
            pa.field("text", pa.string()),
            pa.field(
                "words",
                pa.list_(
                    pa.struct(
                        [
                            pa.field("word", pa.string()),
                            pa.field("start", pa.float64()),
                            pa.field("end", pa.float64()),
                        ]
                    )
                ),
            ),
        ]
    )
)

#: Nullable columns added after the first release: older part files lack them and
#: are read with nulls there (no key changes: the rows they hold stay valid).
ADDED_COLUMNS = ("options", "detected_language", "segments")

#: Columns of a results part file (and of ``Cache.export``), in order.
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
        pa.field("created_at", TIMESTAMP, nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("options", pa.string()),
        pa.field("detected_language", pa.string()),
        pa.field("segments", SEGMENTS),
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
        pa.field("created_at", TIMESTAMP, nullable=False),
    ],
    metadata={"cf_transcribe_pandas": f"memo/{CACHE_SCHEMA_VERSION}"},
)

RESULT_COLUMNS: tuple[str, ...] = tuple(RESULT_SCHEMA.names)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class CachedRow:
    """One finished transcript, as stored in the cache.

    Build one with :meth:`new`, which computes the key; the fields match the
    columns of :data:`RESULT_SCHEMA`.

    Attributes:
        key: :func:`~cf_transcribe_pandas.cache.cache_key` of the fields below.
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
        options: The model's other options sent (canonical JSON), or None.
        detected_language: The language the model reported, or None.
        segments: Timed segments (``timestamps=``), or None.
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
    options: str | None = None
    detected_language: str | None = None
    segments: list[dict[str, Any]] | None = None

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
        options: dict[str, Any] | None = None,
        detected_language: str | None = None,
        segments: list[dict[str, Any]] | None = None,
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
            key: The key, when the caller has already made it with :func:`cache_key`
                of these fields (it is not checked); made here otherwise.
            options: The model's other options (``task``, ``timestamps``, ...).
            detected_language: The language the model reported.
            segments: Timed segments, when asked for.
        """
        if key is None:
            key = cache_key(
                sha256,
                model=model,
                language=language,
                prompt=prompt,
                temperature=temperature,
                encode=encode,
                options=options,
            )
        return cls(
            key=key,
            sha256=norm_sha256(sha256),
            model=model,
            language=language,
            prompt=prompt,
            temperature=norm_temperature(temperature),
            encode=encode,
            text=text,
            duration_s=duration_s,
            created_at=created_at if created_at is not None else _utcnow(),
            options=model_options(options),
            detected_language=detected_language,
            segments=segments,
        )


def _micros(moment: dt.datetime) -> int:
    if moment.tzinfo is None:  # naive: UTC, as Arrow reads it
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


def rows_table(rows: Sequence[CachedRow]) -> pa.Table:
    """A results table (:data:`RESULT_SCHEMA`) of ``rows``."""
    columns: list[pa.Array] = []
    for name, kind in zip(RESULT_SCHEMA.names, RESULT_SCHEMA.types, strict=True):
        if name == "created_at":
            micros = pa.array([_micros(r.created_at) for r in rows], pa.int64())
            columns.append(micros.cast(kind))
        else:
            columns.append(pa.array([getattr(r, name) for r in rows], kind))
    return pa.Table.from_arrays(columns, schema=RESULT_SCHEMA)


def datetimes(column: pa.ChunkedArray | pa.Array) -> list[dt.datetime | None]:
    """A timestamp column as aware UTC datetimes (faster than ``to_pylist``)."""
    micros = pc.cast(column, pa.int64()).to_pylist()
    delta = dt.timedelta
    return [None if m is None else _EPOCH + delta(microseconds=m) for m in micros]


def shared_strings(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """A column of few distinct strings (a model name) as Python strings (or
    None): one object per distinct value rather than one per row."""
    arrays = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    seen: dict[str, str] = {}
    out: list[Any] = []
    for array in arrays:
        encoded = pc.dictionary_encode(array)
        names = [seen.setdefault(n, n) for n in encoded.dictionary.to_pylist()]
        out += [None if i is None else names[i] for i in encoded.indices.to_pylist()]
    return out
