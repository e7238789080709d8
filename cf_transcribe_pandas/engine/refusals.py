"""Telling the account's rate limit from the model's capacity, by how refusals answer the pace.

Workers AI refuses a request with 429 code 3040 both when the account sends
too fast and when the model is out of capacity ("No more data centers to
forward the request to"). The answers look alike, but they behave differently
when the client slows down, and that is what :class:`RefusalJudge` looks at:

* A rate limit admits a fixed number of requests whatever we send: slowing
  down by a factor ``d`` lowers the share of refusals from ``s`` to
  ``1 - (1 - s) / d`` (or to none).
* Capacity refusals come at the same share whatever the pace.

So refusals (at most once per ``cooldown``) cut the pace and open a *probe*.
The cut is the usual multiplicative decrease ``decrease``, or deeper when
refusals were frequent: to ``1 - s`` of the pace, where a rate limit would
refuse nothing (so the two explanations predict the most different shares,
and a true limit is met at once). The share of refusals among the outcomes of
the next seconds (after ``settle`` seconds, while the requests sent at the old
pace come back; ``probe_outcomes`` of them, or ``min_outcomes`` once the probe
has lasted ``probe_seconds``) is compared with the share just before the cut:

* It fell at least half-way to what a rate limit predicts: the rate limit.
  The lower pace stays (successes add it back slowly, as AIMD does).
* It stayed where it was: capacity. The pace before the cuts comes back at
  once, and that share of refusals is taken as the model's for
  ``baseline_seconds``: refusals up to ``margin`` (and the noise of a share of
  ``window`` outcomes) above it open no new probe. Unless most requests were
  refused (:data:`MOST_REFUSED`): then the next refusals probe again.
* No verdict, and the cut stays (the pace-safe answer) until the next
  refusals cut again: when nearly every request of the probe was refused
  (:data:`ALL_REFUSED`), or when the share *grew* while the pace fell (a
  capacity burst beginning, or a rate limit's window still full of requests
  sent before the cut); the next probe, from the higher share, tells them apart.

Refusals among a run's first ``min_outcomes`` outcomes cut nothing (there is
no share to judge by yet; the rows retry).

A capacity burst therefore costs one probe (a few seconds at a lower pace), a
steady share of capacity refusals one probe per ``baseline_seconds``, and a
true rate limit is still obeyed: its refusals fall when the pace does.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["ALL_REFUSED", "MOST_REFUSED", "RefusalJudge", "Verdict"]

ALL_REFUSED = 0.95
"""A probe whose requests are refused this often proves nothing: a rate limit's
window still full of earlier requests refuses everything whatever the pace, and so
does a model out of capacity everywhere; the cut stays (it costs nothing while
nothing gets through) and the next refusals cut again."""

MOST_REFUSED = 0.5
"""A capacity verdict at a higher share of refusals restores the pace but is not
remembered: the next refusals probe again. A rate limit's window still full of the
requests sent before a cut refuses most of a probe's requests too (for as long as
the window: a minute), and such a verdict must not keep the full pace for a minute."""

Verdict = Literal["cut", "restore", "keep"]
"""What the pacer should do: cut the pace (a probe opens); restore the pace before the
first of the cuts since the last verdict (capacity); keep the cuts (the rate limit).
None: nothing, or no verdict yet (a probe that proved nothing keeps its cut)."""


@dataclass
class _Probe:
    started: float
    share_before: float
    outcomes_before: int
    factor: float
    refused: int = 0
    total: int = 0


class RefusalJudge:
    """Decides, from the outcomes of requests, when a refusal should move the pace.

    Args:
        decrease: The factor a cut applies to the pace.
        cooldown: Seconds after a cut during which refusals open no probe; also the
            shortest probe after ``settle``.
        clock: Monotonic clock (seconds).
        window: Outcomes the share before a cut is measured over.
        min_outcomes: Outcomes needed for that share to count as known.
        probe_outcomes: Outcomes a probe needs for its verdict.
        probe_seconds: After this long (past ``settle``), ``min_outcomes`` do.
        min_factor: The deepest cut, as a fraction of the pace.
        settle: Seconds at the start of a probe whose outcomes are not counted
            (answers to requests sent at the old pace).
        baseline_seconds: How long a capacity verdict's share is remembered.
        margin: How far above that share (plus three standard errors of the
            window's share) refusals may go without a new probe.
    """

    def __init__(
        self,
        *,
        decrease: float = 0.75,
        cooldown: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        window: int = 50,
        min_outcomes: int = 10,
        probe_outcomes: int = 30,
        probe_seconds: float = 5.0,
        min_factor: float = 0.1,
        settle: float = 1.0,
        baseline_seconds: float = 60.0,
        margin: float = 0.1,
    ) -> None:
        self.decrease = decrease
        self.cooldown = cooldown
        self._clock = clock
        self._recent: collections.deque[bool] = collections.deque(maxlen=window)
        self._min_outcomes = min_outcomes
        self._probe_outcomes = probe_outcomes
        self._probe_seconds = probe_seconds
        self._min_factor = min_factor
        self.factor = decrease
        """The factor of the last cut."""
        self._settle = settle
        self._baseline_seconds = baseline_seconds
        self._margin = margin
        self._probe: _Probe | None = None
        self._baseline: tuple[float, float] | None = None  # (share, until when)
        self._last_cut = -1e18
        self.last_refused = -1e18
        """When the last refusal came (clock seconds)."""

    @property
    def probing(self) -> bool:
        """A probe is open (the pace is cut until its verdict)."""
        return self._probe is not None

    @property
    def capacity_share(self) -> float | None:
        """The share of refusals last judged to be the model's capacity, while remembered."""
        if self._baseline is None or self._clock() >= self._baseline[1]:
            return None
        return self._baseline[0]

    def share(self) -> float | None:
        """The share of refusals among the last outcomes; None while there are too few."""
        if len(self._recent) < self._min_outcomes:
            return None
        return sum(self._recent) / len(self._recent)

    def outcome(self, refused: bool, n: int = 1) -> Verdict | None:
        """Record ``n`` outcomes (refused or not); what the pace should do now, if anything."""
        if n <= 0:
            return None
        now = self._clock()
        if refused:
            self.last_refused = now
        if self._probe is not None:
            self._recent.extend([refused] * min(n, self._recent.maxlen or n))
            return self._probe_outcome(self._probe, refused, n, now)
        share = self.share()  # before this outcome: the share at the pace so far
        self._recent.extend([refused] * min(n, self._recent.maxlen or n))
        if not refused or share is None or now - self._last_cut < self.cooldown:
            return None  # (too few outcomes yet to judge by: the row retries, the pace holds)
        capacity = self.capacity_share
        current = self.share()
        if capacity is not None and current is not None and current <= self._ceiling(capacity):
            return None  # as many refusals as the model's capacity gave: not our pace
        self._baseline = None
        self.factor = max(self._min_factor, min(self.decrease, 1.0 - share))
        self._probe = _Probe(now, share, len(self._recent) - n, self.factor)
        self._last_cut = now
        return "cut"

    def _ceiling(self, capacity: float) -> float:
        """The share of refusals that still looks like ``capacity``: ``margin`` above
        it plus three standard errors of a share over the window."""
        error = math.sqrt(capacity * (1 - capacity) / max(1, len(self._recent)))
        return capacity + self._margin + 3 * error

    def _grew(self, probe: _Probe, after: float) -> bool:
        """The share of refusals rose during the probe by more than ``margin`` plus
        three standard errors of the difference of two shares."""
        n1, n2 = max(1, probe.outcomes_before), max(1, probe.total)
        pooled = (probe.share_before * n1 + after * n2) / (n1 + n2)
        error = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        return after - probe.share_before > self._margin + 3 * error

    def _probe_outcome(self, probe: _Probe, refused: bool, n: int, now: float) -> Verdict | None:
        if now - probe.started < self._settle:
            return None
        probe.total += n
        probe.refused += n if refused else 0
        lasted = now - probe.started - self._settle
        enough = probe.total >= self._probe_outcomes or (
            lasted >= self._probe_seconds and probe.total >= self._min_outcomes
        )
        if not enough or lasted < self.cooldown:
            return None
        self._probe = None
        before, after = probe.share_before, probe.refused / probe.total
        if after >= ALL_REFUSED or self._grew(probe, after):
            return None  # inconclusive: keep the cut, and the next refusals cut again
        if_rate_limit = max(0.0, 1.0 - (1.0 - before) / probe.factor)
        if after > (before + if_rate_limit) / 2:
            share = max(before, after)
            if share <= MOST_REFUSED:
                self._baseline = (share, now + self._baseline_seconds)
            return "restore"
        return "keep"
