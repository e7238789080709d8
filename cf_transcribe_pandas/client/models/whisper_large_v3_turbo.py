"""The adapter for ``@cf/openai/whisper-large-v3-turbo`` on its own route::

    POST {base_url}/accounts/{account_id}/ai/run/@cf/openai/whisper-large-v3-turbo
    {"audio": "<base64 of the audio bytes>", "task": "transcribe" | "translate",
     "language": "en", "vad_filter": false, "initial_prompt": "...", "prefix": "..."}
    200 -> {"result": {"text", "word_count", "segments": [{"start", "end", "text",
            "words": [{"word", "start", "end"}], ...}], "vtt",
            "transcription_info": {"language", "duration", ...}}, "success": true}

The schema is Cloudflare's published one (``tests/data/whisper-large-v3-turbo.json``).
The audio goes as raw base64, not a data URI, so an https URL cannot be handed to
the model: the engine downloads it (``takes_urls`` is False). Our ``prompt`` is the
model's ``initial_prompt``; it takes no ``temperature``. Its limits are taken to be
the unified route's (a 25 MiB body, about 1,500 s a request); Cloudflare publishes
none for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cf_transcribe_pandas.client.models.base import ModelAdapter, Segment, Transcript
from cf_transcribe_pandas.client.models.params import (
    TASKS,
    check_choice,
    check_flag,
    check_gateway,
    check_prompt,
    normalize_language,
)
from cf_transcribe_pandas.errors import ConfigurationError

if TYPE_CHECKING:
    from cf_transcribe_pandas.client.gateway import Gateway

__all__ = ["WHISPER_LARGE_V3_TURBO", "WhisperLargeV3Turbo"]

WHISPER_LARGE_V3_TURBO = "@cf/openai/whisper-large-v3-turbo"


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _words(raw: object) -> list[dict[str, Any]]:
    words = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and isinstance(item.get("word"), str):
            start, end = _seconds(item.get("start")), _seconds(item.get("end"))
            if start is not None and end is not None:
                words.append({"word": item["word"].strip(), "start": start, "end": end})
    return words


def _segments(raw: object) -> list[Segment] | None:
    """The answer's segments as ``{"start", "end", "text", "words"}``, text stripped."""
    if not isinstance(raw, list):
        return None
    segments: list[Segment] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            continue
        start, end = _seconds(item.get("start")), _seconds(item.get("end"))
        if start is None or end is None:
            continue
        text = item["text"].strip()
        segments.append(
            {"start": start, "end": end, "text": text, "words": _words(item.get("words"))}
        )
    return segments


class WhisperLargeV3Turbo(ModelAdapter):
    """``@cf/openai/whisper-large-v3-turbo``: base64 audio in; text, segments, words out."""

    options = ("language", "prompt", "task", "vad_filter", "prefix")
    timestamps = True
    takes_urls = False
    gateway_in_body = False
    price_per_minute = 0.00051
    """Cloudflare's published price (the model's page and schema file, 2026)."""

    def __init__(self, name: str = WHISPER_LARGE_V3_TURBO) -> None:
        super().__init__(name)

    def normalize(self, options: Mapping[str, object]) -> dict[str, Any]:
        """Check ``language``, ``task``, ``vad_filter``, ``prompt`` (sent as
        ``initial_prompt``) and ``prefix``, in the schema's order.

        Raises:
            ConfigurationError: A value is invalid.
        """
        return {
            "task": check_choice(options.get("task"), "task", TASKS),
            "language": normalize_language(options.get("language")),
            "vad_filter": check_flag(options.get("vad_filter"), "vad_filter"),
            "initial_prompt": check_prompt(options.get("prompt")),
            "prefix": check_prompt(options.get("prefix"), "prefix"),
        }

    def path(self, account_id: str) -> str:
        """The model's own route, ``/accounts/{account_id}/ai/run/{model}``."""
        return f"/accounts/{quote(account_id, safe='')}/ai/run/{self.name}"

    def input(self, file: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """``{"audio": <base64>, **options}``: the base64 inside a data URI.

        Raises:
            ConfigurationError: ``file`` is not a base64 data URI (an https URL
                must be downloaded first: this model takes no URL).
        """
        head, comma, payload = file.partition(",") if isinstance(file, str) else ("", "", "")
        if not (head.startswith("data:") and head.endswith(";base64") and comma):
            raise ConfigurationError(
                f"The model {self.name!r} takes the audio itself, not a URL: pass a base64 "
                "data URI (the engine downloads https URLs for this model).",
                code="invalid_file",
            )
        return {"audio": payload, **options}

    def body(
        self, file: str, options: Mapping[str, Any], gateway: Gateway | None
    ) -> dict[str, Any]:
        """The input object itself (the model is in the route).

        Raises:
            ConfigurationError: ``file`` is not a base64 data URI, or a gateway
                is asked for in the body (use ``use_gateway_url=True``).
        """
        check_gateway(self, gateway)
        return self.input(file, options)

    def parse(self, data: Any) -> Transcript | None:
        """``result.text``, its segments (with words), and ``transcription_info``."""
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, dict) or not isinstance(result.get("text"), str):
            return None
        info = result.get("transcription_info")
        info = info if isinstance(info, dict) else {}
        language = info.get("language")
        vtt = result.get("vtt")
        return Transcript(
            result["text"].strip(),
            segments=_segments(result.get("segments")),
            language=language if isinstance(language, str) and language else None,
            duration=_seconds(info.get("duration")),
            vtt=vtt if isinstance(vtt, str) else None,
        )
