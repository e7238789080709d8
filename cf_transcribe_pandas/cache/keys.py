"""Cache keys: what identifies a request's transcript, and where the cache lives by default.

A key is the sha256 of a canonical JSON of the audio's sha256 and the request
parameters that change the transcript, so it is the same in every process,
platform and Python version.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "CACHE_DIR_ENV",
    "CACHE_SCHEMA_VERSION",
    "KeyMaker",
    "cache_key",
    "default_cache_dir",
    "model_options",
    "norm_sha256",
    "norm_temperature",
]

#: Bumped when the meaning of a cached row changes; part of every key.
CACHE_SCHEMA_VERSION = 1

#: Environment variable naming the cache directory.
CACHE_DIR_ENV = "CF_TRANSCRIBE_CACHE_DIR"

_HEX64_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)
_ENCODE_STR = json.encoder.encode_basestring_ascii  # a str as _CANONICAL writes it


def norm_sha256(sha256: str) -> str:
    """Return ``sha256`` lower-cased when it is 64 hex digits, else as it is.

    Raises:
        TypeError: ``sha256`` is not a non-empty str.
    """
    if not isinstance(sha256, str) or not sha256:
        raise TypeError(f"sha256 must be a non-empty str, not {sha256!r}")
    if sha256.islower() or not _HEX64_RE.match(sha256):  # islower: nothing to lower
        return sha256
    return sha256.lower()


def norm_temperature(temperature: float | None) -> float | None:
    """Return ``temperature`` as a float rounded to 6 decimals (-0.0 as 0.0), or None.

    Raises:
        TypeError: ``temperature`` is not a number or None.
        ValueError: ``temperature`` is NaN or infinite.
    """
    if temperature is None:
        return None
    if isinstance(temperature, (bool, str, bytes)):
        raise TypeError(f"temperature must be a number or None, not {temperature!r}")
    value = float(temperature)
    if not math.isfinite(value):
        raise ValueError(f"temperature must be finite, not {temperature!r}")
    # Round away float noise (0.1 + 0.2, numpy float32) and fold -0.0 into 0.0.
    return round(value, 6) + 0.0


def model_options(options: Mapping[str, object] | None) -> str | None:
    """The set ones of a model's other options (``task``, ``timestamps``, ...) as
    canonical JSON, or None when none is set (the form keys and cached rows keep)."""
    kept = {k: v for k, v in (options or {}).items() if v is not None}
    for name, value in kept.items():
        if not isinstance(value, (str, bool)):
            raise TypeError(f"{name} must be a str or a bool, not {value!r}")
    return _CANONICAL.encode(kept) if kept else None


def cache_key(
    sha256: str,
    *,
    model: str,
    language: str | None,
    prompt: str | None,
    temperature: float | None,
    encode: str = "auto",
    options: Mapping[str, object] | None = None,
) -> str:
    """Return the cache key of one request: a hex sha256 of its canonical JSON.

    The JSON holds :data:`CACHE_SCHEMA_VERSION`, the sha256 of the audio bytes,
    and the parameters that change the transcript. It is serialized with
    sorted keys, no spaces and ASCII escapes, so the key is the same in every
    process, platform and Python version.

    Args:
        sha256: Hex sha256 of the audio bytes sent (lower-cased when it is 64
            hex digits; any other non-empty string is used as it is).
        model: Model name, exactly as sent.
        language: ISO-639-1 code, or None when the field is not sent.
        prompt: Prompt text, or None when the field is not sent ("" is a
            different key).
        temperature: Sampling temperature, or None when the field is not sent
            (None and 0.0 are different keys). Rounded to 6 decimals.
        encode: How the audio was prepared before sending (the engine's
            ``encode`` option).
        options: The model's other options that change the answer (``task``,
            ``vad_filter``, ``prefix``, the ``timestamps`` granularity): str or
            bool, None for not set. Only set ones enter the JSON, so a key
            without them is the key of earlier versions.

    Returns:
        64 lowercase hex digits.

    Raises:
        TypeError: A parameter has the wrong type.
        ValueError: ``temperature`` is NaN or infinite.
    """
    maker = KeyMaker(model=model, temperature=temperature, encode=encode, options=options)
    return maker.key(sha256, language, prompt)


def _json_str(value: str | None) -> str:
    """``value`` as the canonical JSON writes it (``null``, or an ASCII-escaped string)."""
    return "null" if value is None else _ENCODE_STR(value)


class KeyMaker:
    """:func:`cache_key` for the rows of one run, which share every parameter but the
    audio, the language and the prompt.

    The shared parameters are checked and written as canonical JSON once; a row's
    key fills in the three others (JSON-escaped as :data:`_CANONICAL` escapes them)
    where the sorted keys put them. A cached rerun keys every row: a million rows
    took 9.8 s through a JSON encoder per row, 2 s this way (``benchmarks/cache.py``,
    part a). Same arguments and errors as :func:`cache_key`, which is this class
    used once; ``tests/test_cache.py`` checks the text against ``json.dumps``.
    """

    __slots__ = ("_head", "_mid", "_tail")

    def __init__(
        self,
        *,
        model: str,
        temperature: float | None,
        encode: str = "auto",
        options: Mapping[str, object] | None = None,
    ) -> None:
        for name, value in (("model", model), ("encode", encode)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {value!r}")
        extra = model_options(options)
        temp = _CANONICAL.encode(norm_temperature(temperature))
        # The canonical JSON's keys, sorted: encode, language, model, [options,] prompt,
        # sha256, temperature, v.
        self._head = '{"encode":' + _ENCODE_STR(encode) + ',"language":'
        self._mid = (
            ',"model":'
            + _ENCODE_STR(model)
            + ("" if extra is None else ',"options":' + _ENCODE_STR(extra))
            + ',"prompt":'
        )
        self._tail = f',"temperature":{temp},"v":{CACHE_SCHEMA_VERSION}}}'

    def key(self, sha256: str, language: str | None, prompt: str | None) -> str:
        """The key of a row with this audio (its hex sha256), language and prompt."""
        for name, opt in (("language", language), ("prompt", prompt)):
            if opt is not None and not isinstance(opt, str):
                raise TypeError(f"{name} must be a str or None, not {opt!r}")
        text = (
            self._head
            + _json_str(language)
            + self._mid
            + _json_str(prompt)
            + ',"sha256":'
            + _ENCODE_STR(norm_sha256(sha256))
            + self._tail
        )
        return hashlib.sha256(text.encode("ascii")).hexdigest()


def default_cache_dir() -> Path:
    """Return the cache directory used when none is given.

    ``$CF_TRANSCRIBE_CACHE_DIR`` when set; else the per-user cache directory
    plus ``cf-transcribe-pandas``: ``$XDG_CACHE_HOME`` or ``~/.cache`` on
    Linux and other Unix, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on
    Windows. The directory is not created.
    """
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        base = Path(local) if local else home / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = home / "Library" / "Caches"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        # The XDG spec says relative paths are invalid and must be ignored.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache"
    return base / "cf-transcribe-pandas"
