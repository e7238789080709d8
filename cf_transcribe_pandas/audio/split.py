"""Splitting long audio at quiet points into parts under the request limits, while
decoding it (memory stays at about one part), and splitting one part in two when
its transcript looks cut."""

from __future__ import annotations

import io
import math

import numpy as np

from ..errors import AudioError
from .decode import Samples, decode_16k, decode_all
from .encode import Codec, Part, PartEncoder
from .limits import MAX_REQUEST_BYTES, PLAN_HEADROOM, RATE, EncodeMode
from .quiet import quiet_cut
from .sniff import sniff

# The quiet point is searched +-10 % of a part around each target (3 s to 30 s).
_SEARCH_FRACTION = 0.10
_SEARCH_MIN_S = 3.0
_SEARCH_MAX_S = 30.0
_MIN_HALF_SECONDS = 10.0  # split_part never makes a half shorter than this


def _plan(remaining: int, limit: int) -> tuple[int, int, int] | None:
    """(lo, target, hi) for the next cut, or None if the rest fits in one part.

    Parts aim at equal lengths of at most 95 % of the limit; the cut is
    searched within +-10 % of a part's length (at least 3 s, at most 30 s)
    around the target, never past the limit.
    """
    if remaining <= limit:
        return None
    n = math.ceil(remaining / (limit * PLAN_HEADROOM))
    target = remaining // n
    half = int(min(_SEARCH_MAX_S * RATE, max(_SEARCH_FRACTION * target, _SEARCH_MIN_S * RATE)))
    return max(target - half, RATE // 10), target, min(target + half, limit)


class _Buffer:
    """Decoded samples waiting to become parts, in one growing array.

    Holds at most one part plus its search window (about 20 MB for 600 s
    parts): parts are cut off the front as soon as their cut point is known.
    """

    def __init__(self, capacity: int) -> None:
        self.data = np.empty(capacity, dtype=np.int16)
        self.size = 0

    def append(self, chunk: Samples) -> None:
        end = self.size + len(chunk)
        if end > len(self.data):
            grown = np.empty(max(end, 2 * len(self.data)), dtype=np.int16)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = chunk
        self.size = end

    def view(self) -> Samples:
        return self.data[: self.size]

    def drop(self, n: int) -> None:
        rest = self.size - n
        self.data[:rest] = self.data[n : self.size]  # numpy copes with the overlap
        self.size = rest


class _Splitter:
    """Cuts a stream of samples into parts of at most ``limit`` samples."""

    def __init__(self, encoder: PartEncoder, limit: int, total: int) -> None:
        self.encoder = encoder
        self.limit = limit
        self.total = total  # the length the headers promise; 0 when unknown
        self.buf = _Buffer(limit + 2 * RATE)
        self.start = 0  # index of the buffer's first sample in the whole audio
        self.parts: list[Part] = []

    def feed(self, chunk: Samples) -> None:
        self.buf.append(chunk)
        while self._cut(at_end=False):
            pass

    def finish(self) -> list[Part]:
        while self._cut(at_end=True):
            pass
        if self.buf.size:
            self.parts.extend(self.encoder.parts(self.buf.view(), self.start))
        if not self.parts:
            raise AudioError(f"{self.encoder.label}: holds no audio (0 samples)", code="empty_file")
        return self.parts

    def _cut(self, *, at_end: bool) -> bool:
        """Cut one part off the buffer if its cut point can be chosen now."""
        if at_end:
            remaining = self.buf.size
        elif self.total:
            remaining = max(self.total - self.start, self.buf.size)
        else:  # length unknown: aim at full parts
            remaining = max(self.buf.size, 10 * self.limit)
        plan = _plan(remaining, self.limit)
        if plan is None or (not at_end and self.buf.size < plan[2]):
            return False
        cut = quiet_cut(self.buf.view(), *plan)
        self.parts.extend(self.encoder.parts(self.buf.view()[:cut], self.start))
        self.buf.drop(cut)
        self.start += cut
        return True


def encode_parts(
    data: bytes, *, encoder: PartEncoder, total_s: float | None, limit_s: float
) -> list[Part]:
    """Decode, cut at quiet points and encode, streaming part by part.

    Args:
        data: The whole file's bytes.
        encoder: How each part is encoded.
        total_s: The length the headers promise, if known.
        limit_s: The longest part.

    Returns:
        The parts in order.

    Raises:
        AudioError: ``unreadable_audio``, ``no_audio_stream`` or ``empty_file``.
    """
    limit = max(int(limit_s * RATE), RATE)
    splitter = _Splitter(encoder, limit, int(total_s * RATE) if total_s else 0)
    for chunk in decode_16k(io.BytesIO(data), encoder.label, sniff(data)):
        splitter.feed(chunk)
    return splitter.finish()


def split_part(
    part: Part,
    *,
    label: str,
    encode: EncodeMode = "auto",
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> list[Part]:
    """Split one part in two at the quietest point near its middle.

    Used when a part's transcript looks cut (:func:`looks_cut`). The halves
    are 16 kHz mono FLAC (Opus with ``encode="opus"``), with ``start_s``
    relative to the original audio.

    Args:
        part: A part from :func:`prepare` (or :func:`split_part`).
        label: A name for the file in error messages.
        encode: As for :func:`prepare`; only ``"opus"`` changes anything.
        max_request_bytes: The largest request body, as for :func:`prepare`.

    Returns:
        Two parts; or ``[part]`` unchanged when it is shorter than 20 s
        (halves under 10 s cannot hold a cut transcript).

    Raises:
        AudioError: ``unreadable_audio`` when the part cannot be decoded.
    """
    if part.duration_s is not None and part.duration_s < 2 * _MIN_HALF_SECONDS:
        return [part]
    samples = decode_all(part.audio(), label)
    if len(samples) < 2 * _MIN_HALF_SECONDS * RATE:
        return [part]
    mid = len(samples) // 2
    half = max(int(len(samples) * 0.15), RATE)
    cut = quiet_cut(samples, mid - half, mid, mid + half)
    codec: Codec = "opus" if encode == "opus" else "flac"
    encoder = PartEncoder(label, max_request_bytes, codec, encode in ("flac", "opus"))
    base = round(part.start_s * RATE)
    return encoder.parts(samples[:cut], base) + encoder.parts(samples[cut:], base + cut)
