"""Decoding audio to 16 kHz mono int16 samples with PyAV, streaming chunk by chunk,
for re-encoding and for finding quiet points."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import AudioError
from .container import audio_stream, ffmpeg_reason, open_input
from .limits import RATE
from .sniff import sniff

if TYPE_CHECKING:
    import av


logger = logging.getLogger("cf_transcribe_pandas")

Samples = npt.NDArray[np.int16]


_TARGET = ("s16", 1, RATE)  # sample format, channels, rate of what comes out


class _To16k:
    """Converts frames to 16 kHz mono s16, with a new resampler whenever the
    input's format, layout or rate changes mid-stream (chained Ogg, odd mp3).

    Frames already in that form skip the resampler: on long 16 kHz mono
    recordings (common in speech corpora) that is a fifth of :func:`prepare`'s
    time, and splitting long audio is where a run waits for the CPU.
    """

    def __init__(self) -> None:
        self.resampler: av.AudioResampler | None = None
        self.setup: tuple[str, int, int] | None = None

    def convert(self, frames: Iterable[av.AudioFrame]) -> Iterator[Samples]:
        import av

        for frame in frames:
            setup = (frame.format.name, frame.layout.nb_channels, frame.sample_rate)
            if setup != self.setup:
                yield from self.flush()
                self.setup = setup
                self.resampler = None
                if setup != _TARGET:
                    self.resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            if self.resampler is None:
                yield _samples(frame)
            else:
                yield from map(_samples, self.resampler.resample(frame))

    def flush(self) -> Iterator[Samples]:
        if self.resampler is not None:
            yield from map(_samples, self.resampler.resample(None))


def _samples(frame: av.AudioFrame) -> Samples:
    """The samples of a packed s16 mono frame (its one plane may be padded)."""
    return np.frombuffer(memoryview(frame.planes[0]), dtype=np.int16, count=frame.samples)


@dataclass
class _Counts:
    packets: int = 0
    errors: int = 0
    samples: int = 0


def decode_16k(file: Any, label: str, fmt: str | None) -> Iterator[Samples]:
    """Decode a file's first audio stream to 16 kHz mono int16 chunks.

    Packets that fail to decode are skipped; a stream where more than 5 % of
    them (and more than 3) fail, or that gives no samples, is unreadable.

    Raises:
        AudioError: ``unreadable_audio`` or ``no_audio_stream``.
    """
    import av

    to16k = _To16k()
    counts = _Counts()
    with open_input(file, label, fmt) as container:
        stream = audio_stream(container, label)
        try:
            for frames in _frames(container, stream, counts):
                for chunk in to16k.convert(frames):
                    counts.samples += chunk.size
                    yield chunk
        except (av.FFmpegError, OSError, EOFError) as exc:
            if counts.samples == 0:
                raise AudioError(
                    f"{label}: not readable as audio ({ffmpeg_reason(exc)})",
                    code="unreadable_audio",
                ) from None
            logger.debug("%s: stopped decoding early (%s)", label, exc)
        for chunk in to16k.flush():
            counts.samples += chunk.size
            yield chunk
    if counts.samples == 0 or counts.errors > max(3, counts.packets // 20):
        raise AudioError(
            f"{label}: the audio data cannot be decoded "
            f"({counts.errors} of {counts.packets} packets failed)",
            code="unreadable_audio",
        )


def _frames(
    container: Any, stream: av.AudioStream, counts: _Counts
) -> Iterator[Iterable[av.AudioFrame]]:
    """Each packet's decoded frames, then the decoder's last ones."""
    import av

    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        counts.packets += 1
        try:
            yield packet.decode()
        except (av.FFmpegError, ValueError):
            counts.errors += 1
    yield stream.codec_context.decode(None)


def decode_all(data: bytes, label: str) -> Samples:
    """All of ``data``'s audio as one 16 kHz mono int16 array."""
    chunks = list(decode_16k(io.BytesIO(data), label, sniff(data)))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
