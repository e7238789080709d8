"""Sending one row's audio part by part.

Long audio comes from :func:`~cf_transcribe_pandas.audio.prepare` as several
parts. They are sent in order, each prompted with the user's prompt and the
previous part's last words; a part whose text looks cut at the model's output
cap is split in two and its halves are sent instead, and so is a part Workers AI
finds too large (413/3006: its halves are re-encoded, compact FLAC); the texts
are joined, and the parts' segments (for a model with timestamps) shifted by
where each part starts, so their times are offsets into the whole recording.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable

from cf_transcribe_pandas.audio import Part, join_prompt, join_texts, looks_cut, tail_words
from cf_transcribe_pandas.client import Segment, Transcript
from cf_transcribe_pandas.errors import RequestTooLargeError

__all__ = ["MIN_SPLIT_SECONDS", "shift_segments", "transcribe_parts"]

logger = logging.getLogger("cf_transcribe_pandas")

MIN_SPLIT_SECONDS = 30.0
"""A part shorter than this is never split again for looking cut."""


def _cut(text: str, part: Part) -> bool:
    duration = part.duration_s
    return duration is not None and duration >= MIN_SPLIT_SECONDS and looks_cut(text, duration)


def shift_segments(segments: list[Segment], offset: float) -> list[Segment]:
    """``segments`` (and their words) with ``offset`` seconds added to every time."""
    if not offset:
        return segments
    return [
        {
            **seg,
            "start": seg["start"] + offset,
            "end": seg["end"] + offset,
            "words": [
                {**w, "start": w["start"] + offset, "end": w["end"] + offset}
                for w in seg.get("words") or []
            ],
        }
        for seg in segments
    ]


async def transcribe_parts(
    parts: list[Part],
    *,
    send: Callable[[Part, str | None], Awaitable[Transcript]],
    split: Callable[[Part], Awaitable[list[Part]]],
    prompt: str | None,
    label: str,
) -> Transcript:
    """Send every part, as the module docstring says.

    Args:
        parts: The row's parts, in order.
        send: Sends one part with a prompt; returns what the model said.
        split: Splits a part in two (in a thread).
        prompt: The user's prompt for this row, or None.
        label: The row's audio, as shown in messages.

    Returns:
        The joined text; the segments shifted into the whole recording (when the
        model gives them); the first detected language; the duration: the model's
        own count summed when every part has one, else the parts' (None when a
        part's is unknown).
    """
    queue = collections.deque(parts)
    said: list[tuple[Part, Transcript]] = []
    tail: str | None = None
    while queue:
        part = queue.popleft()
        try:
            answer = await send(part, join_prompt(tail, prompt) if tail else prompt)
        except RequestTooLargeError:
            halves = await split(part)  # smaller, re-encoded halves; else the row's error
            if len(halves) < 2:
                raise
            logger.info(
                "%s: part at %.0f s is too large for Workers AI (3006); split in two",
                label,
                part.start_s,
            )
            queue.extendleft(reversed(halves))
            continue
        text = answer.text
        if _cut(text, part):
            logger.info(
                "%s: part at %.0f s (%.0f s long) looks cut at the output cap; splitting it in two",
                label,
                part.start_s,
                part.duration_s,
            )
            halves = await split(part)
            if len(halves) > 1:  # else too short to split: keep the text
                queue.extendleft(reversed(halves))
                continue
        said.append((part, answer))
        tail = tail_words(text) if queue else None
    return _joined(parts, said)


def _joined(parts: list[Part], said: list[tuple[Part, Transcript]]) -> Transcript:
    if len(said) == 1:
        part, answer = said[0]
        text = answer.text
    else:
        text = join_texts(answer.text for _, answer in said)
    segments: list[Segment] | None = None
    if any(answer.segments is not None for _, answer in said):
        segments = []
        for part, answer in said:
            segments += shift_segments(answer.segments or [], part.start_s)
    reported = [answer.duration for _, answer in said]
    durations = reported if None not in reported else [p.duration_s for p in parts]
    total = None if None in durations else sum(d for d in durations if d is not None)
    language = next((a.language for _, a in said if a.language is not None), None)
    return Transcript(text, segments=segments, language=language, duration=total)
