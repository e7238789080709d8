"""Where the emulator's answers come from: manifests, placeholders, word runs.

A transcript is looked up by the sha256 of the decoded audio (or by the https
URL string for URL files). The package's ``samples/manifest.csv`` is loaded by
default; more manifests (any CSV with ``sha256`` and ``text`` columns) and
inline maps can be added. Unknown audio gets ``"transcript of <sha[:12]>"``.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

__all__ = [
    "build_transcripts",
    "load_manifest",
    "normalise",
    "placeholder",
    "probe_duration",
    "sample_transcripts",
    "words_text",
]


def load_manifest(source: str | Path | io.StringIO) -> dict[str, str]:
    """Read a manifest CSV into a ``sha256 -> text`` map.

    Args:
        source: A path, or an open text stream.

    Returns:
        The map; rows with an empty sha256 are skipped.

    Raises:
        ValueError: The CSV has no ``sha256`` or no ``text`` column.
        OSError: The file cannot be read.
    """
    if isinstance(source, io.StringIO):
        return _parse(source, "<manifest>")
    with open(source, encoding="utf-8", newline="") as fh:
        return _parse(fh, str(source))


def _parse(fh: Iterable[str], label: str) -> dict[str, str]:
    reader = csv.DictReader(fh)
    fields = reader.fieldnames or []
    if "sha256" not in fields or "text" not in fields:
        raise ValueError(f"{label}: a manifest needs 'sha256' and 'text' columns, has {fields}")
    return {
        row["sha256"].strip().lower(): row["text"] or ""
        for row in reader
        if (row.get("sha256") or "").strip()
    }


@functools.lru_cache(maxsize=1)
def _samples() -> tuple[tuple[str, str], ...]:
    ref = resources.files("cf_transcribe_pandas").joinpath("samples/manifest.csv")
    try:
        text = ref.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return ()
    return tuple(load_manifest(io.StringIO(text)).items())


def sample_transcripts() -> dict[str, str]:
    """Return the transcripts of the package's sample clips (``samples/manifest.csv``)."""
    return dict(_samples())


def build_transcripts(
    *, load_samples: bool, manifests: Iterable[str], extra: Mapping[str, str]
) -> dict[str, str]:
    """Merge the transcript sources, later ones winning.

    Args:
        load_samples: Include the package's sample manifest first.
        manifests: Paths of more manifest CSVs.
        extra: An inline ``sha256 (or URL) -> text`` map, applied last.

    Returns:
        The merged map.
    """
    out = sample_transcripts() if load_samples else {}
    for path in manifests:
        out.update(load_manifest(path))
    out.update(normalise(extra))
    return out


def normalise(mapping: Mapping[str, str]) -> dict[str, str]:
    """Lower-case hex sha256 keys; keep URL keys as they are.

    Raises:
        ValueError: A key or a value is not a string.
    """
    out: dict[str, str] = {}
    for key, text in mapping.items():
        if not isinstance(key, str) or not isinstance(text, str):
            raise ValueError(f"transcripts must map str to str, got {key!r}: {text!r}")
        out[key if "://" in key else key.strip().lower()] = text
    return out


def placeholder(sha256: str) -> str:
    """Return the deterministic text for audio without a registered transcript."""
    return f"transcript of {sha256[:12]}"


def probe_duration(data: bytes) -> float | None:
    """Return the audio's duration in seconds, probed with PyAV, or None.

    Uses the container's duration when it states one, else the end of the
    last audio packet.

    Raises:
        ValueError: PyAV cannot open the bytes, or they hold no audio stream.
    """
    import av  # imported lazily: only used with words_per_second

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            streams = container.streams.audio
            if not streams:
                raise ValueError("no audio stream")
            if container.duration is not None and container.duration > 0:
                return float(container.duration) / 1_000_000.0
            stream = streams[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            end = 0.0
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None:
                    continue
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            return end or None
    except ValueError:
        raise
    except Exception as exc:  # PyAV raises its own error classes (av.FFmpegError, ...)
        raise ValueError(f"cannot decode audio: {exc}") from exc


def words_text(duration_s: float, words_per_second: float, max_words: int) -> str:
    """Return ``"w1 w2 ..."``: ``ceil(duration_s * words_per_second)`` words, capped."""
    count = min(max_words, math.ceil(duration_s * words_per_second))
    return " ".join(f"w{i}" for i in range(1, count + 1))
