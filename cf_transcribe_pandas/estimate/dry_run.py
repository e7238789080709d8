""":func:`estimate`: a dry run of ``transcribe`` that sends nothing.

It checks the arguments as the run would, probes every row
(``probe.py``), keys the readable rows as the cache does, counts a key once
(later rows with it are duplicates), subtracts the keys already in the cache,
plans the rows left (``parts.py``) and adds everything up (``result.py``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from cf_transcribe_pandas.cache import Cache
from cf_transcribe_pandas.client import MODELS, adapter_for
from cf_transcribe_pandas.engine.plan import keys_for
from cf_transcribe_pandas.errors import ConfigurationError
from cf_transcribe_pandas.estimate.compare import ModelComparison
from cf_transcribe_pandas.estimate.parts import plan_parts
from cf_transcribe_pandas.estimate.prices import price_for
from cf_transcribe_pandas.estimate.probe import RowProbe, probe_rows
from cf_transcribe_pandas.estimate.result import Estimate, RowStatus, Tally
from cf_transcribe_pandas.options import TranscribeOptions, check_language

__all__ = ["estimate"]


def estimate(
    values: Sequence[Any],
    *,
    languages: Sequence[str | None] | str | None = None,
    prompts: Sequence[str | None] | str | None = None,
    options: TranscribeOptions | None = None,
    price_per_minute: float | None = None,
    workers: int | None = None,
    index: Iterable[Hashable] | None = None,
    compare_models: bool | Sequence[str] = False,
    **option_kwargs: Any,
) -> Estimate | ModelComparison:
    """Count what transcribing ``values`` would send and cost, sending nothing.

    Every row is probed (headers only, :func:`audio.probe`) and hashed (or its
    hash taken from the cache's path memo), in a thread pool. Rows with the
    same audio and parameters count once; rows already in the cache count as
    cached. Each row left is planned as :func:`audio.prepare` would: sent as
    it is, re-encoded, or split into parts of at most ``max_part_seconds``
    (and under the 25 MiB request limit).

    Args:
        values: One audio value per row: anything ``df.cfai.transcribe`` takes.
        languages: One ISO-639-1 code (or None) per row, or one for all rows.
        prompts: One prompt (or None) per row, or one for all rows.
        options: The run's options (model, temperature, encode, max_part_seconds,
            cache, rate_limit, fetch_urls, storage_options, progress); or give them
            as keywords.
        price_per_minute: US dollars per audio minute; default: the model's
            published price (:data:`PRICES_PER_MINUTE`), else the cost is unknown.
        workers: Threads probing files (default: CPU count + 4, at most 32).
        index: Labels for :meth:`Estimate.to_frame` (default 0..n-1).
        compare_models: True (every model with an adapter) or a list of models:
            estimate the same rows for each, the options' model first (each
            without the options it does not take; ``price_per_minute`` is the
            options' model's only) and return a :class:`ModelComparison`.
        **option_kwargs: Options of :class:`TranscribeOptions`, when ``options`` is
            not given; here ``cache`` defaults to False (None too: count every row
            as new) and ``progress`` to False. The cache is only read.

    Returns:
        The :class:`Estimate` (a :class:`ModelComparison` with ``compare_models``);
        ``print()`` it for a summary.

    Raises:
        ConfigurationError: a bad argument (checked before any file is read).
        StorageAccessError: the storage refused the credentials or cannot be reached.
    """
    if options is None:
        if option_kwargs.get("cache", False) is None:
            option_kwargs["cache"] = False
        options = TranscribeOptions.from_kwargs(
            **{"cache": False, "progress": False, **option_kwargs}
        )
    elif option_kwargs:
        options = options.replace(**option_kwargs)
    _check_price(price_per_minute)
    n = len(values)
    cache = options.open_cache()
    langs = _languages(languages, n)
    prompt_list = _prompts(prompts, n)
    labels = list(index) if index is not None else None
    if labels is not None and len(labels) != n:
        raise ConfigurationError(f"index= has {len(labels)} labels for {n} rows")
    models = _models(options.model, compare_models)
    probes = probe_rows(
        values,
        cache=cache,
        fetch_urls=options.fetch_urls,
        storage_options=options.storage_options,
        workers=workers,
        progress=options.progress,
    )
    rows = _Rows(probes, langs, prompt_list, labels, cache)
    if not compare_models:
        return rows.tally(options, price_per_minute)
    return ModelComparison(
        {
            model: rows.tally(
                _for_model(options, model), price_per_minute if model == options.model else None
            )
            for model in models
        }
    )


def _models(model: str, compare: bool | Sequence[str]) -> list[str]:
    """The models to estimate, ``model`` first, each named once."""
    if compare is False:
        return [model]
    chosen = list(MODELS) if compare is True else list(compare)
    for name in chosen:
        adapter_for(name)  # a clear error for a malformed name
    return list(dict.fromkeys([model, *chosen]))


def _for_model(options: TranscribeOptions, model: str) -> TranscribeOptions:
    """``options`` for ``model``, without the options it does not take."""
    adapter = adapter_for(model)
    names = ("temperature", "task", "vad_filter", "prefix")
    dropped = {n: None for n in names if n not in adapter.options}
    timestamps = options.timestamps if adapter.timestamps else False
    return options.replace(model=model, timestamps=timestamps, **dropped)


class _Rows:
    """The probed rows of one estimate, tallied for one model at a time."""

    def __init__(
        self,
        probes: list[RowProbe],
        languages: list[str | None],
        prompts: list[str | None],
        labels: list[Hashable] | None,
        cache: Cache | None,
    ) -> None:
        self.probes, self.languages, self.prompts = probes, languages, prompts
        self.labels, self.cache = labels, cache

    def tally(self, options: TranscribeOptions, price_per_minute: float | None) -> Estimate:
        """Key, dedupe, look up and plan every row as a run of ``options`` would."""
        probes, cache, encode = self.probes, self.cache, options.encode
        price, source = price_for(options.model, price_per_minute)
        keys = _keys(probes, self.languages, self.prompts, options)
        first: dict[str, int] = {}
        for row, key in enumerate(keys):
            if key is not None:
                first.setdefault(key, row)
        cached = set(cache.lookup_texts(first)) if cache is not None and first else set()
        tally = Tally(
            model=options.model,
            rate_limit=options.rate_limit,
            price_per_minute=price,
            price_source=source,
            index=self.labels,
        )
        limit_s = options.max_part_seconds
        for row, (probe, key) in enumerate(zip(probes, keys, strict=True)):
            status = _status(row, probe, key, first, cached)
            plan = plan_parts(probe, encode=encode, limit_s=limit_s) if status == "send" else None
            tally.add(status, probe, plan)
        return tally.result()


def _keys(
    probes: list[RowProbe],
    languages: list[str | None],
    prompts: list[str | None],
    options: TranscribeOptions,
) -> list[str | None]:
    """The cache key of each readable row (None for the others), as the run makes it."""
    maker = keys_for(options)
    return [
        maker.key(probe.sha256, language, prompt)
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
            norm[lang] = check_language(lang)
        out.append(None if lang is None else norm[lang])
    return out


def _prompts(prompts: Sequence[str | None] | str | None, n: int) -> list[str | None]:
    """One prompt (or None) per row."""
    out = _per_row("prompts", prompts, n)
    for p in out:
        if p is not None and not isinstance(p, str):
            raise ConfigurationError(f"prompts= must hold str or None, not {type(p).__name__}")
    return out


def _check_price(price_per_minute: float | None) -> None:
    """The one argument only the estimate takes (the options checked the rest)."""
    if price_per_minute is None:
        return
    if (
        isinstance(price_per_minute, bool)
        or not isinstance(price_per_minute, (int, float))
        or not 0 <= price_per_minute < math.inf
    ):
        raise ConfigurationError(
            f"price_per_minute= must be a number of dollars >= 0, not {price_per_minute!r}",
            code="invalid_price_per_minute",
        )
