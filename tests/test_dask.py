"""Tests for cf_transcribe_pandas.dask: a real LocalCluster (2 worker processes) and the emulator.

The emulator runs in this process on 127.0.0.1; the workers reach it over
HTTP. Every cluster is closed at the end of its test, and the test checks
that no worker process is left behind.
"""

from __future__ import annotations

import array
import asyncio
import bisect
import inspect
import io
import logging
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

import cf_transcribe_pandas  # noqa: E402  (registers df.cfai)
import cf_transcribe_pandas.dask as cfd  # noqa: E402  (registers ddf.cfai)
from cf_transcribe_pandas.dask import RunSummary, _Bucket  # noqa: E402
from cf_transcribe_pandas.emulator import Emulator  # noqa: E402
from cf_transcribe_pandas.errors import (  # noqa: E402
    AudioError,
    ConfigurationError,
    QuotaExceededError,
)

SAMPLES = Path(cf_transcribe_pandas.__file__).parent / "samples"
CLIPS = sorted(str(p) for p in SAMPLES.iterdir() if p.suffix != ".csv")


# ---------------------------------------------------------------- helpers


def tiny_wav(i: int) -> bytes:
    """0.1 s of 8 kHz mono audio, different bytes for every ``i``."""
    frames = array.array("h", [0] * 800)
    frames[0], frames[1] = i % 32768, i // 32768
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames.tobytes())
    return buf.getvalue()


def bytes_frame(n: int, npartitions: int) -> Any:
    """A dask DataFrame of ``n`` distinct tiny clips (bytes kept as bytes)."""
    pdf = pd.DataFrame({"id": range(n), "audio": [tiny_wav(i) for i in range(n)]})
    # dask turns object columns into strings by default, which would decode the bytes.
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_pandas(pdf, npartitions=npartitions)


def creds(emu: Emulator) -> dict[str, Any]:
    return {"account_id": emu.account_id, "api_token": emu.token, "base_url": emu.base_url}


def max_in_window(times: list[float], window: float = 60.0) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def worker_processes() -> list[Any]:
    """Child processes of this test process that run dask workers or nannies."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        if "resource_tracker" in cmdline or "forkserver" in cmdline:
            continue
        found.append(child)
    return found


def wait_idle(client: Any) -> None:
    """Wait until no task runs on any worker (after an expected failure)."""
    wait_for(lambda: not any(client.processing().values()), timeout=30)


@pytest.fixture
def client() -> Iterator[Any]:
    """A 2-process LocalCluster and its Client, shut down (and checked) after the test."""
    before = {p.pid for p in worker_processes()}
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        cfd._forget_services(c)
        c.close()
        cluster.close()
        assert wait_for(lambda: not {p.pid for p in worker_processes()} - before, timeout=15), (
            "worker processes left behind"
        )


@pytest.fixture
def summary_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cfd, "_last_summary", None)


# ---------------------------------------------------------------- the bucket, on a fake clock


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drain(bucket: _Bucket, clock: FakeClock, n: int, want: int = 1) -> list[float]:
    """Take ``n`` tokens as fast as the bucket allows; return the grant times."""
    times: list[float] = []
    while len(times) < n:
        granted, wait = bucket.take(want)
        times.extend([clock.now] * granted)
        if not granted:
            assert wait > 0
            clock.now += wait
    return times[:n]


def test_bucket_paces_from_one_token_without_a_burst() -> None:
    clock = FakeClock()
    bucket = _Bucket(600, clock=clock)
    assert bucket.take(8) == (1, 0.0)  # one token at start
    granted, wait = bucket.take(8)
    assert granted == 0
    # 600 per 61 s (the hard window's pace): a hair wider than one per 0.1 s
    assert wait == pytest.approx(0.1 * cfd.SERVICE_WINDOW_SECONDS / 60)


def test_bucket_starts_each_run_with_one_token() -> None:
    clock = FakeClock()
    bucket = _Bucket(600, clock=clock)
    clock.now += 30  # idle: the bucket fills up to one second of tokens
    assert bucket.take(8) == (8, 0.0)
    clock.now += 30
    bucket.start_run()
    assert bucket.take(8) == (1, 0.0)


def test_bucket_never_grants_more_than_the_limit_in_any_window() -> None:
    clock = FakeClock()
    bucket = _Bucket(300, clock=clock)
    times = drain(bucket, clock, 900, want=8)
    assert max_in_window(times, cfd.SERVICE_WINDOW_SECONDS) <= 300
    assert max_in_window(times, 60.0) <= 300
    rate = (len(times) - 1) / (times[-1] - times[0]) * 60
    assert rate >= 0.95 * 300  # the margin costs under 2 %


def test_bucket_lowers_the_rate_once_per_cooldown_and_recovers() -> None:
    clock = FakeClock()
    bucket = _Bucket(600, clock=clock)
    assert bucket.on_throttle()
    assert not bucket.on_throttle()  # same moment: counted once
    assert bucket.rate == pytest.approx(450)
    clock.now += 2.5
    assert bucket.on_throttle()
    assert bucket.rate == pytest.approx(337.5)
    bucket.on_success(1000)
    assert bucket.rate == 600
    assert bucket.throttles == 3


def test_bucket_configure_changes_limit() -> None:
    clock = FakeClock()
    bucket = _Bucket(600, clock=clock)
    bucket.on_throttle()
    bucket.configure(600)  # same limit: AIMD state kept
    assert bucket.rate == pytest.approx(450)
    bucket.configure(120)
    assert bucket.limit == bucket.rate == 120
    with pytest.raises(ValueError, match="> 0"):
        bucket.configure(0)


def test_run_summary_text() -> None:
    s = RunSummary(10, 6, 3, 1, 7, 2, 1.5, None)
    assert "10 rows in 2 partitions: 6 transcribed, 3 from the cache, 1 failed" in str(s)
    assert "rerun to retry" in str(s)


# ---------------------------------------------------------------- arguments, before any work


def test_bad_arguments_fail_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    ddf = dd.from_pandas(pd.DataFrame({"audio": CLIPS}), npartitions=2)
    kw = {"account_id": "a", "api_token": "t" * 20, "base_url": "http://127.0.0.1:9/client/v4"}

    def no_cluster(client: Any) -> Any:
        raise AssertionError("a cluster was started for a call that must fail")

    monkeypatch.setattr(cfd, "_ensure_client", no_cluster)
    with pytest.raises(ConfigurationError, match="not in the DataFrame"):
        cfd.transcribe(ddf, "nope", **kw)
    with pytest.raises(ConfigurationError, match="dask DataFrame"):
        cfd.transcribe(pd.DataFrame({"audio": CLIPS}), "audio", **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="column name"):
        cfd.transcribe(ddf, "audio", language=pd.Series(["en"] * len(CLIPS)), **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="language"):
        cfd.transcribe(ddf, "audio", language="english", **kw)
    with pytest.raises(ConfigurationError, match="shared filesystem"):
        cfd.transcribe(ddf, "audio", cache="s3://bucket/cache", **kw)
    with pytest.raises(ConfigurationError, match="errors="):
        ddf.cfai.transcribe("audio", errors="ignore", **kw)
    for name in ("CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match="CLOUDFLARE_ACCOUNT_ID"):
        cfd.transcribe(ddf, "audio")


def test_takes_the_arguments_of_the_pandas_accessor() -> None:
    pandas_params = list(
        inspect.signature(cf_transcribe_pandas.DataFrameAccessor.transcribe).parameters.values()
    )[1:]
    dask_params = list(inspect.signature(cfd.transcribe).parameters.values())[1:]
    assert [p.name for p in dask_params] == [p.name for p in pandas_params] + ["client"]
    for ours, theirs in zip(dask_params, pandas_params, strict=False):
        assert (ours.kind, ours.default) == (theirs.kind, theirs.default), ours.name


def test_cluster_error_says_what_to_do_on_the_cluster() -> None:
    engine_words = QuotaExceededError(
        "Daily limit reached. The run stopped: 3 of 9 rows are done (kept in .partial).",
        code=3036,
        status=429,
    )
    error = cfd._cluster_error(engine_words, cached=True)
    assert type(error) is QuotaExceededError
    assert (error.code, error.status) == (3036, 429)
    assert str(error).startswith("Daily limit reached. The run stopped on every worker")
    assert ".partial" not in str(error)
    assert cfd._cluster_error(error, cached=True).message == error.message  # idempotent
    assert "not kept" in str(cfd._cluster_error(engine_words, cached=False))
    row = AudioError("a.wav: unreadable", code="unreadable_audio")
    row.partial = pd.DataFrame()
    assert cfd._cluster_error(row, cached=True).partial is None


def test_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = cfd._find_spec

    def find_spec(name: str) -> Any:
        return None if name == "distributed" else real(name)

    monkeypatch.setattr(cfd, "_find_spec", find_spec)
    with pytest.raises(ImportError, match=r'pip install "cf-transcribe-pandas\[dask\]"'):
        cfd.transcribe(dd.from_pandas(pd.DataFrame({"audio": CLIPS}), npartitions=1), "audio")


# ---------------------------------------------------------------- on a cluster


def test_same_text_columns_and_dtypes_as_pandas_and_rerun_is_free(
    client: Any, tmp_path: Path, summary_reset: None
) -> None:
    pdf = pd.DataFrame({"audio": (CLIPS * 5)[:40], "n": range(40)}, index=range(100, 140))
    ddf = dd.from_pandas(pdf, npartitions=4)
    with Emulator(port=0) as emu:
        kw = {**creds(emu), "errors": "coerce", "provenance": True}
        out = ddf.cfai.transcribe("audio", cache=tmp_path / "cache", **kw)
        assert out.npartitions == 4
        got = out.compute()
        first = emu.counters()["requests"]
        assert 8 <= first <= 32  # each distinct clip once per partition at most

        expected = ddf.compute().cfai.transcribe("audio", cache=False, progress=False, **kw)
        assert list(got.columns) == list(expected.columns)
        assert got.dtypes.to_dict() == expected.dtypes.to_dict()
        assert out.dtypes.to_dict() == expected.dtypes.to_dict()  # the meta is right
        pd.testing.assert_index_equal(got.index, expected.index)
        pd.testing.assert_series_equal(got["audio_text"], expected["audio_text"])
        assert got["audio_text"].notna().all()
        assert got["audio_text_error"].isna().all()

        emu.reset()
        again = cfd.transcribe(ddf, "audio", cache=tmp_path / "cache", **kw).compute()
        # Both calls share the account's one token service on this Client.
        assert len([v for v in cfd._services.values() if v[0] is client]) == 1
        assert emu.counters()["requests"] == 0
        pd.testing.assert_series_equal(again["audio_text"], got["audio_text"])
        assert again["audio_text_cached"].all()
        assert wait_for(lambda: (s := cfd.last_summary()) is not None and s.from_cache == 40)
        summary = cfd.last_summary()
        assert summary is not None
        assert (summary.rows, summary.transcribed, summary.failed) == (40, 0, 0)
        assert (summary.requests, summary.partitions) == (0, 4)


def test_coerce_fills_error_columns_and_raise_stops_the_compute(
    client: Any, tmp_path: Path, summary_reset: None
) -> None:
    values: list[Any] = [tiny_wav(i) for i in range(12)]
    values[3] = b"this is not audio"
    values[9] = str(tmp_path / "missing.wav")
    pdf = pd.DataFrame({"audio": values})
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(pdf, npartitions=3)
    with Emulator(port=0) as emu:
        out = ddf.cfai.transcribe("audio", errors="coerce", cache=tmp_path / "c", **creds(emu))
        got = out.compute()
        assert got["audio_text"].isna().tolist() == [i in (3, 9) for i in range(12)]
        assert got.loc[3, "audio_text_error_code"] == "unreadable_audio"
        assert got.loc[9, "audio_text_error_code"] == "file_not_found"
        assert str(got["audio_text_error"].dtype) == "string"
        assert wait_for(lambda: (s := cfd.last_summary()) is not None and s.failed == 2)

        raising = ddf.cfai.transcribe("audio", cache=tmp_path / "c", **creds(emu))
        with pytest.raises(AudioError):
            raising.compute()
        wait_idle(client)


def test_quota_stop_on_one_worker_stops_every_partition(client: Any, tmp_path: Path) -> None:
    n, quota, concurrency, workers = 100, 30, 4, 2
    ddf = bytes_frame(n, npartitions=4)
    with Emulator(port=0, quota=quota) as emu:
        out = ddf.cfai.transcribe(
            "audio", cache=tmp_path / "c", concurrency=concurrency, rate_limit=1200, **creds(emu)
        )
        with pytest.raises(QuotaExceededError) as info:
            out.compute()
        assert info.value.code == 3036
        assert info.value.partial is None  # finished rows are in the cache instead
        assert "stopped on every worker" in str(info.value)
        assert "in the cache" in str(info.value)
        wait_idle(client)
        log = emu.requests()
        stops = [e for e in log if e["code"] == 3036]
        assert stops
        first_stop = min(e["t_done"] for e in stops)
        after = [e for e in log if e["t"] > first_stop]
        assert len(after) <= workers * concurrency
        assert len(stops) <= 1 + workers * concurrency
        ok = emu.counters()["ok"]
        assert ok == quota

        # Lift the quota: the same lazy frame runs again (a new run), paying only
        # for the rows the stopped run did not finish.
        emu.reset()
        emu.set_faults(quota=None)
        got = out.compute()
        assert got["audio_text"].notna().all()
        assert emu.counters()["requests"] == n - ok


def test_a_429_on_any_worker_slows_the_shared_rate(client: Any, tmp_path: Path) -> None:
    ddf = bytes_frame(40, npartitions=4)
    with Emulator(port=0, p429=0.25, retry_after=0, seed=7) as emu:
        out = ddf.cfai.transcribe("audio", cache=False, rate_limit=6000, **creds(emu))
        got = out.compute()
        assert got["audio_text"].notna().all()
        assert emu.counters()["status"].get("429", 0) > 0
        ((_, _future, actor),) = [v for v in cfd._services.values() if v[0] is client]
        snap = actor.snapshot().result()
        assert snap["throttles"] >= 1
        assert snap["lowest"] < snap["limit"] == 6000  # lowered for every worker


def test_limiter_stop_reaches_other_workers(client: Any) -> None:
    from cf_transcribe_pandas.client import Credentials

    actor = cfd._service_for(client, Credentials("acct", "t" * 20), 600)

    def stop_here(service: Any) -> str:
        limiter = cfd.ClusterLimiter(service, "run-1")
        limiter.on_stop(QuotaExceededError("daily limit", code=3036, status=429))
        limiter.close()
        return distributed.get_worker().address

    def acquire_there(service: Any, where: str) -> str:
        assert distributed.get_worker().address != where
        limiter = cfd.ClusterLimiter(service, "run-1")
        try:
            asyncio.run(limiter.acquire())
        except cfd._Halted as exc:
            return f"stopped: {exc.error.code}"
        finally:
            limiter.close()
        return "acquired"

    workers = sorted(client.scheduler_info()["workers"])
    where = client.submit(stop_here, actor, workers=[workers[0]], pure=False).result()
    answer = client.submit(acquire_there, actor, where, workers=[workers[1]], pure=False).result()
    assert answer == "stopped: 3036"
    again = client.submit(acquire_there, actor, where, workers=[workers[1]], pure=False)
    assert again.result() == "stopped: 3036"  # stays stopped for the run

    def acquire_other_run(service: Any) -> str:
        limiter = cfd.ClusterLimiter(service, "run-2")
        try:
            asyncio.run(limiter.acquire())
        finally:
            limiter.close()
        return "acquired"

    assert client.submit(acquire_other_run, actor, pure=False).result() == "acquired"


def test_starts_a_local_cluster_for_the_session_when_no_client_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError, match="No clients found"):
        distributed.default_client()
    monkeypatch.setattr(
        cfd,
        "_LOCAL_CLUSTER_KWARGS",
        {"n_workers": 1, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"},
    )
    before = {p.pid for p in worker_processes()}
    ddf = dd.from_pandas(pd.DataFrame({"audio": CLIPS[:2]}), npartitions=1)
    try:
        with Emulator(port=0) as emu, caplog.at_level(logging.WARNING, "cf_transcribe_pandas"):
            out = cfd.transcribe(ddf, "audio", cache=tmp_path / "c", **creds(emu))
            assert "started a LocalCluster" in caplog.text
            assert "http://" in caplog.text  # the dashboard link
            session = cfd._session
            assert session is not None
            out.compute()  # the session client is the default one
            cfd.transcribe(ddf, "audio", cache=tmp_path / "c", **creds(emu)).compute()
            assert cfd._session is session  # kept for the session, not one per call
            assert emu.counters()["requests"] == 2
    finally:
        cfd.close_local_cluster()
    assert cfd._session is None
    assert wait_for(lambda: not {p.pid for p in worker_processes()} - before, timeout=15)
    cfd.close_local_cluster()  # idempotent


@pytest.mark.slow
def test_rate_limit_holds_for_the_sum_over_workers(client: Any, tmp_path: Path) -> None:
    """~90 s: 450 distinct rows at 300/min need more than one 60 s window."""
    n, limit = 450, 300
    ddf = bytes_frame(n, npartitions=4)
    with Emulator(port=0, rpm_limit=limit) as emu:
        out = ddf.cfai.transcribe("audio", cache=tmp_path / "c", rate_limit=limit, **creds(emu))
        got = out.compute()
        assert got["audio_text"].notna().all()
        log = emu.requests()
        assert len(log) >= n
        times = [e["t"] for e in log]
        assert max(times) - min(times) > 60
        assert max_in_window(times) <= limit
        throttled = sum(1 for e in log if e["status"] == 429)
        assert throttled <= 0.01 * len(log)
