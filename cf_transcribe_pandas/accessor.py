"""The pandas accessors ``df.cfai`` and ``series.cfai``.

Thin on purpose: parse and check the arguments, then hand the rows to
:mod:`cf_transcribe_pandas.engine`. No HTTP and no caching here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from cf_transcribe_pandas.audio import DEFAULT_MAX_PART_SECONDS, EncodeMode
from cf_transcribe_pandas.cache import Cache, default_cache_dir
from cf_transcribe_pandas.client import (
    DEFAULT_MODEL,
    Credentials,
    Gateway,
    validate_params,
)
from cf_transcribe_pandas.engine import (
    Event,
    RunOptions,
    RunResult,
    assemble,
    run_in_thread,
    transcribe_rows,
)
from cf_transcribe_pandas.errors import ConfigurationError, TranscribeError

__all__ = ["DataFrameAccessor", "SeriesAccessor"]

ENCODINGS = ("auto", "original", "flac", "opus")
DEFAULT_CONCURRENCY = 64

PerRow = str | pd.Series | None


def _resolve_cache(cache: bool | str | os.PathLike[str] | Cache) -> Cache | None:
    if cache is False:
        return None
    if cache is True:
        return Cache(default_cache_dir())
    if isinstance(cache, Cache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return Cache(Path(cache).expanduser())
    raise ConfigurationError(
        f"cache must be True, False, a directory path or a Cache, not {type(cache).__name__}"
    )


def _per_row(
    name: str, value: PerRow, df: pd.DataFrame | None, index: pd.Index
) -> list[str | None]:
    """Expand a scalar, a column name or an aligned Series into one value per row."""
    n = len(index)
    if value is None:
        return [None] * n
    if isinstance(value, pd.Series):
        if not value.index.equals(index):
            if value.index.has_duplicates or index.has_duplicates:
                raise ConfigurationError(
                    f"{name}= Series must have exactly the DataFrame's index when labels repeat"
                )
            missing = index.difference(value.index)
            if len(missing):
                raise ConfigurationError(
                    f"{name}= Series has no value for {len(missing)} index label(s), "
                    f"e.g. {missing[0]!r}; align it on the DataFrame's index"
                )
            value = value.reindex(index)
        return [None if _is_na(v) else str(v) for v in value.tolist()]
    if isinstance(value, str):
        if df is not None and value in df.columns:
            return _per_row(name, df[value], None, index)
        return [value] * n
    raise ConfigurationError(
        f"{name}= must be a string, a column name or a Series, not {type(value).__name__}"
    )


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _check_languages(languages: list[str | None], per_row: bool) -> list[str | None]:
    out: list[str | None] = []
    checked: dict[str, str] = {}
    for i, lang in enumerate(languages):
        if lang is None:
            out.append(None)
            continue
        norm = checked.get(lang)
        if norm is None:
            try:
                validate_params(model=DEFAULT_MODEL, language=lang, temperature=None)
            except ConfigurationError as exc:
                where = f" (row {i})" if per_row else ""
                raise ConfigurationError(f"{exc.message}{where}") from None
            norm = lang.strip().lower()
            checked[lang] = norm
        out.append(norm)
    return out


def build_options(
    *,
    model: str,
    temperature: float | None,
    errors: str,
    cache: bool | str | os.PathLike[str] | Cache,
    concurrency: int | None,
    rate_limit: float,
    max_retries: int,
    timeout: float,
    progress: bool,
    account_id: str | None,
    api_token: str | None,
    base_url: str | None,
    gateway: str | Mapping[str, Any] | Gateway | None,
    encode: EncodeMode,
    max_part_seconds: float,
    fetch_urls: bool,
    on_event: Callable[[Event], None] | None,
) -> RunOptions:
    """Check every argument and credential before any work; raise ConfigurationError."""
    if errors not in ("raise", "coerce"):
        raise ConfigurationError(f"errors= must be 'raise' or 'coerce', not {errors!r}")
    validate_params(model=model, language=None, temperature=temperature)
    if isinstance(rate_limit, bool) or not isinstance(rate_limit, (int, float)) or rate_limit <= 0:
        raise ConfigurationError(
            f"rate_limit= must be a number of requests per minute > 0, not {rate_limit!r}"
        )
    if concurrency is None:
        concurrency = DEFAULT_CONCURRENCY
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency= must be an integer >= 1, not {concurrency!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError(f"max_retries= must be an integer >= 0, not {max_retries!r}")
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigurationError(f"timeout= must be a number of seconds > 0, not {timeout!r}")
    if encode not in ENCODINGS:
        raise ConfigurationError(f"encode= must be one of {', '.join(ENCODINGS)}, not {encode!r}")
    if not isinstance(max_part_seconds, (int, float)) or not 10 <= max_part_seconds <= 1500:
        raise ConfigurationError(
            f"max_part_seconds= must be between 10 and 1500 seconds, not {max_part_seconds!r}"
        )
    credentials = Credentials.resolve(account_id=account_id, api_token=api_token, base_url=base_url)
    return RunOptions(
        credentials=credentials,
        model=model,
        temperature=temperature,
        errors="coerce" if errors == "coerce" else "raise",
        cache=_resolve_cache(cache),
        concurrency=concurrency,
        rate_limit=float(rate_limit),
        max_retries=max_retries,
        timeout=float(timeout),
        progress=bool(progress),
        gateway=Gateway.coerce(gateway),
        encode=encode,
        max_part_seconds=float(max_part_seconds),
        fetch_urls=bool(fetch_urls),
        on_event=on_event,
    )


class _Call:
    """One parsed ``transcribe`` call: rows, per-row parameters and options."""

    def __init__(
        self,
        df: pd.DataFrame,
        column: Hashable,
        output: str | None,
        language: PerRow,
        prompt: PerRow,
        provenance: bool,
        options: dict[str, Any],
    ) -> None:
        if column not in df.columns:
            shown = ", ".join(repr(c) for c in list(df.columns)[:10])
            raise ConfigurationError(
                f"column {column!r} is not in the DataFrame (columns: {shown or 'none'})"
            )
        self.df = df
        self.column = column
        self.output = output if output is not None else f"{column}_text"
        if self.output == column:
            raise ConfigurationError(f"output= must differ from the audio column {column!r}")
        self.provenance = provenance
        self.options = build_options(**options)
        index = df.index
        self.languages = _check_languages(
            _per_row("language", language, df, index),
            per_row=not (language is None or (isinstance(language, str) and language not in df)),
        )
        self.prompts = _per_row("prompt", prompt, df, index)

    async def run(self) -> pd.DataFrame:
        try:
            result = await transcribe_rows(
                self.df[self.column].tolist(),
                languages=self.languages,
                prompts=self.prompts,
                options=self.options,
            )
        except TranscribeError as exc:
            if isinstance(exc.run_result, RunResult):
                exc.partial = self._assemble(exc.run_result)
            raise
        return self._assemble(result)

    def _assemble(self, result: RunResult) -> pd.DataFrame:
        out = assemble(
            self.df,
            result,
            output=self.output,
            errors=self.options.errors,
            provenance=self.provenance,
        )
        summary = result.summary()
        if summary is not None:
            out.attrs["cfai_summary"] = summary
        return out


def _call_kwargs(
    model: str,
    temperature: float | None,
    errors: str,
    cache: bool | str | os.PathLike[str] | Cache,
    concurrency: int | None,
    rate_limit: float,
    max_retries: int,
    timeout: float,
    progress: bool,
    account_id: str | None,
    api_token: str | None,
    base_url: str | None,
    gateway: str | Mapping[str, Any] | Gateway | None,
    encode: str,
    max_part_seconds: float,
    fetch_urls: bool,
    on_event: Callable[[Event], None] | None,
) -> dict[str, Any]:
    return dict(locals())


@pd.api.extensions.register_dataframe_accessor("cfai")
class DataFrameAccessor:
    """``df.cfai``: transcribe a column of audio with Cloudflare Workers AI."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def _call(
        self,
        column: Hashable,
        output: str | None,
        language: PerRow,
        prompt: PerRow,
        provenance: bool,
        kwargs: dict[str, Any],
    ) -> _Call:
        return _Call(self._df, column, output, language, prompt, provenance, kwargs)

    def transcribe(
        self,
        column: Hashable,
        output: str | None = None,
        *,
        language: PerRow = None,
        prompt: PerRow = None,
        temperature: float | None = None,
        model: str = DEFAULT_MODEL,
        errors: Literal["raise", "coerce"] = "raise",
        cache: bool | str | os.PathLike[str] | Cache = True,
        concurrency: int | None = None,
        rate_limit: float = 720,
        max_retries: int = 6,
        timeout: float = 300.0,
        progress: bool = True,
        account_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
        gateway: str | Mapping[str, Any] | Gateway | None = None,
        encode: Literal["auto", "original", "flac", "opus"] = "auto",
        max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
        fetch_urls: bool = False,
        provenance: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> pd.DataFrame:
        """Transcribe every row's audio and return a new DataFrame with a text column.

        Args:
            column: The column holding the audio: paths, ``pathlib.Path``, bytes,
                ``data:`` URIs, https URLs (sent as is), fsspec URLs, or Hugging
                Face ``{"bytes":..., "path":...}`` / ``{"array":..., "sampling_rate":...}``.
            output: Name of the text column (default ``f"{column}_text"``).
            language: ISO-639-1 code, or a column name / Series for per-row codes.
            prompt: Text that guides the model, or a column name / Series.
            temperature: Sampling temperature in 0..1 (left out when None).
            model: The Workers AI model.
            errors: ``"raise"`` stops at the first failed row (finished rows are
                cached first); ``"coerce"`` gives failed rows NA text and fills
                ``{output}_error`` and ``{output}_error_code``.
            cache: True for the default cache directory, a path, or False.
            concurrency: Most requests in flight (default 64).
            rate_limit: The account's limit in requests per minute.
            max_retries: Retries for 5xx, timeouts and resets (429s are paced instead).
            timeout: Seconds to wait for one answer.
            progress: Show a tqdm progress bar.
            account_id: Cloudflare account id (default ``CLOUDFLARE_ACCOUNT_ID``).
            api_token: API token (default ``CLOUDFLARE_API_TOKEN``).
            base_url: API base URL (default ``CLOUDFLARE_BASE_URL`` or Cloudflare's).
            gateway: AI Gateway id, or ``{"id":..., "cacheTtl":..., "skipCache":...}``.
            encode: ``"auto"`` sends accepted audio as is; ``"flac"``/``"opus"``
                always send compact 16 kHz mono; ``"original"`` never re-encodes
                accepted audio.
            max_part_seconds: Longer audio is split into parts of at most this.
            fetch_urls: Download https URLs instead of passing them to the service.
            provenance: Add ``{output}_cached``, ``{output}_model`` and
                ``{output}_duration_s``.
            on_event: Called with RetryDetails, RateChange and RowDone events.

        Returns:
            A new DataFrame with the same index and row order.

        Raises:
            ConfigurationError: bad arguments or missing credentials (before any work).
            AccountError: the run stopped (bad token, quota); ``.partial`` holds
                the finished rows.
            TranscribeError: with ``errors="raise"``, the first failed row;
                ``.partial`` holds the finished rows.
        """
        call = self._call(
            column,
            output,
            language,
            prompt,
            provenance,
            _call_kwargs(
                model,
                temperature,
                errors,
                cache,
                concurrency,
                rate_limit,
                max_retries,
                timeout,
                progress,
                account_id,
                api_token,
                base_url,
                gateway,
                encode,
                max_part_seconds,
                fetch_urls,
                on_event,
            ),
        )
        return run_in_thread(call.run)

    async def atranscribe(
        self,
        column: Hashable,
        output: str | None = None,
        *,
        language: PerRow = None,
        prompt: PerRow = None,
        temperature: float | None = None,
        model: str = DEFAULT_MODEL,
        errors: Literal["raise", "coerce"] = "raise",
        cache: bool | str | os.PathLike[str] | Cache = True,
        concurrency: int | None = None,
        rate_limit: float = 720,
        max_retries: int = 6,
        timeout: float = 300.0,
        progress: bool = True,
        account_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
        gateway: str | Mapping[str, Any] | Gateway | None = None,
        encode: Literal["auto", "original", "flac", "opus"] = "auto",
        max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
        fetch_urls: bool = False,
        provenance: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> pd.DataFrame:
        """Like :meth:`transcribe`, awaited in the caller's event loop."""
        call = self._call(
            column,
            output,
            language,
            prompt,
            provenance,
            _call_kwargs(
                model,
                temperature,
                errors,
                cache,
                concurrency,
                rate_limit,
                max_retries,
                timeout,
                progress,
                account_id,
                api_token,
                base_url,
                gateway,
                encode,
                max_part_seconds,
                fetch_urls,
                on_event,
            ),
        )
        return await call.run()


@pd.api.extensions.register_series_accessor("cfai")
class SeriesAccessor:
    """``series.cfai``: transcribe a Series of audio into a Series of text."""

    def __init__(self, series: pd.Series) -> None:
        self._series = series

    def _frame(self) -> tuple[pd.DataFrame, str]:
        name = "audio"
        return self._series.to_frame(name=name), name

    def transcribe(self, **kwargs: Any) -> pd.Series:
        """Transcribe every element; takes the keyword arguments of
        :meth:`DataFrameAccessor.transcribe` (``output`` names the result).

        Returns:
            A Series of pandas ``string`` dtype with the same index, named
            ``output`` or the input Series' name.
        """
        frame, col = self._frame()
        output = kwargs.pop("output", None) or "text"
        out = frame.cfai.transcribe(col, output, **kwargs)
        return self._result(out, output)

    async def atranscribe(self, **kwargs: Any) -> pd.Series:
        """Like :meth:`transcribe`, awaited in the caller's event loop."""
        frame, col = self._frame()
        output = kwargs.pop("output", None) or "text"
        out = await frame.cfai.atranscribe(col, output, **kwargs)
        return self._result(out, output)

    def _result(self, out: pd.DataFrame, output: str) -> pd.Series:
        text = out[output]
        text.name = self._series.name if self._series.name is not None else output
        return text
