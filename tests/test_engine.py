"""The engine against the emulator, over real HTTP on 127.0.0.1: dedupe, the cache,
retries, 429 storms, account-level stops, long audio, and cancellation.

Public entry points (``df.cfai.transcribe`` / ``atranscribe``) are used where
the public knobs suffice. Retry-heavy tests call :func:`engine.transcribe_rows`
with a short backoff base (``RunContext.backoff_base``), so that they stay
fast without patching anything. The request log of the emulator (server-side
arrival ``t`` and answer ``t_done``, on the same monotonic clock as this
process) is the witness for "nothing was sent after the stop".
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import itertools
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clips import Sample, emulator_kwargs, wav_bytes, write_clips

from cf_transcribe_pandas import (
    AudioError,
    AuthenticationError,
    ModelNotFoundError,
    QuotaExceededError,
    RateChange,
    RetryDetails,
    RowDone,
)
from cf_transcribe_pandas.audio import to_source
from cf_transcribe_pandas.cache import Cache, CachedRow, cache_key
from cf_transcribe_pandas.client import Credentials
from cf_transcribe_pandas.emulator import Emulator
from cf_transcribe_pandas.engine import RunContext, RunResult, transcribe_rows
from cf_transcribe_pandas.options import TranscribeOptions

MODEL = "openai/gpt-4o-transcribe"
FAST = 60_000  # requests/minute: pacing never limits these tests


Setup = tuple[TranscribeOptions, RunContext]


def _options(emu: Emulator, **kw: Any) -> Setup:
    """The run's options, and its context (credentials, cache, limiter, a short backoff)."""
    context = RunContext(
        Credentials(emu.account_id, emu.token, emu.base_url),
        cache=kw.pop("cache", None),
        limiter=kw.pop("limiter", None),
        backoff_base=0.01,
        backoff_cap=0.05,
    )
    kw.setdefault("progress", False)
    kw.setdefault("rate_limit", FAST)
    return TranscribeOptions(model=MODEL, cache=False, **kw), context


def _run(values: list[Any], setup: Setup) -> RunResult:
    n = len(values)
    options, context = setup
    return asyncio.run(
        transcribe_rows(
            values, languages=[None] * n, prompts=[None] * n, options=options, context=context
        )
    )


def _key(sha: str, language: str | None = None, prompt: str | None = None) -> str:
    return cache_key(sha, model=MODEL, language=language, prompt=prompt, temperature=None)


def _wavs(n: int, start: int = 0) -> list[bytes]:
    return [wav_bytes(start + i) for i in range(n)]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll the emulator (another thread: there is no event to await)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the emulator")
        await asyncio.sleep(0.02)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds (a liveness bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------- dedupe and cache


def test_identical_audio_and_parameters_are_sent_once(
    samples: list[Sample], tmp_path: Path, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    clip = samples[0].path
    copy = tmp_path / "copy of clip.wav"
    copy.write_bytes(clip.read_bytes())
    audio = [str(clip), clip.read_bytes(), str(copy), clip, str(samples[1].path), str(clip)]
    df = pd.DataFrame({"audio": audio, "lang": ["en", "en", "en", "fr", None, "en"]})
    out = df.cfai.transcribe("audio", language="lang", **run_kwargs)
    assert out["audio_text"].tolist() == [samples[0].text] * 4 + [samples[1].text, samples[0].text]
    # Same bytes + same parameters -> one request; "fr" is another request.
    by_sha = emulator.counters()["by_sha256"]
    assert by_sha == {samples[0].sha256: 2, samples[1].sha256: 1}
    assert sorted(str(e["language"]) for e in emulator.requests()) == ["None", "en", "fr"]


def test_request_count_equals_distinct_audio(
    emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    distinct = _wavs(7)
    audio = [distinct[i % 7] for i in range(50)]
    out = pd.DataFrame({"audio": audio}).cfai.transcribe("audio", concurrency=4, **run_kwargs)
    assert emulator.counters()["requests"] == 7
    assert out["audio_text"].tolist() == [f"transcript of {_sha(a)[:12]}" for a in audio]


@pytest.mark.parametrize("size", ["short", "long"])  # prepared ahead in batches / by a worker
def test_bad_audio_in_memory_is_each_rows_error(
    size: str, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    seconds = 0.5 if size == "short" else 10.0  # 16 kB / 320 kB of WAV
    good = [wav_bytes(1, seconds), wav_bytes(2, seconds)]
    bad = b"this is not audio at all; " * (20 if size == "short" else 20_000)
    df = pd.DataFrame({"audio": [good[0], bad, good[1], bad, None, good[0]]})
    out = df.cfai.transcribe("audio", errors="coerce", **run_kwargs)
    codes = out["audio_text_error_code"].fillna("-").tolist()
    assert codes == ["-", "unreadable_audio", "-", "unreadable_audio", "-", "-"]
    assert out["audio_text"].notna().tolist() == [True, False, True, False, False, True]
    assert out.loc[0, "audio_text"] == out.loc[5, "audio_text"]
    assert emulator.counters()["requests"] == 2
    with pytest.raises(AudioError, match="not audio"):
        df.cfai.transcribe("audio", **{**run_kwargs, "cache": False})


def test_rerun_is_served_from_the_cache(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = pd.DataFrame({"audio": [str(s.path) for s in samples]})
    first = df.cfai.transcribe("audio", **run_kwargs)
    assert emulator.counters()["requests"] == len(samples)
    emulator.reset()
    events: list[Any] = []
    again = df.cfai.transcribe("audio", on_event=events.append, **run_kwargs)
    assert emulator.counters()["requests"] == 0
    pd.testing.assert_frame_equal(again, first)
    assert sorted(e.status for e in events if isinstance(e, RowDone)) == ["cached"] * len(samples)
    # The cache holds one row per clip, under the documented key.
    hits = Cache(run_kwargs["cache"]).lookup(_key(s.sha256) for s in samples)
    assert {k: r.text for k, r in hits.items()} == {_key(s.sha256): s.text for s in samples}


def test_failures_are_not_cached_and_a_rerun_resends_only_them(
    emulator: Emulator, kwargs_for: Callable[..., dict[str, Any]], cache_dir: Path
) -> None:
    audio = _wavs(16)
    df = pd.DataFrame({"audio": audio})
    emulator.set_faults(p500=0.5, seed=7)
    first = df.cfai.transcribe(
        "audio", errors="coerce", max_retries=0, **kwargs_for(emulator, cache_dir)
    )
    failed = first["audio_text"].isna()
    assert 0 < failed.sum() < len(audio)
    assert set(first.loc[failed, "audio_text_error_code"]) <= {
        "3000",
        "http_500",
        "http_502",
        "http_503",
    }
    assert first.attrs["cfai_summary"].startswith(f"{failed.sum()} of 16 rows failed: ")
    cache = Cache(cache_dir)
    cached = cache.lookup(_key(_sha(a)) for a in audio)
    assert set(cached) == {_key(_sha(a)) for a, f in zip(audio, failed, strict=True) if not f}

    emulator.reset()
    again = df.cfai.transcribe("audio", errors="coerce", **kwargs_for(emulator, cache_dir))
    assert again["audio_text"].notna().all()
    resent = set(emulator.counters()["by_sha256"])
    assert resent == {_sha(a) for a, f in zip(audio, failed, strict=True) if f}
    assert emulator.counters()["requests"] == failed.sum()


def test_a_rerun_knows_unchanged_files_without_reading_them(
    samples: list[Sample], tmp_path: Path, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    clip = tmp_path / "clip.wav"
    clip.write_bytes(samples[0].path.read_bytes())
    df = pd.DataFrame({"audio": [str(clip)]})
    assert df.cfai.transcribe("audio", **run_kwargs).loc[0, "audio_text"] == samples[0].text
    # Same size and mtime: the path -> sha256 memo answers, the file is not read again
    # (here its bytes changed behind the memo's back, and the cached text still comes).
    stat = clip.stat()
    clip.write_bytes(samples[0].path.read_bytes()[:-2] + b"\x01\x02")
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    emulator.reset()
    assert df.cfai.transcribe("audio", **run_kwargs).loc[0, "audio_text"] == samples[0].text
    assert emulator.counters()["requests"] == 0
    # A new mtime: the file is hashed again, and its new audio is sent.
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    out = df.cfai.transcribe("audio", **run_kwargs)
    assert emulator.counters()["requests"] == 1
    assert out.loc[0, "audio_text"] == f"transcript of {_sha(clip.read_bytes())[:12]}"


def test_cache_false_sends_every_time(
    samples: list[Sample], emulator: Emulator, kwargs_for: Callable[..., dict[str, Any]]
) -> None:
    df = pd.DataFrame({"audio": [str(samples[0].path)]})
    for _ in range(2):
        df.cfai.transcribe("audio", **kwargs_for(emulator, False))
    assert emulator.counters()["requests"] == 2


def test_finished_rows_are_flushed_in_batches_during_the_run(
    emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    emulator.set_faults(latency=0.02)
    df = pd.DataFrame({"audio": _wavs(60)})
    seen: set[int] = set()  # rows on disk, as another reader sees them during the run
    done = threading.Event()

    def watch() -> None:
        reader = Cache(run_kwargs["cache"])
        while not done.is_set():
            seen.add(len(reader))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        df.cfai.transcribe("audio", concurrency=2, **run_kwargs)  # flush every 2 * 2 rows
    finally:
        done.set()
        watcher.join()
    assert any(0 < n < 60 for n in seen), sorted(seen)  # batches, not all at the end
    assert len(Cache(run_kwargs["cache"])) == 60


@pytest.mark.parametrize("cache", [False, True], ids=["no cache", "cache"])
def test_identical_audio_is_sent_once_with_or_without_a_cache(
    emulator: Emulator, tmp_path: Path, cache: bool
) -> None:
    a, b = wav_bytes(11, seconds=0.05), wav_bytes(12, seconds=0.05)
    path = tmp_path / "a.wav"
    path.write_bytes(a)
    uri = "data:audio/wav;base64," + base64.b64encode(a).decode()
    values: list[Any] = [a, b, a, str(path), uri, b, str(path)]
    out = pd.DataFrame({"audio": values}).cfai.transcribe(
        "audio", **emulator_kwargs(emulator, tmp_path / "cache" if cache else False)
    )
    assert sorted(e["sha256"] for e in emulator.requests()) == sorted(
        hashlib.sha256(x).hexdigest() for x in (a, b)
    )
    texts = out["audio_text"].tolist()
    assert texts[0] == texts[2] == texts[3] == texts[4] == texts[6]
    assert texts[1] == texts[5] != texts[0]


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "no cache"])
def test_a_mixed_column_sends_each_distinct_audio_once_and_reruns_from_the_cache(
    emulator: Emulator, tmp_path: Path, cached: bool
) -> None:
    """Files, a repeated path, a text file, a missing file, bytes equal to a file
    and new bytes: each row gets its own outcome, each distinct audio one request."""
    paths, shas = write_clips(tmp_path / "audio", 150, seed=4100)
    (tmp_path / "audio" / "text.wav").write_text("not audio", encoding="utf-8")
    values: list[Any] = [*paths, paths[0], str(tmp_path / "audio" / "text.wav")]
    values.append(str(tmp_path / "nope.wav"))
    first, new = wav_bytes(4100, seconds=0.05), wav_bytes(9999, seconds=0.05)
    values += [first, new]  # bytes equal to the first file, and new bytes
    kwargs = emulator_kwargs(emulator, tmp_path / "cache" if cached else False)
    out = pd.DataFrame({"audio": values}).cfai.transcribe("audio", errors="coerce", **kwargs)
    texts = out["audio_text"]
    assert texts.iloc[: len(paths)].notna().all()
    assert texts.iloc[len(paths)] == texts.iloc[0]  # a repeated path joins the first row
    assert out["audio_text_error_code"].iloc[len(paths) + 1] is not pd.NA
    assert pd.isna(texts.iloc[len(paths) + 1])
    assert pd.isna(texts.iloc[len(paths) + 2])
    assert out["audio_text_error_code"].iloc[len(paths) + 2] == "file_not_found"
    assert texts.iloc[-2] == texts.iloc[0]
    # One request per distinct audio: the repeated path and the equal bytes are not sent,
    # and the bad files fail before anything is sent.
    log = emulator.requests()
    assert {e["status"] for e in log} == {200}
    assert sorted(e["sha256"] for e in log) == sorted({*shas, hashlib.sha256(new).hexdigest()})
    if not cached:
        return
    rerun = pd.DataFrame({"audio": values}).cfai.transcribe("audio", errors="coerce", **kwargs)
    assert rerun["audio_text"].equals(texts)
    assert len(emulator.requests()) == len(log)  # the rerun comes from the cache


def test_copies_of_cached_files_come_from_the_cache(emulator: Emulator, tmp_path: Path) -> None:
    """Audio cached under another path (a copy, not in the memo) is found by its
    hash: those rows come from the cache, the new ones are sent once. The cached rows
    are in two part files (two first runs), read one key at a time in turns: each
    row's text must come from its own file."""
    paths, shas = write_clips(tmp_path / "clips", 200, seed=300)
    cache_dir = tmp_path / "cache"
    text_of: dict[str, str] = {}
    for half in (paths[0::4], paths[2::4]):
        done = pd.DataFrame({"audio": half}).cfai.transcribe(
            "audio", **emulator_kwargs(emulator, cache_dir, rate_limit=100_000)
        )
        text_of.update(zip(half, done["audio_text"], strict=True))
    assert Cache(cache_dir).stats().files == 2  # one file a run
    copies = tmp_path / "copies"
    copies.mkdir()
    values = []
    for i, path in enumerate(paths):  # even rows: copies of cached files; odd: new
        if i % 2 == 0:
            values.append(str(copies / f"copy{i:04d}.wav"))
            Path(values[-1]).write_bytes(Path(path).read_bytes())
        else:
            values.append(path)
    before = len(emulator.requests())
    out = pd.DataFrame({"audio": values}).cfai.transcribe(
        "audio", **emulator_kwargs(emulator, cache_dir, rate_limit=100_000)
    )
    sent = sorted(e["sha256"] for e in emulator.requests(since=before))
    assert sent == sorted(shas[1::2])  # the copies were not sent again
    assert out["audio_text"].iloc[::2].tolist() == [text_of[p] for p in paths[::2]]
    assert out["audio_text"].notna().all()


def test_lookup_results_agrees_with_lookup(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    rows = [
        CachedRow.new(f"{i:064x}", f"text {i}", model=MODEL, duration_s=None if i % 3 else i / 2)
        for i in range(50)
    ]
    with cache.writer(flush_rows=7, flush_seconds=None) as w:
        w.add_many(rows)
    keys = [r.key for r in rows] + ["0" * 64]
    full = Cache(tmp_path / "cache").lookup(keys)
    brief = Cache(tmp_path / "cache").lookup_results(keys)
    assert set(brief) == set(full) == {r.key for r in rows}
    assert brief == {
        k: (r.text, r.duration_s, r.model, r.detected_language, r.segments) for k, r in full.items()
    }


# ---------------------------------------------------------------- local paths and the memo


@pytest.mark.parametrize(
    "value",
    [
        "a/b.wav",
        "/x/y//z.wav",
        "./a.wav",
        "a/./b.wav",
        "a/",
        ".",
        "~/x.wav",
        "/a/b/../c.wav",
        "//x/y.wav",
        "a/.",
        "/.hidden/x.wav",
        "with space/ü.wav",
    ],
)
def test_path_label_is_what_pathlib_would_print(value: str) -> None:
    source = to_source(value)
    expected = str(Path(value).expanduser())
    assert source.kind == "path"
    assert source.label == source.fspath == expected
    assert source.path == Path(expected)


def test_a_cached_rerun_reports_every_row(emulator: Emulator, run_kwargs: dict[str, Any]) -> None:
    audio = _wavs(3)
    df = pd.DataFrame({"audio": [audio[0], None, audio[1], audio[0], audio[2], None]})
    first = df.cfai.transcribe("audio", provenance=True, **run_kwargs)
    assert emulator.counters()["requests"] == 3
    emulator.reset()
    events: list[Any] = []
    again = df.cfai.transcribe("audio", provenance=True, on_event=events.append, **run_kwargs)
    assert emulator.counters()["requests"] == 0
    pd.testing.assert_series_equal(again["audio_text"], first["audio_text"])
    assert again["audio_text_cached"].tolist() == [True, False, True, True, True, False]
    statuses = sorted((e.row, e.status) for e in events if isinstance(e, RowDone))
    assert statuses == [
        (0, "cached"),
        (1, "skipped"),
        (2, "cached"),
        (3, "cached"),
        (4, "cached"),
        (5, "skipped"),
    ]


def test_with_errors_raise_a_row_that_fails_before_sending_stops_the_run_at_once(
    tmp_path: Path, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = pd.DataFrame({"audio": [*_wavs(5), str(tmp_path / "missing.wav"), *_wavs(5, 10)]})
    with pytest.raises(AudioError) as info:
        df.cfai.transcribe("audio", **run_kwargs)
    assert info.value.error_code == "file_not_found"
    assert emulator.counters()["requests"] == 0  # found while planning: nothing was sent
    assert info.value.partial["audio_text"].isna().all()


# ---------------------------------------------------------------- retries


def test_429_storm_with_retry_after_finishes_every_row_once(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.set_faults(p429=0.6, retry_after=0, seed=3)  # "Retry-After: 0"
    audio = _wavs(30)
    events: list[Any] = []
    # 429s are paced, not counted against max_retries: none allowed here, all rows finish.
    options = _options(emulator, concurrency=8, max_retries=0, on_event=events.append)
    with caplog.at_level(logging.INFO, logger="cf_transcribe_pandas"):
        result = _run(audio, options)
    assert result.failed == 0
    assert result.texts == [f"transcript of {_sha(a)[:12]}" for a in audio]
    counters = emulator.counters()
    assert counters["status"]["429"] > 10
    # No row's audio was answered 200 twice: one retry layer, no duplicate sends.
    assert counters["ok_by_sha256"] == {_sha(a): 1 for a in audio}
    retries = [e for e in events if isinstance(e, RetryDetails)]
    assert len(retries) == counters["status"]["429"]
    assert all(e.error.status == 429 and e.delay == 0 for e in retries)
    # 429s slow the run down (a probe: are they the pace's?), and say so in the log.
    assert any(isinstance(e, RateChange) and e.new < e.old for e in events)
    assert any(re.fullmatch(r"send rate 60000 -> \d+ requests/min", m) for m in caplog.messages)


def test_a_row_gives_up_on_429s_after_its_deadline(emulator: Emulator) -> None:
    emulator.set_faults(p429=1.0, retry_after=0)
    result = _run(_wavs(2), _options(emulator, errors="coerce", row_deadline=0.3))
    assert result.texts == [None, None]
    assert [e.kind if e else None for e in result.errors] == ["rate limited"] * 2
    assert [e.error_code if e else None for e in result.errors] == ["3040"] * 2


def test_retry_after_is_honored(emulator: Emulator) -> None:
    emulator.set_faults(p429=0.5, retry_after=1, seed=5)
    audio = _wavs(8)
    result = _run(audio, _options(emulator, concurrency=8))
    assert result.failed == 0
    log = emulator.requests()
    assert any(e["status"] == 429 for e in log)
    for sha in {e["sha256"] for e in log}:
        mine = sorted((e for e in log if e["sha256"] == sha), key=lambda e: e["t"])
        for before, after in itertools.pairwise(mine):
            assert before["status"] == 429
            # Resent no sooner than the service asked (same clock: both in this process).
            assert after["t"] - before["t"] >= before["retry_after"]


def test_the_rate_recovers_after_the_429s_stop(emulator: Emulator) -> None:
    emulator.set_faults(p429=1.0, retry_after=0)
    events: list[Any] = []

    def hook(event: Any) -> None:
        events.append(event)
        if isinstance(event, RateChange):
            emulator.set_faults(p429=0.0)  # the storm is over

    result = _run(_wavs(300), _options(emulator, concurrency=4, rate_limit=30_000, on_event=hook))
    assert result.failed == 0
    changes = [e for e in events if isinstance(e, RateChange)]
    assert changes[0].new < changes[0].old
    assert changes[-1].new == 30_000  # back to the limit after enough successes


def test_capacity_refusals_at_any_pace_do_not_lower_it(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    # Two requests in five refused for capacity, whatever the pace: one probe at a lower
    # pace finds as many refusals there, and the pace is back at the limit at once.
    emulator.set_faults(p429=0.4, retry_after=0, seed=7)
    events: list[Any] = []
    options = _options(emulator, concurrency=8, rate_limit=3000, on_event=events.append)
    with caplog.at_level(logging.INFO, logger="cf_transcribe_pandas"):
        result = _run(_wavs(200), options)
    assert result.failed == 0
    changes = [(e.old, e.new) for e in events if isinstance(e, RateChange)]
    assert changes[0][0] == 3000
    assert changes[0][1] < 3000
    assert changes[1] == (changes[0][1], 3000)  # restored in one step, not by increments
    assert "the refusals are the model's capacity, not our pace" in caplog.messages


def test_refusals_that_thin_out_when_slower_keep_the_pace_down(emulator: Emulator) -> None:
    # The account admits 40 requests per 4 s (600/min), the run was told 3000/min: its
    # refusals depend on its pace, so the pace comes down to the account's and stays.
    emulator.set_faults(rpm_limit=40, rate_window=4.0)
    events: list[Any] = []
    options = _options(emulator, concurrency=32, rate_limit=3000, on_event=events.append)
    result = _run(_wavs(120), options)
    assert result.failed == 0
    rates = [e.new for e in events if isinstance(e, RateChange)]
    assert min(rates) <= 1000  # cut to the account's pace (600/min) or near it
    assert rates[-1] < 3000  # and not back at the pace that drew the refusals
    assert emulator.counters()["ok_by_sha256"] == {_sha(a): 1 for a in _wavs(120)}


def test_5xx_and_connection_resets_are_retried(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.set_faults(p500=0.3, p_reset=0.2, p408=0.1, seed=11)
    audio = _wavs(30)
    events: list[Any] = []
    with caplog.at_level(logging.INFO, logger="cf_transcribe_pandas"):
        # About half the attempts fail: enough retries that no row runs out (0.5**21).
        options = _options(emulator, concurrency=6, max_retries=20, on_event=events.append)
        result = _run(audio, options)
    assert result.failed == 0
    counters = emulator.counters()
    assert counters["resets"] > 0
    assert counters["faults"].get("p500", 0) > 0
    assert counters["ok_by_sha256"] == {_sha(a): 1 for a in audio}
    retries = [e for e in events if isinstance(e, RetryDetails)]
    assert len(retries) == counters["requests"] - len(audio)
    assert {type(e.error).__name__ for e in retries} >= {"ServiceError", "NetworkError"}
    assert "retry 1 in" in caplog.text


@pytest.mark.parametrize(
    ("faults", "kind", "code", "label"),
    [
        ({"p500": 1.0, "p_html": 0.0}, "service error", "3000", "service error (3000)"),
        ({"p_reset": 1.0}, "connection error", "connection_error", "connection error"),
        ({"p408": 1.0}, "timeout", "3007", "timeout (3007)"),
    ],
)
def test_max_retries_exhausted_is_the_rows_error(
    faults: dict[str, Any], kind: str, code: str, label: str, emulator: Emulator
) -> None:
    emulator.set_faults(**faults)
    audio = _wavs(3)
    result = _run(audio, _options(emulator, errors="coerce", max_retries=2))
    assert result.texts == [None] * 3
    assert not result.cache_enabled
    assert all(e is not None and e.kind == kind and e.error_code == code for e in result.errors)
    assert emulator.counters()["by_sha256"] == {_sha(a): 3 for a in audio}  # 1 + 2 retries
    assert result.summary() == (
        f"3 of 3 rows failed: 3 {label}; rerun to retry them "
        "(with cache=False every row is sent again)"
    )


def test_client_errors_are_never_retried(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = pd.DataFrame({"audio": [str(s.path) for s in samples[:3]]})
    with pytest.raises(ModelNotFoundError) as info:  # every row would get it: the run stops
        df.cfai.transcribe("audio", model="openai/no-such-model", errors="coerce", **run_kwargs)
    assert info.value.error_code == "5007"
    assert 1 <= emulator.counters()["requests"] <= 3
    emulator.reset()
    emulator.set_faults(max_file_bytes=20_000)  # 413 3006 for the bigger clips
    out = df.cfai.transcribe("audio", errors="coerce", **run_kwargs)
    assert out["audio_text_error_code"].tolist() == ["3006", "3006", "3006"]
    assert emulator.counters()["requests"] == 3


def test_errors_raise_with_a_service_error(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = pd.DataFrame({"audio": [str(s.path) for s in samples]})
    with pytest.raises(ModelNotFoundError) as info:
        df.cfai.transcribe("audio", model="openai/no-such-model", concurrency=1, **run_kwargs)
    assert info.value.error_code == "5007"
    assert emulator.counters()["requests"] == 1  # nothing sent after the first failed row
    assert info.value.partial["audio_text"].isna().all()


class _Exploding(os.PathLike[str]):
    """A cell whose path conversion raises: no library error class covers it."""

    def __fspath__(self) -> str:
        raise RuntimeError("this path cannot be named")


def test_an_unexpected_exception_costs_one_row_not_the_run(
    samples: list[Sample],
    emulator: Emulator,
    run_kwargs: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    df = pd.DataFrame({"audio": [str(samples[0].path), _Exploding(), str(samples[1].path)]})
    out = df.cfai.transcribe("audio", errors="coerce", **run_kwargs)
    assert out["audio_text"].isna().tolist() == [False, True, False]
    assert out.loc[1, "audio_text_error_code"] == "internal_error"
    assert "RuntimeError: this path cannot be named" in out.loc[1, "audio_text_error"]
    assert "Traceback" in caplog.text  # logged in full, to be reported
    assert emulator.counters()["requests"] == 2


# ---------------------------------------------------------------- account-level stops


def _assert_nothing_sent_after_the_stop(emu: Emulator, code: int, concurrency: int) -> None:
    """No request reached the server after the first ``code`` answer left it.

    The log's clock is the server's: a request we sent just before the stop
    answer reached us could still arrive after the answer left. The tests pace
    requests (rate_limit) so that this cannot happen, which makes any late
    request a real violation.
    """
    log = emu.requests()
    stops = [e for e in log if e["code"] == code]
    assert stops, f"no {code} answer in the log"
    first = min(stops, key=lambda e: e["t_done"])
    late = [e for e in log if e["t"] > first["t_done"]]
    assert late == [], f"{len(late)} request(s) started after the first {code} answer"
    in_flight = [e for e in log if e["t"] <= first["t_done"] and e["t_done"] >= first["t_done"]]
    assert len(in_flight) <= concurrency


@pytest.mark.parametrize("errors", ["raise", "coerce"])
def test_quota_3036_stops_the_run_and_keeps_finished_rows(
    errors: str,
    emulator_factory: Callable[..., Emulator],
    kwargs_for: Callable[..., dict[str, Any]],
    cache_dir: Path,
) -> None:
    emu = emulator_factory(quota=12, latency=0.25)
    audio = _wavs(60)
    df = pd.DataFrame({"audio": audio}, index=pd.Index([f"r{i}" for i in range(60)]))
    with pytest.raises(QuotaExceededError) as info:
        df.cfai.transcribe(
            "audio", errors=errors, concurrency=8, rate_limit=600, **kwargs_for(emu, cache_dir)
        )
    exc = info.value
    assert exc.error_code == "3036"
    assert "daily" in str(exc)
    assert "rerun the same call to continue" in str(exc)
    _assert_nothing_sent_after_the_stop(emu, 3036, concurrency=8)

    ok = set(emu.counters()["ok_by_sha256"])
    assert 0 < len(ok) <= 12
    partial = exc.partial
    assert partial.index.equals(df.index)
    finished = partial["audio_text"].notna()
    assert {_sha(a) for a, f in zip(audio, finished, strict=True) if f} == ok
    # Every finished row is in the cache; a rerun sends only the others.
    assert set(Cache(cache_dir).lookup(_key(s) for s in ok)) == {_key(s) for s in ok}
    if errors == "coerce":
        assert partial["audio_text_error"].isna().all()  # unfinished rows are not row errors


def test_a_wrong_token_stops_the_run_at_the_first_answer(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = pd.DataFrame({"audio": _wavs(30)})
    with pytest.raises(AuthenticationError, match="CLOUDFLARE_API_TOKEN") as info:
        df.cfai.transcribe(
            "audio",
            concurrency=8,
            errors="coerce",
            rate_limit=60,  # one request per second: none is on its way when the 401 comes
            **{**run_kwargs, "api_token": "wrong-token"},
        )
    assert info.value.status == 401
    _assert_nothing_sent_after_the_stop(emulator, 10000, concurrency=8)
    assert emulator.counters()["requests"] == 1
    assert info.value.partial["audio_text"].isna().all()


def test_a_blocked_account_stops_the_run(
    emulator_factory: Callable[..., Emulator],
    kwargs_for: Callable[..., dict[str, Any]],
    cache_dir: Path,
) -> None:
    emu = emulator_factory(blocked=True)
    df = pd.DataFrame({"audio": _wavs(20)})
    with pytest.raises(AuthenticationError, match="blocked") as info:
        df.cfai.transcribe("audio", concurrency=4, rate_limit=60, **kwargs_for(emu, cache_dir))
    assert info.value.error_code == "3023"
    _assert_nothing_sent_after_the_stop(emu, 3023, concurrency=4)


def test_a_stop_while_other_rows_wait_for_a_retry(emulator: Emulator) -> None:
    # Rows sleeping on a 429 must not wake up and send after the stop. Paced at
    # 10 requests/s, so that no request is already on its way when the stop answer
    # leaves the server (the log's clock is the server's, and "after the stop" means
    # after its answer reached us): the quota outlasts a first burst of `concurrency`.
    emulator.set_faults(p429=0.5, retry_after=1, seed=2, quota=12)
    with pytest.raises(QuotaExceededError):
        _run(_wavs(40), _options(emulator, concurrency=8, rate_limit=600))
    assert emulator.counters()["status"]["429"] > 1
    _assert_nothing_sent_after_the_stop(emulator, 3036, concurrency=8)


class _Halted(Exception):
    """What a shared limiter raises once the run was stopped elsewhere (as Dask's does)."""


class _LimiterThatStops:
    """Grants ``grants`` requests, then raises :class:`_Halted`."""

    def __init__(self, grants: int) -> None:
        self.grants = grants

    async def acquire(self) -> None:
        if self.grants == 0:
            raise _Halted("stopped by another partition")
        self.grants -= 1

    def on_success(self) -> None:
        pass

    def on_throttle(self, retry_after: float | None) -> None:
        pass

    @property
    def rate(self) -> float:
        return float(FAST)

    def recent_rpm(self) -> float:
        return 0.0


def test_a_shared_limiter_that_raises_ends_the_run_with_its_exception(
    emulator: Emulator, cache_dir: Path
) -> None:
    audio = _wavs(30)
    options = _options(
        emulator, concurrency=1, limiter=_LimiterThatStops(4), cache=Cache(cache_dir)
    )
    with pytest.raises(_Halted):
        _run(audio, options)
    assert emulator.counters()["requests"] == 4  # nothing sent once the limiter said stop
    done = {_key(_sha(a)) for a in audio[:4]}
    assert set(Cache(cache_dir).lookup(done)) == done  # the finished rows are kept


# ---------------------------------------------------------------- concurrency, URLs, long audio


def test_requests_in_flight_are_bounded_by_concurrency(
    emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    emulator.set_faults(latency=0.1)
    pd.DataFrame({"audio": _wavs(24)}).cfai.transcribe("audio", concurrency=3, **run_kwargs)
    assert 1 <= emulator.counters()["max_in_flight"] <= 3


def test_the_byte_budget_holds_back_audio_beyond_it(emulator: Emulator) -> None:
    emulator.set_faults(latency=0.05)
    audio = _wavs(12)  # 16 kB each, counted 4 times: over a 40 kB budget, one at a time
    result = _run(audio, _options(emulator, concurrency=8, max_bytes_in_flight=40_000))
    assert result.texts == [f"transcript of {_sha(a)[:12]}" for a in audio]
    assert emulator.counters()["max_in_flight"] == 1


def test_plain_http_urls_are_the_rows_error_before_sending(
    emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = pd.DataFrame({"audio": ["http://example.com/a.wav"]})
    out = df.cfai.transcribe("audio", errors="coerce", **run_kwargs)
    assert out.loc[0, "audio_text_error_code"] == "unsupported_input"
    assert "https" in out.loc[0, "audio_text_error"]
    assert emulator.counters()["requests"] == 0


def test_https_urls_are_passed_through_unchanged(
    emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    url = "https://example.com/audio/clip.mp3?sig=abc"
    emulator.register({url: "from a URL"})
    out = pd.DataFrame({"audio": [url, url]}).cfai.transcribe("audio", **run_kwargs)
    assert out["audio_text"].tolist() == ["from a URL"] * 2
    (entry,) = emulator.requests()
    assert entry["file_kind"] == "url"
    assert entry["url"] == url


def test_long_audio_is_split_and_each_part_prompted_with_the_previous_tail(
    emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    emulator.set_faults(words_per_second=2.0)
    long = wav_bytes(1, seconds=25.0, rate=8000)
    out = pd.DataFrame({"audio": [long]}).cfai.transcribe(
        "audio", max_part_seconds=10, prompt="Glossary.", provenance=True, **run_kwargs
    )
    log = sorted(emulator.requests(), key=lambda e: e["t"])
    assert len(log) == 3
    assert log[0]["prompt"] == "Glossary."
    # Later parts: the user's prompt, then the previous part's text (under 30 words here).
    tails = [e["prompt"].removeprefix("Glossary. ") for e in log[1:]]
    assert all(
        t.startswith("w1 ") and t != e["prompt"] for t, e in zip(tails, log[1:], strict=True)
    )
    text = out.loc[0, "audio_text"]
    assert text.startswith(f"{tails[0]} {tails[1]} w1 ")
    assert len(text.split()) == pytest.approx(50, abs=2)  # 25 s at 2 words/s
    assert out.loc[0, "audio_text_duration_s"] == pytest.approx(25.0, abs=0.1)


def test_a_part_cut_at_the_output_cap_is_split_and_sent_again(
    emulator: Emulator, run_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # 40 s at 48 words/s is 1,920 words: over the emulated 1,500-word output cap.
    emulator.set_faults(words_per_second=48.0, max_output_words=1500)
    long = wav_bytes(2, seconds=40.0, rate=8000)
    with caplog.at_level(logging.INFO, logger="cf_transcribe_pandas"):
        out = pd.DataFrame({"audio": [long]}).cfai.transcribe("audio", **run_kwargs)
    assert emulator.counters()["requests"] == 3  # the whole, then its two halves
    assert len(out.loc[0, "audio_text"].split()) == pytest.approx(1920, abs=30)
    assert "looks cut" in caplog.text


# ---------------------------------------------------------------- cancellation


async def test_cancelling_atranscribe_keeps_finished_rows_and_leaves_nothing_behind(
    emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    threads_before = set(threading.enumerate())
    audio = _wavs(40)
    df = pd.DataFrame({"audio": audio})
    events: list[Any] = []
    task = asyncio.ensure_future(
        df.cfai.atranscribe(
            "audio", concurrency=3, rate_limit=600, on_event=events.append, **run_kwargs
        )
    )
    await _until(lambda: emulator.counters()["ok"] >= 5)
    emulator.set_faults(latency=60.0)  # from now on every request hangs
    await _until(lambda: emulator.counters()["in_flight"] == 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The requests in flight were cancelled (the server saw the client go), none came after.
    await _until(lambda: emulator.counters()["in_flight"] == 0)
    counters = emulator.counters()
    assert counters["status"]["499"] == 3
    assert counters["requests"] == counters["ok"] + 3
    # Cancelled requests are not failures: nothing was retried, no row failed.
    assert [e for e in events if not isinstance(e, RowDone)] == []
    assert {e.status for e in events} == {"ok"}
    # Every finished row is in the cache.
    ok = set(counters["ok_by_sha256"])
    assert set(Cache(run_kwargs["cache"]).lookup(_key(s) for s in ok)) == {_key(s) for s in ok}
    # No thread, session or transport left behind.
    assert set(threading.enumerate()) == threads_before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert loop_errors == []


async def test_cancelling_while_the_rows_are_planned_leaves_no_thread_behind(
    run_kwargs: dict[str, Any],
) -> None:
    threads_before = set(threading.enumerate())
    # Enough rows that the plan (hashing, keys, the cache lookup) is still going on.
    df = pd.DataFrame({"audio": [f"clip {i}".encode() for i in range(200_000)]})
    task = asyncio.ensure_future(df.cfai.atranscribe("audio", **run_kwargs))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert set(threading.enumerate()) == threads_before


_CHILD = textwrap.dedent(
    """
    import sys
    import pandas as pd
    import cf_transcribe_pandas

    cache, *paths = sys.argv[1:]
    df = pd.DataFrame({"audio": paths})
    df.cfai.transcribe("audio", cache=cache, concurrency=4, rate_limit=600, progress=False)
    print("finished without an interrupt")
    """
)


def test_ctrl_c_stops_a_sync_run_promptly_and_keeps_finished_rows(
    emulator: Emulator, tmp_path: Path, cache_dir: Path
) -> None:
    paths = []
    for i in range(60):
        path = tmp_path / f"clip{i:02d}.wav"
        path.write_bytes(wav_bytes(100 + i))
        paths.append(str(path))
    env = {
        **os.environ,
        "CLOUDFLARE_ACCOUNT_ID": emulator.account_id,
        "CLOUDFLARE_API_TOKEN": emulator.token,
        "CLOUDFLARE_BASE_URL": emulator.base_url,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(cache_dir), *paths],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: emulator.counters()["ok"] >= 6, "some rows to finish")
        emulator.set_faults(latency=60.0)  # from now on every request hangs
        _wait_for(lambda: emulator.counters()["in_flight"] == 4, "4 requests in flight")
        ok = set(emulator.counters()["ok_by_sha256"])
        keys = {_key(s) for s in ok}
        # While the run is stuck, the finished rows reach the disk within the 2 s flush.
        _wait_for(lambda: set(Cache(cache_dir).lookup(keys)) == keys, "the timed flush")
        sent = emulator.counters()["requests"] + emulator.counters()["in_flight"]

        child.send_signal(signal.SIGINT)
        # "Promptly": well before the hanging requests could answer (60 s).
        _, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode in (-signal.SIGINT, 130), stderr
    assert "KeyboardInterrupt" in stderr
    assert "Unclosed" not in stderr
    _wait_for(lambda: emulator.counters()["in_flight"] == 0, "the server to see the client go")
    counters = emulator.counters()
    assert counters["requests"] == sent  # nothing was sent after Ctrl-C
    assert counters["status"]["499"] == 4
    assert set(counters["ok_by_sha256"]) == ok
    assert set(Cache(cache_dir).lookup(keys)) == keys
