"""One small adapter a Workers AI speech model: its route, the options it takes
and their checks, its request body and the reading of its answer.

Today: ``openai/gpt-4o-transcribe`` (:mod:`.gpt4o_transcribe`). The shape all
adapters share is :class:`ModelAdapter` (:mod:`.base`); the checks several
models share are in :mod:`.params`; :mod:`.registry` maps names to adapters.
"""

from __future__ import annotations

from cf_transcribe_pandas.client.models.base import ModelAdapter
from cf_transcribe_pandas.client.models.gpt4o_transcribe import Gpt4oTranscribe
from cf_transcribe_pandas.client.models.params import normalize_language
from cf_transcribe_pandas.client.models.registry import (
    DEFAULT_MODEL,
    MODELS,
    adapter_for,
    build_body,
    validate_params,
)

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "Gpt4oTranscribe",
    "ModelAdapter",
    "adapter_for",
    "build_body",
    "normalize_language",
    "validate_params",
]
