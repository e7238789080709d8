"""What one compute did: per-partition counts, the run's :class:`RunSummary`, its trip
from the worker that finished last to the client (a ``distributed`` event), and
:func:`last_summary`."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import distributed

from cf_transcribe_pandas.engine import RunResult

__all__ = [
    "EVENT_TOPIC",
    "RunSummary",
    "last_summary",
    "partition_counts",
    "publish",
    "receive",
    "summarize",
]

logger = logging.getLogger("cf_transcribe_pandas")

EVENT_TOPIC = "cf-transcribe-pandas"
"""The ``distributed`` event topic the run summaries travel on."""

COUNTS = ("rows", "transcribed", "from_cache", "failed", "requests")
"""What each partition counts; the run's summary adds them up."""


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What one compute of a Dask transcription did, over all its partitions.

    Attributes:
        rows: Rows in the DataFrame.
        transcribed: Rows transcribed in this run (not from the cache).
        from_cache: Rows whose transcript came from the cache.
        failed: Rows that failed (with ``errors="coerce"``).
        requests: HTTP requests sent, retries included.
        partitions: Partitions of the DataFrame.
        seconds: From the first partition's start to the last one's end.
        error: The error that stopped the run, or None.
    """

    rows: int
    transcribed: int
    from_cache: int
    failed: int
    requests: int
    partitions: int
    seconds: float
    error: str | None = None

    def __str__(self) -> str:
        text = (
            f"{self.rows:,} rows in {self.partitions:,} partitions: "
            f"{self.transcribed:,} transcribed, {self.from_cache:,} from the cache, "
            f"{self.failed:,} failed; {self.requests:,} requests in {self.seconds:.1f} s"
        )
        if self.failed:
            text += "; rerun to retry the failed rows, finished rows come from the cache"
        if self.error is not None:
            text += f"; stopped by {self.error}"
        return text


def partition_counts(rows: int, result: RunResult | None) -> dict[str, int]:
    """The counts of one partition of ``rows`` rows (``result`` None: it stopped first)."""
    if result is None:
        return {name: rows if name == "rows" else 0 for name in COUNTS}
    transcribed = sum(
        1
        for text, cached in zip(result.texts, result.cached, strict=True)
        if text is not None and not cached
    )
    return {
        "rows": result.n,
        "transcribed": transcribed,
        "from_cache": result.from_cache,
        "failed": result.failed,
        "requests": result.requests,
    }


def summarize(
    counts: Iterable[Mapping[str, int]], *, partitions: int, seconds: float, error: str | None
) -> dict[str, Any]:
    """The fields of the run's :class:`RunSummary` (a plain dict, to travel as an event)."""
    counts = list(counts)
    totals = {name: sum(int(c[name]) for c in counts) for name in COUNTS}
    return {**totals, "partitions": partitions, "seconds": round(seconds, 3), "error": error}


def publish(summary: Mapping[str, Any]) -> None:
    """Send a run's summary to the client, from the worker whose partition ended the run."""
    distributed.get_worker().log_event(EVENT_TOPIC, {"kind": "summary", **summary})


_last: RunSummary | None = None
_last_lock = threading.Lock()


def receive(event: Any) -> None:
    """The client's handler of :data:`EVENT_TOPIC`: log the summary and keep it."""
    global _last
    _, message = event
    if not isinstance(message, Mapping) or message.get("kind") != "summary":
        return
    fields = {f.name for f in dataclasses.fields(RunSummary)}
    summary = RunSummary(**{k: v for k, v in message.items() if k in fields})
    with _last_lock:
        _last = summary
    level = logging.WARNING if summary.failed or summary.error else logging.INFO
    logger.log(level, "transcribed on the cluster: %s", summary)


def last_summary() -> RunSummary | None:
    """The summary of the last Dask transcription this process saw finish, or None.

    The summary arrives as a ``distributed`` event shortly after the last
    partition ends, so it may lag ``compute()`` by a moment.
    """
    with _last_lock:
        return _last
