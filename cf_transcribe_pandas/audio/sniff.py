"""Recognising audio by its content: the container from the first bytes (never the
file name), text that is not audio, and an mp3's VBR tag."""

from __future__ import annotations

#: How much of a file sniffing and probing look at.
HEAD_BYTES = 64 * 1024

_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
# Fixed signatures at the start of a file, tried in order.
_MAGIC = (
    (b"fLaC", "flac"),
    (b"OggS", "ogg"),
    (b"caff", "caf"),
    (_ASF_GUID, "wma"),
    (b".snd", "au"),
    (b"#!AMR", "amr"),
)
_RIFF = (b"RIFF", b"RIFX", b"RF64", b"BW64")

# MPEG audio bitrates (kbit/s) by (MPEG-1?, layer), index 1..14.
_MPEG_BITRATES = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def sniff(head: bytes) -> str | None:
    """Name the container of some audio from its first bytes.

    Args:
        head: The start of the file (a few KB is plenty; more is ignored).

    Returns:
        ``"wav"`` (also RF64), ``"flac"``, ``"mp3"`` (any MPEG audio: layer I,
        II or III, with or without an ID3 tag), ``"ogg"`` (vorbis, opus, ...),
        ``"mp4"`` or ``"m4a"`` (by ftyp brand; also ``"3gp"``, ``"mov"``),
        ``"webm"`` or ``"matroska"`` (by EBML DocType), ``"aiff"``, ``"caf"``,
        ``"wma"`` (any ASF), ``"au"``, ``"amr"``, ``"aac"`` (ADTS), or None
        when the bytes are text or unknown. Never raises.
    """
    h = bytes(head[:HEAD_BYTES])
    if len(h) < 4:
        return None
    return _by_header(h) or _by_frames(h)


def _by_header(h: bytes) -> str | None:
    """Containers that name themselves in their first 16 bytes."""
    if h[:4] in _RIFF and h[8:12] == b"WAVE":
        return "wav"
    for magic, fmt in _MAGIC:
        if h.startswith(magic):
            return fmt
    if h[:4] == b"\x1a\x45\xdf\xa3":
        return _ebml_doctype(h)
    if h[4:8] == b"ftyp":
        return _mp4_family(h[8:12])
    if h[:4] == b"FORM" and h[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    return None


def _by_frames(h: bytes) -> str | None:
    """Raw streams: MPEG audio or ADTS AAC frames, perhaps behind an ID3 tag."""
    at = 0
    if h[:3] == b"ID3" and len(h) >= 10:
        at = _id3_end(h)
        while at < len(h) and h[at] == 0:  # padding after the tag
            at += 1
        if h[at : at + 4] == b"fLaC":
            return "flac"
        if _is_adts(h, at) and not _is_mpeg_audio(h, at):
            return "aac"
        return "mp3"
    if _is_mpeg_audio(h, at):
        return "mp3"
    if _is_adts(h, at):
        return "aac"
    return None


def _id3_end(h: bytes) -> int:
    """Where the ID3v2 tag at the start of ``h`` ends (its footer included)."""
    size = (h[6] & 0x7F) << 21 | (h[7] & 0x7F) << 14 | (h[8] & 0x7F) << 7 | (h[9] & 0x7F)
    return 10 + size + (10 if h[5] & 0x10 else 0)


def _mpeg_frame_length(h: bytes, i: int) -> int | None:
    """Length in bytes of the MPEG audio frame whose header starts at ``h[i]``."""
    if i + 4 > len(h) or h[i] != 0xFF or (h[i + 1] & 0xE0) != 0xE0:
        return None
    version = (h[i + 1] >> 3) & 3  # 0: MPEG-2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
    layer_bits = (h[i + 1] >> 1) & 3  # 0: reserved, 1: III, 2: II, 3: I
    bitrate_index = h[i + 2] >> 4
    rate_index = (h[i + 2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    padding = (h[i + 2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    if layer == 3 and not mpeg1:
        return 72 * bitrate // rate + padding
    return 144 * bitrate // rate + padding


def _is_mpeg_audio(h: bytes, i: int) -> bool:
    length = _mpeg_frame_length(h, i)
    if length is None:
        return False
    nxt = i + length
    if nxt + 4 <= len(h):  # the next frame is in view: it must be a frame too
        return _mpeg_frame_length(h, nxt) is not None
    return True


def _is_adts(h: bytes, i: int) -> bool:
    return i + 2 <= len(h) and h[i] == 0xFF and (h[i + 1] & 0xF6) == 0xF0


def _ebml_doctype(h: bytes) -> str:
    """``"webm"`` or ``"matroska"``, from the DocType element of an EBML header."""
    at = h.find(b"\x42\x82", 4, 64)
    if at < 0 or at + 3 > len(h):
        return "matroska"
    first = h[at + 2]
    width = 1
    while width <= 8 and not first & (0x80 >> (width - 1)):
        width += 1
    if width > 8:
        return "matroska"
    size = first & (0xFF >> width)
    for b in h[at + 3 : at + 2 + width]:
        size = (size << 8) | b
    start = at + 2 + width
    doctype = h[start : start + min(size, 16)].rstrip(b"\0")
    return "webm" if doctype == b"webm" else "matroska"


def _mp4_family(brand: bytes) -> str:
    if brand in (b"M4A ", b"M4B ", b"M4P "):
        return "m4a"
    if brand.startswith(b"3g"):
        return "3gp"
    if brand == b"qt  ":
        return "mov"
    if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
        return "heif"
    return "mp4"


def has_vbr_tag(data: bytes) -> bool:
    """True when an mp3 carries a Xing/Info/VBRI tag (so its duration can be trusted)."""
    at = _id3_end(data) if data[:3] == b"ID3" and len(data) >= 10 else 0
    window = data[at : at + 8192]
    sync = next((i for i in range(len(window) - 1) if _mpeg_frame_length(window, i)), None)
    if sync is None:
        return False
    frame = window[sync : sync + 200]
    return b"Xing" in frame or b"Info" in frame or b"VBRI" in frame


def looks_like_text(head: bytes) -> str | None:
    """Say what kind of text ``head`` is (``"an HTML page"``, ``"JSON text"``, ...),
    or None if it is not text."""
    sample = head[:4096]
    if not sample or b"\0" in sample:
        return None
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a character cut at the end
            return None
        text = sample[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if not text or printable < 0.95 * len(text):
        return None
    lowered = text.lstrip().lower()
    if lowered.startswith(("<!doctype html", "<html")):
        return "an HTML page"
    if lowered.startswith("<?xml"):
        return "an XML document"
    if lowered.startswith(("{", "[")):
        return "JSON text"
    return "a text file"
