"""Finding the quietest point in a stretch of samples, where long audio is cut."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .limits import RATE

_HOP = RATE // 100  # 10 ms
_WINDOW_HOPS = 10  # 100 ms RMS windows


def quiet_cut(x: npt.NDArray[np.int16], lo: int, target: int, hi: int) -> int:
    """The sample index in ``[lo, hi)`` at the middle of the quietest stretch.

    RMS is measured over 100 ms windows every 10 ms. Windows within a hair of
    the quietest are "quiet"; the cut goes in the middle of the longest run of
    quiet windows (ties: the run nearest ``target``).

    Args:
        x: 16 kHz mono samples.
        lo: The first sample the cut may fall on.
        target: Where the cut would ideally fall.
        hi: The end of the search window.

    Returns:
        The cut's sample index (``target``, kept inside ``x``, when the
        window is too short to measure).
    """
    lo = max(0, lo)
    hi = min(len(x), hi)
    hops = (hi - lo) // _HOP
    if hops < _WINDOW_HOPS + 1:
        return min(max(target, 1), len(x) - 1) if len(x) > 1 else target
    seg = x[lo : lo + hops * _HOP].astype(np.float32).reshape(hops, _HOP)
    hop_energy = np.einsum("ij,ij->i", seg, seg, dtype=np.float64)
    window_energy = np.convolve(hop_energy, np.ones(_WINDOW_HOPS), mode="valid")
    rms = np.sqrt(np.maximum(window_energy, 0.0) / (_WINDOW_HOPS * _HOP)) / 32768.0
    floor = float(rms.min())
    quiet = rms <= floor + max(0.1 * floor, 3e-4)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.astype(np.int8), [0]))))
    runs = edges.reshape(-1, 2)  # [start, end) in window indices
    centres = lo + ((runs[:, 0] + runs[:, 1] - 1 + _WINDOW_HOPS) * _HOP) // 2
    lengths = runs[:, 1] - runs[:, 0]
    best = max(range(len(runs)), key=lambda i: (int(lengths[i]), -abs(int(centres[i]) - target)))
    return int(centres[best])
