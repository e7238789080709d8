"""A cheap look at one input (:func:`probe`): format, duration, size, and whether the
service takes it as it is; used by ``estimate`` without sending anything."""

from __future__ import annotations

import io
import urllib.parse
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from .container import audio_stream, header_info, open_input, walk_packets
from .inputs import to_source
from .limits import known_extension, mime_for
from .sniff import HEAD_BYTES, sniff
from .sources import Source, empty_error
from .validate import accepted_as_is, check_not_text, check_wav_chunk, duration, wav_data_chunk


@dataclass(frozen=True)
class AudioInfo:
    """What a cheap look at one input's headers tells.

    Attributes:
        format: The container from :func:`sniff` (``"wav"``, ``"mp3"``, ...),
            or the demuxer's guess when the magic bytes are unknown.
        mime: :func:`mime_for` of the format.
        duration_s: Seconds of audio from the headers (for formats without
            one, from the packets), None when unknown (passed-through URLs).
        bytes: Size of the input; 0 for a passed-through URL (nothing of it
            is uploaded) and for NA.
        sample_rate: Of the first audio stream.
        channels: Of the first audio stream.
        accepted: True when ``prepare(encode="auto")`` would send the input as
            it is (the service takes the container and the codec is plain),
            limits aside. Passed-through URLs count as accepted.
        codec: The first audio stream's codec (``"pcm_s16le"``, ``"opus"``,
            ``"vorbis"``, ``"aac"``, ``"mp3float"``, ...).
    """

    format: str | None
    mime: str | None
    duration_s: float | None
    bytes: int
    sample_rate: int | None
    channels: int | None
    accepted: bool
    codec: str | None


def probe(x: object) -> AudioInfo:
    """Read what the headers tell about one input, cheaply.

    Local and fsspec files are opened in place (only the header region is
    read); other inputs are read in memory. Nothing is decoded unless the
    container has no duration in its headers. A passed-through URL is not
    downloaded: its format is guessed from the URL's extension.

    Args:
        x: A :class:`Source`, or anything :func:`to_source` accepts.

    Returns:
        The :class:`AudioInfo`; all None / 0 for NA.

    Raises:
        AudioError: as :meth:`Source.read`, plus ``unreadable_audio`` and
            ``no_audio_stream``.
    """
    source = x if isinstance(x, Source) else to_source(x)
    if source.kind == "na":
        return AudioInfo(None, None, None, 0, None, None, False, None)
    if source.passthrough:
        path = urllib.parse.urlsplit(source.url or "").path
        fmt = known_extension(PurePosixPath(path).suffix)
        return AudioInfo(fmt, mime_for(fmt) if fmt else None, None, 0, None, None, True, None)
    with source.open() as f:
        size = f.seek(0, io.SEEK_END)
        if size == 0:
            raise empty_error(source.label)
        f.seek(0)
        return _probe_file(f, f.read(HEAD_BYTES), size, source.label)


def _probe_file(f: BinaryIO, head: bytes, size: int, label: str) -> AudioInfo:
    fmt = sniff(head)
    check_not_text(fmt, head, label)
    if fmt == "wav" and (chunk := wav_data_chunk(head)) is not None:
        declared, stored_in_head = chunk
        check_wav_chunk(declared, size - (len(head) - stored_in_head), label)
    f.seek(0)
    with open_input(f, label, fmt) as container:
        stream = audio_stream(container, label)
        info = header_info(container, stream, fmt)
        if info.header_duration is None:
            info.packet_duration, info.packets = walk_packets(container, stream, label, decode=0)
    return AudioInfo(
        format=info.fmt,
        mime=mime_for(info.fmt),
        duration_s=duration(info),
        bytes=size,
        sample_rate=info.sample_rate,
        channels=info.channels,
        accepted=accepted_as_is(head, info)[0],
        codec=info.codec,
    )
