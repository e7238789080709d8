"""Settings of the emulator: credentials it accepts, limits and injected faults.

:class:`EmulatorConfig` is frozen. The server keeps the config it started with
and a *current* config; :meth:`Emulator.set_faults` (or ``POST
/__emulator__/faults``) swaps the current one for a copy with some fields
changed, and ``reset`` goes back to the start config.

Only the fields in :data:`FAULT_FIELDS` may change at run time. Credentials,
the accepted models and the transcript sources are fixed at start.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cf_transcribe_pandas.emulator.codes import check_answer_code

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_MODEL",
    "DEFAULT_TOKEN",
    "FAULT_FIELDS",
    "MAX_BYTES",
    "PRESETS",
    "WHISPER_MODEL",
    "EmulatorConfig",
]

DEFAULT_TOKEN = "test-token"
DEFAULT_ACCOUNT_ID = "test-account"
DEFAULT_MODEL = "openai/gpt-4o-transcribe"
WHISPER_MODEL = "@cf/openai/whisper-large-v3-turbo"
"""Served on its own route with its own schema (``emulator/whisper.py``)."""
MAX_BYTES = 25 * 1024 * 1024
"""The service's request limit: 25 MiB."""


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator can be told at start.

    Attributes:
        token: The bearer token it accepts (``Authorization: Bearer <token>``).
        account_id: The account id it accepts in the URL.
        models: Model names it knows; any other gets 400 code 5007.
        blocked: When True, the account is blocked: every run gets 403 code 3023.
        blocked_accounts: More account ids that exist but are blocked (403, 3023).
        rpm_limit: Requests per ``rate_window`` seconds, or None for no limit.
            Enforced with a sliding-window log: a request is admitted when fewer
            than ``rpm_limit`` requests were admitted in the last ``rate_window``
            seconds; otherwise it gets 429 code 3040 and a ``Retry-After`` header
            with the whole seconds until the oldest admitted request leaves the
            window (at least 1). Rejected requests do not enter the window.
        rate_window: Length of the rate-limit window in seconds (60).
        rate_block: Seconds every request is refused once one finds the window
            full, or None (the default) to refuse only the requests over the
            limit. This is how Cloudflare's rate-limiting rules act by default
            (they block for a set duration, whatever the rate during it), and
            the Cloudflare API's global limit blocks for five minutes. Requests
            refused during a block get 429 code 3040 with ``Retry-After`` (the
            whole seconds left); they neither enter the window nor extend the block.
        quota: Successful runs allowed before every run gets 429 code 3036
            (no ``Retry-After``), or None for no quota.
        latency: Seconds a run takes before it answers (success, 5xx or reset).
        latency_jitter: Up to this many seconds are added to ``latency`` at random.
        p429: Probability that a run answers 429 code 3040 with ``Retry-After``:
            the model out of capacity ("No more data centers to forward the request
            to"), whatever the pace, beside ``rpm_limit`` (such a request still
            counts against the account's rate: it reached the service).
        retry_after: Seconds sent in ``Retry-After`` with ``p429`` answers.
        burst_every: Seconds between the starts of two capacity bursts, or None (no
            bursts). Each period is quiet first and ends with ``burst_seconds`` of
            ``burst_share`` capacity refusals (instead of ``p429``); the periods
            count from the start, the last ``reset()``, or the last ``set_faults``
            that changed a ``burst_*`` field.
        burst_seconds: How long a burst lasts.
        burst_share: The probability of a capacity refusal during a burst.
        p500: Probability that a run answers a 5xx from ``error_statuses``.
        error_statuses: Statuses ``p500`` picks from.
        p_html: Share of ``p500`` answers whose body is an HTML page, not JSON.
        p408: Probability that a run answers 408 code 3007 (timeout).
        p_reset: Probability that a run drops the connection without answering.
        slow_body: Seconds over which a success body is streamed, bit by bit.
        answer_code: Any documented error code on demand (see ``emulator/codes.py``):
            ``{"code": 5016}``, with ``shape``, ``after``, ``times``, ``sha256``, ...
        seed: Seed of the random draws, for reproducible faults.
        words_per_second: When set, audio without a registered transcript gets
            ``ceil(duration * words_per_second)`` words ``"w1 w2 ..."`` (duration
            probed with PyAV), cut at ``max_output_words``: the model's
            2,000-output-token cap.
        max_output_words: The cap used with ``words_per_second``.
        max_body_bytes: Largest request body; larger gets 413 code 3006.
        max_file_bytes: Largest decoded audio file; larger gets 413 code 3006.
        manifests: CSV files with ``sha256`` and ``text`` columns to load.
        load_samples: Whether to load the package's ``samples/manifest.csv``.
        transcripts: More transcripts: sha256 (or https URL) -> text.
        log_limit: Request-log entries kept in memory (oldest dropped first).
        preset: A name from :data:`PRESETS` whose values replace the fields
            left at their defaults (so explicit values win, unless they equal the
            default): ``"ideal"``, ``"realistic"``, ``"flaky"``, ``"throttled"``.
    """

    token: str = DEFAULT_TOKEN
    account_id: str = DEFAULT_ACCOUNT_ID
    models: tuple[str, ...] = (DEFAULT_MODEL, WHISPER_MODEL)
    blocked: bool = False
    blocked_accounts: tuple[str, ...] = ()
    rpm_limit: int | None = None
    rate_window: float = 60.0
    rate_block: float | None = None
    quota: int | None = None
    latency: float = 0.0
    latency_jitter: float = 0.0
    p429: float = 0.0
    retry_after: float = 1.0
    burst_every: float | None = None
    burst_seconds: float = 30.0
    burst_share: float = 0.8
    p500: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    p_html: float = 0.25
    p408: float = 0.0
    p_reset: float = 0.0
    slow_body: float = 0.0
    answer_code: Mapping[str, Any] | None = None
    seed: int | None = None
    words_per_second: float | None = None
    max_output_words: int = 1500
    max_body_bytes: int = MAX_BYTES
    max_file_bytes: int = MAX_BYTES
    manifests: tuple[str, ...] = ()
    load_samples: bool = True
    transcripts: Mapping[str, str] = field(default_factory=dict)
    log_limit: int = 100_000
    preset: str | None = None

    def __post_init__(self) -> None:
        """Apply the preset, normalise lists to tuples and check every value.

        Raises:
            ValueError: An unknown preset, or a value out of range or of the wrong type.
        """
        if self.preset is not None:
            self._apply_preset(self.preset)
        for name in _SEQUENCES:
            object.__setattr__(self, name, _as_tuple(name, getattr(self, name)))
        if not self.token or not self.account_id:
            raise ValueError("token and account_id must be non-empty strings")
        for name, check in _CHECKS.items():
            check(name, getattr(self, name))
        object.__setattr__(self, "transcripts", dict(self.transcripts))

    def _apply_preset(self, preset: str) -> None:
        """Set the preset's values on the fields left at their defaults."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(sorted(PRESETS))}")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name, value in PRESETS[preset].items():
            if getattr(self, name) == defaults[name]:
                object.__setattr__(self, name, value)

    def with_faults(self, **changes: Any) -> EmulatorConfig:
        """Return a copy with some run-time fields changed.

        Args:
            **changes: Fields from :data:`FAULT_FIELDS` and their new values.

        Returns:
            The new config.

        Raises:
            ValueError: A name is not a run-time field, or a value is invalid.
        """
        unknown = sorted(set(changes) - FAULT_FIELDS)
        if unknown:
            raise ValueError(
                f"cannot change {', '.join(unknown)} at run time; "
                f"known fields: {', '.join(sorted(FAULT_FIELDS))}"
            )
        # preset=None: the preset was applied once, at start; do not re-apply it
        # to the fields this call sets back to their defaults.
        return dataclasses.replace(self, preset=None, **_coerce(changes))

    def faults(self) -> dict[str, Any]:
        """Return the current run-time fields as a JSON-ready dict."""
        return {name: _jsonable(getattr(self, name)) for name in sorted(FAULT_FIELDS)}

    def to_dict(self) -> dict[str, Any]:
        """Return every field as a JSON-ready dict (lists for tuples)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmulatorConfig:
        """Build a config from a dict such as :meth:`to_dict` returns.

        Args:
            data: Field names and values; lists are accepted for tuple fields.

        Returns:
            The config.

        Raises:
            ValueError: An unknown field name or an invalid value.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown emulator setting(s): {', '.join(unknown)}")
        return cls(**_coerce(data))


PRESETS: dict[str, dict[str, Any]] = {
    "ideal": {},
    "realistic": {
        "rpm_limit": 720,
        "latency": 0.3,
        "latency_jitter": 0.5,
        "p429": 0.005,
        "p500": 0.002,
        "p_reset": 0.001,
    },
    "flaky": {
        "latency": 0.01,
        "latency_jitter": 0.05,
        "p429": 0.1,
        "p500": 0.1,
        "p408": 0.02,
        "p_reset": 0.05,
    },
    "throttled": {"rpm_limit": 60},
}
"""Named sets of limits and faults for ``EmulatorConfig(preset=...)``.

- ``ideal``: no limits, no faults (the defaults).
- ``realistic``: the account limit (720 requests/minute), 0.3-0.8 s per run and
  rare 429/5xx/reset answers.
- ``flaky``: quick runs, but one request in four or so fails in a retryable way.
- ``throttled``: 60 requests/minute.
"""

FAULT_FIELDS: frozenset[str] = frozenset(
    {
        "blocked",
        "blocked_accounts",
        "rpm_limit",
        "rate_window",
        "rate_block",
        "quota",
        "latency",
        "latency_jitter",
        "p429",
        "retry_after",
        "burst_every",
        "burst_seconds",
        "burst_share",
        "p500",
        "error_statuses",
        "p_html",
        "p408",
        "p_reset",
        "slow_body",
        "answer_code",
        "seed",
        "words_per_second",
        "max_output_words",
        "max_body_bytes",
        "max_file_bytes",
    }
)
"""Fields that :meth:`EmulatorConfig.with_faults` (and ``set_faults``) may change."""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_tuple(name: str, value: Any) -> tuple[Any, ...]:
    """A list field as a tuple (``manifests`` also takes one path, and paths become str)."""
    if name == "manifests" and isinstance(value, (str, os.PathLike)):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of values, got {value!r}")
    if name == "manifests":
        return tuple(os.fspath(v) for v in value)
    return tuple(value)


def _probability(name: str, value: Any) -> None:
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")


def _non_negative(name: str, value: Any) -> None:
    if not _is_number(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def _count_or_none(name: str, value: Any) -> None:
    if value is None:
        return
    if not _is_int(value):
        raise ValueError(f"{name} must be an int or None, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _positive(name: str, value: Any) -> None:
    if not _is_number(value) or value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _positive_or_none(name: str, value: Any) -> None:
    if value is not None and (not _is_number(value) or value <= 0):
        raise ValueError(f"{name} must be > 0 or None, got {value!r}")


def _words_per_second(name: str, value: Any) -> None:
    if value is not None:
        _positive(name, value)


def _at_least_one(name: str, value: Any) -> None:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _statuses(name: str, value: tuple[Any, ...]) -> None:
    if not value or any(not isinstance(s, int) or not 500 <= s <= 599 for s in value):
        raise ValueError(f"{name} must be 5xx ints, got {value!r}")


def _int_or_none(name: str, value: Any) -> None:
    if value is not None and not _is_int(value):
        raise ValueError(f"{name} must be an int or None, got {value!r}")


_SEQUENCES = ("models", "blocked_accounts", "error_statuses", "manifests")
"""The list fields, kept as tuples."""

_CHECKS: dict[str, Callable[[str, Any], None]] = {
    **dict.fromkeys(("p429", "p500", "p408", "p_reset", "p_html", "burst_share"), _probability),
    **dict.fromkeys(("latency", "latency_jitter", "slow_body", "retry_after"), _non_negative),
    "rpm_limit": _count_or_none,
    "quota": _count_or_none,
    "rate_window": _positive,
    "rate_block": _positive_or_none,
    "burst_every": _positive_or_none,
    "burst_seconds": _positive,
    "words_per_second": _words_per_second,
    **dict.fromkeys(
        ("max_output_words", "max_body_bytes", "max_file_bytes", "log_limit"), _at_least_one
    ),
    "error_statuses": _statuses,
    "seed": _int_or_none,
    "answer_code": check_answer_code,
}
"""The check of each field with a rule, in the order they run; each raises ValueError."""


def _coerce(data: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for name in _SEQUENCES:
        if isinstance(out.get(name), list):
            out[name] = tuple(out[name])
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value
