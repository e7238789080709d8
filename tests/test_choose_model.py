"""Choosing a model (issue 17): subtitles from segments, the word error rate, the
estimate of both models, and the CLI's --subtitles and repeated --model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clips import emulator_kwargs, load_samples

import cf_transcribe_pandas
from cf_transcribe_pandas import ConfigurationError, to_srt, to_vtt
from cf_transcribe_pandas.cli import main
from cf_transcribe_pandas.emulator import Emulator
from cf_transcribe_pandas.estimate import ModelComparison, estimate
from cf_transcribe_pandas.wer import normalize_text

WHISPER = "@cf/openai/whisper-large-v3-turbo"
GPT = "openai/gpt-4o-transcribe"
SEGMENTS = [
    {"start": 0.0, "end": 1.5, "text": "Hello there."},
    {"start": 1.5, "end": 3723.0456, "text": "  General\nKenobi. "},
    {"start": 3723.1, "end": 3724.0, "text": ""},
]


# ---------------------------------------------------------------- subtitles


def test_to_srt_numbers_cues_with_commas_and_leaves_out_empty_segments() -> None:
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
        "2\n00:00:01,500 --> 01:02:03,046\nGeneral Kenobi.\n"
    )


def test_to_vtt_has_the_header_and_dotted_times() -> None:
    assert to_vtt(SEGMENTS) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n"
        "00:00:01.500 --> 01:02:03.046\nGeneral Kenobi.\n"
    )


@pytest.mark.parametrize("empty", [None, float("nan"), []])
def test_no_segments_give_an_empty_file(empty: Any) -> None:
    assert to_srt(empty) == ""
    assert to_vtt(empty) == "WEBVTT\n"


@pytest.mark.parametrize(
    ("segments", "match"),
    [
        ("Hello", "must be a list"),
        ({"start": 0, "end": 1, "text": "x"}, "must be a list"),
        ([{"start": 0, "text": "x"}], "segment 0 is not"),
        ([{"start": 2, "end": 1, "text": "x"}], "0 <= start <= end"),
        ([{"start": -1, "end": 1, "text": "x"}], "0 <= start <= end"),
    ],
)
def test_bad_segments_are_a_clear_error(segments: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        to_srt(segments)


def test_a_transcribed_rows_segments_become_subtitles(emulator: Emulator, tmp_path: Path) -> None:
    sample = load_samples()[0]
    df = pd.DataFrame({"audio": [sample.path]})
    out = df.cfai.transcribe(
        "audio", model=WHISPER, timestamps=True, **emulator_kwargs(emulator, tmp_path)
    )
    vtt = to_vtt(out["audio_text_segments"][0])
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")
    assert " ".join(line for line in vtt.splitlines()[2:] if line and "-->" not in line) == (
        sample.text
    )


# ---------------------------------------------------------------- the word error rate


def test_normalization_is_case_punctuation_and_whitespace() -> None:
    assert normalize_text("  Hello, World!  It's 5 o'clock… ") == "hello world it's 5 o'clock"
    assert normalize_text("ÉCOLE—École") == "école école"
    assert normalize_text("'quoted'") == "quoted"


def test_wer_is_the_corpus_rate_with_a_per_row_column() -> None:
    df = pd.DataFrame(
        {
            "ref": ["The cat sat.", "A b c d", None, "one two", "   "],
            "hyp": ["the cat, sat", "a x c", "anything", pd.NA, "words"],
        },
        index=["r1", "r2", "r3", "r4", "r5"],
    )
    rates = df.cfai.wer(reference="ref", hypothesis="hyp")
    # r1: 0 errors of 3 words; r2: 1 substitution + 1 deletion of 4 words.
    assert rates.wer == pytest.approx(2 / 7)
    assert rates.per_row.tolist() == [0.0, 0.5, pd.NA, pd.NA, pd.NA]
    assert list(rates.per_row.index) == ["r1", "r2", "r3", "r4", "r5"]
    assert (rates.rows, rates.skipped, rates.words) == (2, 3, 7)
    assert (rates.substitutions, rates.deletions, rates.insertions) == (1, 1, 0)
    assert 0 < rates.cer < rates.wer
    assert "WER 28.6%" in str(rates)
    assert json.loads(json.dumps(rates.as_dict()))["rows"] == 2


def test_wer_errors_are_clear() -> None:
    df = pd.DataFrame({"ref": ["a"], "hyp": ["a"]})
    with pytest.raises(ConfigurationError, match="'text' is not a column"):
        df.cfai.wer(reference="ref", hypothesis="text")
    with pytest.raises(ConfigurationError, match="no row"):
        pd.DataFrame({"ref": [None], "hyp": ["a"]}).cfai.wer(reference="ref", hypothesis="hyp")


# ---------------------------------------------------------------- the estimate


def test_the_estimate_knows_each_models_price_and_compares_them() -> None:
    paths = [str(s.path) for s in load_samples()]
    gpt = estimate(paths)
    whisper = estimate(paths, model=WHISPER)
    assert (gpt.price_per_minute, whisper.price_per_minute) == (0.006, 0.00051)
    assert whisper.cost == pytest.approx(gpt.cost * 0.00051 / 0.006)
    both = estimate(paths, compare_models=True, temperature=0.3)
    assert isinstance(both, ModelComparison)
    assert list(both.estimates) == [GPT, WHISPER]
    assert both[WHISPER].cost == pytest.approx(whisper.cost)
    frame = both.to_frame()
    assert frame.loc[WHISPER, "dollars_per_audio_hour"] == pytest.approx(60 * 0.00051)
    assert frame.loc[GPT, "dollars_per_audio_hour"] == pytest.approx(0.36)
    assert WHISPER in str(both)
    assert "per audio hour" in str(both)
    df = pd.DataFrame({"audio": paths})
    assert isinstance(df.cfai.estimate("audio", compare_models=True), ModelComparison)


def test_the_estimate_sees_the_cache_of_each_model(emulator: Emulator, tmp_path: Path) -> None:
    df = pd.DataFrame({"audio": [s.path for s in load_samples()]})
    kw = emulator_kwargs(emulator, tmp_path / "cache")
    df.cfai.transcribe("audio", model=WHISPER, timestamps=True, **kw)
    both = df.cfai.estimate("audio", compare_models=True, cache=kw["cache"], timestamps=False)
    assert both[GPT].rows_cached == 0
    assert both[WHISPER].rows_cached == 0  # the timestamps granularity is in the key
    again = df.cfai.estimate("audio", model=WHISPER, timestamps=True, cache=kw["cache"])
    assert again.rows_cached == len(df)


# ---------------------------------------------------------------- the CLI


def test_cli_estimate_with_two_models(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(s.path) for s in load_samples()]
    code = main(["estimate", *paths, "--no-cache", "--model", GPT, "--model", WHISPER, "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {GPT, WHISPER}
    assert data[WHISPER]["price_per_minute"] == 0.00051


def test_cli_run_writes_one_subtitle_file_per_row(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", emulator.token)
    samples = load_samples()[:3]
    out = tmp_path / "out.parquet"
    args = ["run", *[str(s.path) for s in samples], "-o", str(out), "--account-id"]
    args += [emulator.account_id, "--base-url", emulator.base_url, "-q"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--model", WHISPER]
    args += ["--subtitles", str(tmp_path / "subs"), "--subtitle-format", "vtt"]
    assert main(args) == 0
    files = sorted(p.name for p in (tmp_path / "subs").iterdir())
    assert files == sorted(f"{s.path.stem}.vtt" for s in samples)
    table = pd.read_parquet(out)
    assert "path_text_segments" in table.columns
    first = (tmp_path / "subs" / f"{samples[0].path.stem}.vtt").read_text()
    assert first.startswith("WEBVTT\n\n00:00:00.000 --> ")
    assert main([*args[:-4], "--model", GPT, "--model", WHISPER]) != 0


def test_the_public_names_are_exported() -> None:
    assert cf_transcribe_pandas.to_srt is to_srt
    assert cf_transcribe_pandas.to_vtt is to_vtt
