"""cf_transcribe_pandas.estimate: rows, minutes, bytes, requests, cost and time, with nothing sent.

Real clips from tests/data/audio, long and bad audio from tests/nasty_audio.py,
a real cache in tmp_path. The split plan is checked against audio.prepare
itself on a 30-minute recording.
"""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

import pandas as pd
import pytest
from nasty_audio import (
    empty_file,
    long_wav,
    mulaw_wav,
    speech_like,
    text_file,
    truncated_wav,
    write_wav,
)

from cf_transcribe_pandas import audio
from cf_transcribe_pandas.cache import Cache, CachedRow
from cf_transcribe_pandas.client import DEFAULT_MODEL
from cf_transcribe_pandas.errors import ConfigurationError
from cf_transcribe_pandas.estimate import (
    DEFAULT_PRICE_PER_MINUTE,
    PRICES_PER_MINUTE,
    Estimate,
    estimate,
)

DATA = Path(__file__).parent / "data" / "audio"


def manifest() -> list[dict[str, str]]:
    with open(DATA / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def clip(name: str) -> str:
    return str(DATA / name)


@pytest.fixture(scope="module")
def long30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-minute 16 kHz mono speech-like WAV (57.6 MB: over the 25 MiB limit)."""
    path = tmp_path_factory.mktemp("long") / "long30.wav"
    long_wav(path, 1800.0)
    return path


def test_totals_match_the_manifest() -> None:
    rows = manifest()
    est = estimate([clip(r["file"]) for r in rows])
    expected = sum(float(r["duration_s"]) for r in rows)
    assert est.rows == len(rows)
    assert est.audio_seconds == pytest.approx(expected, rel=0.02)
    assert est.rows_unreadable == 0
    assert est.rows_na == 0
    # s00_en_mpeg.mpeg and s00_en_mpga.mpga hold the same bytes: sent once.
    shas = [r["sha256"] for r in rows]
    assert est.rows_duplicate == len(shas) - len(set(shas)) == 1
    assert est.rows_to_send == est.requests == len(set(shas))
    # aiff, wma and caf are not accepted by the service: re-encoded.
    refused = {r["file"] for r in rows if r["accepted_by_model"] == "False"}
    assert est.rows_reencoded == len(refused) == 3
    assert est.rows_split == 0
    assert est.max_parts_per_row == 1


def test_upload_bytes_are_base64_of_the_files_as_sent() -> None:
    names = ["s00_en_wav.wav", "s01_en_flac.flac", "s02_en_mp3.mp3"]
    est = estimate([clip(n) for n in names])
    expected = sum(
        audio.request_bytes(
            (DATA / n).stat().st_size, audio.mime_for(audio.sniff((DATA / n).read_bytes()))
        )
        for n in names
    )
    assert est.upload_bytes == expected
    assert est.upload_bytes > sum((DATA / n).stat().st_size for n in names) * 4 / 3


def test_thirty_minutes_is_several_requests_as_prepare_splits_it(long30: Path) -> None:
    est = estimate([str(long30)])
    parts = audio.prepare(long30.read_bytes(), label="long30")
    assert est.requests == len(parts) == math.ceil(1800 / (600 * 0.95)) == 4
    assert est.rows_split == est.rows_reencoded == 1
    assert est.max_parts_per_row == 4
    assert est.audio_seconds == pytest.approx(1800.0)
    # Re-encoded size is estimated from real speech; this synthetic signal
    # compresses better, so the estimate errs high, never absurdly.
    sent = sum(audio.request_bytes(p.bytes, p.mime) for p in parts)
    assert sent <= est.upload_bytes <= 6 * sent
    assert est.upload_bytes < long30.stat().st_size  # not the raw WAV's size


@pytest.mark.parametrize(
    ("max_part_seconds", "requests"),
    [(600.0, 4), (300.0, math.ceil(1800 / 285)), (1500.0, 2)],
)
def test_max_part_seconds_sets_the_number_of_parts(
    long30: Path, max_part_seconds: float, requests: int
) -> None:
    est = estimate([str(long30)], max_part_seconds=max_part_seconds)
    assert est.requests == requests


def test_a_short_wav_over_the_byte_limit_is_reencoded_not_split(tmp_path: Path) -> None:
    # 10 minutes of 48 kHz 16-bit: 57.6 MB, but 600 s fits one part once re-encoded.
    path = write_wav(tmp_path / "big.wav", speech_like(600.0, 48_000).samples, 48_000)
    est = estimate([str(path)])
    assert est.requests == 1
    assert est.rows_reencoded == 1
    assert est.rows_split == 0


def test_unreadable_rows_are_counted_with_reasons(tmp_path: Path) -> None:
    values = [
        clip("s00_en_wav.wav"),
        str(empty_file(tmp_path / "empty.wav")),
        str(text_file(tmp_path / "notes.mp3")),
        str(tmp_path / "missing.wav"),
        str(truncated_wav(tmp_path / "cut.wav")),
        None,
        float("nan"),
        pd.NA,
        12345,
    ]
    est = estimate(values)
    assert est.rows == len(values)
    assert est.rows_na == 3
    # Probing reads headers only, but a WAV's data chunk size is in its
    # header: one cut short is found without decoding.
    assert est.rows_to_send == est.requests == 1
    assert est.rows_unreadable == 5
    assert est.unreadable["file_not_found"] == 1
    assert est.unreadable["empty_file"] == 1
    assert est.unreadable["unsupported_input"] == 1  # the int
    assert est.unreadable["unreadable_audio"] == 2  # the text file, the cut WAV
    assert sum(est.unreadable.values()) == 5
    assert any("missing.wav" in e for e in est.unreadable_examples)
    frame = est.to_frame()
    assert frame["status"].tolist() == [
        "send",
        "unreadable",
        "unreadable",
        "unreadable",
        "unreadable",
        "na",
        "na",
        "na",
        "unreadable",
    ]
    assert frame.loc[3, "error_code"] == "file_not_found"
    assert "unreadable" in str(est)


def test_odd_wav_is_reencoded_and_original_keeps_it(tmp_path: Path) -> None:
    path = str(mulaw_wav(tmp_path / "mulaw.wav"))
    assert estimate([path]).rows_reencoded == 1
    assert estimate([path], encode="original").rows_reencoded == 0
    assert estimate([clip("s00_en_wav.wav")], encode="flac").rows_reencoded == 1


def test_duplicates_count_once_unless_parameters_differ() -> None:
    wav = clip("s00_en_wav.wav")
    same = estimate([wav, wav, Path(wav)])
    assert (same.rows_to_send, same.rows_duplicate, same.requests) == (1, 2, 1)
    assert same.audio_seconds == pytest.approx(3 * same.audio_seconds_to_send)
    per_language = estimate([wav, wav, wav], languages=["en", "fr", "EN"])
    assert (per_language.rows_to_send, per_language.rows_duplicate) == (2, 1)
    prompted = estimate([wav, wav], prompts=[None, "names: Ada"])
    assert prompted.rows_to_send == 2
    assert estimate([wav, wav], temperature=0.2).rows_to_send == 1
    as_bytes = (DATA / "s00_en_wav.wav").read_bytes()
    assert estimate([as_bytes, wav]).rows_duplicate == 1


def test_rows_in_the_cache_are_not_counted_again(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    wav, flac = clip("s00_en_wav.wav"), clip("s01_en_flac.flac")
    sha = hashlib.sha256(Path(wav).read_bytes()).hexdigest()
    with cache.writer() as w:
        w.add(CachedRow.new(sha, "cached text", model=DEFAULT_MODEL, language="en"))
    est = estimate([wav, flac, wav], languages="en", cache=cache)
    assert (est.rows_cached, est.rows_to_send, est.rows_duplicate) == (1, 1, 1)
    assert est.requests == 1
    assert est.audio_seconds_to_send == pytest.approx(3.974, rel=0.02)
    # Other parameters are another key: not cached.
    assert estimate([wav], languages="fr", cache=cache).rows_cached == 0
    assert estimate([wav], languages="en", cache=None).rows_cached == 0
    # The path memo stands in for hashing; the estimate writes nothing.
    files = sorted(p.name for p in cache.path.rglob("*"))
    estimate([wav], languages="en", cache=cache)
    assert sorted(p.name for p in cache.path.rglob("*")) == files


def test_memo_hits_skip_hashing(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    wav = clip("s00_en_wav.wav")
    sha = hashlib.sha256(Path(wav).read_bytes()).hexdigest()
    source = audio.to_source(wav)
    key = source.stat_key()
    assert key is not None
    # A memo entry that says another hash wins over the bytes: proof it was used.
    cache.memo_put(key[0], key[1], key[2], "f" * 64)
    with cache.writer() as w:
        w.add(CachedRow.new("f" * 64, "memo text", model=DEFAULT_MODEL))
        w.add(CachedRow.new(sha, "real text", model=DEFAULT_MODEL, language="de"))
    assert estimate([wav], cache=cache).rows_cached == 1
    assert estimate([wav], languages="de", cache=cache).rows_cached == 0


def test_cost_uses_the_published_price_or_the_given_one() -> None:
    est = estimate([clip("s00_en_wav.wav"), clip("s01_en_flac.flac")])
    assert PRICES_PER_MINUTE[DEFAULT_MODEL] == DEFAULT_PRICE_PER_MINUTE == 0.006
    assert est.price_per_minute == 0.006
    assert est.cost == pytest.approx(est.audio_minutes_to_send * 0.006)
    assert "2026-11-27" in est.price_source
    given = estimate([clip("s00_en_wav.wav")], price_per_minute=0.5)
    assert given.cost == pytest.approx(given.audio_minutes_to_send * 0.5)
    other = estimate([clip("s00_en_wav.wav")], model="openai/some-other-model")
    assert other.price_per_minute is None
    assert other.cost is None
    assert "unknown" in str(other)
    assert other.as_dict()["cost_usd"] is None


def test_wall_time_is_requests_over_the_rate_limit(long30: Path) -> None:
    values = [clip(r["file"]) for r in manifest()] + [str(long30)]
    est = estimate(values, rate_limit=60)
    assert est.requests == 24 + 4
    assert est.wall_seconds == pytest.approx(est.requests)  # one a second at 60/min
    assert estimate(values, rate_limit=720).wall_seconds == pytest.approx(28 / 12)
    text = str(est)
    assert "60 requests/minute" in text
    assert "4 parts of the longest row" in text


def test_https_urls_are_one_request_of_unknown_length() -> None:
    est = estimate(
        ["https://example.com/a.mp3", "https://example.com/a.mp3", clip("s00_en_wav.wav")]
    )
    assert est.requests == 2
    assert est.rows_duplicate == 1
    assert est.rows_unknown_duration == 1
    assert est.audio_seconds_to_send == pytest.approx(3.691, rel=0.02)
    assert "unknown length" in str(est)


def test_to_frame_and_as_dict_describe_every_row() -> None:
    est = estimate([clip("s00_en_wav.wav"), None, clip("s00_en_aiff.aiff")], index=["a", "b", "c"])
    frame = est.to_frame()
    assert list(frame.index) == ["a", "b", "c"]
    assert list(frame.columns) == [
        "status",
        "format",
        "duration_s",
        "bytes",
        "reencode",
        "parts",
        "requests",
        "upload_bytes",
        "error_code",
        "error",
    ]
    assert frame["status"].tolist() == ["send", "na", "send"]
    assert frame.loc["a", "format"] == "wav"
    assert not frame.loc["a", "reencode"]
    assert frame.loc["c", "reencode"]
    assert frame["requests"].sum() == est.requests == 2
    assert frame["upload_bytes"].sum() == est.upload_bytes
    d = est.as_dict()
    assert (d["rows"], d["requests"], d["rows_na"]) == (3, 2, 1)
    assert isinstance(est, Estimate)


def test_empty_input() -> None:
    est = estimate([])
    assert (est.rows, est.requests, est.upload_bytes, est.wall_seconds) == (0, 0, 0, 0.0)
    assert est.cost == 0.0
    assert len(est.to_frame()) == 0
    assert "0 rows" in str(est)


def test_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    est = estimate([clip("s00_en_wav.wav")] * 3, progress=True)
    assert est.rows == 3
    assert "estimate" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_limit": 0},
        {"rate_limit": True},
        {"price_per_minute": -1.0},
        {"price_per_minute": float("nan")},
        {"encode": "mp3"},
        {"max_part_seconds": 0},
        {"max_part_seconds": 5},
        {"max_part_seconds": 3000},
        {"temperature": 2.0},
        {"model": ""},
        {"languages": "english"},
        {"languages": ["en"]},  # one value for two rows
        {"prompts": [1, 2]},
        {"index": [1]},
    ],
)
def test_bad_arguments_are_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        estimate([clip("s00_en_wav.wav"), clip("s01_en_flac.flac")], **kwargs)  # type: ignore[arg-type]
