"""A small magic-byte sniffer: which audio container do these bytes hold?

The emulator stands in for the service on its own, so it carries its own
sniffer instead of importing the library's ``audio`` module. It only looks at
the first bytes; it does not decode.
"""

from __future__ import annotations

__all__ = ["ACCEPTED", "sniff"]

ACCEPTED: frozenset[str] = frozenset(
    {"flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm"}
)
"""Containers the model accepts (the service's list)."""

_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis", b"crx "})
_M4A_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P "})


def sniff(head: bytes) -> str | None:
    """Name the container of ``head`` from its magic bytes.

    Args:
        head: The first bytes of the file (64 or more is plenty; the whole
            file is fine, only the start is read).

    Returns:
        ``"wav"``, ``"flac"``, ``"mp3"``, ``"mpeg"`` (MPEG-1/2 layer I/II),
        ``"ogg"``, ``"webm"`` (any EBML/Matroska), ``"mp4"``, ``"m4a"``, or a
        container the model does not accept (``"aiff"``, ``"caf"``, ``"wma"``,
        ``"aac"``), or None when the bytes are not a known audio container.
    """
    if len(head) < 4:
        return None
    if head[:4] in (b"RIFF", b"RF64"):
        return "wav" if head[8:12] == b"WAVE" else None
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        return "m4a" if brand in _M4A_BRANDS else "mp4"
    if head[:3] == b"ID3":
        return _mpeg_after_id3(head)
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"caff":
        return "caf"
    if head[:16] == _ASF_GUID:
        return "wma"
    return _mpeg_frame(head)


def _mpeg_after_id3(head: bytes) -> str:
    """Skip an ID3v2 tag and name the MPEG audio frame after it ("mp3" if unseen)."""
    if len(head) >= 10:
        size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7
        size |= head[9] & 0x7F
        start = 10 + size + (10 if head[5] & 0x10 else 0)
        kind = _mpeg_frame(head[start : start + 4])
        if kind is not None and kind != "aac":
            return kind
    return "mp3"


def _mpeg_frame(head: bytes) -> str | None:
    """Name an MPEG audio frame header (frame sync, valid rate fields)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    layer = (head[1] >> 1) & 0x03
    if layer == 0:
        return "aac" if head[1] & 0xF6 == 0xF0 else None  # ADTS AAC
    if (head[1] >> 3) & 0x03 == 1 or head[2] >> 4 == 0x0F or (head[2] >> 2) & 0x03 == 3:
        return None
    return "mp3" if layer == 1 else "mpeg"
