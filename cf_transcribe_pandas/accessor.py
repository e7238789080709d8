"""The pandas accessors ``df.cfai`` and ``series.cfai``.

Thin on purpose: the column and the per-row values come out of the frame, the
options go through :class:`~cf_transcribe_pandas.options.TranscribeOptions` (every
check is there), and the rows go to :mod:`cf_transcribe_pandas.engine`. No HTTP and
no caching here. :class:`FrameJob` is the one call, also run by each Dask partition.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cf_transcribe_pandas.client import Credentials
from cf_transcribe_pandas.engine import (
    RunContext,
    RunResult,
    assemble,
    result_columns,
    run_in_thread,
    transcribe_rows,
)
from cf_transcribe_pandas.errors import ConfigurationError, TranscribeError
from cf_transcribe_pandas.options import PerRow, TranscribeOptions, check_language, takes_options

if TYPE_CHECKING:
    from cf_transcribe_pandas.estimate import Estimate

__all__ = ["SUMMARY_ATTR", "DataFrameAccessor", "FrameJob", "SeriesAccessor", "per_row"]

SUMMARY_ATTR = "cfai_summary"
"""Key of the failed-rows summary line in the returned object's ``.attrs``."""

_SERIES_COLUMN = "__cfai_audio__"


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


def _column(df: pd.DataFrame, column: Hashable) -> pd.Series:
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
        values = _column(df, column)
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
        )
        summary = result.summary()
        if summary is not None:
            out.attrs[SUMMARY_ATTR] = summary
        return out


def _estimate(df: pd.DataFrame, column: Hashable, price: float | None, options: Any) -> Estimate:
    from cf_transcribe_pandas.estimate import estimate

    options.setdefault("progress", False)
    checked = TranscribeOptions.from_kwargs(**options)
    return estimate(
        _column(df, column).tolist(),
        languages=per_row("language", checked.language, df),
        prompts=per_row("prompt", checked.prompt, df),
        options=checked,
        price_per_minute=price,
        index=df.index,
    )


@pd.api.extensions.register_dataframe_accessor("cfai")
class DataFrameAccessor:
    """``df.cfai``: transcribe a column of audio into a column of text."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    @takes_options()
    def transcribe(
        self, column: Hashable, output: str | None = None, **options: Any
    ) -> pd.DataFrame:
        """Transcribe every row's audio and return a new DataFrame with a text column.

        Works in scripts and in Jupyter alike (the run goes on a private event loop in
        a background thread). Ctrl-C stops it at once; every finished row is in the
        cache, so the same call goes on where it stopped.

        Args:
            column: The column holding the audio: paths, ``pathlib.Path``, bytes,
                ``data:`` URIs, https URLs (sent as is), fsspec URLs, or Hugging Face
                ``{"bytes":..., "path":...}`` / ``{"array":..., "sampling_rate":...}``.
                NA cells give NA text.
            {options}

        Returns:
            A new DataFrame (the input is not modified) with the same index and row
            order, plus ``output`` of pandas ``string`` dtype.

        Raises:
            ConfigurationError: bad arguments or missing credentials (before any work).
            AccountError: the run stopped (bad token, blocked account, daily quota used
                up); ``.partial`` holds the frame with every finished row.
            TranscribeError: with ``errors="raise"``, the first failed row; ``.partial``
                holds the frame with every finished row.
            KeyboardInterrupt: on Ctrl-C, after the finished rows are cached.
        """
        job = FrameJob.build(
            self._df, column, TranscribeOptions.from_kwargs(output=output, **options)
        )
        return run_in_thread(job.run)

    @takes_options()
    async def atranscribe(
        self, column: Hashable, output: str | None = None, **options: Any
    ) -> pd.DataFrame:
        """:meth:`transcribe`, awaited in the caller's event loop.

        Args:
            column: The audio column, as for :meth:`transcribe`.
            {options}

        Returns:
            A new DataFrame, as :meth:`transcribe` returns.
        """
        job = FrameJob.build(
            self._df, column, TranscribeOptions.from_kwargs(output=output, **options)
        )
        return await job.run()

    def retry_failed(
        self, column: Hashable, output: str | None = None, **options: Any
    ) -> pd.DataFrame:
        """Transcribe again only the rows a coerced run left failed.

        Call it on the frame ``transcribe(..., errors="coerce")`` returned: the rows
        whose ``{output}_error`` is set are sent again, and their text, error and
        provenance columns replaced; every other row is kept as it is, untouched and
        unread (so it also works with ``cache=False``).

        Args:
            column: The audio column, as given to :meth:`transcribe`.
            output: The text column, as given to :meth:`transcribe`.
            **options: Options of :meth:`transcribe` for the retry. ``errors`` defaults
                to ``"coerce"``, and ``provenance`` to whether the frame has the
                provenance columns.

        Returns:
            A new DataFrame: this one with the retried rows' results.

        Raises:
            ConfigurationError: the frame has no ``{output}_error`` column (it did not
                come from ``errors="coerce"``), or a bad option.
            TranscribeError: as :meth:`transcribe` raises for the retried rows.
        """
        df = self._df
        name = output if output is not None else f"{column}_text"
        error_column = f"{name}_error"
        if name not in df.columns or error_column not in df.columns:
            raise ConfigurationError(
                f"retry_failed needs the {name!r} and {error_column!r} columns of a frame "
                'returned by transcribe(..., errors="coerce")',
                code="invalid_output",
            )
        options.setdefault("errors", "coerce")
        options.setdefault("provenance", f"{name}_cached" in df.columns)
        out: pd.DataFrame = df.copy()
        positions = np.flatnonzero(df[error_column].notna().to_numpy())
        if not len(positions):
            return out
        redo = df.iloc[positions].cfai.transcribe(column, name, **options)
        for target in result_columns(name, errors="coerce", provenance=True):
            where = out.columns.get_loc(target) if target in out.columns else None
            if isinstance(where, int):  # present once (a duplicated name is left alone)
                values = redo[target].to_numpy() if target in redo.columns else pd.NA
                out.iloc[positions, where] = values
        return out

    def estimate(
        self, column: Hashable, *, price_per_minute: float | None = None, **options: Any
    ) -> Estimate:
        """What :meth:`transcribe` would send and cost, sending nothing.

        Every row is probed (headers only) and hashed; duplicates and rows already in
        the cache count as free. No credentials are needed.

        Args:
            column: The audio column, as for :meth:`transcribe`.
            price_per_minute: US dollars per audio minute (default: the model's
                published price, when known).
            **options: Options of :meth:`transcribe` (those that change what is sent:
                language, prompt, temperature, model, cache, rate_limit, encode,
                max_part_seconds, fetch_urls; ``progress`` is off by default here).

        Returns:
            An :class:`~cf_transcribe_pandas.estimate.Estimate`: rows, audio minutes,
            requests, upload bytes, expected cost and time; ``print()`` it for a
            summary, ``.to_frame()`` for one row per input row.

        Raises:
            ConfigurationError: a bad argument (before any file is read).
        """
        return _estimate(self._df, column, price_per_minute, options)


@pd.api.extensions.register_series_accessor("cfai")
class SeriesAccessor:
    """``series.cfai``: transcribe a Series of audio into a Series of text."""

    def __init__(self, series: pd.Series) -> None:
        self._series = series

    @takes_options(without=("provenance",))
    def transcribe(self, output: str | None = None, **options: Any) -> pd.Series:
        """Transcribe every element; options as in :meth:`DataFrameAccessor.transcribe`.

        ``language`` and ``prompt`` are a scalar or a Series aligned on this Series'
        index. With ``errors="coerce"`` failed elements are NA (use
        ``df.cfai.transcribe`` for the error columns); the summary line is in
        ``.attrs["cfai_summary"]``.

        Args:
            {options}

        Returns:
            A new Series of pandas ``string`` dtype with the same index, named
            ``output``, else ``f"{name}_text"``, else ``"text"``.
        """
        job = self._job(output, options)
        with self._partial_as_series(job):
            return self._text(run_in_thread(job.run), job)

    @takes_options(without=("provenance",))
    async def atranscribe(self, output: str | None = None, **options: Any) -> pd.Series:
        """:meth:`transcribe`, awaited in the caller's event loop.

        Args:
            {options}

        Returns:
            A new Series, as :meth:`transcribe` returns.
        """
        job = self._job(output, options)
        with self._partial_as_series(job):
            return self._text(await job.run(), job)

    def estimate(self, *, price_per_minute: float | None = None, **options: Any) -> Estimate:
        """:meth:`DataFrameAccessor.estimate` for this Series' audio; sends nothing."""
        frame = self._series.to_frame(name=_SERIES_COLUMN)
        return _estimate(frame, _SERIES_COLUMN, price_per_minute, options)

    def _job(self, output: str | None, options: dict[str, Any]) -> FrameJob:
        if "provenance" in options:
            raise ConfigurationError(
                "provenance= is for df.cfai.transcribe (it adds columns)", code="invalid_option"
            )
        series = self._series
        if output is None:
            output = f"{series.name}_text" if series.name is not None else "text"
        frame = series.to_frame(name=_SERIES_COLUMN)
        checked = TranscribeOptions.from_kwargs(output=output, **options)
        return FrameJob.build(frame, _SERIES_COLUMN, checked)

    def _text(self, out: pd.DataFrame, job: FrameJob) -> pd.Series:
        text: pd.Series = out[job.output]
        text.attrs = dict(out.attrs)
        return text

    @contextlib.contextmanager
    def _partial_as_series(self, job: FrameJob) -> Iterator[None]:
        """Give a stopped run's ``.partial`` as a Series, like the result."""
        try:
            yield
        except TranscribeError as exc:
            if isinstance(exc.partial, pd.DataFrame):
                exc.partial = self._text(exc.partial, job)
            raise
