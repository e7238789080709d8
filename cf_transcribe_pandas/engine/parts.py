"""Sending one row's audio part by part.

Long audio comes from :func:`~cf_transcribe_pandas.audio.prepare` as several
parts. They are sent in order, each prompted with the user's prompt and the
previous part's last words; a part whose text looks cut at the model's output
cap is split in two and its halves are sent instead, and so is a part Workers AI
finds too large (413/3006: its halves are re-encoded, compact FLAC); the texts
are joined.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable

from cf_transcribe_pandas.audio import Part, join_prompt, join_texts, looks_cut, tail_words
from cf_transcribe_pandas.errors import RequestTooLargeError

__all__ = ["MIN_SPLIT_SECONDS", "transcribe_parts"]

logger = logging.getLogger("cf_transcribe_pandas")

MIN_SPLIT_SECONDS = 30.0
"""A part shorter than this is never split again for looking cut."""


def _cut(text: str, part: Part) -> bool:
    duration = part.duration_s
    return duration is not None and duration >= MIN_SPLIT_SECONDS and looks_cut(text, duration)


async def transcribe_parts(
    parts: list[Part],
    *,
    send: Callable[[str, str | None], Awaitable[str]],
    split: Callable[[Part], Awaitable[list[Part]]],
    prompt: str | None,
    label: str,
) -> tuple[str, float | None]:
    """Send every part, as the module docstring says.

    Args:
        parts: The row's parts, in order.
        send: Sends one part's data URI with a prompt; returns its text.
        split: Splits a part in two (in a thread).
        prompt: The user's prompt for this row, or None.
        label: The row's audio, as shown in messages.

    Returns:
        The joined text and the audio's duration (None when a part's is unknown).
    """
    queue = collections.deque(parts)
    texts: list[str] = []
    tail: str | None = None
    while queue:
        part = queue.popleft()
        try:
            text = await send(part.data_uri, join_prompt(tail, prompt) if tail else prompt)
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
        texts.append(text)
        tail = tail_words(text)
    durations = [p.duration_s for p in parts]
    total = None if None in durations else sum(d for d in durations if d is not None)
    return (texts[0] if len(texts) == 1 else join_texts(texts)), total
