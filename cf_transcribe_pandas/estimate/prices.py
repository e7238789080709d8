"""What a minute of audio costs: the published prices the estimate knows."""

from __future__ import annotations

from collections.abc import Mapping

from cf_transcribe_pandas.client import DEFAULT_MODEL, MODELS, WHISPER_LARGE_V3_TURBO

__all__ = ["DEFAULT_PRICE_PER_MINUTE", "PRICES_PER_MINUTE", "PRICE_SOURCE", "price_for"]

DEFAULT_PRICE_PER_MINUTE = 0.006
"""US dollars per minute of audio for ``openai/gpt-4o-transcribe``.

Source, looked up 2026-11-27: Cloudflare's page for the model
(https://developers.cloudflare.com/ai/models/openai/gpt-4o-transcribe/)
publishes no number ("View pricing in the Cloudflare dashboard"), and the
Workers AI pricing page has no row for it. So this is OpenAI's published
estimated cost for gpt-4o-transcribe, $0.006 per minute, which OpenAI bills as
tokens ($2.50 per 1M audio input tokens, $10 per 1M text output tokens;
https://developers.openai.com/api/docs/models/gpt-4o-transcribe). Cloudflare
may bill its proxied model differently: pass ``price_per_minute`` (or
``--price-per-minute``) with your account's rate.
"""

PRICE_SOURCE = (
    "OpenAI's published estimate for gpt-4o-transcribe, looked up 2026-11-27; "
    "Cloudflare publishes no per-minute price for this model"
)
"""Where :data:`DEFAULT_PRICE_PER_MINUTE` comes from, in one line (shown with estimates)."""

PRICES_PER_MINUTE: Mapping[str, float] = {
    name: adapter.price_per_minute
    for name, adapter in MODELS.items()
    if adapter.price_per_minute is not None
}
"""Known per-minute prices by model (each model's adapter has its own); other models
need ``price_per_minute``."""

_SOURCES = {
    DEFAULT_MODEL: PRICE_SOURCE,
    WHISPER_LARGE_V3_TURBO: "Cloudflare's published price for the model (Workers AI, 2026)",
}


def price_for(model: str, price_per_minute: float | None) -> tuple[float | None, str]:
    """The price to use and where it comes from.

    Args:
        model: The model.
        price_per_minute: The price the caller gave, or None for the published one.

    Returns:
        (US dollars per audio minute or None when unknown, its source in words).
    """
    if price_per_minute is not None:
        return float(price_per_minute), "the price given"
    price = PRICES_PER_MINUTE.get(model)
    source = _SOURCES.get(model, "the model's published price")
    return price, source if price is not None else "no published price"
