"""One transcription of a pandas frame's audio column: the glue between pandas and the engine.

:func:`per_row` turns a scalar, a column name or an aligned Series into one value
per row; :class:`FrameJob` is one checked call (rows, per-row values, options,
credentials) that runs the engine and assembles the new frame. The accessors and
every Dask partition use it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cf_transcribe_pandas.client import Credentials
from cf_transcribe_pandas.engine import RunContext, RunResult, assemble, transcribe_rows
from cf_transcribe_pandas.errors import ConfigurationError, TranscribeError
from cf_transcribe_pandas.options import PerRow, TranscribeOptions, check_language

__all__ = ["SUMMARY_ATTR", "FrameJob", "column_values", "per_row"]

SUMMARY_ATTR = "cfai_summary"
"""Key of the failed-rows summary line in the returned object's ``.attrs``."""


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _aligned(name: str, series: pd.Series, index: pd.Index) -> pd.Series:
    if series.index.equals(index):
        return series
    if series.index.has_duplicates or index.has_duplicates:
        raise ConfigurationError(
            f"{name}= Series must have exactly the DataFrame's index when labels "
            "repeat (same labels, same order)",
            code=f"invalid_{name}",
        )
    missing = index.difference(series.index)
    if len(missing):
        raise ConfigurationError(
            f"{name}= Series has no value for {len(missing):,} index label(s), "
            f"e.g. {missing[0]!r}; align it on the DataFrame's index",
            code=f"invalid_{name}",
        )
    return series.reindex(index)


def per_row(name: str, value: PerRow, df: pd.DataFrame) -> list[str | None]:
    """Expand a scalar, a column name or an aligned Series to one value per row.

    ``language`` values are checked (and lower-cased) here, each distinct one once;
    a bad per-row value names its row.

    Raises:
        ConfigurationError: a duplicated column, a Series off the index, a bad language.
    """
    if value is None:
        return [None] * len(df)
    if isinstance(value, str) and value not in df.columns:
        return [check_language(value) if name == "language" else value] * len(df)
    series = df[value] if isinstance(value, str) else _aligned(name, value, df.index)
    if isinstance(series, pd.DataFrame):
        raise ConfigurationError(
            f"{name}= names the column {value!r}, which appears more than once",
            code=f"invalid_{name}",
        )
    values = [None if _is_na(v) else str(v) for v in series.tolist()]
    if name != "language":
        return values
    checked: dict[str, str | None] = {}
    for position, language in enumerate(values):
        if language is not None and language not in checked:
            try:
                checked[language] = check_language(language)
            except ConfigurationError as exc:
                label = df.index[position]
                raise ConfigurationError(
                    f"{exc.message} (row with index label {label!r})", code="invalid_language"
                ) from None
    return [None if v is None else checked[v] for v in values]


def column_values(df: pd.DataFrame, column: Hashable) -> pd.Series:
    """``df[column]``, or a ConfigurationError that lists the columns there are."""
    try:
        present = column in df.columns
    except TypeError:  # an unhashable "column"
        present = False
    if not present:
        shown = ", ".join(repr(c) for c in list(df.columns)[:10])
        more = ", ..." if len(df.columns) > 10 else ""
        raise ConfigurationError(
            f"column {column!r} is not in the DataFrame (columns: {shown or 'none'}{more})",
            code="invalid_column",
        )
    values = df[column]
    if isinstance(values, pd.DataFrame):
        raise ConfigurationError(
            f"column {column!r} appears more than once in the DataFrame", code="invalid_column"
        )
    return values


@dataclass(frozen=True)
class FrameJob:
    """One checked transcription of a frame's audio column.

    Built by :meth:`build` before any work (bad arguments and missing credentials
    fail here); :meth:`run` sends the rows and assembles the new frame.
    """

    df: pd.DataFrame
    output: str
    options: TranscribeOptions
    values: list[Any]
    languages: list[str | None]
    prompts: list[str | None]
    credentials: Credentials

    @classmethod
    def build(
        cls,
        df: pd.DataFrame,
        column: Hashable,
        options: TranscribeOptions,
        credentials: Credentials | None = None,
    ) -> FrameJob:
        """Check the column, the output name and the per-row values; resolve credentials.

        Args:
            df: The frame (for Dask: the empty meta on the client, a partition on a
                worker).
            column: The audio column.
            options: The checked options.
            credentials: Already resolved (a Dask worker has no environment of its
                own); default: resolved from the options and the environment.
        """
        values = column_values(df, column)
        output = options.output if options.output is not None else f"{column}_text"
        if output == column:
            raise ConfigurationError(
                f"output= must differ from the audio column {column!r}", code="invalid_output"
            )
        return cls(
            df=df,
            output=output,
            options=options,
            values=values.tolist(),
            languages=per_row("language", options.language, df),
            prompts=per_row("prompt", options.prompt, df),
            credentials=credentials if credentials is not None else options.credentials(),
        )

    async def results(self, context: RunContext) -> RunResult:
        """The engine's per-row results (Dask assembles and counts them itself).

        Raises:
            TranscribeError: as the engine does (``.run_result`` has the finished rows).
        """
        return await transcribe_rows(
            self.values,
            languages=self.languages,
            prompts=self.prompts,
            options=self.options,
            context=context,
        )

    async def run(self) -> pd.DataFrame:
        """Transcribe the rows and assemble the new frame.

        Raises:
            TranscribeError: as the engine does, with ``.partial`` set to the frame of
                the finished rows.
        """
        context = RunContext(self.credentials, cache=self.options.open_cache())
        try:
            result = await self.results(context)
        except TranscribeError as exc:
            if isinstance(exc.run_result, RunResult):
                exc.partial = self.assemble(exc.run_result)
            raise
        return self.assemble(result)

    def assemble(self, result: RunResult) -> pd.DataFrame:
        """The new frame: the input's columns plus the result columns."""
        options = self.options
        out = assemble(
            self.df,
            result,
            output=self.output,
            errors=options.errors,
            provenance=options.provenance,
            timestamps=options.timestamps or None,  # type: ignore[arg-type]
        )
        summary = result.summary()
        if summary is not None:
            out.attrs[SUMMARY_ATTR] = summary
        return out
