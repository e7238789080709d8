"""Recording finished rows: the run's result, the progress bar (tqdm.auto), the hook."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from cf_transcribe_pandas.engine.events import Event, RateChange, RetryDetails, RowDone
from cf_transcribe_pandas.engine.outcome import Hit, Outcome
from cf_transcribe_pandas.engine.results import RunResult
from cf_transcribe_pandas.errors import TranscribeError

__all__ = ["Recorder"]

logger = logging.getLogger("cf_transcribe_pandas")

POSTFIX_EVERY = 0.5
"""Seconds between updates of the progress bar's counters."""


class Recorder:
    """Writes each row's outcome into the result, and tells the bar, the log and the hook.

    Args:
        result: The run's result, filled in here.
        progress: Show a tqdm bar.
        on_event: The user's hook, or None.
        rpm: Requests started in the last minute (for the bar).
    """

    def __init__(
        self,
        result: RunResult,
        *,
        progress: bool,
        on_event: Callable[[Event], None] | None,
        rpm: Callable[[], float],
    ) -> None:
        self.result = result
        self._progress = progress
        self._on_event = on_event
        self._rpm = rpm
        self._bar: Any = None
        self._last_postfix = 0.0

    # -- the bar

    def open_bar(self) -> None:
        """Show the progress bar (when asked for)."""
        if self._progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.result.n, unit="row", desc="transcribe", dynamic_ncols=True)

    def close_bar(self) -> None:
        """Update the bar's counters one last time and close it."""
        if self._bar is not None:
            self._postfix()
            self._bar.close()
            self._bar = None

    def _postfix(self) -> None:
        self._bar.set_postfix(
            cached=self.result.from_cache,
            failed=self.result.failed,
            rpm=int(self._rpm()),
            refresh=False,
        )

    def _tick(self, n: int = 1) -> None:
        if self._bar is None:
            return
        self._bar.update(n)
        now = time.monotonic()
        if now - self._last_postfix >= POSTFIX_EVERY:
            self._last_postfix = now
            self._postfix()

    # -- events

    def emit(self, event: Event) -> None:
        """Call the hook; a broken hook is logged, not raised."""
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a broken hook must not break the run
                logger.exception("on_event hook raised; ignoring")

    def rate_changed(self, old: float, new: float) -> None:
        """The limiter moved its rate."""
        self.emit(RateChange(old, new))

    def retrying(
        self, row: int, label: str, attempt: int, delay: float, exc: TranscribeError
    ) -> None:
        """A request is about to be sent again."""
        logger.info(
            "%s: %s (%s); retry %d in %.1f s", label, exc.kind, exc.error_code, attempt, delay
        )
        self.emit(RetryDetails(row, label, attempt, delay, exc))

    # -- rows

    def finished(self, row: int, outcome: Outcome) -> None:
        """A row was transcribed now (or failed)."""
        self._store(row, outcome.text, outcome.duration, outcome.model, cached=False)
        res = self.result
        res.languages[row] = outcome.language
        res.segments[row] = outcome.segments
        res.errors[row] = outcome.error
        status: Literal["ok", "failed"] = "ok"
        if outcome.error is not None:
            res.failed += 1
            status = "failed"
        self._done(RowDone(row, status, outcome.error))

    def failed(self, row: int, error: TranscribeError) -> None:
        """A row failed before anything was sent."""
        self.finished(row, Outcome(None, error))

    def cached(self, row: int, hit: Hit) -> None:
        """A row came from the cache."""
        text, duration, model, language, segments = hit
        self._store(row, text, duration, model, cached=True)
        self.result.languages[row] = language
        self.result.segments[row] = segments
        self.result.from_cache += 1
        self._done(RowDone(row, "cached"))

    def cached_rows(self, rows: Sequence[int]) -> None:
        """Rows whose hits were written into the result already (by the plan)."""
        self.result.from_cache += len(rows)
        self.result.done += len(rows)
        self._tick(len(rows))
        if self._on_event is not None:
            for row in rows:
                self.emit(RowDone(row, "cached"))

    def skipped(self, row: int) -> None:
        """A row with no audio (NA)."""
        self._done(RowDone(row, "skipped"))

    def _store(
        self, row: int, text: str | None, duration: float | None, model: str | None, *, cached: bool
    ) -> None:
        res = self.result
        res.texts[row] = text
        res.durations[row] = duration
        res.models[row] = model
        res.cached[row] = cached

    def _done(self, event: RowDone) -> None:
        self.result.done += 1
        self._tick()
        if self._on_event is not None:
            self.emit(event)
