"""Tests for cf_transcribe_pandas.dask: a real LocalCluster (2 worker processes) and the emulator.

The emulator runs in this process on 127.0.0.1; the workers reach it over
HTTP. Every cluster is closed at the end of its test, and the test checks
that no worker process is left behind.
"""

from __future__ import annotations

import array
import asyncio
import bisect
import functools
import inspect
import io
import logging
import subprocess
import sys
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
from cf_transcribe_pandas.client import Credentials  # noqa: E402
from cf_transcribe_pandas.dask import RunSummary  # noqa: E402
from cf_transcribe_pandas.dask.limiter import ClusterLimiter, RunStopped  # noqa: E402
from cf_transcribe_pandas.dask.partition import cluster_error  # noqa: E402
from cf_transcribe_pandas.dask.tokens import service_for  # noqa: E402
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


def token_service(client: Any, emu: Emulator, rate_limit: float) -> Any:
    """The emulator account's token service on ``client`` (the one transcribe() uses)."""
    return service_for(client, Credentials(emu.account_id, emu.token, emu.base_url), rate_limit)


def no_client_runs() -> bool:
    try:
        distributed.default_client()
    except ValueError:
        return True
    return False


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
        c.close()
        cluster.close()
        assert wait_for(lambda: not {p.pid for p in worker_processes()} - before, timeout=15), (
            "worker processes left behind"
        )


# ---------------------------------------------------------------- the summary


def test_run_summary_text() -> None:
    s = RunSummary(10, 6, 3, 1, 7, 2, 1.5, None)
    assert "10 rows in 2 partitions: 6 transcribed, 3 from the cache, 1 failed" in str(s)
    assert "rerun to retry" in str(s)


# ---------------------------------------------------------------- arguments, before any work


def test_bad_arguments_fail_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    ddf = dd.from_pandas(pd.DataFrame({"audio": CLIPS}), npartitions=2)
    kw = {"account_id": "a", "api_token": "t" * 20, "base_url": "http://127.0.0.1:9/client/v4"}
    assert no_client_runs()
    with pytest.raises(ConfigurationError, match="not in the DataFrame"):
        cfd.transcribe(ddf, "nope", **kw)
    with pytest.raises(ConfigurationError, match="dask DataFrame"):
        cfd.transcribe(pd.DataFrame({"audio": CLIPS}), "audio", **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="column name"):
        cfd.transcribe(ddf, "audio", language=pd.Series(["en"] * len(CLIPS)), **kw)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="language"):
        cfd.transcribe(ddf, "audio", language="english", **kw)
    with pytest.raises(ConfigurationError, match="every Dask worker mounts"):
        cfd.transcribe(ddf, "audio", cache="s3://bucket/cache", **kw)
    with pytest.raises(ConfigurationError, match="errors="):
        ddf.cfai.transcribe("audio", errors="ignore", **kw)
    with pytest.raises(ConfigurationError, match="did you mean 'rate_limit'"):
        ddf.cfai.transcribe("audio", rate_limt=60, **kw)
    with pytest.raises(ConfigurationError, match="must differ"):
        ddf.cfai.transcribe("audio", "audio", **kw)
    for name in ("CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match="CLOUDFLARE_ACCOUNT_ID"):
        cfd.transcribe(ddf, "audio")
    assert no_client_runs()  # no cluster was started for calls that fail


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
    error = cluster_error(engine_words, cached=True)
    assert type(error) is QuotaExceededError
    assert (error.code, error.status) == (3036, 429)
    assert str(error).startswith("Daily limit reached. The run stopped on every worker")
    assert ".partial" not in str(error)
    assert cluster_error(error, cached=True).message == error.message  # idempotent
    assert "not kept" in str(cluster_error(engine_words, cached=False))
    row = AudioError("a.wav: unreadable", code="unreadable_audio")
    row.partial = pd.DataFrame()
    copied = cluster_error(row, cached=True)
    assert (type(copied), copied.message, copied.partial) == (AudioError, row.message, None)
    assert row.partial is not None  # the engine's error is left as it was


def test_missing_dask_names_the_extra() -> None:
    """Without distributed, importing cf_transcribe_pandas.dask names the extra; the
    package itself still imports."""
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None  # as if it were not installed\n"
        "import cf_transcribe_pandas\n"
        "try:\n"
        "    import cf_transcribe_pandas.dask\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "distributed" in done.stdout
    assert 'pip install "cf-transcribe-pandas[dask]"' in done.stdout


# ---------------------------------------------------------------- on a cluster


def test_same_text_columns_and_dtypes_as_pandas_and_rerun_is_free(
    client: Any, tmp_path: Path
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
        # The run opens with one request, then the pace (720/min: 1 per 85 ms), no burst
        # from the tokens the service's bucket gathered while the graph was built.
        times = sorted(e["t"] for e in emu.requests())
        assert times[1] - times[0] > 0.04

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
        # Both computes went through the account's one token service on this Client.
        assert token_service(client, emu, 720).snapshot().result()["runs"] == 2
        assert emu.counters()["requests"] == 0
        pd.testing.assert_series_equal(again["audio_text"], got["audio_text"])
        assert again["audio_text_cached"].all()
        assert wait_for(lambda: (s := cfd.last_summary()) is not None and s.from_cache == 40)
        summary = cfd.last_summary()
        assert summary is not None
        assert (summary.rows, summary.transcribed, summary.failed) == (40, 0, 0)
        assert (summary.requests, summary.partitions) == (0, 4)


def test_coerce_fills_error_columns_and_raise_stops_the_compute(
    client: Any, tmp_path: Path
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
        snap = token_service(client, emu, 6000).snapshot().result()
        assert snap["throttles"] >= 1
        assert snap["lowest"] < snap["limit"] == 6000  # lowered for every worker


def test_limiter_stop_reaches_other_workers(client: Any) -> None:
    actor = service_for(client, Credentials("acct", "t" * 20), 600)

    def stop_here(service: Any) -> str:
        limiter = ClusterLimiter(service, "run-1")
        first = limiter.stop(QuotaExceededError("daily limit", code=3036, status=429))
        assert first.code == 3036
        limiter.close()
        return distributed.get_worker().address

    def acquire_there(service: Any, where: str) -> str:
        assert distributed.get_worker().address != where
        limiter = ClusterLimiter(service, "run-1")
        try:
            asyncio.run(limiter.acquire())
        except RunStopped as exc:
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
        limiter = ClusterLimiter(service, "run-2")
        try:
            asyncio.run(limiter.acquire())
        finally:
            limiter.close()
        return "acquired"

    assert client.submit(acquire_other_run, actor, pure=False).result() == "acquired"


def test_starts_a_local_cluster_for_the_session_when_no_client_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert no_client_runs()
    small = functools.partial(
        distributed.LocalCluster,
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # the default port may be taken on a shared machine
    )
    monkeypatch.setattr(distributed, "LocalCluster", small)
    before = {p.pid for p in worker_processes()}
    ddf = dd.from_pandas(pd.DataFrame({"audio": CLIPS[:2]}), npartitions=1)
    try:
        with Emulator(port=0) as emu, caplog.at_level(logging.WARNING, "cf_transcribe_pandas"):
            out = cfd.transcribe(ddf, "audio", cache=tmp_path / "c", **creds(emu))
            assert "started a LocalCluster" in caplog.text
            assert "http://" in caplog.text  # the dashboard link
            session = distributed.default_client()  # the session's client is the default one
            out.compute()
            caplog.clear()
            cfd.transcribe(ddf, "audio", cache=tmp_path / "c", **creds(emu)).compute()
            assert distributed.default_client() is session  # kept for the session
            assert "started a LocalCluster" not in caplog.text
            assert emu.counters()["requests"] == 2
    finally:
        cfd.close_local_cluster()
    assert no_client_runs()
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
