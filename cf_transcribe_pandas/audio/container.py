"""Opening audio with PyAV and reading what its container says: the first audio
stream, its codec and header duration, and what the packets hold.

PyAV (FFmpeg, about 16 MB of memory) is imported on first use, so importing the
package, cache commands and cached reruns never load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ..errors import AudioError

if TYPE_CHECKING:
    import av
    from av.container import InputContainer


# Uncompressed containers: their header says everything. FFmpeg otherwise reads
# about 5 s of a PCM file to probe it (900 KB of 48 kHz stereo, not 130 KB):
# bytes a probe of a remote (fsspec) file would download.
_PCM_CONTAINERS = frozenset({"wav", "aiff", "caf", "au"})


@dataclass
class Inspection:
    """What the container of one input says, and what its packets hold.

    Attributes:
        fmt: The sniffed container, else the demuxer's name for it.
        codec: The first audio stream's codec (``"pcm_s16le"``, ``"opus"``, ...).
        sample_rate: Of that stream.
        channels: Of that stream.
        header_duration: Seconds of audio the headers promise, if they say.
        packet_duration: Seconds of audio the packets cover, when walked.
        packets: How many packets were walked.
    """

    fmt: str | None
    codec: str | None
    sample_rate: int | None
    channels: int | None
    header_duration: float | None
    packet_duration: float | None = None
    packets: int = 0


def ffmpeg_reason(exc: BaseException) -> str:
    """A short reason from an FFmpeg error, for a message."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).split(":")[0].strip() or type(exc).__name__


def _unreadable(label: str, exc: BaseException) -> AudioError:
    return AudioError(
        f"{label}: not readable as audio ({ffmpeg_reason(exc)})", code="unreadable_audio"
    )


def open_input(file: Any, label: str, fmt: str | None = None) -> InputContainer:
    """Open a file object (or path) with PyAV for reading.

    Raises:
        AudioError: ``unreadable_audio`` when FFmpeg cannot open it.
    """
    import av

    options = {"probesize": "65536"} if fmt in _PCM_CONTAINERS else None
    try:
        return cast("InputContainer", av.open(file, mode="r", options=options))
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise _unreadable(label, exc) from None


def audio_stream(container: InputContainer, label: str) -> av.AudioStream:
    """The first audio stream that has a decoder.

    Raises:
        AudioError: ``no_audio_stream`` (e.g. a video without sound) or
            ``unreadable_audio`` (no decoder for its codec).
    """
    if container.streams.audio:
        for stream in container.streams.audio:
            if stream.codec_context is not None:
                return stream
        raise AudioError(
            f"{label}: its audio is in a codec that cannot be decoded", code="unreadable_audio"
        )
    if container.streams.video:
        raise AudioError(f"{label}: has video but no audio stream", code="no_audio_stream")
    raise AudioError(f"{label}: has no audio stream", code="no_audio_stream")


def header_info(container: InputContainer, stream: av.AudioStream, fmt: str | None) -> Inspection:
    """What the headers say about ``stream``; nothing is read past them."""
    import av

    duration: float | None = None
    if container.duration is not None and container.duration > 0:
        duration = container.duration / av.time_base
    elif stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    ctx = stream.codec_context
    return Inspection(
        fmt=fmt or container.format.name.split(",")[0],
        codec=ctx.name,
        sample_rate=ctx.sample_rate or None,
        channels=ctx.channels or None,
        header_duration=duration,
    )


class _Span:
    """The time the packets of one stream cover, in its time base."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.end = 0
        self.summed = 0
        self.packets = 0

    def add(self, pts: int | None, duration: int) -> None:
        self.packets += 1
        self.summed += duration
        if pts is not None:
            self.first = pts if self.first is None else min(self.first, pts)
            self.end = max(self.end, pts + duration)

    def seconds(self, time_base: float) -> float | None:
        if self.first is not None and self.end > self.first:
            return (self.end - self.first) * time_base
        return self.summed * time_base or None


def walk_packets(
    container: InputContainer, stream: av.AudioStream, label: str, *, decode: int
) -> tuple[float | None, int]:
    """Walk every packet (cheap: no decoding) to measure the audio present.

    Decodes the first ``decode`` packets, to catch garbage behind a valid
    header.

    Returns:
        (seconds present, packet count).

    Raises:
        AudioError: ``unreadable_audio`` when no packet can be read, or none
            of the first ``decode`` packets decodes.
    """
    import av

    span = _Span()
    decoded = tried = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            span.add(packet.pts, packet.duration or 0)
            if decoded == 0 and tried < decode:
                tried += 1
                decoded += _samples(packet.decode)
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        if span.packets == 0:
            raise _unreadable(label, exc) from None
    # none of the first packets decoded: some decoders only give samples when flushed
    if (
        decode
        and span.packets
        and decoded == 0
        and _samples(stream.codec_context.decode, None) == 0
    ):
        raise AudioError(
            f"{label}: the audio data cannot be decoded (corrupt or not audio)",
            code="unreadable_audio",
        )
    time_base = float(stream.time_base) if stream.time_base else 0.0
    return span.seconds(time_base), span.packets


def _samples(decode: Any, *args: Any) -> int:
    """How many samples ``decode(*args)`` gives; 0 when it fails."""
    import av

    try:
        return sum(frame.samples for frame in decode(*args))
    except (av.FFmpegError, ValueError):
        return 0
