"""One small adapter a Workers AI speech model: its route, the options it takes
and their checks, its request body and the reading of its answer.

Today: ``openai/gpt-4o-transcribe`` (:mod:`.gpt4o_transcribe`) and
``@cf/openai/whisper-large-v3-turbo`` (:mod:`.whisper_large_v3_turbo`). The shape all
adapters share is :class:`ModelAdapter` (:mod:`.base`); the checks several
models share are in :mod:`.params`; :mod:`.registry` maps names to adapters.
"""

from __future__ import annotations

from cf_transcribe_pandas.client.models.base import ModelAdapter, Segment, Transcript
from cf_transcribe_pandas.client.models.gpt4o_transcribe import Gpt4oTranscribe
from cf_transcribe_pandas.client.models.params import TASKS, check_gateway, normalize_language
from cf_transcribe_pandas.client.models.registry import (
    DEFAULT_MODEL,
    MODELS,
    TIMESTAMPS,
    adapter_for,
    build_body,
    check_timestamps,
    validate_params,
)
from cf_transcribe_pandas.client.models.whisper_large_v3_turbo import (
    WHISPER_LARGE_V3_TURBO,
    WhisperLargeV3Turbo,
)

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "TASKS",
    "TIMESTAMPS",
    "WHISPER_LARGE_V3_TURBO",
    "Gpt4oTranscribe",
    "ModelAdapter",
    "Segment",
    "Transcript",
    "WhisperLargeV3Turbo",
    "adapter_for",
    "build_body",
    "check_gateway",
    "check_timestamps",
    "normalize_language",
    "validate_params",
]
