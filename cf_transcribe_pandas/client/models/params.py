"""Checks for the request options speech models share: the language code, the
prompt, the temperature and the file reference.

Each check returns the value as it goes on the wire (or None when unset) and
raises :class:`~cf_transcribe_pandas.errors.ConfigurationError` with a hint
otherwise, before anything is sent.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import TYPE_CHECKING

from cf_transcribe_pandas.errors import ConfigurationError

if TYPE_CHECKING:
    from cf_transcribe_pandas.client.gateway import Gateway
    from cf_transcribe_pandas.client.models.base import ModelAdapter

__all__ = [
    "TASKS",
    "check_choice",
    "check_file",
    "check_flag",
    "check_gateway",
    "check_prompt",
    "check_temperature",
    "normalize_language",
]

TASKS = ("transcribe", "translate")
"""What a model that translates can be asked to do (``task=``)."""

_LANGUAGE_RE = re.compile(r"^[a-z]{2}$")
_REGION_RE = re.compile(r"^([a-z]{2})[-_][a-z0-9]{2,8}$")


def normalize_language(language: object) -> str | None:
    """Return the ISO-639-1 code the service expects, or None.

    Upper case and surrounding spaces are forgiven (``" EN "`` becomes
    ``"en"``); anything else that is not two ASCII letters is refused with a
    hint (``"en-US"`` suggests ``"en"``).

    Args:
        language: None or a language code.

    Returns:
        The lower-case two-letter code, or None when ``language`` is None.

    Raises:
        ConfigurationError: ``language`` is not a two-letter ISO-639-1 code.
    """
    if language is None:
        return None
    if not isinstance(language, str):
        raise ConfigurationError(
            "language must be a two-letter ISO-639-1 code such as 'en' (a str), "
            f"not {type(language).__name__}.",
            code="invalid_language",
        )
    code = language.strip().lower()
    if _LANGUAGE_RE.match(code):
        return code
    hint = "such as 'en', 'fr' or 'de'"
    region = _REGION_RE.match(code)
    if region:
        hint = f"here {region.group(1)!r} (leave out the region)"
    raise ConfigurationError(
        f"language {language!r} is not an ISO-639-1 code: use two letters, {hint}, "
        "or None to let the model detect the language.",
        code="invalid_language",
    )


def check_temperature(temperature: object) -> float | None:
    """Check a sampling temperature.

    Args:
        temperature: None or a real number from 0 to 1 (bool and NaN are refused;
            numpy numbers are fine).

    Returns:
        The temperature as a float, or None.

    Raises:
        ConfigurationError: Not a number from 0 to 1.
    """
    if temperature is None:
        return None
    number = _as_float(temperature)
    if number is None or not 0.0 <= number <= 1.0:
        raise ConfigurationError(
            f"temperature must be a number from 0 to 1 (or None for the default 0), "
            f"not {temperature!r}.",
            code="invalid_temperature",
        )
    return number


def _as_float(value: object) -> float | None:
    """A real number (not bool, not NaN or infinite) as a float, else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):  # an int or Fraction too large for a float
        return None
    return number if math.isfinite(number) else None


def check_prompt(prompt: object, name: str = "prompt") -> str | None:
    """Check a prompt (text that guides the transcription) or another text option.

    Args:
        prompt: None or a str (empty is fine).
        name: The option's name, for the message.

    Returns:
        The prompt, or None.

    Raises:
        ConfigurationError: Not a str.
    """
    if prompt is not None and not isinstance(prompt, str):
        raise ConfigurationError(
            f"{name} must be a str or None, not {type(prompt).__name__}.",
            code=f"invalid_{name}",
        )
    return prompt


def check_flag(value: object, name: str) -> bool | None:
    """Check an on/off option: None (not sent), True or False (numpy's bool too).

    Raises:
        ConfigurationError: Anything else.
    """
    if value is None or isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    raise ConfigurationError(
        f"{name} must be True, False or None, not {value!r}.", code=f"invalid_{name}"
    )


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str | None:
    """Check an option that is one of a few words (or None, not sent).

    Raises:
        ConfigurationError: Anything else; the message lists the choices.
    """
    if value is None or value in choices:
        return value
    shown = " or ".join(repr(c) for c in choices)
    raise ConfigurationError(f"{name} must be {shown}, not {value!r}.", code=f"invalid_{name}")


def check_file(file: object) -> str:
    """Check a file reference for a model that takes a data URI or a URL.

    Args:
        file: A data URI (``data:audio/wav;base64,...``) or an https:// URL.

    Returns:
        ``file`` unchanged.

    Raises:
        ConfigurationError: Anything else (a local path, http://, bytes, None).
    """
    if not isinstance(file, str) or not (
        file.startswith("data:") or file[:8].lower() == "https://"
    ):
        raise ConfigurationError(
            "file must be a data URI ('data:audio/...;base64,...') or an https:// URL.",
            code="invalid_file",
        )
    return file


def check_gateway(adapter: ModelAdapter, gateway: Gateway | None) -> None:
    """Check that ``adapter``'s model can be reached through ``gateway`` as configured.

    Raises:
        ConfigurationError: The gateway is to be named in the body, which the model's
            route does not take (use the gateway's own URL).
    """
    if gateway is not None and not gateway.use_gateway_url and not adapter.gateway_in_body:
        raise ConfigurationError(
            f"The model {adapter.name!r} is reached through an AI Gateway by the gateway's "
            "own URL: pass gateway={'id': ..., 'use_gateway_url': True}.",
            code="invalid_gateway",
        )
