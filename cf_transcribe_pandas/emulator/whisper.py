"""``@cf/openai/whisper-large-v3-turbo``: its input checked as its schema says, and an
answer with segments, words and WebVTT made from the registered transcript.

The body is the model's input object (on ``.../ai/run/@cf/openai/whisper-large-v3-turbo``
or the AI Gateway URL): ``audio`` (raw base64, required), ``task``, ``language``,
``vad_filter``, ``initial_prompt``, ``prefix``. A field of the wrong type is 400
3003; audio that is not base64, empty or not in an accepted container is 400 5004;
over ``max_file_bytes`` is 413 3006: the limits and faults of the unified route.

The transcript comes from the same sources as the unified route's (registered
sha256, word runs, placeholder). Its words are spread evenly over the audio's
duration (probed with PyAV; 0.4 s a word when it cannot be), grouped into segments
of at most :data:`SEGMENT_WORDS` words; the ``vtt`` has one cue a segment.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from typing import Any

from cf_transcribe_pandas.emulator.answers import ApiError
from cf_transcribe_pandas.emulator.sniff import ACCEPTED, sniff
from cf_transcribe_pandas.emulator.state import EmulatorState
from cf_transcribe_pandas.emulator.transcripts import probe_duration

__all__ = ["SEGMENT_WORDS", "timed_segments", "vtt_of", "whisper_answer"]

SEGMENT_WORDS = 8
"""Most words in one segment of an emulated answer."""

_SECONDS_PER_WORD = 0.4
_FIELDS: dict[str, tuple[type, str]] = {
    "task": (str, "a string"),
    "language": (str, "a string"),
    "vad_filter": (bool, "a boolean"),
    "initial_prompt": (str, "a string"),
    "prefix": (str, "a string"),
}
_TASKS = ("transcribe", "translate")


async def whisper_answer(inp: dict[str, Any], entry: dict[str, Any], state: EmulatorState) -> bytes:
    """Check one whisper request's input and return its success body.

    Args:
        inp: The request's JSON body (the model's input object).
        entry: The request's log entry; gets what was sent.
        state: The emulator's state (transcripts, config).

    Raises:
        ApiError: 400 3003 (fields), 400 5004 (audio), 413 3006 (size).
    """
    _check_fields(inp, entry)
    audio = _audio(inp, entry, state.config.max_file_bytes)
    sha = hashlib.sha256(audio).hexdigest()
    entry["sha256"] = sha
    try:
        text = await state.text_for_audio(sha, audio)
    except ValueError as exc:
        raise ApiError(400, 5004, f"Invalid data: {exc}") from exc
    prefix = inp.get("prefix")
    if prefix and not text.startswith(prefix):
        text = f"{prefix} {text}".strip()
    duration = await _duration(audio, len(text.split()))
    segments = timed_segments(text, duration)
    language = "en" if inp.get("task") == "translate" else inp.get("language", "en")
    result = {
        "text": text,
        "word_count": len(text.split()),
        "segments": segments,
        "vtt": vtt_of(segments),
        "transcription_info": {
            "language": language,
            "language_probability": 0.99,
            "duration": duration,
            "duration_after_vad": duration,
        },
    }
    return json.dumps({"result": result, "success": True, "errors": [], "messages": []}).encode()


def _check_fields(inp: dict[str, Any], entry: dict[str, Any]) -> None:
    unknown = [k for k in inp if k != "audio" and k not in _FIELDS]
    if unknown:
        entry["unknown_keys"] = unknown
    for name, (kind, rule) in _FIELDS.items():
        if name in inp and not isinstance(inp[name], kind):
            raise ApiError(400, 3003, f"Invalid input: {name} must be {rule}, got {inp[name]!r}")
    if "task" in inp and inp["task"] not in _TASKS:
        raise ApiError(
            400,
            3003,
            f"Invalid input: task must be 'transcribe' or 'translate', got {inp['task']!r}",
        )
    entry["language"] = inp.get("language")
    entry["prompt"] = inp.get("initial_prompt")
    if "audio" not in inp:
        raise ApiError(400, 3003, "Request is missing headers or body: audio")
    if not isinstance(inp["audio"], str):
        raise ApiError(
            400, 3003, f"Invalid input: audio must be a string, got {type(inp['audio']).__name__}"
        )


def _audio(inp: dict[str, Any], entry: dict[str, Any], limit: int) -> bytes:
    entry["file_kind"] = "audio"
    try:
        audio = base64.b64decode(inp["audio"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(
            400, 5004, f"Invalid data type for base64 input: not valid base64 ({exc})"
        ) from exc
    entry["bytes"] = len(audio)
    if len(audio) > limit:
        raise ApiError(
            413, 3006, f"Request is too large: the file is {len(audio)} bytes, over {limit}"
        )
    if not audio:
        raise ApiError(400, 5004, "Invalid data: the audio is empty")
    container = sniff(audio[:4096])
    entry["container"] = container
    if container not in ACCEPTED:
        what = f"{container} audio" if container else "not an audio file"
        raise ApiError(400, 5004, f"Invalid data type for base64 input: {what}")
    return audio


async def _duration(audio: bytes, words: int) -> float:
    try:
        seconds = await asyncio.get_running_loop().run_in_executor(None, probe_duration, audio)
    except ValueError:
        seconds = None
    return round(seconds if seconds else max(words, 1) * _SECONDS_PER_WORD, 3)


def timed_segments(text: str, duration: float) -> list[dict[str, Any]]:
    """``text``'s words spread evenly over ``duration`` seconds, in segments of at most
    :data:`SEGMENT_WORDS` words, shaped as whisper answers them."""
    words = text.split()
    if not words:
        return []
    step = duration / len(words)
    timed = [
        {"word": w, "start": round(i * step, 3), "end": round((i + 1) * step, 3)}
        for i, w in enumerate(words)
    ]
    segments = []
    for first in range(0, len(words), SEGMENT_WORDS):
        group = timed[first : first + SEGMENT_WORDS]
        segments.append(
            {
                "start": group[0]["start"],
                "end": group[-1]["end"],
                "text": " ".join(words[first : first + SEGMENT_WORDS]),
                "temperature": 0.0,
                "avg_logprob": -0.2,
                "compression_ratio": 1.2,
                "no_speech_prob": 0.01,
                "words": group,
            }
        )
    return segments


def _clock(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def vtt_of(segments: list[dict[str, Any]]) -> str:
    """WebVTT with one cue a segment, as the model sends it in ``vtt``."""
    cues = [f"{_clock(s['start'])} --> {_clock(s['end'])}\n{s['text']}" for s in segments]
    return "WEBVTT\n\n" + "\n\n".join(cues) + ("\n" if cues else "")
