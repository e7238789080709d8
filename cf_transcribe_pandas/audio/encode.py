"""Request-ready audio (:class:`Part`) and encoding samples into parts: 16 kHz mono
FLAC, or Ogg Opus when FLAC will not fit, halved at a quiet point when neither does."""

from __future__ import annotations

import base64
import builtins
import io
import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import AudioError
from .decode import Samples
from .limits import RATE, data_uri, request_bytes
from .quiet import quiet_cut

logger = logging.getLogger("cf_transcribe_pandas")

Codec = Literal["flac", "opus"]

_MIME: dict[Codec, str] = {"flac": "audio/flac", "opus": "audio/ogg"}
_OPUS_BIT_RATE = 32_000


@dataclass(frozen=True)
class Part:
    """One request's worth of audio.

    Attributes:
        data_uri: ``data:{mime};base64,...`` for the request's ``file`` field.
        duration_s: Seconds of audio in this part (None if unknown).
        start_s: Where this part starts in the original audio, in seconds.
        bytes: Length of the audio bytes (before base64).
        mime: The MIME type inside :attr:`data_uri`.
        reencoded: False when :attr:`data_uri` holds the input's own bytes.
    """

    data_uri: str = field(repr=False)
    duration_s: float | None
    start_s: float
    bytes: int
    mime: str = "application/octet-stream"
    reencoded: bool = False

    def audio(self) -> builtins.bytes:
        """The audio bytes inside :attr:`data_uri`."""
        return base64.b64decode(self.data_uri.partition(",")[2])


def encode_pcm(samples: Samples, codec: Codec) -> bytes:
    """Encode 16 kHz mono int16 samples as FLAC or Ogg Opus (32 kbit/s), reproducibly."""
    import av

    buf = io.BytesIO()
    container_format = "flac" if codec == "flac" else "ogg"
    with av.open(
        buf, mode="w", format=container_format, container_options={"fflags": "+bitexact"}
    ) as out:
        if codec == "flac":
            stream = out.add_stream("flac", rate=RATE, layout="mono", format="s16")
        else:
            stream = out.add_stream("libopus", rate=RATE, layout="mono")
            stream.bit_rate = _OPUS_BIT_RATE
        stream.codec_context.flags |= int(av.codec.context.Flags.bitexact)
        step = RATE * 30
        for i in range(0, len(samples), step):
            chunk = np.ascontiguousarray(samples[i : i + step]).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = RATE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


@dataclass(frozen=True)
class PartEncoder:
    """Turns stretches of 16 kHz mono samples into parts that fit one request.

    Attributes:
        label: A name for the file in error messages.
        max_request_bytes: The largest request body.
        codec: ``"flac"`` or ``"opus"``.
        strict_codec: Never switch codec: split instead. Without it, FLAC that
            will not fit is tried as Opus before the stretch is split.
    """

    label: str
    max_request_bytes: int
    codec: Codec = "flac"
    strict_codec: bool = False

    def parts(self, samples: Samples, start: int) -> list[Part]:
        """Encode one stretch as one part, or more if it will not fit.

        Args:
            samples: The stretch.
            start: Its first sample's index in the original audio.

        Returns:
            The parts in order, each under ``max_request_bytes``.

        Raises:
            AudioError: ``unreadable_audio`` when not even 1 s of audio fits.
        """
        tries: list[Codec] = [self.codec]
        if self.codec == "flac" and not self.strict_codec:
            tries.append("opus")
        for codec in tries:
            encoded = encode_pcm(samples, codec)
            mime = _MIME[codec]
            if request_bytes(len(encoded), mime) <= self.max_request_bytes:
                uri = data_uri(encoded, mime)
                return [Part(uri, len(samples) / RATE, start / RATE, len(encoded), mime, True)]
        if len(samples) < 2 * RATE:
            raise AudioError(
                f"{self.label}: cannot fit even 1 s of audio in a request of "
                f"{self.max_request_bytes} bytes",
                code="unreadable_audio",
            )
        mid, quarter = len(samples) // 2, len(samples) // 4
        cut = quiet_cut(samples, mid - quarter, mid, mid + quarter)
        logger.debug(
            "%s: part at %.1f s too big once encoded; splitting it", self.label, start / RATE
        )
        return self.parts(samples[:cut], start) + self.parts(samples[cut:], start + cut)
