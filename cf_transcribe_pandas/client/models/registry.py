"""Which adapter serves which model name, and the checks the rest of the
package runs before any work (:func:`validate_params`, :func:`build_body`).

To add a model: write its adapter beside
:mod:`~cf_transcribe_pandas.client.models.gpt4o_transcribe` and list it in
:data:`MODELS`. A name without an adapter is sent in the unified form of
``openai/gpt-4o-transcribe``, so Workers AI itself says whether it knows it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cf_transcribe_pandas.client.models.base import ModelAdapter
from cf_transcribe_pandas.client.models.gpt4o_transcribe import GPT_4O_TRANSCRIBE, Gpt4oTranscribe
from cf_transcribe_pandas.client.models.whisper_large_v3_turbo import WhisperLargeV3Turbo
from cf_transcribe_pandas.errors import ConfigurationError

if TYPE_CHECKING:
    from cf_transcribe_pandas.client.gateway import Gateway

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "TIMESTAMPS",
    "adapter_for",
    "build_body",
    "check_timestamps",
    "validate_params",
]

DEFAULT_MODEL = GPT_4O_TRANSCRIBE

MODELS: Mapping[str, ModelAdapter] = MappingProxyType(
    {adapter.name: adapter for adapter in (Gpt4oTranscribe(), WhisperLargeV3Turbo())}
)
"""The models this library has an adapter for, by name."""

TIMESTAMPS = ("segment", "word")
"""What ``timestamps=`` can ask for (True is ``"segment"``)."""

_SPACE_RE = re.compile(r"\s")


def adapter_for(model: object) -> ModelAdapter:
    """The adapter that builds and reads requests for ``model``.

    Args:
        model: A Workers AI model name.

    Returns:
        Its adapter from :data:`MODELS`, else the unified-endpoint adapter
        under that name.

    Raises:
        ConfigurationError: ``model`` is not a non-empty str without spaces.
    """
    if not isinstance(model, str) or not model.strip() or _SPACE_RE.search(model):
        raise ConfigurationError(
            f"model must be a Workers AI model name such as {DEFAULT_MODEL!r}, not {model!r}.",
            code="invalid_model",
        )
    adapter = MODELS.get(model)
    return adapter if adapter is not None else Gpt4oTranscribe(model)


def check_timestamps(model: object, timestamps: object) -> str | None:
    """``timestamps=`` as a granularity: None (off), ``"segment"`` or ``"word"``.

    Args:
        model: The model, which must give timestamps when they are asked for.
        timestamps: False/None (off), True or ``"segment"``, or ``"word"``.

    Raises:
        ConfigurationError: Another value, or the model gives no timestamps.
    """
    if timestamps is None or timestamps is False:
        return None
    level = "segment" if timestamps is True else timestamps
    if level not in TIMESTAMPS:
        raise ConfigurationError(
            f"timestamps= must be False, True (segments) or 'word', not {timestamps!r}.",
            code="invalid_timestamps",
        )
    adapter = adapter_for(model)
    if not adapter.timestamps:
        with_them = [m.name for m in MODELS.values() if m.timestamps]
        raise ConfigurationError(
            f"The model {adapter.name!r} gives no timestamps; use model={with_them[0]!r} "
            "for timestamps, or timestamps=False.",
            code="invalid_option",
        )
    return str(level)


def validate_params(
    *,
    model: object,
    language: object,
    temperature: object,
    prompt: object = None,
    **more: object,
) -> None:
    """Check the request parameters before anything is sent.

    Args:
        model: The Workers AI model name, a non-empty str.
        language: None or an ISO-639-1 code (upper case is accepted and
            lowered when the body is built).
        temperature: None or a real number from 0 to 1 (bool is refused).
        prompt: None or a str.
        **more: The model's other options (``task``, ``vad_filter``, ``prefix``);
            None means not set.

    Raises:
        ConfigurationError: A parameter is invalid or not taken by the model;
            the message says which and why.
    """
    options = {"language": language, "temperature": temperature, "prompt": prompt, **more}
    adapter_for(model).check(options)


def build_body(
    file: str,
    *,
    model: str = DEFAULT_MODEL,
    language: str | None = None,
    prompt: str | None = None,
    temperature: float | None = None,
    gateway: Gateway | None = None,
    **more: object,
) -> dict[str, Any]:
    """Build the JSON body of one request for ``model``, as the client sends it.

    Optional fields that are None are left out, never sent as null. The
    language is normalized (``"EN"`` becomes ``"en"``) and the temperature
    sent as a float.

    Args:
        file: A data URI or an https:// URL.
        model: The Workers AI model name.
        language: None or an ISO-639-1 code.
        prompt: None or text that guides the transcription.
        temperature: None or a number from 0 to 1.
        gateway: When given (and not ``use_gateway_url``), added as
            ``options.gateway``.
        **more: The model's other options (``task``, ``vad_filter``, ``prefix``).

    Returns:
        For ``openai/gpt-4o-transcribe``: ``{"model": ..., "input": {"file":
        ..., ...}}`` plus ``options`` when a gateway is given; for
        ``@cf/openai/whisper-large-v3-turbo``: ``{"audio": <base64>, ...}``.

    Raises:
        ConfigurationError: A parameter is invalid.
    """
    adapter = adapter_for(model)
    options = adapter.check(
        {"language": language, "temperature": temperature, "prompt": prompt, **more}
    )
    return adapter.body(file, options, gateway)
