"""What a transcription run would send and cost, found without sending anything.

:func:`estimate` looks at every row the way a run would, but only cheaply::

    rows -> to_source -> audio.probe (headers: format, duration, size)
         -> sha256 (or the cache's path memo) -> cache key per row
         -> dedupe by key -> cache lookup -> plan the parts of each row to send

and returns an :class:`Estimate`: rows, audio minutes, upload bytes, requests
(after re-encoding, splitting, dedupe and the cache), the expected cost at a
per-minute price and the expected wall time at the rate limit.

It is an estimate, not a promise:

* Probing reads headers, not every sample, so a file that is corrupt past its
  header counts as readable here and fails in the run.
* The size of re-encoded audio is estimated at
  :data:`REENCODED_BYTES_PER_SECOND` (measured on real speech).
* A part whose transcript comes back near the model's 2,000-token output cap
  is split in two and sent again during the run; nobody can know that before.
* Wall time is the rate limit's bound (requests / rate limit). Each request
  also takes the service's latency, and the parts of one split recording go
  one after another, so a small run takes longer than this.

Nothing here imports pandas at module level except for :meth:`Estimate.to_frame`;
the ``df.cfai.estimate`` accessor method is a thin wrapper in ``accessor.py``.
"""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from cf_transcribe_pandas import audio as audio_mod
from cf_transcribe_pandas.audio import (
    ACCEPTED,
    DEFAULT_MAX_PART_SECONDS,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_SECONDS,
    PLAN_HEADROOM,
    EncodeMode,
    Source,
    request_bytes,
)
from cf_transcribe_pandas.cache import Cache, cache_key
from cf_transcribe_pandas.client import DEFAULT_MODEL, normalize_language, validate_params
from cf_transcribe_pandas.errors import ConfigurationError, TranscribeError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_PRICE_PER_MINUTE",
    "PRICES_PER_MINUTE",
    "PRICE_SOURCE",
    "REENCODED_BYTES_PER_SECOND",
    "Estimate",
    "RowStatus",
    "estimate",
]

DEFAULT_PRICE_PER_MINUTE = 0.006
"""US dollars per minute of audio for ``openai/gpt-4o-transcribe``.

Source, looked up 2026-11-27: Cloudflare's page for the model
(https://developers.cloudflare.com/ai/models/openai/gpt-4o-transcribe/)
publishes no number ("View pricing in the Cloudflare dashboard"), and the
Workers AI pricing page has no row for it. So this is OpenAI's published
estimated cost for gpt-4o-transcribe, $0.006 per minute, which OpenAI bills as
tokens ($2.50 per 1M audio input tokens, $10 per 1M text output tokens;
https://developers.openai.com/api/docs/models/gpt-4o-transcribe). Cloudflare
may bill its proxied model differently: pass ``price_per_minute`` (or
``--price-per-minute``) with your account's rate.
"""

PRICE_SOURCE = (
    "OpenAI's published estimate for gpt-4o-transcribe, looked up 2026-11-27; "
    "Cloudflare publishes no per-minute price for this model"
)
"""Where :data:`DEFAULT_PRICE_PER_MINUTE` comes from, in one line (shown with estimates)."""

PRICES_PER_MINUTE: Mapping[str, float] = {DEFAULT_MODEL: DEFAULT_PRICE_PER_MINUTE}
"""Known per-minute prices by model; other models need ``price_per_minute``."""

REENCODED_BYTES_PER_SECOND: Mapping[str, int] = {"flac": 20_000, "opus": 3_800}
"""Bytes per second of audio re-encoded to 16 kHz mono FLAC / Opus 32 kbit/s.

Measured on the speech clips in ``tests/data/audio`` (FLAC 18-21 kB/s, Opus
3.0-3.8 kB/s). Silence and tones compress better, noise worse.
"""

RowStatus = Literal["send", "cached", "duplicate", "na", "unreadable"]
"""What a run would do with a row: send it, take it from the cache, copy it
from an earlier row with the same audio and parameters, skip it (NA), or fail
it before sending (unreadable)."""

_WINDOW = 1024  # rows handed to the thread pool at a time (bounded memory)
_EXAMPLES = 5  # unreadable rows quoted in the summary


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Estimate:
    """What a run would send and cost; made by :func:`estimate`.

    Attributes:
        rows: Rows looked at.
        rows_to_send: Rows whose audio would be sent (first of their key, not cached).
        rows_cached: Rows whose transcript is already in the cache.
        rows_duplicate: Rows with the same audio and parameters as an earlier row.
        rows_na: Rows with no audio (None, NaN, NA): skipped, no request.
        rows_unreadable: Rows that would fail before sending.
        unreadable: Error code -> rows, for the unreadable rows.
        unreadable_examples: The first few unreadable rows' messages.
        rows_reencoded: Rows to send that would be re-encoded (format the
            service refuses, odd WAV, too large, or ``encode="flac"/"opus"``).
        rows_split: Rows to send that would go as more than one part.
        rows_unknown_duration: Rows to send whose duration is unknown (https
            URLs passed to the service as they are); not in the minutes or cost.
        audio_seconds: Seconds of audio in every readable row.
        audio_seconds_to_send: Seconds of audio in the rows to send.
        upload_bytes: Request bytes to upload (base64 included; re-encoded
            audio estimated at :data:`REENCODED_BYTES_PER_SECOND`).
        requests: Requests to send: one per part of each row to send.
        max_parts_per_row: Most parts of one row (sent one after another).
        model: The model priced.
        rate_limit: Requests per minute the wall time assumes.
        price_per_minute: US dollars per audio minute, or None when unknown.
        price_source: Where the price comes from.
    """

    rows: int
    rows_to_send: int
    rows_cached: int
    rows_duplicate: int
    rows_na: int
    rows_unreadable: int
    unreadable: Mapping[str, int]
    unreadable_examples: tuple[str, ...]
    rows_reencoded: int
    rows_split: int
    rows_unknown_duration: int
    audio_seconds: float
    audio_seconds_to_send: float
    upload_bytes: int
    requests: int
    max_parts_per_row: int
    model: str
    rate_limit: float
    price_per_minute: float | None
    price_source: str
    _table: Mapping[str, list[Any]] = field(default_factory=dict, repr=False, compare=False)
    _index: Any = field(default=None, repr=False, compare=False)

    @property
    def audio_minutes(self) -> float:
        """Minutes of audio in every readable row."""
        return self.audio_seconds / 60.0

    @property
    def audio_minutes_to_send(self) -> float:
        """Minutes of audio in the rows to send (what is billed)."""
        return self.audio_seconds_to_send / 60.0

    @property
    def cost(self) -> float | None:
        """Expected US dollars: audio minutes to send x price, or None without a price."""
        if self.price_per_minute is None:
            return None
        return self.audio_minutes_to_send * self.price_per_minute

    @property
    def wall_seconds(self) -> float:
        """Seconds the requests take at the rate limit (a lower bound: see the module doc)."""
        return self.requests / self.rate_limit * 60.0

    def as_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready (for ``cf-transcribe estimate --json``)."""
        return {
            "rows": self.rows,
            "rows_to_send": self.rows_to_send,
            "rows_cached": self.rows_cached,
            "rows_duplicate": self.rows_duplicate,
            "rows_na": self.rows_na,
            "rows_unreadable": self.rows_unreadable,
            "unreadable": dict(self.unreadable),
            "unreadable_examples": list(self.unreadable_examples),
            "rows_reencoded": self.rows_reencoded,
            "rows_split": self.rows_split,
            "rows_unknown_duration": self.rows_unknown_duration,
            "audio_seconds": round(self.audio_seconds, 3),
            "audio_seconds_to_send": round(self.audio_seconds_to_send, 3),
            "audio_minutes": round(self.audio_minutes, 3),
            "audio_minutes_to_send": round(self.audio_minutes_to_send, 3),
            "upload_bytes": self.upload_bytes,
            "requests": self.requests,
            "max_parts_per_row": self.max_parts_per_row,
            "model": self.model,
            "price_per_minute": self.price_per_minute,
            "price_source": self.price_source,
            "cost_usd": None if self.cost is None else round(self.cost, 6),
            "rate_limit": self.rate_limit,
            "wall_seconds": round(self.wall_seconds, 3),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per input row: what the run would do with it.

        Columns: ``status`` (:data:`RowStatus`), ``format``, ``duration_s``,
        ``bytes`` (input size), ``reencode``, ``parts``, ``requests`` (0 unless
        sent), ``upload_bytes``, ``error_code``, ``error``. The index is the
        one given to :func:`estimate` (positions 0..n-1 by default).
        """
        import pandas as pd

        t = self._table
        frame: pd.DataFrame = pd.DataFrame(
            {
                "status": pd.array(t.get("status", []), dtype="string"),
                "format": pd.array(t.get("format", []), dtype="string"),
                "duration_s": pd.array(t.get("duration_s", []), dtype="Float64"),
                "bytes": pd.array(t.get("bytes", []), dtype="Int64"),
                "reencode": pd.array(t.get("reencode", []), dtype="boolean"),
                "parts": pd.array(t.get("parts", []), dtype="Int64"),
                "requests": pd.array(t.get("requests", []), dtype="Int64"),
                "upload_bytes": pd.array(t.get("upload_bytes", []), dtype="Int64"),
                "error_code": pd.array(t.get("error_code", []), dtype="string"),
                "error": pd.array(t.get("error", []), dtype="string"),
            }
        )
        if self._index is not None:
            frame.index = pd.Index(self._index)
        return frame

    def __str__(self) -> str:
        skipped = (
            f"{self.rows_cached:,} cached, {self.rows_duplicate:,} duplicate, "
            f"{self.rows_na:,} empty (NA), {self.rows_unreadable:,} unreadable"
        )
        lines = [
            f"Estimate for {self.rows:,} rows of {self.model} (nothing was sent):",
            f"  rows      {self.rows_to_send:,} to send; {skipped}",
            f"  audio     {_fmt_minutes(self.audio_minutes_to_send)} to send "
            f"({_fmt_minutes(self.audio_minutes)} in all readable rows)",
        ]
        if self.rows_unknown_duration:
            lines.append(
                f"            + {self.rows_unknown_duration:,} URL rows of unknown length "
                "(not in the minutes or the cost)"
            )
        detail = []
        if self.rows_reencoded:
            detail.append(f"{self.rows_reencoded:,} rows re-encoded")
        if self.rows_split:
            detail.append(
                f"{self.rows_split:,} split into parts (up to {self.max_parts_per_row} for one row)"
            )
        lines.append(
            f"  requests  {self.requests:,}" + (f" ({', '.join(detail)})" if detail else "")
        )
        lines.append(f"  upload    {_fmt_bytes(self.upload_bytes)}")
        if self.cost is None:
            lines.append(
                f"  cost      unknown: no published price for {self.model}; "
                "pass price_per_minute (--price-per-minute)"
            )
        else:
            lines.append(
                f"  cost      {_fmt_dollars(self.cost)} at ${self.price_per_minute:g} per audio "
                f"minute ({self.price_source})"
            )
        lines.append(
            f"  time      {_fmt_seconds(self.wall_seconds)} at {self.rate_limit:g} requests/minute "
            "(at least: each request also waits for the service"
            + (
                f", and the {self.max_parts_per_row} parts of the longest row go one after another"
                if self.max_parts_per_row > 1
                else ""
            )
            + ")"
        )
        if self.unreadable:
            kinds = ", ".join(f"{n:,} {code}" for code, n in self.unreadable.items())
            lines.append(f"  unreadable  {kinds}")
            lines.extend(f"    {example}" for example in self.unreadable_examples)
        return "\n".join(lines)


# --------------------------------------------------------------------------- probing


@dataclass(slots=True)
class _Probe:
    """One row, kept small: a million of them stay in memory until the end."""

    status: Literal["ok", "na", "unreadable"]
    source: Source | None = None  # dropped once inspected
    passthrough: bool = False
    fmt: str | None = None
    mime: str | None = None
    duration_s: float | None = None
    size: int = 0
    accepted: bool = False
    sha256: str | None = None
    error_code: str | None = None
    error: str | None = None


def _fail(exc: BaseException, value: object) -> _Probe:
    if isinstance(exc, TranscribeError):
        return _Probe("unreadable", error_code=exc.error_code, error=exc.message)
    label = value if isinstance(value, str) and len(value) < 300 else type(value).__name__
    return _Probe(
        "unreadable",
        error_code="probe_failed",
        error=f"{label}: cannot be probed ({type(exc).__name__}: {exc})",
    )


def _resolve(value: object, fetch_urls: bool, want_stat: bool) -> tuple[_Probe, Any]:
    """Classify one value; return its probe so far and its memo key (paths only)."""
    try:
        source = audio_mod.to_source(value, fetch_urls=fetch_urls)
        if source.kind == "na":
            return _Probe("na"), None
        stat_key = source.stat_key() if want_stat and source.kind == "path" else None
    except Exception as exc:  # one bad row never stops the estimate
        return _fail(exc, value), None
    return _Probe("ok", source=source), stat_key


def _inspect(probe: _Probe, value: object, known_sha: str | None) -> _Probe:
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


def _probe_all(
    values: Sequence[Any],
    *,
    cache: Cache | None,
    fetch_urls: bool,
    workers: int,
    tick: Callable[[int], None],
) -> Iterator[_Probe]:
    """Probe every row in order, a window at a time, in a thread pool."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cf-estimate") as pool:
        for start in range(0, len(values), _WINDOW):
            window = [values[i] for i in range(start, min(len(values), start + _WINDOW))]
            resolved = list(pool.map(lambda v: _resolve(v, fetch_urls, cache is not None), window))
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


# --------------------------------------------------------------------------- planning


def _plan(row: _Probe, *, encode: str, limit_s: float) -> tuple[int, int, bool]:
    """(parts, upload bytes, re-encoded) for one row, as :func:`audio.prepare` would do it."""
    if row.passthrough:
        return 1, 0, False
    accepted = row.accepted or (encode == "original" and row.fmt in ACCEPTED)
    duration = row.duration_s
    if encode in ("auto", "original") and accepted:
        size = request_bytes(row.size, row.mime or "application/octet-stream")
        if size <= MAX_REQUEST_BYTES and (duration is None or duration <= limit_s):
            return 1, size, False
    if duration is None or duration <= 0:  # cannot plan parts without a length
        return 1, request_bytes(row.size), True
    parts = 1 if duration <= limit_s else math.ceil(duration / (limit_s * PLAN_HEADROOM))
    codec = "opus" if encode == "opus" else "flac"
    strict = encode in ("flac", "opus")
    while True:
        seconds = duration / parts
        size = request_bytes(math.ceil(seconds * REENCODED_BYTES_PER_SECOND[codec]))
        if size <= MAX_REQUEST_BYTES:
            return parts, parts * size, True
        if codec == "flac" and not strict:
            codec = "opus"  # prepare() tries Opus before splitting further
            continue
        parts *= 2  # a part that will not fit is cut in two


# --------------------------------------------------------------------------- entry


def _per_row(name: str, value: Sequence[str | None] | str | None, n: int) -> list[str | None]:
    if value is None or isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ConfigurationError(f"{name}= has {len(values)} values for {n} rows")
    return values


def _check(
    rate_limit: float, price_per_minute: float | None, encode: str, max_part_seconds: float
) -> None:
    if isinstance(rate_limit, bool) or not isinstance(rate_limit, (int, float)) or rate_limit <= 0:
        raise ConfigurationError(
            f"rate_limit= must be a number of requests per minute > 0, not {rate_limit!r}"
        )
    if price_per_minute is not None and (
        isinstance(price_per_minute, bool)
        or not isinstance(price_per_minute, (int, float))
        or not price_per_minute >= 0
        or math.isinf(price_per_minute)
    ):
        raise ConfigurationError(
            f"price_per_minute= must be a number of dollars >= 0, not {price_per_minute!r}"
        )
    if encode not in get_args(EncodeMode):
        raise ConfigurationError(
            f"encode= must be one of {', '.join(get_args(EncodeMode))}, not {encode!r}"
        )
    if (
        isinstance(max_part_seconds, bool)
        or not isinstance(max_part_seconds, (int, float))
        or not 10 <= max_part_seconds <= MAX_REQUEST_SECONDS
    ):
        raise ConfigurationError(
            f"max_part_seconds= must be between 10 and {MAX_REQUEST_SECONDS:g} seconds, "
            f"not {max_part_seconds!r}"
        )


def estimate(
    values: Sequence[Any],
    *,
    languages: Sequence[str | None] | str | None = None,
    prompts: Sequence[str | None] | str | None = None,
    model: str = DEFAULT_MODEL,
    temperature: float | None = None,
    encode: EncodeMode = "auto",
    max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
    cache: Cache | None = None,
    rate_limit: float = 720.0,
    price_per_minute: float | None = None,
    progress: bool = False,
    fetch_urls: bool = False,
    workers: int | None = None,
    index: Iterable[Hashable] | None = None,
) -> Estimate:
    """Count what transcribing ``values`` would send and cost, sending nothing.

    Every row is probed (headers only, :func:`audio.probe`) and hashed (or its
    hash taken from the cache's path memo), in a thread pool. Rows with the
    same audio and parameters count once; rows already in ``cache`` count as
    cached. Each row left is planned as :func:`audio.prepare` would: sent as
    it is, re-encoded, or split into parts of at most ``max_part_seconds``
    (and under the 25 MiB request limit).

    Args:
        values: One audio value per row: anything ``df.cfai.transcribe`` takes.
        languages: One ISO-639-1 code (or None) per row, or one for all rows.
        prompts: One prompt (or None) per row, or one for all rows.
        model: The model (part of the cache key and the price).
        temperature: As for the run (part of the cache key).
        encode: As for the run: ``"auto"``, ``"original"``, ``"flac"``, ``"opus"``.
        max_part_seconds: As for the run: longer audio is split (10 to 1,500 s).
        cache: The cache to subtract, or None to count every row as new.
            Only read: the estimate writes nothing.
        rate_limit: Requests per minute, for the wall time.
        price_per_minute: US dollars per audio minute; default: the model's
            published price (:data:`PRICES_PER_MINUTE`), else the cost is unknown.
        progress: Show a tqdm progress bar.
        fetch_urls: As for the run: download https URLs (to probe them)
            instead of counting them as passed to the service.
        workers: Threads probing files (default: CPU count + 4, at most 32).
        index: Labels for :meth:`Estimate.to_frame` (default 0..n-1).

    Returns:
        The :class:`Estimate`; ``print()`` it for a summary.

    Raises:
        ConfigurationError: a bad argument (checked before any file is read).
    """
    n = len(values)
    validate_params(model=model, language=None, temperature=temperature)
    _check(rate_limit, price_per_minute, encode, max_part_seconds)
    norm: dict[str, str | None] = {}
    langs: list[str | None] = []
    for lang in _per_row("languages", languages, n):
        if lang is None:
            langs.append(None)
            continue
        if lang not in norm:
            norm[lang] = normalize_language(lang)
        langs.append(norm[lang])
    prompt_list = _per_row("prompts", prompts, n)
    for p in prompt_list:
        if p is not None and not isinstance(p, str):
            raise ConfigurationError(f"prompts= must hold str or None, not {type(p).__name__}")
    labels = list(index) if index is not None else None
    if labels is not None and len(labels) != n:
        raise ConfigurationError(f"index= has {len(labels)} labels for {n} rows")
    if price_per_minute is None:
        price = PRICES_PER_MINUTE.get(model)
        source = PRICE_SOURCE if price is not None else "no published price"
    else:
        price, source = float(price_per_minute), "the price given"
    limit_s = float(max_part_seconds)

    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, unit="row", desc="estimate", dynamic_ncols=True)

    def tick(k: int) -> None:
        if bar is not None:
            bar.update(k)

    try:
        probes = list(
            _probe_all(
                values,
                cache=cache,
                fetch_urls=fetch_urls,
                workers=workers or min(32, (os.cpu_count() or 1) + 4),
                tick=tick,
            )
        )
    finally:
        if bar is not None:
            bar.close()

    keys: list[str | None] = [None] * n
    first: dict[str, int] = {}
    for row, probe in enumerate(probes):
        if probe.status == "ok" and probe.sha256 is not None:
            key = cache_key(
                probe.sha256,
                model=model,
                language=langs[row],
                prompt=prompt_list[row],
                temperature=temperature,
                encode=encode,
            )
            keys[row] = key
            first.setdefault(key, row)
    cached = set(cache.lookup_texts(first)) if cache is not None and first else set()

    table: dict[str, list[Any]] = {
        name: []
        for name in (
            "status",
            "format",
            "duration_s",
            "bytes",
            "reencode",
            "parts",
            "requests",
            "upload_bytes",
            "error_code",
            "error",
        )
    }
    counts: collections.Counter[str] = collections.Counter()
    unreadable: collections.Counter[str] = collections.Counter()
    examples: list[str] = []
    audio_s = send_s = 0.0
    upload = requests = max_parts = reencoded = split = unknown = 0
    for row, probe in enumerate(probes):
        row_key = keys[row]
        status: RowStatus
        parts = row_requests = row_upload = 0
        reencode: bool | None = None
        readable = probe.status == "ok" and row_key is not None
        if probe.status == "na":
            status = "na"
        elif not readable or row_key is None:
            status = "unreadable"
            code = probe.error_code or "unreadable_audio"
            unreadable[code] += 1
            if len(examples) < _EXAMPLES and probe.error:
                examples.append(probe.error)
        elif first[row_key] != row:
            status = "duplicate"
        elif row_key in cached:
            status = "cached"
        else:
            status = "send"
            parts, row_upload, reencode = _plan(probe, encode=encode, limit_s=limit_s)
            row_requests = parts
            requests += parts
            upload += row_upload
            max_parts = max(max_parts, parts)
            reencoded += reencode
            split += parts > 1
            if probe.duration_s is None:
                unknown += 1
            else:
                send_s += probe.duration_s
        if readable and probe.duration_s is not None:
            audio_s += probe.duration_s
        counts[status] += 1
        table["status"].append(status)
        table["format"].append(probe.fmt)
        table["duration_s"].append(probe.duration_s)
        table["bytes"].append(probe.size if readable else None)
        table["reencode"].append(reencode)
        table["parts"].append(parts)
        table["requests"].append(row_requests)
        table["upload_bytes"].append(row_upload)
        table["error_code"].append(probe.error_code)
        table["error"].append(probe.error)

    return Estimate(
        rows=n,
        rows_to_send=counts["send"],
        rows_cached=counts["cached"],
        rows_duplicate=counts["duplicate"],
        rows_na=counts["na"],
        rows_unreadable=counts["unreadable"],
        unreadable=dict(unreadable.most_common()),
        unreadable_examples=tuple(examples),
        rows_reencoded=reencoded,
        rows_split=split,
        rows_unknown_duration=unknown,
        audio_seconds=audio_s,
        audio_seconds_to_send=send_s,
        upload_bytes=upload,
        requests=requests,
        max_parts_per_row=max_parts,
        model=model,
        rate_limit=float(rate_limit),
        price_per_minute=price,
        price_source=source,
        _table=table,
        _index=labels,
    )


# --------------------------------------------------------------------------- formatting


def _fmt_minutes(minutes: float) -> str:
    if minutes >= 120:
        return f"{minutes / 60:,.1f} hours"
    return f"{minutes:,.1f} min"


def _fmt_seconds(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{max(seconds, 0):.0f} s" if seconds >= 1 or seconds == 0 else "under 1 s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} days {h} h"


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _fmt_dollars(amount: float) -> str:
    if amount >= 1 or amount == 0:
        return f"${amount:,.2f}"
    return f"${amount:.4f}"
