"""What a run tells the user on stderr: :class:`RowLog` and the ``--log-json`` lines.

Without ``--log-json`` messages are plain ``cf-transcribe: ...`` lines; with
it, every line on stderr is one JSON object (``event``: ``row``, ``retry``,
``rate``, ``log`` or, last, ``summary``). Audio is named without secrets: no
URL password or query string, no data URIs or bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cf_transcribe_pandas import RateChange, RetryDetails, RowDone
from cf_transcribe_pandas.cli.exits import say

logger = logging.getLogger("cf_transcribe_pandas")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _print_json(line: dict[str, Any]) -> None:
    print(json.dumps(line, ensure_ascii=False), file=sys.stderr, flush=True)


def _url_label(value: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return None
    host = parts.netloc.rsplit("@", 1)[-1]  # no user:password
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def audio_label(value: object) -> str | None:
    """A short, secret-free name for a row's audio in log lines."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        if value[:5].lower() == "data:":
            return None
        return _url_label(value) if "://" in value else value
    if isinstance(value, dict):
        path = value.get("path")
        return path if isinstance(path, str) else None
    return None  # bytes and anything else


class _JsonLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        line = {
            "event": "log",
            "time": _now(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        try:
            _print_json(line)
        except Exception:  # pragma: no cover - a closed stderr
            self.handleError(record)


@contextmanager
def library_log(json_lines: bool, verbose: bool) -> Iterator[None]:
    """Send the library's log to stderr: JSON lines, or ``cf-transcribe: message``.

    Args:
        json_lines: one JSON object a line (``--log-json``).
        verbose: INFO and up (retries, slow-downs) rather than WARNING and up.
    """
    handler: logging.Handler
    if json_lines:
        handler = _JsonLogHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("cf-transcribe: %(message)s"))
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


class RowLog:
    """The ``on_event`` hook of a CLI run: counts rows; with ``json_lines``, logs them.

    One JSON line on stderr per finished row (``event: "row"``), retry
    (``"retry"``), rate change (``"rate"``) and message (``"log"``), and a
    last ``"summary"`` line. Without ``json_lines`` it only counts, and
    messages are plain ``cf-transcribe: ...`` lines.

    Attributes:
        values: the audio column, to name each row's audio in ``row`` lines.
        counts: finished rows by status (ok, cached, failed, skipped).
        finished: the positions of the finished rows.
    """

    def __init__(self, *, json_lines: bool) -> None:
        self.values: Sequence[Any] = ()
        self.json_lines = json_lines
        self.counts = {"ok": 0, "cached": 0, "failed": 0, "skipped": 0}
        self.finished: set[int] = set()
        self.started = time.monotonic()

    def _emit(self, event: str, **fields: Any) -> None:
        _print_json({"event": event, "time": _now(), **fields})

    def message(self, text: str, level: str = "WARNING") -> None:
        """Tell the user something: a ``log`` line, or ``cf-transcribe: text``."""
        if self.json_lines:
            self._emit("log", level=level, logger="cf-transcribe", message=text)
        else:
            say(text)

    def __call__(self, event: Any) -> None:
        """Count a finished row; in JSON mode, log it (and retries, rate changes)."""
        if isinstance(event, RowDone):
            self.counts[event.status] += 1
            self.finished.add(event.row)
            if self.json_lines:
                self._row(event)
        elif not self.json_lines:
            return
        elif isinstance(event, RetryDetails):
            self._emit(
                "retry",
                row=event.row,
                attempt=event.attempt,
                delay_s=round(event.delay, 3),
                http_status=event.error.status,
                error_code=event.error.error_code,
                error=event.error.message,
            )
        elif isinstance(event, RateChange):
            self._emit("rate", old_rpm=event.old, new_rpm=event.new)

    def _row(self, event: RowDone) -> None:
        error = event.error
        value = self.values[event.row] if event.row < len(self.values) else None
        self._emit(
            "row",
            row=event.row,
            audio=audio_label(value),
            status=event.status,
            error_code=error.error_code if error is not None else None,
            error=error.message if error is not None else None,
        )

    def finish(self, exit_code: int, output: str | None) -> int:
        """End the run: the ``summary`` line (JSON mode); returns ``exit_code``."""
        if self.json_lines:
            rows = len(self.values)
            self._emit(
                "summary",
                rows=rows,
                **self.counts,
                unfinished=rows - len(self.finished),
                output=output,
                exit_code=exit_code,
                seconds=round(time.monotonic() - self.started, 3),
            )
        return exit_code
