"""Subtitles from a row's timed segments: :func:`to_srt` (SubRip) and :func:`to_vtt` (WebVTT).

The segments are what ``timestamps=`` puts in ``{output}_segments``: a list of
``{"start", "end", "text"}`` in seconds (``words`` are ignored). One cue a segment,
in the order given; a segment's text is put on one line (its whitespace collapsed),
and a segment without text is left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from cf_transcribe_pandas.errors import ConfigurationError

__all__ = ["to_srt", "to_vtt"]


def _cues(segments: object) -> list[tuple[float, float, str]]:
    """(start, end, text) of every segment with text; NA/None is no segment."""
    if segments is None or (isinstance(segments, float) and math.isnan(segments)):
        return []
    if isinstance(segments, (str, bytes, Mapping)) or not isinstance(segments, Iterable):
        raise ConfigurationError(
            "segments must be a list of {'start', 'end', 'text'} (a row of "
            f"{{output}}_segments from timestamps=True), not {type(segments).__name__}",
            code="invalid_segments",
        )
    cues = []
    for i, seg in enumerate(segments):
        cue = _cue(i, seg)
        if cue[2]:
            cues.append(cue)
    return cues


def _cue(i: int, seg: Any) -> tuple[float, float, str]:
    try:
        start, end, text = float(seg["start"]), float(seg["end"]), seg["text"]
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError(
            f"segment {i} is not a {{'start', 'end', 'text'}} mapping with times in "
            f"seconds: {seg!r}",
            code="invalid_segments",
        ) from None
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end):
        raise ConfigurationError(
            f"segment {i} has times {start!r} to {end!r}: they must be seconds with "
            "0 <= start <= end",
            code="invalid_segments",
        )
    return start, end, " ".join(str(text or "").split())


def _clock(seconds: float, point: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{point}{millis:03d}"


def to_srt(segments: Any) -> str:
    """SubRip subtitles: numbered cues ``1``, ``00:00:01,000 --> 00:00:02,500``, text.

    Args:
        segments: One row's ``{output}_segments`` (a list of ``{"start", "end",
            "text"}`` in seconds); None or NA gives an empty file.

    Returns:
        The ``.srt`` text (empty when there is no segment with text).

    Raises:
        ConfigurationError: A segment lacks a time or text, or its times are not
            seconds with ``0 <= start <= end``.

    Example:
        >>> print(to_srt([{"start": 0.0, "end": 1.5, "text": "Hello there."}]))
        1
        00:00:00,000 --> 00:00:01,500
        Hello there.
        <BLANKLINE>
    """
    blocks = [
        f"{n}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n"
        for n, (start, end, text) in enumerate(_cues(segments), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Any) -> str:
    """WebVTT subtitles: ``WEBVTT``, then cues ``00:00:01.000 --> 00:00:02.500`` and text.

    Args:
        segments: One row's ``{output}_segments``; None or NA gives a file with
            the header only.

    Returns:
        The ``.vtt`` text.

    Raises:
        ConfigurationError: As :func:`to_srt`.

    Example:
        >>> print(to_vtt([{"start": 0.0, "end": 1.5, "text": "Hello there."}]))
        WEBVTT
        <BLANKLINE>
        00:00:00.000 --> 00:00:01.500
        Hello there.
        <BLANKLINE>
    """
    blocks = [
        f"{_clock(start, '.')} --> {_clock(end, '.')}\n{text}\n"
        for start, end, text in _cues(segments)
    ]
    return "\n".join(["WEBVTT\n", *blocks])
