"""The adapter for ``openai/gpt-4o-transcribe`` on Workers AI's unified endpoint::

    POST {base_url}/accounts/{account_id}/ai/run
    {"model": "openai/gpt-4o-transcribe",
     "input": {"file": "data:audio/wav;base64,..." or "https://...",
               "language": "en", "prompt": "...", "temperature": 0.5},
     "options": {"gateway": {"id": ..., "cacheTtl": ..., "skipCache": ...}}}
    200 -> {"result": {"text": "Hello"}, ...}

``language``, ``prompt``, ``temperature`` and ``options`` are sent only when set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cf_transcribe_pandas.client.models.base import ModelAdapter, Transcript
from cf_transcribe_pandas.client.models.params import (
    check_file,
    check_prompt,
    check_temperature,
    normalize_language,
)

if TYPE_CHECKING:
    from cf_transcribe_pandas.client.gateway import Gateway

__all__ = ["GPT_4O_TRANSCRIBE", "Gpt4oTranscribe"]

GPT_4O_TRANSCRIBE = "openai/gpt-4o-transcribe"


class Gpt4oTranscribe(ModelAdapter):
    """``openai/gpt-4o-transcribe``: a data URI or https URL in, ``result.text`` out.

    Args:
        name: The model name sent in the body; another name gets the same
            unified request, and Workers AI says whether it knows the model.
    """

    options = ("language", "prompt", "temperature")
    price_per_minute = 0.006  # see cf_transcribe_pandas.estimate.prices for the source

    def __init__(self, name: str = GPT_4O_TRANSCRIBE) -> None:
        super().__init__(name)

    def normalize(self, options: Mapping[str, object]) -> dict[str, Any]:
        """Check ``language`` (ISO-639-1, lowered), ``temperature`` (0 to 1) and ``prompt``.

        Raises:
            ConfigurationError: A value is invalid.
        """
        language = normalize_language(options.get("language"))
        temperature = check_temperature(options.get("temperature"))
        prompt = check_prompt(options.get("prompt"))
        return {"language": language, "prompt": prompt, "temperature": temperature}

    def path(self, account_id: str) -> str:
        """The unified route, ``/accounts/{account_id}/ai/run``."""
        return f"/accounts/{quote(account_id, safe='')}/ai/run"

    def input(self, file: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """``{"file": file, **options}``.

        Raises:
            ConfigurationError: ``file`` is neither a data URI nor an https:// URL.
        """
        return {"file": check_file(file), **options}

    def body(
        self, file: str, options: Mapping[str, Any], gateway: Gateway | None
    ) -> dict[str, Any]:
        """``{"model", "input"}``, plus ``options.gateway`` for a gateway reached this way.

        Raises:
            ConfigurationError: ``file`` is neither a data URI nor an https:// URL.
        """
        body: dict[str, Any] = {"model": self.name, "input": self.input(file, options)}
        if gateway is not None and not gateway.use_gateway_url:
            body["options"] = {"gateway": gateway.options()}
        return body

    def parse(self, data: Any) -> Transcript | None:
        """``result.text`` when it is a str (possibly empty, for silence)."""
        result = data.get("result") if isinstance(data, dict) else None
        text = result.get("text") if isinstance(result, dict) else None
        return Transcript(text) if isinstance(text, str) else None
