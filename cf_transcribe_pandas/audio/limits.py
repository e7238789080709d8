"""What the service takes: its containers and their MIME types, the limits of one
request, and the size of a request carrying some audio."""

from __future__ import annotations

import base64
import math
from typing import Literal, get_args

#: Containers the service accepts, as named by its docs.
ACCEPTED = frozenset({"flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm"})
#: The service's limit on one request body (the base64 data URI plus JSON).
MAX_REQUEST_BYTES = 25 * 1024 * 1024
#: About the longest audio the service takes in one request.
MAX_REQUEST_SECONDS = 1500.0
#: Longest part by default: about what the 2,000-token output cap can hold.
DEFAULT_MAX_PART_SECONDS = 600.0
#: Room left in a request for the JSON around the data URI (model, prompt, ...).
REQUEST_OVERHEAD_BYTES = 1024
#: Long audio is cut into equal parts of at most this share of the part limit.
PLAN_HEADROOM = 0.95
#: Sample rate of everything this package encodes or analyses.
RATE = 16_000

#: How :func:`~cf_transcribe_pandas.audio.prepare` encodes audio.
EncodeMode = Literal["auto", "original", "flac", "opus"]
ENCODE_MODES: tuple[str, ...] = get_args(EncodeMode)

_MIME = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "mpeg": "audio/mpeg",
    "mpga": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "mp4": "audio/mp4",
    "m4a": "audio/mp4",
    "webm": "audio/webm",
    "aiff": "audio/aiff",
    "caf": "audio/x-caf",
    "wma": "audio/x-ms-wma",
    "matroska": "audio/x-matroska",
    "au": "audio/basic",
    "amr": "audio/amr",
    "aac": "audio/aac",
    "3gp": "audio/3gpp",
    "mov": "video/quicktime",
}


def mime_for(fmt: str | None) -> str:
    """The MIME type for a container name from :func:`sniff`.

    Args:
        fmt: ``"wav"``, ``"flac"``, ``"mp3"``, ``"ogg"``, ``"mp4"``, ``"m4a"``,
            ``"webm"``, ... (as :func:`sniff` names them).

    Returns:
        ``audio/wav``, ``audio/flac``, ``audio/mpeg``, ``audio/ogg``,
        ``audio/mp4``, ``audio/webm``, ...; ``application/octet-stream``
        for None or an unknown name.
    """
    if fmt is None:
        return "application/octet-stream"
    return _MIME.get(fmt.lower(), "application/octet-stream")


def known_extension(ext: str) -> str | None:
    """The container a file extension names (``"oga"`` and ``"opus"`` are ogg), or None."""
    ext = ext.lower().lstrip(".")
    if ext in ("oga", "opus"):
        return "ogg"
    return ext if ext in _MIME else None


def data_uri(data: bytes, mime: str) -> str:
    """Build ``data:{mime};base64,...`` for ``data``.

    Args:
        data: The audio bytes.
        mime: Their MIME type, e.g. from :func:`mime_for`.

    Returns:
        The data URI, ready for the request's ``file`` field.
    """
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def request_bytes(n_bytes: int, mime: str = "application/octet-stream") -> int:
    """Size of a request carrying ``n_bytes`` of audio as a data URI.

    Base64 grows the audio by 4/3; the JSON around it is counted as
    ``REQUEST_OVERHEAD_BYTES``. Compare the result with ``max_request_bytes``.

    Args:
        n_bytes: Length of the audio in bytes.
        mime: The MIME type written in the data URI.

    Returns:
        An upper bound of the request body in bytes.
    """
    return 4 * math.ceil(n_bytes / 3) + len(f"data:{mime};base64,") + REQUEST_OVERHEAD_BYTES
