"""How one row would be sent: as it is, re-encoded, or split into parts.

:func:`plan_parts` follows the decisions of ``audio.prepare`` from the probed
facts alone (format, duration, size), without decoding: the size of
re-encoded audio is estimated at :data:`REENCODED_BYTES_PER_SECOND`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from cf_transcribe_pandas.audio import (
    ACCEPTED,
    MAX_REQUEST_BYTES,
    PLAN_HEADROOM,
    request_bytes,
)
from cf_transcribe_pandas.estimate.probe import RowProbe

__all__ = ["REENCODED_BYTES_PER_SECOND", "PartsPlan", "plan_parts"]

REENCODED_BYTES_PER_SECOND: Mapping[str, int] = {"flac": 20_000, "opus": 3_800}
"""Bytes per second of audio re-encoded to 16 kHz mono FLAC / Opus 32 kbit/s.

Measured on the speech clips in ``tests/data/audio`` (FLAC 18-21 kB/s, Opus
3.0-3.8 kB/s). Silence and tones compress better, noise worse.
"""


class PartsPlan(NamedTuple):
    """How a row to send would go.

    Attributes:
        parts: Requests for the row (one per part).
        upload_bytes: Request bytes of all its parts (base64 included).
        reencode: Whether its audio would be re-encoded.
    """

    parts: int
    upload_bytes: int
    reencode: bool


def plan_parts(row: RowProbe, *, encode: str, limit_s: float) -> PartsPlan:
    """Plan one readable row as ``audio.prepare`` would send it.

    Args:
        row: The row's probe.
        encode: The run's ``encode`` mode.
        limit_s: The run's ``max_part_seconds``.
    """
    if row.passthrough:  # an https URL the service fetches itself
        return PartsPlan(1, 0, False)
    accepted = row.accepted or (encode == "original" and row.fmt in ACCEPTED)
    duration = row.duration_s
    if encode in ("auto", "original") and accepted:
        size = request_bytes(row.size, row.mime or "application/octet-stream")
        if size <= MAX_REQUEST_BYTES and (duration is None or duration <= limit_s):
            return PartsPlan(1, size, False)
    if duration is None or duration <= 0:  # cannot plan parts without a length
        return PartsPlan(1, request_bytes(row.size), True)
    parts = 1 if duration <= limit_s else math.ceil(duration / (limit_s * PLAN_HEADROOM))
    codec = "opus" if encode == "opus" else "flac"
    strict = encode in ("flac", "opus")
    while True:
        size = request_bytes(math.ceil(duration / parts * REENCODED_BYTES_PER_SECOND[codec]))
        if size <= MAX_REQUEST_BYTES:
            return PartsPlan(parts, parts * size, True)
        if codec == "flac" and not strict:
            codec = "opus"  # prepare() tries Opus before splitting further
            continue
        parts *= 2  # a part that will not fit is cut in two
