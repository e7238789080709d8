"""The token bucket, the 60 s window and AIMD (with the refusal judge that tells the
rate limit from the model's capacity), on a simulated clock: the engine's RateLimiter
and the TokenBucket under it (which the Dask token service also holds)."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cf_transcribe_pandas.engine.pacing import (
    PACE,
    WINDOW_SECONDS,
    RateLimiter,
    TokenBucket,
    backoff_delay,
)


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


def max_in_window(times: list[float], window: float = WINDOW_SECONDS) -> int:
    times = sorted(times)
    best = 0
    for i, start in enumerate(times):
        j = bisect.bisect_left(times, start + window)
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


def feed(bucket: TokenBucket, t: FakeTime, n: int, refused_every: int, gap: float = 0.1) -> None:
    """``n`` outcomes ``gap`` seconds apart, every ``refused_every``-th one refused (0: none)."""
    for i in range(1, n + 1):
        t.now += gap
        if refused_every and i % refused_every == 0:
            bucket.on_throttle()
        else:
            bucket.on_success()


def test_refusals_at_the_same_share_when_slower_are_capacity_and_the_pace_comes_back() -> None:
    changes: list[tuple[float, float]] = []
    t = FakeTime()
    bucket = TokenBucket(600, clock=t.clock, on_rate_change=lambda a, b: changes.append((a, b)))
    feed(bucket, t, 49, refused_every=5)  # one in five refused from the start: a cut
    assert changes == [(600, 450)]
    assert bucket.judge.probing
    feed(bucket, t, 60, refused_every=5)  # the same share at the lower pace
    assert not bucket.judge.probing
    assert changes == [(600, 450), (450, 600)]  # restored at once, not by slow increase
    assert bucket.judge.capacity_share == pytest.approx(0.2, abs=0.05)
    feed(bucket, t, 200, refused_every=4)  # a little more than that: no new cut
    assert bucket.rate == 600
    t.now += 61  # the capacity verdict is forgotten after a minute: refusals probe again
    feed(bucket, t, 10, refused_every=4)
    assert bucket.rate == 450


def test_refusals_that_stop_when_slower_are_the_rate_limit_and_the_pace_stays_down() -> None:
    t = FakeTime()
    bucket = TokenBucket(600, clock=t.clock)
    feed(bucket, t, 12, refused_every=2)  # half refused: a rate limit would admit ~300/min
    # The cut (at the 12th outcome, 5 of 11 refused before it) goes to where such a
    # limit would refuse nothing: 6/11 of the pace, not the usual 3/4.
    assert bucket.rate == pytest.approx(600 * 6 / 11)
    while bucket.judge.probing:  # and indeed nothing is refused there
        t.now += 0.1
        bucket.on_success()
    assert bucket.judge.capacity_share is None  # the verdict: the rate limit
    assert bucket.rate < 600 * 0.7  # the lower pace stays
    low = bucket.rate
    feed(bucket, t, 2, refused_every=0, gap=0.2)
    assert low < bucket.rate < 600  # quiet: it comes back, doubling each second
    feed(bucket, t, 5, refused_every=0, gap=0.2)
    assert bucket.rate == 600


def test_a_probe_refused_throughout_proves_nothing_and_the_next_refusals_cut_again() -> None:
    t = FakeTime()
    bucket = TokenBucket(600, clock=t.clock)
    feed(bucket, t, 20, refused_every=0)
    bucket.on_throttle()  # a burst begins (or a rate limit's window is full)
    assert bucket.rate == pytest.approx(450)
    feed(bucket, t, 39, refused_every=1)  # everything refused: no verdict, the cut stays
    assert not bucket.judge.probing
    assert bucket.rate == pytest.approx(450)
    bucket.on_throttle()  # the next refusal cuts again, as deep as the share says:
    assert bucket.judge.probing  # 40 of the last 50 refused, so to a fifth
    assert bucket.rate == pytest.approx(450 * 0.2)


def test_refusals_among_the_first_outcomes_cut_nothing_and_one_moment_counts_once() -> None:
    t = FakeTime()
    bucket = TokenBucket(600, clock=t.clock)
    assert not bucket.on_throttle()  # no share to judge by yet: the row retries
    bucket.on_success(9)
    assert bucket.on_throttle()
    assert not bucket.on_throttle()  # same moment: counted once
    assert bucket.rate == pytest.approx(450)


def test_rate_has_a_floor() -> None:
    t = FakeTime()
    bucket = TokenBucket(600, clock=t.clock)
    feed(bucket, t, 10, refused_every=0)
    for _ in range(30):
        feed(bucket, t, 40, refused_every=1, gap=0.5)
    assert bucket.rate == pytest.approx(600 * 0.05)


async def test_lower_rate_spaces_requests_further() -> None:
    lim, t = make(600)
    await lim.acquire()
    for _ in range(10):
        lim.on_success()
    lim.on_throttle(None)
    assert lim.rate == pytest.approx(450)
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


# ---------------------------------------------------------------- the bucket, taken in batches


def drain(bucket: TokenBucket, t: FakeTime, n: int, want: int = 1) -> list[float]:
    """Take ``n`` tokens as fast as the bucket allows; return the grant times."""
    times: list[float] = []
    while len(times) < n:
        granted, wait = bucket.take(want)
        times.extend([t.now] * granted)
        if not granted:
            assert wait > 0
            t.now += wait
    return times[:n]


def test_bucket_paces_from_one_token_without_a_burst() -> None:
    t = FakeTime()
    bucket = TokenBucket(600, margin=1.0, clock=t.clock)
    assert bucket.take(8) == (1, 0.0)  # one token at start
    granted, wait = bucket.take(8)
    assert granted == 0
    # 600 per 61 s (the hard window's pace with a 1 s margin): a hair over 0.1 s apart
    assert wait == pytest.approx(0.1 * 61 / 60)


def test_bucket_starts_each_run_with_one_token() -> None:
    t = FakeTime()
    bucket = TokenBucket(600, clock=t.clock)
    t.now += 30  # idle: the bucket fills up to one second of tokens
    assert bucket.take(20) == (10, 0.0)
    t.now += 30
    bucket.start_run()
    assert bucket.take(8) == (1, 0.0)


@pytest.mark.parametrize("margin", [0.5, 1.0])
def test_batches_never_pass_the_limit_in_any_window(margin: float) -> None:
    t = FakeTime()
    bucket = TokenBucket(300, margin=margin, clock=t.clock)
    times = drain(bucket, t, 900, want=8)
    assert max_in_window(times, WINDOW_SECONDS + margin) <= 300
    assert bucket.recent() == sum(1 for x in times if x >= t.now - 60)
    rate = (len(times) - 1) / (times[-1] - times[0]) * 60
    assert rate >= 0.98 * 300  # the margin costs under 2 %


def test_bucket_configure_changes_the_limit() -> None:
    t = FakeTime()
    bucket = TokenBucket(600, clock=t.clock)
    bucket.on_success(10)
    bucket.on_throttle()
    bucket.configure(600)  # same limit: the lowered rate is kept
    assert bucket.rate == pytest.approx(450)
    bucket.configure(120)
    assert bucket.limit == bucket.rate == 120
    with pytest.raises(ValueError, match="> 0"):
        bucket.configure(0)
