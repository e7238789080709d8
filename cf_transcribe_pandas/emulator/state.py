"""The emulator's memory: settings now, transcripts, rate window, log, counters.

:class:`EmulatorState` knows nothing of HTTP answers; the service handler
(``handler.py``, ``faults.py``) asks it questions (is this request admitted?
which text?) and tells it what happened (:meth:`EmulatorState.record`).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import random
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from cf_transcribe_pandas.emulator.config import EmulatorConfig
from cf_transcribe_pandas.emulator.transcripts import (
    build_transcripts,
    normalise,
    placeholder,
    probe_duration,
    words_text,
)

__all__ = ["STATE_KEY", "EmulatorState"]

_logger = logging.getLogger("cf_transcribe_pandas.emulator")


class EmulatorState:
    """The emulator's memory: config, transcripts, limits, log and counters.

    One instance lives in each application (``app[STATE_KEY]``). It is not
    thread-safe: touch it only from the event loop that serves the app.

    Args:
        config: The start config; ``reset()`` goes back to it.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.start_config = config
        self._base_transcripts = build_transcripts(
            load_samples=config.load_samples,
            manifests=config.manifests,
            extra=config.transcripts,
        )
        self.config = config
        self.reset()

    # -- control ---------------------------------------------------------

    def reset(self) -> None:
        """Clear the log, counters, limits and registered transcripts; restore the start config."""
        self.config = self.start_config
        self.transcripts: dict[str, str] = dict(self._base_transcripts)
        self.rng = random.Random(self.config.seed)
        self.window: collections.deque[float] = collections.deque()
        self.blocked_until = 0.0
        self.bursts_since = time.monotonic()
        self.quota_used = 0
        self.code_seen = 0  # runs the answer_code fault saw (emulator/codes.py)
        self.log: collections.deque[dict[str, Any]] = collections.deque()
        self.log_start = 0
        self.total = 0
        self.ok = 0
        self.resets = 0
        # Requests in flight stay in flight across a reset.
        self.in_flight: int = getattr(self, "in_flight", 0)
        self.max_in_flight = self.in_flight
        self.status: collections.Counter[str] = collections.Counter()
        self.codes: collections.Counter[str] = collections.Counter()
        self.faults_hit: collections.Counter[str] = collections.Counter()
        self.by_form: collections.Counter[str] = collections.Counter()
        self.by_sha256: collections.Counter[str] = collections.Counter()
        self.ok_by_sha256: collections.Counter[str] = collections.Counter()

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change run-time fields of the current config; return the new fault values.

        Raises:
            ValueError: An unknown field or an invalid value.
        """
        self.config = self.config.with_faults(**changes)
        if "seed" in changes:
            self.rng = random.Random(self.config.seed)
        if any(name.startswith("burst_") for name in changes):
            self.bursts_since = time.monotonic()
        if "answer_code" in changes:
            self.code_seen = 0
        return self.config.faults()

    def capacity_share(self, now: float) -> tuple[float, bool]:
        """The probability of a capacity refusal now, and whether a burst is on."""
        cfg = self.config
        if cfg.burst_every is not None:
            phase = (now - self.bursts_since) % cfg.burst_every
            if phase >= cfg.burst_every - cfg.burst_seconds:
                return cfg.burst_share, True
        return cfg.p429, False

    def register(self, transcripts: Mapping[str, str]) -> int:
        """Add transcripts (sha256 or https URL -> text); return how many are known."""
        self.transcripts.update(normalise(transcripts))
        return len(self.transcripts)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Return the log entries whose index ``i`` is ``since`` or later."""
        skip = max(0, since - self.log_start)
        return [dict(entry) for entry in itertools.islice(self.log, skip, None)]

    def counters(self) -> dict[str, Any]:
        """Return the counters as a JSON-ready dict.

        Keys: ``requests`` (every service request), ``ok`` (200 answers),
        ``status`` (``"200"``, ``"429"``, ... ``"499"`` for a client that left,
        ``"reset"`` for a dropped connection -> count), ``codes`` (Cloudflare
        error code -> count), ``faults`` (``rate_limit``, ``quota``, ``p429``,
        ``p408``, ``p500``, ``reset``, ``client_gone`` -> count), ``resets``,
        ``by_form``, ``by_sha256`` (requests per audio sha256, any answer),
        ``ok_by_sha256``, ``in_flight``, ``max_in_flight``, ``quota_used``.
        """
        return {
            "requests": self.total,
            "ok": self.ok,
            "status": dict(self.status),
            "codes": dict(self.codes),
            "faults": dict(self.faults_hit),
            "resets": self.resets,
            "by_form": dict(self.by_form),
            "by_sha256": dict(self.by_sha256),
            "ok_by_sha256": dict(self.ok_by_sha256),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "quota_used": self.quota_used,
        }

    # -- bookkeeping -----------------------------------------------------

    def record(self, entry: dict[str, Any]) -> None:
        """Append a finished request to the log and count it.

        Entry keys: ``i`` (index), ``t`` (``time.monotonic()`` at arrival),
        ``t_done``, ``method``, ``path``, ``form`` ("unified" | "per_model" |
        None), ``account``, ``status`` (None for a dropped connection, 499 when
        the client left), ``code`` (Cloudflare code or None), ``fault``,
        ``retry_after``, ``model``, ``sha256``, ``mime``, ``container``,
        ``bytes``, ``language``, ``prompt``, ``temperature``, ``file_kind``
        ("data" | "url"), ``url``, ``body`` (``file`` cut to 80 characters),
        ``unknown_keys``, ``user_agent``, ``gateway`` (None, or a dict with
        ``id``, ``via`` ("url" | "body") and, when sent, ``cacheTtl`` and
        ``skipCache``).
        """
        entry["i"] = self.log_start + len(self.log)
        entry["t_done"] = time.monotonic()
        self.log.append(entry)
        if len(self.log) > self.config.log_limit:
            self.log.popleft()
            self.log_start += 1
        self.total += 1
        status = entry["status"]
        self.status["reset" if status is None else str(status)] += 1
        if entry["code"] is not None:
            self.codes[str(entry["code"])] += 1
        if entry["fault"] is not None:
            self.faults_hit[entry["fault"]] += 1
        if entry["form"] is not None:
            self.by_form[entry["form"]] += 1
        sha = entry["sha256"]
        if sha is not None:
            self.by_sha256[sha] += 1
        if status == 200:
            self.ok += 1
            if sha is not None:
                self.ok_by_sha256[sha] += 1
        elif status is None:
            self.resets += 1
        if _logger.isEnabledFor(logging.INFO):
            _logger.info(
                "%s %s -> %s%s%s%s",
                entry["method"],
                entry["path"],
                status if status is not None else "reset",
                f" code={entry['code']}" if entry["code"] is not None else "",
                f" sha256={sha[:12]}" if sha else "",
                f" gateway={entry['gateway']['id']}" if entry["gateway"] else "",
            )

    def admit_rate(self, now: float) -> int | None:
        """Sliding-window check: None if admitted, else whole seconds to wait.

        With ``rate_block`` set, a request that finds the window full starts a
        block, and every request until it ends is refused too (setting
        ``rate_block`` to None lifts it).
        """
        cfg = self.config
        if cfg.rpm_limit is None:
            return None
        if cfg.rate_block is not None and now < self.blocked_until:
            return max(1, math.ceil(self.blocked_until - now))
        window = self.window
        horizon = now - cfg.rate_window
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= cfg.rpm_limit:
            if cfg.rate_block is not None:
                self.blocked_until = now + cfg.rate_block
                return max(1, math.ceil(cfg.rate_block))
            wait = (window[0] + cfg.rate_window - now) if window else cfg.rate_window
            return max(1, math.ceil(wait))
        window.append(now)
        return None

    async def text_for_audio(self, sha: str, audio: bytes) -> str:
        """The transcript of decoded audio: registered, word run, or placeholder.

        Args:
            sha: The audio's sha256 (hex).
            audio: The decoded bytes; probed for their duration with ``words_per_second``.

        Raises:
            ValueError: PyAV cannot decode the audio (with ``words_per_second``).
        """
        text = self.transcripts.get(sha)
        if text is not None:
            return text
        wps = self.config.words_per_second
        if wps is None:
            return placeholder(sha)
        duration = await asyncio.get_running_loop().run_in_executor(None, probe_duration, audio)
        if duration is None:
            return placeholder(sha)
        return words_text(duration, wps, self.config.max_output_words)


STATE_KEY: web.AppKey[EmulatorState] = web.AppKey("cf_transcribe_emulator_state", EmulatorState)
"""Where :func:`create_app` keeps the :class:`EmulatorState` in the application."""
