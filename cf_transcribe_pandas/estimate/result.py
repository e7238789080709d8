"""The :class:`Estimate`: what a run would send and cost, added up row by row.

:class:`Tally` adds the rows up as :func:`estimate` decides what a run would
do with each one (:data:`RowStatus`), and makes the frozen :class:`Estimate`,
which prints as a summary, gives its numbers as a dict, and its rows as a
DataFrame.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from cf_transcribe_pandas.estimate.parts import PartsPlan
from cf_transcribe_pandas.estimate.probe import RowProbe
from cf_transcribe_pandas.estimate.units import (
    format_bytes,
    format_dollars,
    format_minutes,
    format_seconds,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Estimate", "RowStatus", "Tally"]

RowStatus = Literal["send", "cached", "duplicate", "na", "unreadable"]
"""What a run would do with a row: send it, take it from the cache, copy it
from an earlier row with the same audio and parameters, skip it (NA), or fail
it before sending (unreadable)."""

_EXAMPLES = 5  # unreadable rows quoted in the summary
_COLUMNS = (
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
            f"  audio     {format_minutes(self.audio_minutes_to_send)} to send "
            f"({format_minutes(self.audio_minutes)} in all readable rows)",
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
        lines.append(f"  upload    {format_bytes(self.upload_bytes)}")
        if self.cost is None:
            lines.append(
                f"  cost      unknown: no published price for {self.model}; "
                "pass price_per_minute (--price-per-minute)"
            )
        else:
            lines.append(
                f"  cost      {format_dollars(self.cost)} at ${self.price_per_minute:g} per audio "
                f"minute ({self.price_source})"
            )
        lines.append(
            f"  time      {format_seconds(self.wall_seconds)} at {self.rate_limit:g} "
            "requests/minute "
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


class Tally:
    """Adds the rows up, in order, into an :class:`Estimate`.

    Args:
        model: The model priced.
        rate_limit: Requests per minute the wall time assumes.
        price_per_minute: US dollars per audio minute, or None when unknown.
        price_source: Where the price comes from.
        index: Labels of the rows for :meth:`Estimate.to_frame`, or None.
    """

    def __init__(
        self,
        *,
        model: str,
        rate_limit: float,
        price_per_minute: float | None,
        price_source: str,
        index: list[Hashable] | None,
    ) -> None:
        self._model = model
        self._rate_limit = float(rate_limit)
        self._price = price_per_minute
        self._price_source = price_source
        self._index = index
        self._table: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        self._counts: collections.Counter[str] = collections.Counter()
        self._unreadable: collections.Counter[str] = collections.Counter()
        self._examples: list[str] = []
        self._audio_s = self._send_s = 0.0
        self._upload = self._requests = self._max_parts = 0
        self._reencoded = self._split = self._unknown = 0

    def add(self, status: RowStatus, probe: RowProbe, plan: PartsPlan | None = None) -> None:
        """Count the next row.

        Args:
            status: What the run would do with it.
            probe: What probing found.
            plan: How it would be sent (rows to send only).
        """
        readable = status in ("send", "cached", "duplicate")
        self._counts[status] += 1
        if status == "unreadable":
            self._unreadable[probe.error_code or "unreadable_audio"] += 1
            if len(self._examples) < _EXAMPLES and probe.error:
                self._examples.append(probe.error)
        if readable and probe.duration_s is not None:
            self._audio_s += probe.duration_s
        if plan is not None:
            self._add_send(probe, plan)
        parts, upload, reencode = plan if plan is not None else (0, 0, None)
        row = {
            "status": status,
            "format": probe.fmt,
            "duration_s": probe.duration_s,
            "bytes": probe.size if readable else None,
            "reencode": reencode,
            "parts": parts,
            "requests": parts,
            "upload_bytes": upload,
            "error_code": probe.error_code,
            "error": probe.error,
        }
        for name, value in row.items():
            self._table[name].append(value)

    def _add_send(self, probe: RowProbe, plan: PartsPlan) -> None:
        self._requests += plan.parts
        self._upload += plan.upload_bytes
        self._max_parts = max(self._max_parts, plan.parts)
        self._reencoded += plan.reencode
        self._split += plan.parts > 1
        if probe.duration_s is None:
            self._unknown += 1
        else:
            self._send_s += probe.duration_s

    def result(self) -> Estimate:
        """The :class:`Estimate` of the rows added."""
        counts = self._counts
        return Estimate(
            rows=sum(counts.values()),
            rows_to_send=counts["send"],
            rows_cached=counts["cached"],
            rows_duplicate=counts["duplicate"],
            rows_na=counts["na"],
            rows_unreadable=counts["unreadable"],
            unreadable=dict(self._unreadable.most_common()),
            unreadable_examples=tuple(self._examples),
            rows_reencoded=self._reencoded,
            rows_split=self._split,
            rows_unknown_duration=self._unknown,
            audio_seconds=self._audio_s,
            audio_seconds_to_send=self._send_s,
            upload_bytes=self._upload,
            requests=self._requests,
            max_parts_per_row=self._max_parts,
            model=self._model,
            rate_limit=self._rate_limit,
            price_per_minute=self._price,
            price_source=self._price_source,
            _table=self._table,
            _index=self._index,
        )
