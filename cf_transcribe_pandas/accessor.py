"""The pandas accessors ``df.cfai`` and ``series.cfai``.

Thin on purpose: the options go through
:class:`~cf_transcribe_pandas.options.TranscribeOptions` (every check is there), the
frame through :class:`~cf_transcribe_pandas.frames.FrameJob` (column, per-row values),
and the rows to :mod:`cf_transcribe_pandas.engine`. No HTTP and no caching here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cf_transcribe_pandas.engine import result_columns, run_in_thread
from cf_transcribe_pandas.errors import ConfigurationError, TranscribeError
from cf_transcribe_pandas.frames import FrameJob, column_values, per_row
from cf_transcribe_pandas.options import TranscribeOptions
from cf_transcribe_pandas.signatures import takes_options

if TYPE_CHECKING:
    from cf_transcribe_pandas.estimate import Estimate, ModelComparison
    from cf_transcribe_pandas.wer import ErrorRates

__all__ = ["DataFrameAccessor", "SeriesAccessor"]

_SERIES_COLUMN = "__cfai_audio__"


def _estimate(
    df: pd.DataFrame, column: Hashable, price: float | None, options: Any
) -> Estimate | ModelComparison:
    from cf_transcribe_pandas.estimate import estimate

    options.setdefault("progress", False)
    compare = options.pop("compare_models", False)
    checked = TranscribeOptions.from_kwargs(**options)
    return estimate(
        column_values(df, column).tolist(),
        languages=per_row("language", checked.language, df),
        prompts=per_row("prompt", checked.prompt, df),
        options=checked,
        price_per_minute=price,
        index=df.index,
        compare_models=compare,
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
        for target in result_columns(name, errors="coerce", provenance=True, timestamps="word"):
            where = out.columns.get_loc(target) if target in out.columns else None
            if isinstance(where, int):  # present once (a duplicated name is left alone)
                values = redo[target].to_numpy() if target in redo.columns else pd.NA
                out.iloc[positions, where] = values
        return out

    def wer(self, reference: str, hypothesis: str) -> ErrorRates:
        """Word and character error rates of a transcript column against references.

        Both texts are normalized first (:func:`cf_transcribe_pandas.wer.normalize_text`:
        NFKC, lower case, punctuation to spaces, whitespace collapsed), then scored
        with ``jiwer`` (the ``eval`` extra). Rows with an NA on either side or an
        empty reference are skipped.

        Args:
            reference: The column of reference (true) texts.
            hypothesis: The column of transcripts, e.g. ``"audio_text"``.

        Returns:
            :class:`~cf_transcribe_pandas.wer.ErrorRates`: ``.wer`` and ``.cer`` of the
            corpus (all errors over all reference words or characters), ``.per_row``
            (each row's WER, a Series on the frame's index), counts.

        Raises:
            ConfigurationError: a missing column, jiwer not installed, or no row to score.
        """
        from cf_transcribe_pandas.wer import error_rates

        return error_rates(self._df, reference, hypothesis)

    def estimate(
        self, column: Hashable, *, price_per_minute: float | None = None, **options: Any
    ) -> Estimate | ModelComparison:
        """What :meth:`transcribe` would send and cost, sending nothing.

        Every row is probed (headers only) and hashed; duplicates and rows already in
        the cache count as free. No credentials are needed.

        Args:
            column: The audio column, as for :meth:`transcribe`.
            price_per_minute: US dollars per audio minute (default: the model's
                published price, when known).
            **options: Options of :meth:`transcribe` (those that change what is sent:
                language, prompt, temperature, model, cache, rate_limit, encode,
                max_part_seconds, fetch_urls; ``progress`` is off by default here), and
                ``compare_models=True`` (or a list of models) to estimate every model.

        Returns:
            An :class:`~cf_transcribe_pandas.estimate.Estimate`: rows, audio minutes,
            requests, upload bytes, expected cost and time; ``print()`` it for a
            summary, ``.to_frame()`` for one row per input row. With
            ``compare_models``, a :class:`~cf_transcribe_pandas.estimate.ModelComparison`
            (one estimate a model; ``.to_frame()``: one row a model).

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

    def estimate(
        self, *, price_per_minute: float | None = None, **options: Any
    ) -> Estimate | ModelComparison:
        """:meth:`DataFrameAccessor.estimate` for this Series' audio; sends nothing."""
        frame = self._series.to_frame(name=_SERIES_COLUMN)
        return _estimate(frame, _SERIES_COLUMN, price_per_minute, options)

    def _job(self, output: str | None, options: dict[str, Any]) -> FrameJob:
        if "provenance" in options or options.get("timestamps") not in (False, None):
            name = "provenance" if "provenance" in options else "timestamps"
            raise ConfigurationError(
                f"{name}= is for df.cfai.transcribe (it adds columns)", code="invalid_option"
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
