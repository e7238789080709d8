"""The request's ``file``: a data URI decoded and checked, or an https URL; and its text.

A data URI is decoded (base64 or percent-encoded), must hold a non-empty
file of at most ``max_file_bytes`` (413 3006) in an accepted container (400
5004 otherwise), and is answered with the transcript registered for its
sha256. An https URL is not fetched: it is answered with the transcript
registered for the URL string, else a placeholder.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any
from urllib.parse import unquote_to_bytes

from cf_transcribe_pandas.emulator.answers import ApiError
from cf_transcribe_pandas.emulator.sniff import ACCEPTED, sniff
from cf_transcribe_pandas.emulator.state import EmulatorState
from cf_transcribe_pandas.emulator.transcripts import placeholder

__all__ = ["file_text"]

_ACCEPTED_LIST = ", ".join(sorted(ACCEPTED))


async def file_text(file: str, prefix: str, entry: dict[str, Any], state: EmulatorState) -> str:
    """Check the request's ``file`` and return the text to answer (400 5004, 413 3006).

    Args:
        file: The ``file`` input field.
        prefix: How input field names are shown in messages (``"input."`` or ``""``).
        entry: The request's log entry; gets the file's facts.
        state: The emulator's state (transcripts, config).
    """
    if file.startswith("data:"):
        return await _data_uri_text(file, entry, state)
    if file.startswith("https://"):
        entry["file_kind"] = "url"
        entry["url"] = file
        text = state.transcripts.get(file)
        return text if text is not None else placeholder(hashlib.sha256(file.encode()).hexdigest())
    raise ApiError(400, 5004, f"Invalid data: {prefix}file must be a data URI or an https:// URL")


async def _data_uri_text(file: str, entry: dict[str, Any], state: EmulatorState) -> str:
    entry["file_kind"] = "data"
    audio = _decode(file, entry)
    size = len(audio)
    entry["bytes"] = size
    limit = state.config.max_file_bytes
    if size > limit:
        raise ApiError(413, 3006, f"Request is too large: the file is {size} bytes, over {limit}")
    if not size:
        raise ApiError(400, 5004, "Invalid data: the file is empty")
    sha = hashlib.sha256(audio).hexdigest()
    container = sniff(audio[:4096])
    entry["sha256"] = sha
    entry["container"] = container
    if container not in ACCEPTED:
        what = f"{container} audio" if container else "not an audio file"
        raise ApiError(
            400,
            5004,
            f"Invalid data type for base64 input: {what} (accepted: {_ACCEPTED_LIST})",
        )
    try:
        return await state.text_for_audio(sha, audio)
    except ValueError as exc:  # PyAV could not probe it (words_per_second)
        raise ApiError(400, 5004, f"Invalid data: {exc}") from exc


def _decode(file: str, entry: dict[str, Any]) -> bytes:
    """Decode ``data:[<mime>][;...][;base64],<payload>``; log the media type."""
    comma = file.find(",")
    if comma < 0:
        raise ApiError(400, 5004, "Invalid data: the data URI has no ','")
    params = file[5:comma].split(";")
    entry["mime"] = params[0] or "text/plain"
    payload = file[comma + 1 :]
    if params[-1].lower() != "base64":
        return unquote_to_bytes(payload)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(
            400, 5004, f"Invalid data type for base64 input: not valid base64 ({exc})"
        ) from exc
