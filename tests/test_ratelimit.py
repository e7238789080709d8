"""The token bucket, the 60 s window and AIMD, on a simulated clock."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cf_transcribe_pandas.engine.pacing import PACE, WINDOW_SECONDS, RateLimiter, backoff_delay


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def make(limit: float, **kw: object) -> tuple[RateLimiter, FakeTime]:
    t = FakeTime()
    return RateLimiter(limit, clock=t.clock, sleep=t.sleep, **kw), t  # type: ignore[arg-type]


def max_in_window(times: list[float]) -> int:
    times = sorted(times)
    best = 0
    for i, start in enumerate(times):
        j = bisect.bisect_left(times, start + WINDOW_SECONDS)
        best = max(best, j - i)
    return best


async def test_first_request_goes_at_once_then_paced() -> None:
    lim, t = make(600)
    start = t.now
    await lim.acquire()
    assert t.now == start  # one token at start, no burst of a minute's worth
    await lim.acquire()
    # 600 per 60.5 s (the hard window's pace), a hair wider than one per 0.1 s
    assert t.now - start == pytest.approx(0.1 / PACE)
    assert 0.1 < t.now - start < 0.101


async def test_steady_rate_reaches_the_limit_without_exceeding_any_window() -> None:
    lim, t = make(600)
    times = []
    start = t.now
    for _ in range(1800):
        await lim.acquire()
        times.append(t.now)
    elapsed = t.now - start
    achieved = len(times) / elapsed * 60
    assert achieved >= 0.97 * 600
    assert max_in_window(times) <= 600


async def test_steady_pace_leaves_a_margin_at_the_edge_of_a_shorter_window() -> None:
    # A service that counts 100 per 10 s (the same 600/min) must not see the
    # 101st request while the 1st is still in its window, even with some jitter.
    lim, t = make(600)
    times = []
    for _ in range(600):
        await lim.acquire()
        times.append(t.now)
    spans = [times[i + 100] - times[i] for i in range(len(times) - 100)]
    assert min(spans) >= 10.08


async def test_idle_full_bucket_never_breaks_the_hard_window() -> None:
    lim, t = make(120)
    times = []
    for _ in range(120):
        await lim.acquire()
        times.append(t.now)
    t.now += 5.0  # idle: bucket refills to its ~1 s capacity
    for _ in range(60):
        await lim.acquire()
        times.append(t.now)
    assert max_in_window(times) <= 120


@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=900),
    gaps=st.lists(st.floats(min_value=0, max_value=3), min_size=1, max_size=400),
)
async def test_no_60s_window_ever_exceeds_the_limit(limit: int, gaps: list[float]) -> None:
    lim, t = make(limit)
    times = []
    for gap in gaps:
        t.now += gap
        await lim.acquire()
        times.append(t.now)
    assert max_in_window(times) <= limit


def test_throttle_decreases_once_per_cooldown_and_success_recovers() -> None:
    changes: list[tuple[float, float]] = []
    lim, t = make(600, on_rate_change=lambda a, b: changes.append((a, b)))
    lim.on_throttle(1.0)
    assert lim.rate == pytest.approx(450)
    lim.on_throttle(1.0)  # same moment: one congestion event
    assert lim.rate == pytest.approx(450)
    t.now += 2.5
    lim.on_throttle(None)
    assert lim.rate == pytest.approx(337.5)
    for _ in range(200):
        lim.on_success()
    assert lim.rate == 600
    assert changes[0] == (600, 450)
    assert changes[-1][1] == 600


def test_rate_has_a_floor() -> None:
    lim, t = make(600)
    for _ in range(100):
        t.now += 10
        lim.on_throttle(None)
    assert lim.rate == pytest.approx(600 * 0.05)


async def test_lower_rate_spaces_requests_further() -> None:
    lim, t = make(600)
    await lim.acquire()
    lim.on_throttle(None)
    before = t.now
    await lim.acquire()
    await lim.acquire()
    assert t.now - before > 2 * 0.1


@pytest.mark.parametrize("bad", [0, -1])
def test_limit_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="> 0"):
        RateLimiter(bad)


def test_backoff_full_jitter_bounds() -> None:
    assert backoff_delay(0, rng=lambda: 0.0) == 0.0
    assert backoff_delay(0, rng=lambda: 0.999) == pytest.approx(0.4995)
    assert backoff_delay(3, rng=lambda: 0.5) == pytest.approx(2.0)
    assert backoff_delay(20, rng=lambda: 0.999) == pytest.approx(29.97)
    for attempt in range(10):
        d = backoff_delay(attempt)
        assert 0 <= d <= min(30.0, 0.5 * 2**attempt)
