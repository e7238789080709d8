"""``df.cfai`` and ``series.cfai`` against the emulator, over real HTTP on 127.0.0.1.

What the user sees: a new frame with the same index and row order and a
``string`` text column, per-row parameters reaching the requests, arguments
checked before any work, the Series accessor, the async variants, the sync
call inside a running event loop, provenance, progress and the error columns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clips import Sample, emulator_kwargs, wav_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cf_transcribe_pandas import (
    AudioError,
    ConfigurationError,
    RowDone,
    TranscribeError,
)
from cf_transcribe_pandas.cache import Cache
from cf_transcribe_pandas.emulator import Emulator

MODEL = "openai/gpt-4o-transcribe"


def _frame(samples: list[Sample]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "audio": [str(s.path) for s in samples],
            "lang": [s.language for s in samples],
            "n": np.arange(len(samples)),
        }
    )


def _log_by_sha(emu: Emulator) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in emu.requests():
        out.setdefault(entry["sha256"], []).append(entry)
    return out


# ---------------------------------------------------------------- the returned frame


def test_transcribes_every_row_into_a_new_frame(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = _frame(samples)
    df.attrs["source"] = "unit test"
    before = df.copy(deep=True)

    out = df.cfai.transcribe("audio", **run_kwargs)

    assert out is not df
    pd.testing.assert_frame_equal(df, before)  # the input is untouched
    assert df.attrs == {"source": "unit test"}
    assert list(df.columns) == ["audio", "lang", "n"]
    assert list(out.columns) == ["audio", "lang", "n", "audio_text"]
    assert out["audio_text"].dtype == pd.StringDtype()
    assert out.index.equals(df.index)
    pd.testing.assert_frame_equal(out[["audio", "lang", "n"]], before)
    assert out["audio_text"].tolist() == [s.text for s in samples]
    assert emulator.counters()["ok"] == len(samples)
    assert "cfai_summary" not in out.attrs


def test_output_names_the_text_column(samples: list[Sample], run_kwargs: dict[str, Any]) -> None:
    df = _frame(samples[:2])
    out = df.cfai.transcribe("audio", "transcript", **run_kwargs)
    assert list(out.columns) == ["audio", "lang", "n", "transcript"]
    assert out["transcript"].tolist() == [s.text for s in samples[:2]]


def test_non_string_column_label(samples: list[Sample], run_kwargs: dict[str, Any]) -> None:
    df = pd.DataFrame({0: [str(samples[0].path)]})
    out = df.cfai.transcribe(0, **run_kwargs)
    assert out["0_text"].tolist() == [samples[0].text]


def test_empty_frame_sends_nothing(emulator: Emulator, run_kwargs: dict[str, Any]) -> None:
    df = pd.DataFrame({"audio": pd.Series([], dtype=object)}, index=pd.Index([], name="id"))
    out = df.cfai.transcribe("audio", **run_kwargs)
    assert len(out) == 0
    assert out["audio_text"].dtype == pd.StringDtype()
    assert out.index.name == "id"
    assert emulator.counters()["requests"] == 0


def test_na_rows_give_na_text_without_a_request(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = pd.DataFrame({"audio": [str(samples[0].path), None, np.nan, pd.NA]})
    out = df.cfai.transcribe("audio", errors="coerce", **run_kwargs)
    assert out["audio_text"].tolist()[0] == samples[0].text
    assert out["audio_text"].isna().tolist() == [False, True, True, True]
    assert out["audio_text_error"].isna().all()  # NA audio is not an error
    assert emulator.counters()["requests"] == 1


_labels = st.one_of(
    st.integers(-3, 3),
    st.sampled_from(["a", "b", "é", ""]),
)


@st.composite
def _indexes(draw: st.DrawFn, n: int) -> pd.Index:
    kind = draw(st.sampled_from(["range", "labels", "multi", "dates"]))
    if kind == "range":
        start = draw(st.integers(-5, 5))
        step = draw(st.sampled_from([1, 2, -1]))
        return pd.RangeIndex(start, start + n * step, step)
    if kind == "labels":
        return pd.Index(draw(st.lists(_labels, min_size=n, max_size=n)), dtype=object)
    if kind == "dates":
        days = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
        return pd.DatetimeIndex(pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D"))
    outer = draw(st.lists(st.sampled_from(["x", "y"]), min_size=n, max_size=n))
    inner = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    return pd.MultiIndex.from_arrays([outer, inner], names=["outer", "inner"])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_index_and_row_order_are_kept(
    data: st.DataObject,
    samples: list[Sample],
    emulator: Emulator,
    kwargs_for: Callable[..., dict[str, Any]],
) -> None:
    choices = data.draw(
        st.lists(st.one_of(st.none(), st.sampled_from(range(len(samples)))), max_size=12)
    )
    index = data.draw(_indexes(len(choices)))
    df = pd.DataFrame(
        {"audio": [str(samples[c].path) if c is not None else None for c in choices]},
        index=index,
    )
    before = df.copy(deep=True)
    emulator.reset()

    out = df.cfai.transcribe("audio", **kwargs_for(emulator, False))

    pd.testing.assert_frame_equal(df, before)
    assert out.index.equals(df.index)
    assert out.index.names == df.index.names
    expected = [samples[c].text if c is not None else None for c in choices]
    assert [None if pd.isna(t) else t for t in out["audio_text"]] == expected
    # Duplicate audio is sent once.
    assert emulator.counters()["requests"] == len({c for c in choices if c is not None})


# ---------------------------------------------------------------- per-row parameters


def test_language_from_a_column_reaches_each_request(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = _frame(samples)
    df.loc[0, "lang"] = None  # NA: the field is left out, the model detects it
    df.loc[1, "lang"] = " EN "  # forgiven: trimmed and lowered
    df.cfai.transcribe("audio", language="lang", **run_kwargs)
    sent = {sha: entries[0] for sha, entries in _log_by_sha(emulator).items()}
    assert "language" not in sent[samples[0].sha256]["body"]["input"]
    assert sent[samples[1].sha256]["language"] == "en"
    for s in samples[2:]:
        assert sent[s.sha256]["language"] == s.language
        assert sent[s.sha256]["body"]["input"]["language"] == s.language


def test_language_and_prompt_from_series_aligned_on_the_index(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = _frame(samples[:4])
    df.index = pd.Index(["d", "a", "c", "b"])
    # Same labels in another order: aligned on the index, not by position.
    language = pd.Series({"a": "fr", "b": "de", "c": "es", "d": "en"})
    prompt = pd.Series({"a": "P-a", "b": None, "c": "P-c", "d": "P-d"})
    df.cfai.transcribe("audio", language=language, prompt=prompt, **run_kwargs)
    sent = {sha: entries[0] for sha, entries in _log_by_sha(emulator).items()}
    for label, s in zip(df.index, samples[:4], strict=True):
        assert sent[s.sha256]["language"] == language[label]
        if pd.isna(prompt[label]):
            assert "prompt" not in sent[s.sha256]["body"]["input"]
        else:
            assert sent[s.sha256]["prompt"] == prompt[label]


def test_scalar_parameters_reach_every_request(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = _frame(samples[:3])
    df.cfai.transcribe(
        "audio", language="en", prompt="Names: Kubernetes.", temperature=0.2, **run_kwargs
    )
    for entry in emulator.requests():
        assert entry["language"] == "en"
        assert entry["prompt"] == "Names: Kubernetes."
        assert entry["temperature"] == 0.2
        assert entry["model"] == MODEL


def test_optional_fields_are_left_out_not_null(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    _frame(samples[:2]).cfai.transcribe("audio", **run_kwargs)
    for entry in emulator.requests():
        assert set(entry["body"]["input"]) == {"file"}
        assert entry["body"]["model"] == MODEL


def test_a_prompt_column_with_a_duplicate_index(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    clip = str(samples[0].path)
    df = pd.DataFrame({"audio": [clip, clip, clip], "p": ["one", "two", "one"]}, index=[7, 7, 7])
    out = df.cfai.transcribe("audio", prompt="p", **run_kwargs)
    assert out.index.tolist() == [7, 7, 7]
    # Same audio, two different prompts: two requests; the repeated pair is sent once.
    assert sorted(e["prompt"] for e in emulator.requests()) == ["one", "two"]


# ---------------------------------------------------------------- checked before any work


_BAD_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"column": "nope"}, "column 'nope' is not in the DataFrame"),
    ({"errors": "ignore"}, "errors= must be 'raise' or 'coerce'"),
    ({"rate_limit": 0}, "rate_limit= must be a number of requests per minute > 0"),
    ({"rate_limit": -5}, "rate_limit="),
    ({"rate_limit": float("nan")}, "rate_limit="),
    ({"rate_limit": float("inf")}, "rate_limit="),
    ({"rate_limit": "fast"}, "rate_limit="),
    ({"concurrency": 0}, "concurrency= must be an integer >= 1"),
    ({"concurrency": 2.5}, "concurrency="),
    ({"concurrency": True}, "concurrency="),
    ({"max_retries": -1}, "max_retries= must be an integer >= 0"),
    ({"timeout": 0}, "timeout= must be a number of seconds > 0"),
    ({"language": "english"}, "language= language 'english' is not an ISO-639-1 code"),
    ({"language": "en-US"}, "'en' (leave out the region)"),
    ({"language": 3}, "language= must be a string, a column name or a Series"),
    ({"prompt": 3}, "prompt= must be a string, a column name or a Series"),
    ({"temperature": 2}, "temperature must be a number from 0 to 1"),
    ({"model": ""}, "model must be a Workers AI model name"),
    ({"encode": "mp3"}, "encode= must be one of"),
    ({"max_part_seconds": 5}, "max_part_seconds= must be between 10 and 1500"),
    ({"output": "audio"}, "output= must differ from the audio column 'audio'"),
    ({"output": ""}, "output= must be a non-empty column name"),
    ({"on_event": "print"}, "on_event= must be a function"),
    ({"cache": 3}, "cache= must be True, False, a directory path or a Cache"),
    ({"base_url": "ftp://example.com"}, "base_url"),
]


@pytest.mark.parametrize(("override", "message"), _BAD_ARGUMENTS)
def test_bad_arguments_fail_before_any_request(
    override: dict[str, Any],
    message: str,
    samples: list[Sample],
    emulator: Emulator,
    run_kwargs: dict[str, Any],
) -> None:
    df = _frame(samples[:2])
    kwargs = {**run_kwargs, **override}
    column = kwargs.pop("column", "audio")
    with pytest.raises(ConfigurationError) as info:
        df.cfai.transcribe(column, **kwargs)
    assert message in str(info.value)
    assert emulator.counters()["requests"] == 0


def test_numbers_from_numpy_are_numbers(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    out = _frame(samples[:2]).cfai.transcribe(
        "audio",
        concurrency=np.int64(2),
        rate_limit=np.float64(6000),
        max_retries=np.int64(1),
        timeout=np.int64(60),
        temperature=np.float64(0.5),
        language=np.str_("en"),
        **run_kwargs,
    )
    assert out["audio_text"].notna().all()
    assert {(e["temperature"], e["language"]) for e in emulator.requests()} == {(0.5, "en")}


def test_a_bad_per_row_language_names_its_row(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = _frame(samples[:3])
    df.index = pd.Index(["r1", "r2", "r3"])
    df.loc["r2", "lang"] = "Deutsch"
    with pytest.raises(ConfigurationError, match=r"'Deutsch'.*index label 'r2'"):
        df.cfai.transcribe("audio", language="lang", **run_kwargs)
    assert emulator.counters()["requests"] == 0


def test_a_series_parameter_must_cover_the_index(
    samples: list[Sample], run_kwargs: dict[str, Any]
) -> None:
    df = _frame(samples[:3])
    with pytest.raises(ConfigurationError, match="no value for 1 index label"):
        df.cfai.transcribe("audio", language=pd.Series(["en", "en"], index=[0, 1]), **run_kwargs)
    df.index = [0, 0, 1]
    with pytest.raises(ConfigurationError, match="exactly the DataFrame's index"):
        df.cfai.transcribe("audio", prompt=pd.Series(["a", "b", "c"]), **run_kwargs)


def test_a_cache_path_that_is_a_file(
    samples: list[Sample], tmp_path: Path, run_kwargs: dict[str, Any]
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(ConfigurationError, match="is a file, not a directory"):
        _frame(samples[:1]).cfai.transcribe("audio", **{**run_kwargs, "cache": not_a_dir})


def test_missing_credentials_say_which_variable(
    samples: list[Sample], monkeypatch: pytest.MonkeyPatch, run_kwargs: dict[str, Any]
) -> None:
    for name in ("CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    kwargs = {**run_kwargs, "api_token": None}
    with pytest.raises(ConfigurationError, match="CLOUDFLARE_API_TOKEN"):
        _frame(samples[:1]).cfai.transcribe("audio", **kwargs)


def test_credentials_from_the_environment(
    samples: list[Sample],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    cache_dir: Path,
) -> None:
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", emulator.account_id)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", emulator.token)
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", emulator.base_url)
    out = _frame(samples[:1]).cfai.transcribe("audio", cache=cache_dir, progress=False)
    assert out["audio_text"].tolist() == [samples[0].text]


# ---------------------------------------------------------------- errors="coerce" / "raise"


def _broken_files(tmp_path: Path) -> tuple[Path, Path]:
    text = tmp_path / "notes.wav"
    text.write_text("this is a text file, not audio\n" * 20)
    missing = tmp_path / "missing.wav"
    return text, missing


def test_coerce_fills_error_columns_and_a_summary(
    samples: list[Sample],
    tmp_path: Path,
    emulator: Emulator,
    run_kwargs: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    text, missing = _broken_files(tmp_path)
    audio = [str(samples[0].path), str(text), str(samples[1].path), str(missing)]
    df = pd.DataFrame({"audio": audio})

    with caplog.at_level(logging.WARNING, logger="cf_transcribe_pandas"):
        out = df.cfai.transcribe("audio", errors="coerce", **run_kwargs)

    assert list(out.columns) == ["audio", "audio_text", "audio_text_error", "audio_text_error_code"]
    assert out["audio_text_error"].dtype == pd.StringDtype()
    assert out["audio_text_error_code"].dtype == pd.StringDtype()
    assert out["audio_text"].isna().tolist() == [False, True, False, True]
    assert out["audio_text_error"].isna().tolist() == [True, False, True, False]
    assert out.loc[1, "audio_text_error_code"] == "unreadable_audio"
    assert "notes.wav" in out.loc[1, "audio_text_error"]
    assert out.loc[3, "audio_text_error_code"] == "file_not_found"
    summary = (
        "2 of 4 rows failed: 1 unreadable audio, 1 file not found; rerun to retry them, "
        "finished rows come from the cache"
    )
    assert out.attrs["cfai_summary"] == summary
    assert summary in caplog.messages
    assert emulator.counters()["requests"] == 2  # bad audio is found before sending


def test_raise_stops_at_the_first_failed_row_after_caching_the_finished_ones(
    samples: list[Sample], tmp_path: Path, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    text, _ = _broken_files(tmp_path)
    df = pd.DataFrame({"audio": [str(s.path) for s in samples] + [str(text)]})
    with pytest.raises(AudioError, match=r"notes\.wav") as info:
        df.cfai.transcribe("audio", concurrency=2, **run_kwargs)
    partial = info.value.partial
    assert isinstance(partial, pd.DataFrame)
    assert partial.index.equals(df.index)
    assert partial["audio_text"].dtype == pd.StringDtype()
    done = partial["audio_text"].dropna()
    assert set(done) <= {s.text for s in samples}
    # Every answer received was cached, and every cached row is in .partial.
    cache = Cache(run_kwargs["cache"])
    assert len(cache) == emulator.counters()["ok"] == len(done)


def test_the_token_never_leaks(
    samples: list[Sample],
    emulator_factory: Callable[..., Emulator],
    kwargs_for: Callable[..., dict[str, Any]],
    cache_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = "sEcReT-t0ken-4242"
    emu = emulator_factory(token=token, quota=1)
    df = _frame(samples[:4])
    with caplog.at_level(logging.DEBUG), pytest.raises(TranscribeError) as info:
        df.cfai.transcribe("audio", errors="coerce", concurrency=1, **kwargs_for(emu, cache_dir))
    exc = info.value
    texts = [str(exc), repr(exc), caplog.text, exc.partial.to_csv()]
    texts += [p.read_bytes().decode("latin-1") for p in cache_dir.rglob("*") if p.is_file()]
    assert all(token not in t for t in texts)
    assert emu.counters()["ok"] == 1


# ---------------------------------------------------------------- provenance, progress, hooks


def test_provenance_columns(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = _frame(samples[:3])
    first = df.cfai.transcribe("audio", provenance=True, **run_kwargs)
    assert first["audio_text_cached"].tolist() == [False] * 3
    assert first["audio_text_model"].tolist() == [MODEL] * 3
    assert first["audio_text_duration_s"].dtype == pd.Float64Dtype()
    assert first["audio_text_duration_s"].tolist() == pytest.approx([3.691, 3.974, 4.153], abs=0.05)
    again = df.cfai.transcribe("audio", provenance=True, **run_kwargs)
    assert again["audio_text_cached"].tolist() == [True] * 3
    assert again["audio_text"].tolist() == first["audio_text"].tolist()
    assert again["audio_text_duration_s"].tolist() == first["audio_text_duration_s"].tolist()


def test_progress_bar_shows_rows_cache_failures_and_rate(
    samples: list[Sample], run_kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    df = _frame(samples[:3])
    df.cfai.transcribe("audio", **{**run_kwargs, "progress": True})
    err = capsys.readouterr().err
    assert "transcribe" in err
    assert "3/3" in err
    assert "cached=0" in err
    assert "failed=0" in err
    assert "rpm=" in err
    df.cfai.transcribe("audio", **run_kwargs)  # progress=False: silent
    assert capsys.readouterr().err == ""


def test_row_done_events(samples: list[Sample], tmp_path: Path, run_kwargs: dict[str, Any]) -> None:
    text, _ = _broken_files(tmp_path)
    df = pd.DataFrame({"audio": [str(samples[0].path), None, str(text)]})
    df.cfai.transcribe("audio", errors="coerce", **run_kwargs)  # caches row 0
    events: list[Any] = []
    df.cfai.transcribe("audio", errors="coerce", on_event=events.append, **run_kwargs)
    done = sorted((e.row, e.status) for e in events if isinstance(e, RowDone))
    assert done == [(0, "cached"), (1, "skipped"), (2, "failed")]
    failed = next(e for e in events if isinstance(e, RowDone) and e.status == "failed")
    assert isinstance(failed.error, AudioError)


def test_a_broken_hook_does_not_break_the_run(
    samples: list[Sample], run_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    def hook(event: object) -> None:
        raise RuntimeError("boom")

    out = _frame(samples[:2]).cfai.transcribe("audio", on_event=hook, **run_kwargs)
    assert out["audio_text"].notna().all()
    assert "on_event hook raised" in caplog.text


# ---------------------------------------------------------------- Series, async, running loop


def test_series_accessor(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    s = pd.Series([str(x.path) for x in samples[:3]], index=[10, 5, 10], name="clip")
    before = s.copy(deep=True)
    out = s.cfai.transcribe(language="en", **run_kwargs)
    pd.testing.assert_series_equal(s, before)
    assert isinstance(out, pd.Series)
    assert out.name == "clip_text"
    assert out.dtype == pd.StringDtype()
    assert out.index.equals(s.index)
    assert out.tolist() == [x.text for x in samples[:3]]
    assert {e["language"] for e in emulator.requests()} == {"en"}
    assert s.cfai.transcribe("words", **run_kwargs).name == "words"
    assert pd.Series([str(samples[0].path)]).cfai.transcribe(**run_kwargs).name == "text"


def test_series_accessor_coerce_and_partial(
    samples: list[Sample], tmp_path: Path, run_kwargs: dict[str, Any]
) -> None:
    text, _ = _broken_files(tmp_path)
    s = pd.Series([str(samples[0].path), str(text)], name="audio")
    out = s.cfai.transcribe(errors="coerce", **run_kwargs)
    assert out.isna().tolist() == [False, True]
    assert out.attrs["cfai_summary"].startswith("1 of 2 rows failed: 1 unreadable audio")
    with pytest.raises(AudioError) as info:
        s.cfai.transcribe(**run_kwargs)
    assert isinstance(info.value.partial, pd.Series)
    assert info.value.partial.name == "audio_text"
    assert info.value.partial.index.equals(s.index)


async def test_atranscribe(
    samples: list[Sample], emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    df = _frame(samples)
    out = await df.cfai.atranscribe("audio", language="lang", **run_kwargs)
    assert out["audio_text"].tolist() == [s.text for s in samples]
    series = await df["audio"].cfai.atranscribe(language=df["lang"], **run_kwargs)
    assert series.tolist() == [s.text for s in samples]
    assert emulator.counters()["requests"] == len(samples)  # the second call hit the cache


async def test_sync_call_inside_a_running_event_loop(
    samples: list[Sample], run_kwargs: dict[str, Any]
) -> None:
    asyncio.get_running_loop()  # as in Jupyter: a loop is running in this thread
    out = _frame(samples[:2]).cfai.transcribe("audio", **run_kwargs)
    assert out["audio_text"].tolist() == [s.text for s in samples[:2]]
    s = pd.Series([str(samples[2].path)]).cfai.transcribe(**run_kwargs)
    assert s.tolist() == [samples[2].text]


# ---------------------------------------------------------------- estimate


def test_estimate_sends_nothing_and_counts_the_cache(
    samples: list[Sample], tmp_path: Path, emulator: Emulator, run_kwargs: dict[str, Any]
) -> None:
    text, _ = _broken_files(tmp_path)
    audio = [str(s.path) for s in samples[:3]] + [str(samples[0].path), None, str(text)]
    df = pd.DataFrame({"audio": audio}, index=list("abcdef"))
    cache = run_kwargs["cache"]

    first = df.cfai.estimate("audio", cache=cache)
    assert (first.rows, first.rows_to_send, first.rows_duplicate) == (6, 3, 1)
    assert (first.rows_na, first.rows_unreadable, first.rows_cached) == (1, 1, 0)
    assert first.requests == 3
    assert emulator.counters()["requests"] == 0
    assert first.to_frame().index.tolist() == list("abcdef")

    df.cfai.transcribe("audio", errors="coerce", **run_kwargs)
    again = df.cfai.estimate("audio", cache=cache)
    assert (again.rows_cached, again.rows_to_send, again.requests) == (3, 0, 0)
    # Another language is another cache key: nothing cached for it.
    other = df["audio"].cfai.estimate(language="fr", cache=cache)
    assert other.rows_to_send == 3

    with pytest.raises(ConfigurationError, match="column 'nope'"):
        df.cfai.estimate("nope")


# ---------------------------------------------------------------- retry_failed


@pytest.mark.parametrize("cache", [False, True], ids=["no cache", "cache"])
def test_retry_failed_sends_only_the_failed_rows(
    emulator: Emulator, tmp_path: Path, cache: bool
) -> None:
    df = pd.DataFrame(
        {"audio": [wav_bytes(7000 + i, seconds=0.05) for i in range(40)], "n": range(40)},
        index=pd.Index([f"r{i}" for i in range(40)], name="id"),
    )
    kwargs = emulator_kwargs(emulator, tmp_path / "cache" if cache else False, max_retries=0)
    emulator.set_faults(p500=0.4, seed=7)
    first = df.cfai.transcribe("audio", errors="coerce", provenance=True, **kwargs)
    failed = first["audio_text_error"].notna()
    assert 0 < failed.sum() < 40
    emulator.set_faults(p500=0.0)
    before = len(emulator.requests())

    second = first.cfai.retry_failed("audio", **kwargs)

    retried = emulator.requests()[before:]
    assert len(retried) == failed.sum()  # nothing else is sent (nor read, with no cache)
    assert second["audio_text"].notna().all()
    assert second["audio_text_error"].isna().all()
    assert second["audio_text_error_code"].isna().all()
    assert not second.loc[failed, "audio_text_cached"].any()
    kept = ~failed
    assert second.loc[kept].equals(first.loc[kept])  # other rows untouched
    assert second.index.equals(df.index)
    assert second["n"].tolist() == list(range(40))
    assert first["audio_text"].isna().sum() == failed.sum()  # the input frame is not modified
    again = second.cfai.retry_failed("audio", **kwargs)  # nothing left to retry
    assert again.equals(second)
    assert len(emulator.requests()) == before + failed.sum()


def test_retry_failed_needs_a_coerced_frame(emulator: Emulator) -> None:
    df = pd.DataFrame({"audio": [wav_bytes(1)]})
    with pytest.raises(ConfigurationError, match="audio_text_error"):
        df.cfai.retry_failed("audio", **emulator_kwargs(emulator, False))
    assert emulator.requests() == []
