"""A run's per-row results, and the columns they become in the returned frame."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cf_transcribe_pandas.errors import TranscribeError

__all__ = ["RunResult", "assemble", "result_columns"]


@dataclass
class RunResult:
    """Per-row outcome of a run, in input order.

    A row that is neither finished nor failed (the run stopped first) has
    ``texts[i] is None`` and ``errors[i] is None``.
    """

    n: int
    texts: list[str | None] = field(default_factory=list)
    errors: list[TranscribeError | None] = field(default_factory=list)
    cached: list[bool] = field(default_factory=list)
    models: list[str | None] = field(default_factory=list)
    durations: list[float | None] = field(default_factory=list)
    languages: list[str | None] = field(default_factory=list)
    segments: list[list[dict[str, Any]] | None] = field(default_factory=list)
    requests: int = 0
    done: int = 0
    from_cache: int = 0
    failed: int = 0
    cache_enabled: bool = True

    def __post_init__(self) -> None:
        if not self.texts:
            self.texts = [None] * self.n
            self.errors = [None] * self.n
            self.cached = [False] * self.n
            self.models = [None] * self.n
            self.durations = [None] * self.n
            self.languages = [None] * self.n
            self.segments = [None] * self.n

    def summary(self) -> str | None:
        """One line about failed rows, or None when no row failed.

        Rows are counted by their real error code (``TranscribeError.label``),
        for example ``"12 of 5,000 rows failed: 7 file not found, 2 invalid
        request (5004), 3 timeout; rerun to retry them, finished rows come from
        the cache"``.
        """
        failed = [e for e in self.errors if e is not None]
        if not failed:
            return None
        kinds = collections.Counter(e.label for e in failed)
        detail = ", ".join(f"{count:,} {kind}" for kind, count in kinds.most_common())
        how = (
            "rerun to retry them, finished rows come from the cache"
            if self.cache_enabled
            else "rerun to retry them (with cache=False every row is sent again)"
        )
        return f"{len(failed):,} of {self.n:,} rows failed: {detail}; {how}"


def result_columns(
    output: str, *, errors: str, provenance: bool, timestamps: str | None = None
) -> list[str]:
    """The columns :func:`assemble` adds, in order, for these options."""
    names = [output]
    if timestamps is not None:
        names.append(f"{output}_segments")
    if errors == "coerce":
        names += [f"{output}_error", f"{output}_error_code"]
    if provenance:
        names += [f"{output}_cached", f"{output}_model", f"{output}_duration_s"]
        names.append(f"{output}_language")
    return names


_SEGMENT_KEYS = ("start", "end", "text")


def segments_array(values: list[Any], timestamps: str) -> Any:
    """The ``{output}_segments`` column: per row a list of ``{"start", "end", "text"}``
    dicts (plus ``"words"`` for ``"word"``), None for rows without. An object column,
    so ``to_parquet`` stores it as list<struct> and ``read_parquet`` reads it back
    (pandas cannot read a nested ``ArrowDtype`` column back from Parquet)."""
    keys = (*_SEGMENT_KEYS, "words") if timestamps == "word" else _SEGMENT_KEYS
    shaped = [
        None if row is None else [{k: seg.get(k) for k in keys} for seg in row] for row in values
    ]
    if timestamps == "word":
        for row in shaped:
            for seg in row or []:
                seg["words"] = list(seg["words"] or [])
    return pd.array(shaped, dtype=object)


def assemble(
    df: pd.DataFrame,
    result: RunResult,
    *,
    output: str,
    errors: str,
    provenance: bool,
    timestamps: str | None = None,
) -> pd.DataFrame:
    """A new DataFrame: ``df``'s columns plus the text (and error/provenance) columns.

    Args:
        df: The input frame (not modified).
        result: The run's per-row results, in ``df``'s row order.
        output: Name of the text column.
        errors: ``"coerce"`` adds ``{output}_error`` and ``{output}_error_code``.
        provenance: Adds ``{output}_cached``, ``{output}_model``,
            ``{output}_duration_s`` and ``{output}_language`` (detected).
        timestamps: ``"segment"`` or ``"word"`` adds ``{output}_segments``.

    Returns:
        The new frame, same index and row order as ``df``.
    """
    arrays: list[Any] = [pd.array(result.texts, dtype="string")]
    if timestamps is not None:
        arrays.append(segments_array(result.segments, timestamps))
    if errors == "coerce":
        errs = result.errors
        arrays += [
            pd.array([e.message if e is not None else None for e in errs], dtype="string"),
            pd.array([e.error_code if e is not None else None for e in errs], dtype="string"),
        ]
    if provenance:
        arrays += [
            pd.array(result.cached, dtype="bool"),
            pd.array(result.models, dtype="string"),
            pd.array(result.durations, dtype="Float64"),
            pd.array(result.languages, dtype="string"),
        ]
    names = result_columns(output, errors=errors, provenance=provenance, timestamps=timestamps)
    out: pd.DataFrame = df.copy(deep=False)
    for name, values in zip(names, arrays, strict=True):
        out[name] = values
    return out
