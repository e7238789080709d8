""":func:`estimate`: a dry run of ``transcribe`` that sends nothing.

It checks the arguments as the run would, probes every row
(``probe.py``), keys the readable rows as the cache does, counts a key once
(later rows with it are duplicates), subtracts the keys already in the cache,
plans the rows left (``parts.py``) and adds everything up (``result.py``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, get_args

from cf_transcribe_pandas.audio import DEFAULT_MAX_PART_SECONDS, MAX_REQUEST_SECONDS, EncodeMode
from cf_transcribe_pandas.cache import Cache, cache_key
from cf_transcribe_pandas.client import DEFAULT_MODEL, normalize_language, validate_params
from cf_transcribe_pandas.errors import ConfigurationError
from cf_transcribe_pandas.estimate.parts import plan_parts
from cf_transcribe_pandas.estimate.prices import price_for
from cf_transcribe_pandas.estimate.probe import RowProbe, probe_rows
from cf_transcribe_pandas.estimate.result import Estimate, RowStatus, Tally

__all__ = ["estimate"]


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
    langs = _languages(languages, n)
    prompt_list = _prompts(prompts, n)
    labels = list(index) if index is not None else None
    if labels is not None and len(labels) != n:
        raise ConfigurationError(f"index= has {len(labels)} labels for {n} rows")
    price, source = price_for(model, price_per_minute)
    probes = probe_rows(
        values, cache=cache, fetch_urls=fetch_urls, workers=workers, progress=progress
    )
    keys = _keys(probes, langs, prompt_list, model=model, temperature=temperature, encode=encode)
    first: dict[str, int] = {}
    for row, key in enumerate(keys):
        if key is not None:
            first.setdefault(key, row)
    cached = set(cache.lookup_texts(first)) if cache is not None and first else set()
    tally = Tally(
        model=model,
        rate_limit=rate_limit,
        price_per_minute=price,
        price_source=source,
        index=labels,
    )
    limit_s = float(max_part_seconds)
    for row, (probe, key) in enumerate(zip(probes, keys, strict=True)):
        status = _status(row, probe, key, first, cached)
        plan = plan_parts(probe, encode=encode, limit_s=limit_s) if status == "send" else None
        tally.add(status, probe, plan)
    return tally.result()


def _keys(
    probes: list[RowProbe],
    languages: list[str | None],
    prompts: list[str | None],
    *,
    model: str,
    temperature: float | None,
    encode: str,
) -> list[str | None]:
    """The cache key of each readable row (None for the others), as the run makes it."""
    return [
        cache_key(
            probe.sha256,
            model=model,
            language=language,
            prompt=prompt,
            temperature=temperature,
            encode=encode,
        )
        if probe.status == "ok" and probe.sha256 is not None
        else None
        for probe, language, prompt in zip(probes, languages, prompts, strict=True)
    ]


def _status(
    row: int, probe: RowProbe, key: str | None, first: dict[str, int], cached: set[str]
) -> RowStatus:
    """What the run would do with the row."""
    if probe.status == "na":
        return "na"
    if probe.status != "ok" or key is None:
        return "unreadable"
    if first[key] != row:
        return "duplicate"
    return "cached" if key in cached else "send"


def _per_row(name: str, value: Sequence[str | None] | str | None, n: int) -> list[str | None]:
    if value is None or isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ConfigurationError(f"{name}= has {len(values)} values for {n} rows")
    return values


def _languages(languages: Sequence[str | None] | str | None, n: int) -> list[str | None]:
    """One normalized language (or None) per row."""
    norm: dict[str, str | None] = {}
    out: list[str | None] = []
    for lang in _per_row("languages", languages, n):
        if lang is not None and lang not in norm:
            norm[lang] = normalize_language(lang)
        out.append(None if lang is None else norm[lang])
    return out


def _prompts(prompts: Sequence[str | None] | str | None, n: int) -> list[str | None]:
    """One prompt (or None) per row."""
    out = _per_row("prompts", prompts, n)
    for p in out:
        if p is not None and not isinstance(p, str):
            raise ConfigurationError(f"prompts= must hold str or None, not {type(p).__name__}")
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(
    rate_limit: float, price_per_minute: float | None, encode: str, max_part_seconds: float
) -> None:
    """Check the arguments only the estimate takes, and those the run checks elsewhere."""
    if not _is_number(rate_limit) or rate_limit <= 0:
        raise ConfigurationError(
            f"rate_limit= must be a number of requests per minute > 0, not {rate_limit!r}"
        )
    if price_per_minute is not None and (
        not _is_number(price_per_minute)
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
    if not _is_number(max_part_seconds) or not 10 <= max_part_seconds <= MAX_REQUEST_SECONDS:
        raise ConfigurationError(
            f"max_part_seconds= must be between 10 and {MAX_REQUEST_SECONDS:g} seconds, "
            f"not {max_part_seconds!r}"
        )
