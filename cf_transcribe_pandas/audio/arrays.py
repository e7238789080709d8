"""Decoded sample arrays (Hugging Face ``datasets`` Audio dicts): checking them and
writing them as 16-bit PCM WAV."""

from __future__ import annotations

import io
import wave
from typing import Any

import numpy as np

from ..errors import AudioError


def check_array(array: Any, rate: object) -> int:
    """Check an audio dict's ``array`` and ``sampling_rate``; return the rate as an int.

    Raises:
        AudioError: ``unsupported_input`` for a missing or non-positive rate, or
            an array that is not 1- or 2-D.
    """
    if isinstance(rate, float) and rate.is_integer():
        rate = int(rate)
    if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool) or rate <= 0:
        raise AudioError(
            "the audio dict has an 'array' but no positive integer 'sampling_rate'",
            code="unsupported_input",
        )
    shape = getattr(array, "shape", None)
    ndim = len(shape) if shape is not None else 1
    if ndim not in (1, 2):
        raise AudioError(
            f"the audio dict's 'array' has {ndim} dimensions; expected 1 (mono) or 2",
            code="unsupported_input",
        )
    return int(rate)


def wav_size(array: Any) -> int:
    """The length of :func:`array_to_wav`'s output for ``array``."""
    return 44 + 2 * int(getattr(array, "size", 0) or len(array))


def array_to_wav(array: Any, rate: int, label: str) -> bytes:
    """Encode a float (or int) sample array as 16-bit PCM WAV bytes.

    Floats are clipped to [-1, 1] (NaN is silence); integers are scaled from
    their type's range. A 2-D array may be (samples, channels) or, with at
    most 32 rows, (channels, samples).

    Raises:
        AudioError: ``unsupported_input`` for an array that is not numeric and
            1- or 2-D; ``empty_file`` for an empty one.
    """
    try:
        a = np.asarray(array)
    except Exception as exc:
        raise AudioError(
            f"{label}: the array cannot be read ({exc})", code="unsupported_input"
        ) from None
    if a.dtype.kind not in "fiub" or a.ndim not in (1, 2):
        raise AudioError(
            f"{label}: the audio array must be numeric and 1- or 2-D, not {a.dtype} {a.ndim}-D",
            code="unsupported_input",
        )
    if a.ndim == 1:
        a = a[:, None]
    elif a.shape[0] < a.shape[1] and a.shape[0] <= 32:  # (channels, samples)
        a = a.T
    if a.size == 0:
        raise AudioError(f"{label}: the audio array is empty", code="empty_file")
    pcm = _to_int16(a)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(int(pcm.shape[1]))
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return buf.getvalue()


def _to_int16(a: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int16]]:
    if a.dtype == np.int16:
        return a
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        f = (a.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    else:
        f = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.round(np.clip(f, -1.0, 1.0) * 32767.0).astype(np.int16)
