"""The one options object of a transcription: every keyword, its default and its bounds.

``df.cfai.transcribe``, ``series.cfai.transcribe``, ``atranscribe``, ``retry_failed``,
``estimate``, ``cf_transcribe_pandas.dask`` and the CLI all build a
:class:`TranscribeOptions`; nothing else checks an option. The keyword list is
written once, here (the fields), and documented once (the class docstring); the
accessors take ``**options`` and show this signature
(:func:`cf_transcribe_pandas.signatures.takes_options`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd

from cf_transcribe_pandas.audio import DEFAULT_MAX_PART_SECONDS, EncodeMode, check_storage_options
from cf_transcribe_pandas.cache import Cache
from cf_transcribe_pandas.client import (
    DEFAULT_MODEL,
    Credentials,
    Gateway,
    adapter_for,
    check_gateway,
    check_proxy,
    check_timestamps,
    normalize_language,
    validate_params,
)
from cf_transcribe_pandas.errors import ConfigurationError

if TYPE_CHECKING:
    from cf_transcribe_pandas.engine import Event

__all__ = [
    "CacheOption",
    "PerRow",
    "TranscribeOptions",
    "check_language",
    "option_names",
]

PerRow = str | pd.Series | None
"""A scalar for every row, a column name, or a Series aligned on the index."""

CacheOption = bool | str | os.PathLike[str] | Cache
"""True (the default directory), a directory, a :class:`Cache`, or False."""

DEFAULT_CONCURRENCY = 64
MAX_PART_SECONDS_RANGE = (10.0, 1500.0)
"""The service takes about 1,500 s of audio a request; parts under 10 s only add requests."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class TranscribeOptions:
    """Every option of a transcription, checked when it is built.

    Attributes:
        output: Name of the text column (default ``f"{column}_text"``).
        language: ISO-639-1 code (``"en"``), or a column name / Series aligned on the
            index for per-row codes (NA: let the model detect it). Left out of the
            request when None.
        prompt: Text that guides the model, or a column name / Series.
        temperature: Sampling temperature in 0..1; left out when None (the service
            uses 0).
        model: The Workers AI model: ``"openai/gpt-4o-transcribe"`` or
            ``"@cf/openai/whisper-large-v3-turbo"`` (timestamps, 12x cheaper).
        task: ``"transcribe"``, or ``"translate"`` into English (whisper only).
        timestamps: True adds ``{output}_segments``, per row ``[{"start", "end",
            "text"}]`` in seconds into the whole recording; ``"word"`` adds each
            segment's ``words``. Needs a model with timestamps (whisper).
        vad_filter: True lets the model drop non-speech first (whisper only).
        prefix: Text the transcript is taken to start with (whisper only).
        errors: ``"raise"`` stops at the first failed row (finished rows are cached
            first); ``"coerce"`` gives failed rows NA text plus ``{output}_error`` and
            ``{output}_error_code``, and logs a one-line summary (also in
            ``.attrs["cfai_summary"]``).
        cache: True for the default directory (``CF_TRANSCRIBE_CACHE_DIR`` or the
            per-user cache), a directory path, a :class:`Cache`, or False.
        concurrency: Most requests in flight (None: 64).
        rate_limit: The account's limit in requests per minute (720); requests are
            paced to it and slowed further on 429 answers that depend on the pace.
        max_retries: Retries of 5xx, 408, timeouts and dropped connections (429s are
            paced instead, for up to ``row_deadline`` seconds a row).
        timeout: Seconds to wait for one answer.
        progress: Show a tqdm progress bar.
        account_id: Cloudflare account id (default ``CLOUDFLARE_ACCOUNT_ID``).
        api_token: API token (default ``CLOUDFLARE_API_TOKEN``); never shown.
        base_url: API base URL (default ``CLOUDFLARE_BASE_URL``, else Cloudflare's).
        gateway: AI Gateway id, or ``{"id": ..., "cacheTtl": ..., "skipCache": ...}``.
        encode: ``"auto"`` sends accepted audio as is and converts the rest;
            ``"flac"``/``"opus"`` always send compact 16 kHz mono; ``"original"``
            never re-encodes accepted audio.
        max_part_seconds: Longer audio is split into parts of at most this (10-1500).
        fetch_urls: Download https URLs instead of handing them to the service (always,
            for a model that takes no URL: whisper).
        storage_options: Given to fsspec for ``s3://``, ``gs://``, ... audio, as pandas
            does (``endpoint_url``, ``key``/``secret``, ``profile``, ``anon``, ...;
            ``headers`` for downloaded URLs). Secret values are never shown.
        provenance: Add ``{output}_cached``, ``{output}_model``, ``{output}_duration_s``.
        on_event: Called with ``RetryDetails``, ``RateChange`` and ``RowDone`` events.
        row_deadline: Seconds a row keeps waiting out 429 answers before it fails.
        max_bytes_in_flight: Memory held for requests at once, in bytes.
        proxy: ``http://`` proxy URL (default: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``).
    """

    output: str | None = None
    language: PerRow = None
    prompt: PerRow = None
    temperature: float | None = None
    model: str = DEFAULT_MODEL
    task: Literal["transcribe", "translate"] | None = None
    timestamps: bool | Literal["segment", "word"] = False
    vad_filter: bool | None = None
    prefix: str | None = None
    errors: Literal["raise", "coerce"] = "raise"
    cache: CacheOption = True
    concurrency: int | None = None
    rate_limit: float = 720.0
    max_retries: int = 6
    timeout: float = 300.0
    progress: bool = True
    account_id: str | None = None
    api_token: str | None = dataclasses.field(default=None, repr=False)
    base_url: str | None = None
    gateway: str | Mapping[str, Any] | Gateway | None = None
    encode: EncodeMode = "auto"
    max_part_seconds: float = DEFAULT_MAX_PART_SECONDS
    fetch_urls: bool = False
    storage_options: Mapping[str, Any] | None = None
    provenance: bool = False
    on_event: Callable[[Event], None] | None = None
    row_deadline: float = 600.0
    max_bytes_in_flight: int = 96 * 1024 * 1024
    proxy: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        model = {k: getattr(self, k) for k in ("temperature", "task", "vad_filter", "prefix")}
        validate_params(model=self.model, language=None, **model)
        for name, check in _CHECKS.items():
            object.__setattr__(self, name, check(getattr(self, name)))
        object.__setattr__(self, "timestamps", check_timestamps(self.model, self.timestamps))
        check_gateway(adapter_for(self.model), self.gateway)  # type: ignore[arg-type]
        if not adapter_for(self.model).takes_urls:
            object.__setattr__(self, "fetch_urls", True)
        if self.output is not None and not (isinstance(self.output, str) and self.output):
            raise _invalid("output", self.output, "a non-empty column name (str)")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> TranscribeOptions:
        """Build from keyword arguments; an unknown keyword is a clear error.

        Raises:
            ConfigurationError: an unknown keyword (with the nearest known one) or a
                value out of bounds (naming the argument and what it accepts).
        """
        known = option_names()
        for name in kwargs:
            if name not in known:
                near = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ConfigurationError(
                    f"unknown option {name}={kwargs[name]!r}{hint} "
                    "(see help(cf_transcribe_pandas.TranscribeOptions))",
                    code="invalid_option",
                )
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TranscribeOptions:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)

    def model_options(self) -> dict[str, object]:
        """The options besides language, prompt and temperature that change the model's
        answer (None: not set), as cache keys and cached rows hold them."""
        names = ("task", "vad_filter", "prefix", "timestamps")
        return {name: getattr(self, name) or None for name in names}

    @property
    def requests_in_flight(self) -> int:
        """``concurrency`` resolved: the most requests in flight (64 when None)."""
        return self.concurrency if self.concurrency is not None else DEFAULT_CONCURRENCY

    def credentials(self) -> Credentials:
        """The account, token and base URL: arguments, else the environment.

        Raises:
            ConfigurationError: a credential is missing or malformed.
        """
        return Credentials.resolve(
            account_id=self.account_id, api_token=self.api_token, base_url=self.base_url
        )

    def open_cache(self) -> Cache | None:
        """The :class:`Cache` the run reads and writes, or None with ``cache=False``."""
        if self.cache is False:
            return None
        if isinstance(self.cache, Cache):
            return self.cache
        if self.cache is True:
            return Cache()  # the per-user default directory
        return Cache(Path(os.fspath(self.cache)).expanduser())

    def cache_path(self) -> str | None:
        """The cache directory as an absolute path (what Dask workers open), or None."""
        cache = self.open_cache()
        return None if cache is None else str(cache.path.absolute())


def check_language(value: object) -> str | None:
    """One row's language: None, or the lower-case ISO-639-1 code.

    Raises:
        ConfigurationError: not a two-letter code (the message suggests one).
    """
    try:
        return normalize_language(value)
    except ConfigurationError as exc:
        raise ConfigurationError(f"language= {exc.message}", code="invalid_language") from None


def option_names() -> tuple[str, ...]:
    """Every option's keyword, in order."""
    return tuple(f.name for f in dataclasses.fields(TranscribeOptions))


# ---------------------------------------------------------------- the checks


def _invalid(name: str, value: object, accepts: str) -> ConfigurationError:
    return ConfigurationError(f"{name}= must be {accepts}, not {value!r}", code=f"invalid_{name}")


def _is_number(value: object) -> bool:
    """A finite real number, numpy's included; not a bool."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    )


def _count(name: str, least: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if (
            isinstance(value, numbers.Integral)
            and not isinstance(value, (bool, np.bool_))
            and int(value) >= least
        ):
            return int(value)
        raise _invalid(name, value, f"an integer >= {least}")

    return check


def _positive(name: str, unit: str) -> Callable[[object], float]:
    def check(value: object) -> float:
        if _is_number(value) and float(value) > 0:  # type: ignore[arg-type]
            return float(value)  # type: ignore[arg-type]
        raise _invalid(name, value, f"a number of {unit} > 0")

    return check


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[object], str]:
    shown = [repr(c) for c in choices]
    accepts = " or ".join(shown) if len(shown) == 2 else "one of " + ", ".join(shown)

    def check(value: object) -> str:
        if value in choices:
            return str(value)
        raise _invalid(name, value, accepts)

    return check


def _per_row(name: str) -> Callable[[object], PerRow]:
    def check(value: object) -> PerRow:
        if value is None or isinstance(value, (str, pd.Series)):
            return value
        raise _invalid(name, type(value).__name__, "a string, a column name or a Series")

    return check


def _temperature(value: object) -> float | None:
    """Checked by the model's adapter (``validate_params``); here made a float."""
    return None if value is None else float(value)  # type: ignore[arg-type]


def _concurrency(value: object) -> int:
    return DEFAULT_CONCURRENCY if value is None else _count("concurrency", 1)(value)


def _part_seconds(value: object) -> float:
    low, high = MAX_PART_SECONDS_RANGE
    if _is_number(value) and low <= float(value) <= high:  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    raise _invalid("max_part_seconds", value, f"between {low:g} and {high:g} seconds")


def _cache(value: object) -> CacheOption:
    if isinstance(value, (bool, Cache)):
        return value
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise _invalid("cache", value, "True, False, a directory path or a Cache")
    text = os.fspath(value)
    if "://" in str(text):
        raise ConfigurationError(
            f"cache= must be a local directory (or one every Dask worker mounts), not the "
            f"URL {text!r}; mount the bucket (s3fs, gcsfuse) and pass its path",
            code="invalid_cache",
        )
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigurationError(
            f"cache= {str(path)!r} is a file, not a directory; pass a directory "
            "(it is created if missing) or cache=False",
            code="invalid_cache",
        )
    return value


def _on_event(value: Any) -> Callable[[Event], None] | None:
    if value is None or callable(value):
        return value  # type: ignore[no-any-return]
    raise _invalid("on_event", value, "a function taking one event")


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "language": _per_row("language"),
    "prompt": _per_row("prompt"),
    "temperature": _temperature,
    "errors": _choice("errors", ("raise", "coerce")),
    "cache": _cache,
    "concurrency": _concurrency,
    "rate_limit": _positive("rate_limit", "requests per minute"),
    "max_retries": _count("max_retries", 0),
    "timeout": _positive("timeout", "seconds"),
    "progress": bool,
    "gateway": Gateway.coerce,
    "encode": _choice("encode", get_args(EncodeMode)),
    "max_part_seconds": _part_seconds,
    "fetch_urls": bool,
    "storage_options": check_storage_options,
    "provenance": bool,
    "on_event": _on_event,
    "row_deadline": _positive("row_deadline", "seconds"),
    "max_bytes_in_flight": _count("max_bytes_in_flight", 1),
    "proxy": check_proxy,
}
"""One check a field (the model's own checks are the client adapter's ``validate_params``)."""
