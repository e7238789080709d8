"""Generators of bad and odd audio inputs for tests (numpy + PyAV).

Every ``write_*``/``*_file`` function writes one file at the path it is given
(use ``tmp_path``) and returns that path; nothing here is a fixture, so any
test module can import it::

    from nasty_audio import speech_like, write_wav, truncated_mp3   # tests/ is on sys.path

Plain PCM WAV files are written with numpy and ``struct`` (fast: a 30-minute
file takes well under a second); everything that needs a real encoder (mp3,
flac, mu-law, 24-bit, float, video) goes through PyAV.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

RATE = 16_000


# --------------------------------------------------------------------------- signals


def tone(
    seconds: float, rate: int = RATE, *, freq: float = 440.0, amp: float = 0.3
) -> npt.NDArray[np.float32]:
    """A sine tone as float32 samples in [-1, 1]."""
    t = np.arange(round(seconds * rate), dtype=np.float64) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def to_int16(samples: npt.NDArray[np.floating]) -> npt.NDArray[np.int16]:
    """Float samples in [-1, 1] to int16."""
    scaled: npt.NDArray[np.float64] = np.round(np.clip(samples, -1.0, 1.0) * 32767.0)
    return scaled.astype(np.int16)


@dataclass(frozen=True)
class SpeechLike:
    """A speech-like test signal: loud bursts separated by near-silent gaps.

    Attributes:
        samples: int16 mono samples.
        rate: Their sample rate.
        gaps: The silent stretches as (start_s, end_s), in order.
    """

    samples: npt.NDArray[np.int16] = field(repr=False)
    rate: int
    gaps: list[tuple[float, float]] = field(repr=False)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    def in_gap(self, t: float, *, slack: float = 0.0) -> bool:
        """True when time ``t`` falls inside a silent gap (widened by ``slack``)."""
        return any(a - slack <= t <= b + slack for a, b in self.gaps)


def speech_like(
    seconds: float, rate: int = RATE, *, seed: int = 0, pattern_seconds: float = 120.0
) -> SpeechLike:
    """Tone bursts of 2-7 s (syllable-like envelope, never below 35 %) with
    gaps of 0.3-1.2 s holding only +-3 LSB of noise.

    A ``pattern_seconds`` stretch is generated and tiled, which keeps a
    30-minute signal cheap to build.
    """
    rng = np.random.default_rng(seed)
    pattern_n = round(min(seconds, pattern_seconds) * rate)
    pattern = np.zeros(pattern_n, dtype=np.float32)
    gaps: list[tuple[int, int]] = []
    at = 0
    while at < pattern_n:
        burst = round(rng.uniform(2.0, 7.0) * rate)
        gap = round(rng.uniform(0.3, 1.2) * rate)
        end = min(at + burst, pattern_n)
        n = end - at
        t = np.arange(n, dtype=np.float32) / rate
        f0 = rng.uniform(110.0, 240.0)
        voice = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t + 1.0)
        envelope = 0.35 + 0.65 * np.abs(np.sin(2 * np.pi * rng.uniform(2.5, 4.5) * t))
        pattern[at:end] = (rng.uniform(0.2, 0.45) / 1.5) * voice * envelope
        at = end
        if at >= pattern_n:
            break
        gap_end = min(at + gap, pattern_n)
        gaps.append((at, gap_end))
        at = gap_end
    one = to_int16(pattern)
    noise = rng.integers(-3, 4, size=pattern_n, dtype=np.int16)
    for a, b in gaps:
        one[a:b] = noise[a:b]
    total_n = round(seconds * rate)
    reps = -(-total_n // pattern_n)
    samples = np.tile(one, reps)[:total_n]
    all_gaps = [
        ((k * pattern_n + a) / rate, min(k * pattern_n + b, total_n) / rate)
        for k in range(reps)
        for a, b in gaps
        if k * pattern_n + a < total_n
    ]
    return SpeechLike(samples, rate, all_gaps)


# --------------------------------------------------------------------------- plain WAV


def wav_bytes(
    samples: npt.NDArray[np.int16], rate: int = RATE, *, declared_data_bytes: int | None = None
) -> bytes:
    """16-bit PCM WAV bytes; ``samples`` is (n,) mono or (n, channels).

    ``declared_data_bytes`` overrides the data chunk's size field (to fake a
    truncated file or an unfinished header).
    """
    channels = 1 if samples.ndim == 1 else int(samples.shape[1])
    pcm = np.ascontiguousarray(samples, dtype="<i2").tobytes()
    size = len(pcm) if declared_data_bytes is None else declared_data_bytes
    header = (
        b"RIFF"
        + struct.pack("<I", (36 + size) & 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
        + b"data"
        + struct.pack("<I", size & 0xFFFFFFFF)
    )
    return header + pcm


def write_wav(path: Path, samples: npt.NDArray[np.int16], rate: int = RATE) -> Path:
    """Write a 16-bit PCM WAV file."""
    path.write_bytes(wav_bytes(samples, rate))
    return path


def long_wav(path: Path, seconds: float, rate: int = RATE, *, seed: int = 0) -> SpeechLike:
    """Write a long speech-like 16-bit mono WAV; returns the signal (with its gaps)."""
    signal = speech_like(seconds, rate, seed=seed)
    write_wav(path, signal.samples, rate)
    return signal


def empty_file(path: Path) -> Path:
    """A 0-byte file."""
    path.write_bytes(b"")
    return path


def text_file(path: Path, text: str = "This is a shopping list, not a recording.\n" * 20) -> Path:
    """A text file (name it ``.wav`` to fool an extension check)."""
    path.write_text(text, encoding="utf-8")
    return path


def header_only_wav(path: Path) -> Path:
    """A WAV header declaring 0 samples and nothing after it (44 bytes)."""
    path.write_bytes(wav_bytes(np.zeros(0, dtype=np.int16)))
    return path


def truncated_wav(path: Path, seconds: float = 10.0, keep_seconds: float = 1.0) -> Path:
    """A WAV whose header promises ``seconds`` of audio but holds ``keep_seconds``."""
    samples = to_int16(tone(seconds))
    full = wav_bytes(samples)
    path.write_bytes(full[: 44 + round(keep_seconds * RATE) * 2])
    return path


def unfinished_wav(path: Path, seconds: float = 3.0) -> Path:
    """A WAV as a crashed recorder leaves it: the data size field is 0."""
    path.write_bytes(wav_bytes(to_int16(tone(seconds)), declared_data_bytes=0))
    return path


# --------------------------------------------------------------------------- PyAV encodings


def encode_file(
    path: Path,
    samples: npt.NDArray[np.float32],
    rate: int = RATE,
    *,
    container: str,
    codec: str,
    layout: str = "mono",
    sample_format: str | None = None,
    out_rate: int | None = None,
) -> Path:
    """Encode float samples ((n,) or (channels, n)) with PyAV into ``path``."""
    planar = samples.reshape(1, -1) if samples.ndim == 1 else samples
    channels = planar.shape[0]
    with av.open(str(path), mode="w", format=container) as out:
        kwargs: dict[str, object] = {"layout": layout}
        if sample_format is not None:
            kwargs["format"] = sample_format
        stream = out.add_stream(codec, rate=out_rate or rate, **kwargs)
        step = rate
        for i in range(0, planar.shape[1], step):
            chunk = np.ascontiguousarray(planar[:, i : i + step], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            assert frame.layout.nb_channels == channels
            frame.sample_rate = rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def mp3_file(path: Path, seconds: float = 10.0) -> Path:
    """An mp3 (LAME, with its Info tag stating the length)."""
    return encode_file(path, tone(seconds, freq=300.0), container="mp3", codec="libmp3lame")


def flac_file(path: Path, seconds: float = 3.0) -> Path:
    """A FLAC file (give it any extension)."""
    return encode_file(path, tone(seconds), container="flac", codec="flac", sample_format="s16")


def truncated_mp3(path: Path, seconds: float = 10.0, keep: float = 0.2) -> Path:
    """An mp3 cut to ``keep`` of its bytes; its Info tag still promises ``seconds``."""
    mp3_file(path, seconds)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def mulaw_wav(path: Path, seconds: float = 3.0, rate: int = 8000) -> Path:
    """G.711 mu-law WAV at 8 kHz (telephony)."""
    return encode_file(
        path, tone(seconds, rate), rate, container="wav", codec="pcm_mulaw", sample_format="s16"
    )


def alaw_wav(path: Path, seconds: float = 3.0, rate: int = 8000) -> Path:
    """G.711 a-law WAV at 8 kHz."""
    return encode_file(
        path, tone(seconds, rate), rate, container="wav", codec="pcm_alaw", sample_format="s16"
    )


def wav_6ch_24bit(path: Path, seconds: float = 3.0, rate: int = 48_000) -> Path:
    """5.1 surround, 24-bit PCM WAV."""
    base = tone(seconds, rate)
    six = np.stack([base * (0.2 + 0.1 * k) for k in range(6)]).astype(np.float32)
    return encode_file(
        path, six, rate, container="wav", codec="pcm_s24le", layout="5.1", sample_format="s32"
    )


def float_wav(path: Path, seconds: float = 3.0, rate: int = 22_050) -> Path:
    """32-bit float PCM WAV."""
    return encode_file(
        path, tone(seconds, rate), rate, container="wav", codec="pcm_f32le", sample_format="flt"
    )


def video_without_audio(path: Path, seconds: float = 1.0) -> Path:
    """An mp4 with one video stream (mpeg4, or h264) and no audio."""
    codec = "mpeg4" if "mpeg4" in av.codecs_available else "libx264"
    fps = 10
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(round(seconds * fps)):
            image = np.full((48, 64, 3), (i * 20) % 255, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def symlink_to(target: Path, link: Path) -> Path:
    """A symbolic link ``link`` -> ``target``."""
    os.symlink(target, link)
    return link
