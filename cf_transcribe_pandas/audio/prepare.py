"""Turning one file's bytes into request-ready parts (:func:`prepare`): validate,
send accepted audio as it is, re-encode the rest, split what is over a limit."""

from __future__ import annotations

import logging

from ..errors import ConfigurationError
from .container import Inspection
from .encode import Codec, Part, PartEncoder
from .limits import (
    ACCEPTED,
    DEFAULT_MAX_PART_SECONDS,
    ENCODE_MODES,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_SECONDS,
    EncodeMode,
    data_uri,
    mime_for,
    request_bytes,
)
from .sources import empty_error
from .split import encode_parts
from .validate import accepted_as_is, duration, inspect_bytes

logger = logging.getLogger("cf_transcribe_pandas")


def _check_options(encode: str, max_part_seconds: float, max_request_bytes: int) -> None:
    if encode not in ENCODE_MODES:
        modes = ", ".join(ENCODE_MODES)
        raise ConfigurationError(f"encode must be one of {modes}, not {encode!r}")
    if not max_part_seconds > 0:
        raise ConfigurationError(f"max_part_seconds must be > 0, not {max_part_seconds!r}")
    if max_request_bytes < 16 * 1024:
        raise ConfigurationError(f"max_request_bytes is too small: {max_request_bytes!r}")


def prepare(
    data: bytes,
    *,
    label: str,
    encode: EncodeMode = "auto",
    max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    inspection: Inspection | None = None,
) -> list[Part]:
    """Validate one file's audio and turn it into request-ready parts.

    Validation happens before anything is sent, without decoding accepted
    audio in full: the container is opened, every packet is walked (no
    decoding), the first packets are decoded. A file whose header promises
    more audio than is present is rejected as truncated.

    Encoding, by ``encode``:

    - ``"auto"``: accepted containers with plain content go as they are;
      other formats and odd WAV (not 16-bit PCM, over 2 channels, outside
      8-48 kHz, RF64, unfinished header) become 16 kHz mono FLAC.
    - ``"original"``: accepted containers go as they are, odd WAV included;
      formats the service refuses are still converted (to FLAC).
    - ``"flac"`` / ``"opus"``: always 16 kHz mono FLAC / Opus (32 kbit/s, Ogg).

    In every mode, audio over a limit (request body over
    ``max_request_bytes`` once base64-encoded, over 1,500 s, or over
    ``max_part_seconds``) is split into parts under all of them, cut at the
    quietest 100 ms near each boundary, and each part is re-encoded (FLAC;
    Opus if the FLAC is still too big; split again if that is too; with
    ``encode="flac"`` or ``"opus"`` the codec never changes, parts split
    instead).

    Memory: the input bytes, plus at most one part of 16 kHz mono int16
    samples (~19 MB for 600 s) plus the search window, plus the parts'
    data URIs.

    Args:
        data: The whole file's bytes.
        label: A name for the file in error messages.
        encode: ``"auto"``, ``"original"``, ``"flac"`` or ``"opus"``.
        max_part_seconds: The longest part to send.
        max_request_bytes: The largest request body.
        inspection: What :func:`~cf_transcribe_pandas.audio.plain_wav` already read
            from ``data``'s header, when the caller has it; else ``data`` is inspected.

    Returns:
        The parts in order; one part for short audio.

    Raises:
        AudioError: ``empty_file``, ``unreadable_audio`` (text, garbage,
            truncated), ``no_audio_stream`` (e.g. a video without sound).
        ConfigurationError: for a bad ``encode`` or limit.
    """
    _check_options(encode, max_part_seconds, max_request_bytes)
    data = bytes(data)
    if not data:
        raise empty_error(label)
    info = inspection if inspection is not None else inspect_bytes(data, label)
    seconds = duration(info)
    limit_s = min(float(max_part_seconds), MAX_REQUEST_SECONDS)
    accepted, why = accepted_as_is(data, info)
    if encode == "original" and info.fmt in ACCEPTED:
        accepted = True
    if encode in ("auto", "original") and accepted:
        mime = mime_for(info.fmt)
        fits_bytes = request_bytes(len(data), mime) <= max_request_bytes
        if fits_bytes and (seconds is None or seconds <= limit_s):
            return [Part(data_uri(data, mime), seconds, 0.0, len(data), mime, False)]
        why = "over the request size limit" if not fits_bytes else f"longer than {limit_s:g} s"
    elif encode in ("flac", "opus"):
        why = f"encode={encode!r}"
    codec: Codec = "opus" if encode == "opus" else "flac"
    logger.debug("%s: re-encoding to 16 kHz mono %s (%s)", label, codec, why)
    encoder = PartEncoder(label, max_request_bytes, codec, strict_codec=encode in ("flac", "opus"))
    return encode_parts(data, encoder=encoder, total_s=seconds, limit_s=limit_s)
