"""Audio for the accessor and engine tests: the bundled sample clips and generated WAVs.

Plain helpers (no fixtures), imported by ``conftest.py`` and the test modules.
"""

from __future__ import annotations

import csv
import hashlib
import io
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import cf_transcribe_pandas

SAMPLES = Path(cf_transcribe_pandas.__file__).parent / "samples"


@dataclass(frozen=True)
class Sample:
    """One bundled sample clip and what the emulator answers for it."""

    path: Path
    sha256: str
    text: str
    language: str
    duration_s: float


def load_samples() -> list[Sample]:
    """The clips of ``cf_transcribe_pandas/samples/manifest.csv``, in its order."""
    with open(SAMPLES / "manifest.csv", newline="", encoding="utf-8") as f:
        return [
            Sample(
                SAMPLES / row["file"],
                row["sha256"],
                row["text"],
                row["language"],
                float(row["duration_s"]),
            )
            for row in csv.DictReader(f)
        ]


def wav_bytes(seed: int, seconds: float = 0.5, rate: int = 16_000) -> bytes:
    """A 16-bit mono WAV, different for every ``seed`` (a tone plus a little noise)."""
    n = max(1, int(seconds * rate))
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    signal = 0.3 * np.sin(2 * np.pi * (180 + seed % 500) * t) + 0.01 * rng.standard_normal(n)
    pcm = np.round(np.clip(signal, -1, 1) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_clips(directory: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` distinct tiny WAV files in ``directory``; returns (paths, sha256 of each)."""
    directory.mkdir(parents=True)
    paths, shas = [], []
    for i in range(n):
        data = wav_bytes(seed + i, seconds=0.05)
        path = directory / f"clip{i:04d}.wav"
        path.write_bytes(data)
        paths.append(str(path))
        shas.append(hashlib.sha256(data).hexdigest())
    assert len(set(shas)) == n
    return paths, shas


def emulator_kwargs(emu: Any, cache: Any, **extra: Any) -> dict[str, Any]:
    """Keyword arguments pointing ``df.cfai.transcribe`` at ``emu``, quietly."""
    return {
        "account_id": emu.account_id,
        "api_token": emu.token,
        "base_url": emu.base_url,
        "cache": cache,
        "progress": False,
        **extra,
    }
