"""The pandas accessors ``df.cfai`` and ``series.cfai``.

Thin on purpose: parse and check the arguments, then hand the rows to
:mod:`cf_transcribe_pandas.engine`. No HTTP and no caching here.

Every public method spells out its whole signature (typed and documented)
and passes ``locals()`` to :func:`_parse`, which checks every argument before
any work; ``tests/test_accessor.py`` checks that the four signatures agree.
"""

from __future__ import annotations

import collections
import contextlib
import math
import numbers
import os
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from cf_transcribe_pandas.audio import DEFAULT_MAX_PART_SECONDS, EncodeMode
from cf_transcribe_pandas.cache import Cache, default_cache_dir
from cf_transcribe_pandas.client import (
    DEFAULT_MODEL,
    Credentials,
    Gateway,
    normalize_language,
    validate_params,
)
from cf_transcribe_pandas.engine import (
    Event,
    RunOptions,
    RunResult,
    assemble,
    result_columns,
    run_in_thread,
    transcribe_rows,
)
from cf_transcribe_pandas.errors import ConfigurationError, TranscribeError

if TYPE_CHECKING:
    from cf_transcribe_pandas.estimate import Estimate

__all__ = ["DataFrameAccessor", "SeriesAccessor", "build_options"]

ENCODINGS = ("auto", "original", "flac", "opus")
DEFAULT_CONCURRENCY = 64
SUMMARY_ATTR = "cfai_summary"
"""Key of the failed-rows summary line in the returned object's ``.attrs``."""

_SERIES_COLUMN = "__cfai_audio__"

PerRow = str | pd.Series | None
"""A scalar for every row, a column name, or a Series aligned on the index."""

CacheOption = bool | str | os.PathLike[str] | Cache
"""True (the default directory), a directory, a :class:`Cache`, or False."""


# ---------------------------------------------------------------- argument checks


_CACHES: collections.OrderedDict[str, Cache] = collections.OrderedDict()
_CACHES_LOCK = threading.Lock()
_CACHES_KEPT = 8


def _shared_cache(path: Path) -> Cache:
    """The process's :class:`Cache` for ``path``, reused from call to call.

    A Cache remembers the keys of the part files it read or wrote (they never
    change), so a rerun in the same process (a notebook) lists the directory
    and reads only the files that are new since the last call.
    """
    key = os.path.abspath(path)
    with _CACHES_LOCK:
        found = _CACHES.get(key)
        if found is None:
            found = _CACHES[key] = Cache(path)
            while len(_CACHES) > _CACHES_KEPT:
                _CACHES.popitem(last=False)
        else:
            _CACHES.move_to_end(key)
        return found


def _resolve_cache(cache: CacheOption) -> Cache | None:
    if cache is False:
        return None
    if cache is True:
        found = _shared_cache(default_cache_dir())
    elif isinstance(cache, Cache):
        found = cache
    elif isinstance(cache, (str, os.PathLike)) and os.fspath(cache):
        found = _shared_cache(Path(cache).expanduser())
    else:
        raise ConfigurationError(
            f"cache= must be True, False, a directory path or a Cache, not {cache!r}",
            code="invalid_cache",
        )
    if found.path.exists() and not found.path.is_dir():
        raise ConfigurationError(
            f"cache= {str(found.path)!r} is a file, not a directory; pass a directory "
            "(it is created if missing) or cache=False",
            code="invalid_cache",
        )
    return found


def _is_number(value: object) -> bool:
    """A finite real number, numpy's included; not a bool."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    )


def _is_count(value: object, least: int) -> bool:
    """An integer (numpy's included; not a bool) of at least ``least``."""
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, (bool, np.bool_))
        and int(value) >= least
    )


def build_options(
    *,
    model: str,
    temperature: float | None,
    errors: str,
    cache: CacheOption,
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
    """Check every run option and the credentials before any work.

    Takes the keyword arguments of :meth:`DataFrameAccessor.transcribe` that
    are not about columns (see there).

    Returns:
        The engine's options.

    Raises:
        ConfigurationError: An invalid value or a missing credential; the
            message names the argument and says what it accepts.
    """
    if errors not in ("raise", "coerce"):
        raise ConfigurationError(
            f"errors= must be 'raise' or 'coerce', not {errors!r}", code="invalid_errors"
        )
    validate_params(model=model, language=None, temperature=temperature)
    if not _is_number(rate_limit) or rate_limit <= 0:
        raise ConfigurationError(
            f"rate_limit= must be a number of requests per minute > 0 (the account's limit, "
            f"720 by default), not {rate_limit!r}",
            code="invalid_rate_limit",
        )
    if concurrency is None:
        concurrency = DEFAULT_CONCURRENCY
    if not _is_count(concurrency, 1):
        raise ConfigurationError(
            f"concurrency= must be an integer >= 1 (requests in flight), not {concurrency!r}",
            code="invalid_concurrency",
        )
    if not _is_count(max_retries, 0):
        raise ConfigurationError(
            f"max_retries= must be an integer >= 0, not {max_retries!r}",
            code="invalid_max_retries",
        )
    if not _is_number(timeout) or timeout <= 0:
        raise ConfigurationError(
            f"timeout= must be a number of seconds > 0, not {timeout!r}", code="invalid_timeout"
        )
    if encode not in ENCODINGS:
        raise ConfigurationError(
            f"encode= must be one of {', '.join(map(repr, ENCODINGS))}, not {encode!r}",
            code="invalid_encode",
        )
    if not _is_number(max_part_seconds) or not 10 <= max_part_seconds <= 1500:
        raise ConfigurationError(
            f"max_part_seconds= must be between 10 and 1500 seconds, not {max_part_seconds!r}",
            code="invalid_max_part_seconds",
        )
    if on_event is not None and not callable(on_event):
        raise ConfigurationError(
            f"on_event= must be a function taking one event, not {on_event!r}",
            code="invalid_on_event",
        )
    resolved_cache = _resolve_cache(cache)
    resolved_gateway = Gateway.coerce(gateway)
    credentials = Credentials.resolve(account_id=account_id, api_token=api_token, base_url=base_url)
    return RunOptions(
        credentials=credentials,
        model=model,
        temperature=float(temperature) if temperature is not None else None,
        errors="coerce" if errors == "coerce" else "raise",
        cache=resolved_cache,
        concurrency=int(concurrency),
        rate_limit=float(rate_limit),
        max_retries=int(max_retries),
        timeout=float(timeout),
        progress=bool(progress),
        gateway=resolved_gateway,
        encode=encode,
        max_part_seconds=float(max_part_seconds),
        fetch_urls=bool(fetch_urls),
        on_event=on_event,
    )


def _is_na(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _per_row(name: str, value: PerRow, df: pd.DataFrame) -> tuple[list[str | None], bool]:
    """Expand a scalar, a column name or an aligned Series to one value per row.

    Returns:
        The values and whether they came from a column or Series (per row).
    """
    index = df.index
    if value is None:
        return [None] * len(index), False
    if isinstance(value, str):
        if value not in df.columns:
            return [value] * len(index), False
        series = df[value]
        if isinstance(series, pd.DataFrame):
            raise ConfigurationError(
                f"{name}= names the column {value!r}, which appears more than once",
                code=f"invalid_{name}",
            )
    elif isinstance(value, pd.Series):
        series = value
        if not series.index.equals(index):
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
            series = series.reindex(index)
    else:
        raise ConfigurationError(
            f"{name}= must be a string, a column name or a Series, not {type(value).__name__}",
            code=f"invalid_{name}",
        )
    return [None if _is_na(v) else str(v) for v in series.tolist()], True


def _languages(value: PerRow, df: pd.DataFrame) -> list[str | None]:
    languages, per_row = _per_row("language", value, df)
    checked: dict[str, str | None] = {}
    out: list[str | None] = []
    for position, language in enumerate(languages):
        if language is None:
            out.append(None)
            continue
        if language not in checked:
            try:
                checked[language] = normalize_language(language)
            except ConfigurationError as exc:
                where = f" (row with index label {df.index[position]!r})" if per_row else ""
                raise ConfigurationError(
                    f"language= {exc.message}{where}", code="invalid_language"
                ) from None
        out.append(checked[language])
    return out


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


# ---------------------------------------------------------------- one call


class _Call:
    """One checked ``transcribe`` call: the rows, per-row parameters and options."""

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
        values = _column(df, column)
        if output is None:
            output = f"{column}_text"
        if not isinstance(output, str) or not output:
            raise ConfigurationError(
                f"output= must be a non-empty column name (str), not {output!r}",
                code="invalid_output",
            )
        if output == column:
            raise ConfigurationError(
                f"output= must differ from the audio column {column!r}", code="invalid_output"
            )
        self.df = df
        self.values = values.tolist()
        self.output = output
        self.provenance = bool(provenance)
        self.options = build_options(**options)
        self.languages = _languages(language, df)
        self.prompts, _ = _per_row("prompt", prompt, df)

    async def run(self) -> pd.DataFrame:
        """Transcribe the rows and assemble the new frame.

        Raises:
            TranscribeError: as the engine does, with ``.partial`` set to the
                frame of the finished rows.
        """
        try:
            result = await transcribe_rows(
                self.values, languages=self.languages, prompts=self.prompts, options=self.options
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
            out.attrs[SUMMARY_ATTR] = summary
        return out


_CALL_ONLY = ("column", "output", "language", "prompt", "provenance")


def _parse(df: pd.DataFrame, arguments: dict[str, Any]) -> _Call:
    """Build a :class:`_Call` from a public method's ``locals()``."""
    options = {k: v for k, v in arguments.items() if k not in (*_CALL_ONLY, "self")}
    return _Call(
        df,
        arguments["column"],
        arguments["output"],
        arguments["language"],
        arguments["prompt"],
        arguments.get("provenance", False),
        options,
    )


def _estimate(df: pd.DataFrame, arguments: dict[str, Any]) -> Estimate:
    """Check the arguments like :class:`_Call` (no credentials needed), then estimate."""
    from cf_transcribe_pandas.estimate import estimate

    column = arguments["column"]
    values = _column(df, column)
    return estimate(
        values.tolist(),
        languages=_languages(arguments["language"], df),
        prompts=_per_row("prompt", arguments["prompt"], df)[0],
        model=arguments["model"],
        temperature=arguments["temperature"],
        encode=arguments["encode"],
        max_part_seconds=arguments["max_part_seconds"],
        cache=_resolve_cache(arguments["cache"]),
        rate_limit=arguments["rate_limit"],
        price_per_minute=arguments["price_per_minute"],
        progress=bool(arguments["progress"]),
        fetch_urls=bool(arguments["fetch_urls"]),
        index=df.index,
    )


# ---------------------------------------------------------------- accessors


@pd.api.extensions.register_dataframe_accessor("cfai")
class DataFrameAccessor:
    """``df.cfai``: transcribe a column of audio with Cloudflare Workers AI."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

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
        cache: CacheOption = True,
        concurrency: int | None = None,
        rate_limit: float = 720,
        max_retries: int = 6,
        timeout: float = 300.0,
        progress: bool = True,
        account_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
        gateway: str | Mapping[str, Any] | Gateway | None = None,
        encode: EncodeMode = "auto",
        max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
        fetch_urls: bool = False,
        provenance: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> pd.DataFrame:
        """Transcribe every row's audio and return a new DataFrame with a text column.

        Works in scripts and in Jupyter alike (the run goes on a private event
        loop in a background thread). Ctrl-C stops it at once; every finished
        row is in the cache, so the same call goes on where it stopped.

        Args:
            column: The column holding the audio: paths, ``pathlib.Path``, bytes,
                ``data:`` URIs, https URLs (sent as is), fsspec URLs, or Hugging
                Face ``{"bytes":..., "path":...}`` / ``{"array":..., "sampling_rate":...}``.
                NA cells give NA text.
            output: Name of the text column (default ``f"{column}_text"``).
            language: ISO-639-1 code, or a column name / Series for per-row
                codes (NA: let the model detect it).
            prompt: Text that guides the model, or a column name / Series.
            temperature: Sampling temperature in 0..1 (left out when None).
            model: The Workers AI model.
            errors: ``"raise"`` stops at the first failed row (finished rows are
                cached first, then the error is raised); ``"coerce"`` gives
                failed rows NA text and fills ``{output}_error`` and
                ``{output}_error_code``, and logs a one-line summary (also in
                ``.attrs["cfai_summary"]``).
            cache: True for the default cache directory (``CF_TRANSCRIBE_CACHE_DIR``
                or the per-user cache), a directory path, a :class:`Cache`, or False.
            concurrency: Most requests in flight (default 64).
            rate_limit: The account's limit in requests per minute; requests
                are paced to it and slowed down further on 429 answers.
            max_retries: Retries for 5xx, timeouts and dropped connections
                (429s are paced instead, for up to 10 minutes per row).
            timeout: Seconds to wait for one answer.
            progress: Show a tqdm progress bar (rows done, from cache, failed,
                requests in the last minute).
            account_id: Cloudflare account id (default ``CLOUDFLARE_ACCOUNT_ID``).
            api_token: API token (default ``CLOUDFLARE_API_TOKEN``).
            base_url: API base URL (default ``CLOUDFLARE_BASE_URL`` or Cloudflare's).
            gateway: AI Gateway id, or ``{"id":..., "cacheTtl":..., "skipCache":...}``.
            encode: ``"auto"`` sends accepted audio as is and converts the rest;
                ``"flac"``/``"opus"`` always send compact 16 kHz mono;
                ``"original"`` never re-encodes accepted audio.
            max_part_seconds: Longer audio is split into parts of at most this.
            fetch_urls: Download https URLs instead of passing them to the service.
            provenance: Add ``{output}_cached``, ``{output}_model`` and
                ``{output}_duration_s``.
            on_event: Called with :class:`RetryDetails`, :class:`RateChange` and
                :class:`RowDone` events, from the thread that runs the requests.

        Returns:
            A new DataFrame (the input is not modified) with the same index and
            row order, plus ``output`` of pandas ``string`` dtype.

        Raises:
            ConfigurationError: bad arguments or missing credentials (before any work).
            AccountError: the run stopped (bad token, blocked account, daily
                quota used up); ``.partial`` holds the frame with every finished row.
            TranscribeError: with ``errors="raise"``, the first failed row;
                ``.partial`` holds the frame with every finished row.
            KeyboardInterrupt: on Ctrl-C, after the finished rows are cached.
        """
        call = _parse(self._df, locals())
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
        cache: CacheOption = True,
        concurrency: int | None = None,
        rate_limit: float = 720,
        max_retries: int = 6,
        timeout: float = 300.0,
        progress: bool = True,
        account_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
        gateway: str | Mapping[str, Any] | Gateway | None = None,
        encode: EncodeMode = "auto",
        max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
        fetch_urls: bool = False,
        provenance: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> pd.DataFrame:
        """:meth:`transcribe`, awaited in the caller's event loop.

        Takes the same arguments and returns the same frame. Cancelling the
        awaiting task cancels the requests in flight, flushes the finished
        rows to the cache and closes the session before ``CancelledError``
        propagates. ``on_event`` is called on the caller's loop.
        """
        call = _parse(self._df, locals())
        return await call.run()

    def retry_failed(
        self, column: Hashable, output: str | None = None, **options: Any
    ) -> pd.DataFrame:
        """Transcribe again only the rows a coerced run left failed.

        Call it on the frame ``transcribe(..., errors="coerce")`` returned:
        the rows whose ``{output}_error`` is set are sent again, and their
        text, error and provenance columns replaced; every other row is kept
        as it is, untouched and unread (so it also works with
        ``cache=False``). Rerunning the original call does the same through
        the cache, but reads every row again.

        Args:
            column: The audio column, as given to :meth:`transcribe`.
            output: The text column, as given to :meth:`transcribe`.
            **options: Keyword arguments of :meth:`transcribe` for the retry
                (credentials, ``cache``, ``rate_limit``, ...). ``errors``
                defaults to ``"coerce"``, and ``provenance`` to whether the
                frame has the provenance columns.

        Returns:
            A new DataFrame: this one with the retried rows' results.

        Raises:
            ConfigurationError: the frame has no ``{output}_error`` column (it
                did not come from ``errors="coerce"``), or a bad option.
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
            if target in out.columns:
                where = out.columns.get_loc(target)
                if not isinstance(where, int):
                    continue  # a duplicated column name: leave it
                values = redo[target].to_numpy() if target in redo.columns else pd.NA
                out.iloc[positions, where] = values
        return out

    def estimate(
        self,
        column: Hashable,
        *,
        language: PerRow = None,
        prompt: PerRow = None,
        temperature: float | None = None,
        model: str = DEFAULT_MODEL,
        cache: CacheOption = True,
        rate_limit: float = 720,
        encode: EncodeMode = "auto",
        max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
        fetch_urls: bool = False,
        price_per_minute: float | None = None,
        progress: bool = False,
    ) -> Estimate:
        """What :meth:`transcribe` would send and cost, sending nothing.

        Every row is probed (headers only) and hashed; duplicates and rows
        already in the cache count as free. No credentials are needed.

        Args:
            column: The audio column, as for :meth:`transcribe`.
            language: As for :meth:`transcribe` (part of the cache key).
            prompt: As for :meth:`transcribe` (part of the cache key).
            temperature: As for :meth:`transcribe` (part of the cache key).
            model: The model (part of the cache key and the price).
            cache: The cache whose rows are subtracted (only read), or False.
            rate_limit: Requests per minute, for the expected wall time.
            encode: As for :meth:`transcribe`.
            max_part_seconds: As for :meth:`transcribe`.
            fetch_urls: As for :meth:`transcribe`.
            price_per_minute: US dollars per audio minute (default: the model's
                published price, when known).
            progress: Show a tqdm progress bar while probing.

        Returns:
            An :class:`~cf_transcribe_pandas.estimate.Estimate`: rows, audio
            minutes, requests, upload bytes, expected cost and time; ``print()``
            it for a summary, ``.to_frame()`` for one row per input row.

        Raises:
            ConfigurationError: a bad argument (before any file is read).
        """
        return _estimate(self._df, locals())


@pd.api.extensions.register_series_accessor("cfai")
class SeriesAccessor:
    """``series.cfai``: transcribe a Series of audio into a Series of text."""

    def __init__(self, series: pd.Series) -> None:
        self._series = series

    def transcribe(
        self,
        output: str | None = None,
        *,
        language: PerRow = None,
        prompt: PerRow = None,
        temperature: float | None = None,
        model: str = DEFAULT_MODEL,
        errors: Literal["raise", "coerce"] = "raise",
        cache: CacheOption = True,
        concurrency: int | None = None,
        rate_limit: float = 720,
        max_retries: int = 6,
        timeout: float = 300.0,
        progress: bool = True,
        account_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
        gateway: str | Mapping[str, Any] | Gateway | None = None,
        encode: EncodeMode = "auto",
        max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
        fetch_urls: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> pd.Series:
        """Transcribe every element; arguments as in :meth:`DataFrameAccessor.transcribe`.

        ``language`` and ``prompt`` are a scalar or a Series aligned on this
        Series' index. With ``errors="coerce"`` failed elements are NA (use
        ``df.cfai.transcribe`` for the error columns); the summary line is in
        ``.attrs["cfai_summary"]``.

        Returns:
            A new Series of pandas ``string`` dtype with the same index, named
            ``output``, else ``f"{name}_text"``, else ``"text"``.
        """
        call = self._parse(locals())
        with self._partial_as_series(call):
            return self._text(run_in_thread(call.run), call)

    async def atranscribe(
        self,
        output: str | None = None,
        *,
        language: PerRow = None,
        prompt: PerRow = None,
        temperature: float | None = None,
        model: str = DEFAULT_MODEL,
        errors: Literal["raise", "coerce"] = "raise",
        cache: CacheOption = True,
        concurrency: int | None = None,
        rate_limit: float = 720,
        max_retries: int = 6,
        timeout: float = 300.0,
        progress: bool = True,
        account_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
        gateway: str | Mapping[str, Any] | Gateway | None = None,
        encode: EncodeMode = "auto",
        max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
        fetch_urls: bool = False,
        on_event: Callable[[Event], None] | None = None,
    ) -> pd.Series:
        """:meth:`transcribe`, awaited in the caller's event loop."""
        call = self._parse(locals())
        with self._partial_as_series(call):
            return self._text(await call.run(), call)

    def estimate(
        self,
        *,
        language: PerRow = None,
        prompt: PerRow = None,
        temperature: float | None = None,
        model: str = DEFAULT_MODEL,
        cache: CacheOption = True,
        rate_limit: float = 720,
        encode: EncodeMode = "auto",
        max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
        fetch_urls: bool = False,
        price_per_minute: float | None = None,
        progress: bool = False,
    ) -> Estimate:
        """:meth:`DataFrameAccessor.estimate` for this Series' audio; sends nothing."""
        frame = self._series.to_frame(name=_SERIES_COLUMN)
        return _estimate(frame, {**locals(), "column": _SERIES_COLUMN})

    def _parse(self, arguments: dict[str, Any]) -> _Call:
        series = self._series
        output = arguments["output"]
        if output is not None:
            name = output
        elif series.name is not None:
            name = f"{series.name}_text"
        else:
            name = "text"
        frame = series.to_frame(name=_SERIES_COLUMN)
        return _parse(frame, {**arguments, "column": _SERIES_COLUMN, "output": name})

    def _text(self, out: pd.DataFrame, call: _Call) -> pd.Series:
        text: pd.Series = out[call.output]
        text.attrs = dict(out.attrs)
        return text

    @contextlib.contextmanager
    def _partial_as_series(self, call: _Call) -> Iterator[None]:
        """Give a stopped run's ``.partial`` as a Series, like the result."""
        try:
            yield
        except TranscribeError as exc:
            if isinstance(exc.partial, pd.DataFrame):
                exc.partial = self._text(exc.partial, call)
            raise
