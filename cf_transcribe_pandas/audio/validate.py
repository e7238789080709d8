"""Judging one input before anything is sent: unreadable (text, truncated, garbage,
no audio stream) is the row's error; readable audio is either accepted as it is
or marked for re-encoding (odd WAV, containers the service refuses)."""

from __future__ import annotations

import io
import struct

from ..errors import AudioError
from .container import Inspection, audio_stream, header_info, open_input, walk_packets
from .limits import ACCEPTED
from .sniff import has_vbr_tag, looks_like_text, sniff

# Trust the duration in these containers' headers (a truncated file then shows
# as "header says more than is there"). mp3 only with a Xing/Info/VBRI tag.
_HEADER_DURATION_TRUSTED = frozenset(
    {"flac", "mp4", "m4a", "webm", "matroska", "aiff", "caf", "wma", "3gp", "mov"}
)
_UNSET = (0, 0xFFFFFFFF)  # a WAV data size never written (streamed, RF64)


def inspect_bytes(data: bytes, label: str) -> Inspection:
    """Validate one file's bytes: everything short of decoding it all.

    The container is opened, every packet walked (no decoding) and the first
    packets decoded; a header promising more audio than is present means a
    truncated file.

    Raises:
        AudioError: ``empty_file``, ``unreadable_audio`` or ``no_audio_stream``.
    """
    plain = plain_wav(data)
    if plain is not None:
        return plain
    fmt = sniff(data)
    check_not_text(fmt, data, label)
    if fmt == "wav" and (chunk := wav_data_chunk(data)) is not None:
        check_wav_chunk(*chunk, label)
    with open_input(io.BytesIO(data), label, fmt) as container:
        stream = audio_stream(container, label)
        info = header_info(container, stream, fmt)
        info.packet_duration, info.packets = walk_packets(container, stream, label, decode=8)
    if info.packets == 0:
        if info.header_duration:
            raise AudioError(
                f"{label}: is truncated or corrupt (its header promises "
                f"{info.header_duration:.1f} s of audio but none can be read)",
                code="unreadable_audio",
            )
        raise AudioError(f"{label}: holds no audio (0 samples)", code="empty_file")
    trusted = fmt in _HEADER_DURATION_TRUSTED or (fmt == "mp3" and has_vbr_tag(data))
    promised, present = info.header_duration, info.packet_duration
    if (
        trusted
        and promised
        and present is not None
        and promised - present > max(0.5, 0.02 * promised)
    ):
        raise AudioError(
            f"{label}: is truncated (its header promises {promised:.1f} s of audio but only "
            f"{present:.1f} s is present)",
            code="unreadable_audio",
        )
    return info


def plain_wav(data: bytes) -> Inspection | None:
    """A complete 16-bit PCM RIFF WAV (1-2 channels, 8-48 kHz), read from its header alone.

    Such a file cannot fail to decode (every byte pattern is a valid sample), so its
    header is all the checking it needs, and FFmpeg is not started for it: 30 µs a
    clip instead of about 1 ms, what keeps a corpus of short WAVs (the most common
    input) from costing a core. Anything else returns None and goes through PyAV.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    at, fmt_chunk, data_size, stored = 12, None, None, 0
    while at + 8 <= len(data):
        chunk_id = data[at : at + 4]
        (size,) = struct.unpack("<I", data[at + 4 : at + 8])
        if chunk_id == b"fmt " and size >= 16:
            fmt_chunk = struct.unpack("<HHIIHH", data[at + 8 : at + 24])
        elif chunk_id == b"data":
            data_size, stored = size, len(data) - (at + 8)
            break
        at += 8 + size + (size & 1)
    if fmt_chunk is None or data_size is None:
        return None
    tag, channels, rate, _, block_align, bits = fmt_chunk
    plain = tag == 1 and bits == 16 and channels in (1, 2) and 8000 <= rate <= 48000
    if not plain or block_align != 2 * channels or not 0 < data_size <= stored:
        return None
    seconds = data_size / (rate * block_align)
    return Inspection("wav", "pcm_s16le", rate, channels, seconds, seconds, 1)


def check_not_text(fmt: str | None, head: bytes, label: str) -> None:
    """Refuse an input of unknown format that is text (an HTML error page, notes, ...).

    Raises:
        AudioError: ``unreadable_audio`` naming the kind of text.
    """
    if fmt is None and (kind := looks_like_text(head)) is not None:
        raise AudioError(f"{label}: is {kind}, not audio", code="unreadable_audio")


def duration(info: Inspection) -> float | None:
    """The best length in seconds: trusted headers first, then the packets."""
    trusted = info.fmt in _HEADER_DURATION_TRUSTED or info.fmt == "wav"
    if trusted and info.header_duration:
        return info.header_duration
    return info.packet_duration or info.header_duration


def wav_data_chunk(data: bytes) -> tuple[int, int] | None:
    """(declared size, bytes present) of a RIFF WAVE file's data chunk, if found."""
    if data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return None
    endian = "<" if data[:4] == b"RIFF" else ">"
    at = 12
    while at + 8 <= len(data):
        chunk_id = data[at : at + 4]
        (size,) = struct.unpack(endian + "I", data[at + 4 : at + 8])
        if chunk_id == b"data":
            return size, len(data) - (at + 8)
        at += 8 + size + (size & 1)
    return None


def check_wav_chunk(declared: int, stored: int, label: str) -> None:
    """Refuse a WAV whose data chunk holds nothing or less than its header promises.

    Raises:
        AudioError: ``empty_file`` (a header with 0 samples) or
            ``unreadable_audio`` (truncated).
    """
    if stored == 0 and declared in _UNSET:
        raise AudioError(
            f"{label}: holds no audio (a WAV header with 0 samples)", code="empty_file"
        )
    if stored == 0 or (declared not in _UNSET and stored < declared * 0.98 - 64):
        raise AudioError(
            f"{label}: is truncated (the WAV header promises {declared} bytes of "
            f"audio but {'only ' + str(stored) if stored else 'none'} are present)",
            code="unreadable_audio",
        )


def accepted_as_is(head: bytes, info: Inspection) -> tuple[bool, str | None]:
    """Whether the service takes this input as it is, and if not, why.

    Args:
        head: The start of the file (for a WAV, up to its data chunk).
        info: Its :class:`Inspection`.

    Returns:
        (True, None), or (False, the reason it must be re-encoded).
    """
    if info.fmt not in ACCEPTED:
        return False, f"the service does not take {info.fmt or 'this format'}"
    if info.fmt == "wav":
        reason = _odd_wav_reason(head, info)
        if reason is not None:
            return False, f"WAV with {reason}"
    return True, None


def _odd_wav_reason(head: bytes, info: Inspection) -> str | None:
    """Why a WAV file should be re-encoded before sending, or None if it is plain."""
    if head[:4] != b"RIFF":
        return f"{head[:4].decode('latin-1')} header"
    if info.codec != "pcm_s16le":
        return f"{info.codec} samples"
    if info.channels is not None and info.channels > 2:
        return f"{info.channels} channels"
    if info.sample_rate is not None and not 8000 <= info.sample_rate <= 48000:
        return f"{info.sample_rate} Hz"
    chunk = wav_data_chunk(head)
    if chunk is not None and chunk[0] in _UNSET and chunk[1] > 0:
        return "an unfinished header (data size not written)"
    return None
