"""Numbers for people, as the estimate's summary (and the CLI) print them."""

from __future__ import annotations

__all__ = ["format_bytes", "format_dollars", "format_minutes", "format_seconds"]


def format_minutes(minutes: float) -> str:
    """Minutes for people: ``"12.5 min"``, or hours from two hours on."""
    if minutes >= 120:
        return f"{minutes / 60:,.1f} hours"
    return f"{minutes:,.1f} min"


def format_seconds(seconds: float) -> str:
    """A duration for people: ``"under 1 s"``, ``"42 s"``, ``"3 min 05 s"``, ``"2 h 10 min"``."""
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


def format_bytes(n: int) -> str:
    """``n`` bytes for people: ``"512 bytes"``, ``"1.5 kB"``, ``"2.0 MB"``, ``"3.1 GB"``."""
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def format_dollars(amount: float) -> str:
    """US dollars: cents from $1 on (and for $0), else four decimals."""
    if amount >= 1 or amount == 0:
        return f"${amount:,.2f}"
    return f"${amount:.4f}"
