"""@cf/openai/whisper-large-v3-turbo beside gpt-4o-transcribe (issue 17).

The adapter's bodies validate against the model's published schema
(tests/data/whisper-large-v3-turbo.json, a copy of ../shared/spec/models); runs go
through real aiohttp against the bundled emulator, whose request log is validated
against the same schema; the cache is real Parquet.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clips import emulator_kwargs, load_samples, wav_bytes
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from nasty_audio import long_wav

import cf_transcribe_pandas  # noqa: F401  (registers the accessors)
from cf_transcribe_pandas import Cache, ConfigurationError, TranscribeOptions
from cf_transcribe_pandas.cache import RESULT_SCHEMA, CachedRow
from cf_transcribe_pandas.client import DEFAULT_MODEL, Gateway, build_body
from cf_transcribe_pandas.emulator import Emulator

WHISPER = "@cf/openai/whisper-large-v3-turbo"
SPEC: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "whisper-large-v3-turbo.json").read_text("utf-8")
)
INPUT = Draft202012Validator(SPEC["schema"]["input"])
OUTPUT = Draft202012Validator(SPEC["schema"]["output"])
WAV = wav_bytes(1, seconds=0.4)
WAV_URI = "data:audio/wav;base64," + base64.b64encode(WAV).decode()
CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")


def valid_input(body: Any) -> None:
    errors = [e.message for e in INPUT.iter_errors(body)]
    assert errors == [], errors
    assert set(body) <= set(SPEC["schema"]["input"]["properties"]), body.keys()


def whisper_bodies(emu: Emulator, since: int = 0) -> list[dict[str, Any]]:
    return [e["body"] for e in emu.requests(since) if e["model"] == WHISPER]


# ---------------------------------------------------------------- the adapter


def test_the_schema_is_the_shared_spec_copy() -> None:
    shared = Path("/work/shared/spec/models/whisper-large-v3-turbo.json")
    if not shared.exists():
        pytest.skip("the shared spec folder is not on this machine")
    assert json.loads(shared.read_text("utf-8")) == SPEC
    assert SPEC["price"][0]["price"] == 0.00051


@pytest.mark.parametrize("language", [None, "en", "FR"])
@pytest.mark.parametrize("prompt", [None, "", "Names: Kubernetes."])
@pytest.mark.parametrize("task", [None, "transcribe", "translate"])
@pytest.mark.parametrize("vad_filter", [None, True, False])
@pytest.mark.parametrize("prefix", [None, "Speaker one:"])
def test_every_body_validates_against_the_published_schema(
    language: str | None,
    prompt: str | None,
    task: str | None,
    vad_filter: bool | None,
    prefix: str | None,
) -> None:
    body = build_body(
        WAV_URI,
        model=WHISPER,
        language=language,
        prompt=prompt,
        task=task,
        vad_filter=vad_filter,
        prefix=prefix,
    )
    valid_input(body)
    assert base64.b64decode(body["audio"], validate=True) == WAV  # raw base64, no data URI
    assert None not in body.values()
    assert body.get("initial_prompt") == prompt
    assert "prompt" not in body
    assert body.get("language") == (language.lower() if language else None)


def test_a_url_is_not_a_file_whisper_takes() -> None:
    with pytest.raises(ConfigurationError, match="takes the audio itself"):
        build_body("https://example.com/a.wav", model=WHISPER)


def test_a_gateway_in_the_body_is_refused_and_the_gateway_url_form_is_the_input() -> None:
    with pytest.raises(ConfigurationError, match="use_gateway_url"):
        build_body(WAV_URI, model=WHISPER, gateway=Gateway(id="gw"))
    valid_input(build_body(WAV_URI, model=WHISPER, gateway=Gateway(id="gw", use_gateway_url=True)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": WHISPER, "temperature": 0.2}, "does not take temperature"),
        ({"task": "translate"}, "does not take task"),
        ({"vad_filter": True}, "does not take vad_filter"),
        ({"prefix": "x"}, "does not take prefix"),
        ({"timestamps": True}, "gives no timestamps"),
        ({"model": WHISPER, "task": "summarize"}, "task must be"),
        ({"model": WHISPER, "timestamps": "char"}, "timestamps= must be"),
        ({"model": WHISPER, "vad_filter": "yes"}, "vad_filter must be"),
        ({"model": WHISPER, "prefix": 3}, "prefix must be"),
    ],
)
def test_an_option_the_model_does_not_take_is_a_clear_error_before_any_request(
    emulator: Emulator, tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    df = pd.DataFrame({"audio": [WAV]})
    with pytest.raises(ConfigurationError, match=match):
        df.cfai.transcribe("audio", **kwargs, **emulator_kwargs(emulator, tmp_path))
    with pytest.raises(ConfigurationError, match=match):
        TranscribeOptions(**kwargs)
    assert emulator.requests() == []


def test_a_gateway_named_in_the_body_is_refused_for_whisper_before_any_request(
    emulator: Emulator, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="use_gateway_url"):
        pd.DataFrame({"audio": [WAV]}).cfai.transcribe(
            "audio", model=WHISPER, gateway="gw", **emulator_kwargs(emulator, tmp_path)
        )
    assert TranscribeOptions(gateway="gw").gateway is not None  # gpt-4o takes it
    assert emulator.requests() == []


def test_a_series_has_no_segments_column_to_add(emulator: Emulator, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"timestamps= is for df\.cfai\.transcribe"):
        pd.Series([WAV]).cfai.transcribe(
            model=WHISPER, timestamps=True, **emulator_kwargs(emulator, tmp_path)
        )
    assert emulator.requests() == []


def test_whisper_downloads_urls_itself() -> None:
    assert TranscribeOptions(model=WHISPER).fetch_urls is True
    assert TranscribeOptions().fetch_urls is False
    assert TranscribeOptions(model=WHISPER, timestamps=True).timestamps == "segment"


# ---------------------------------------------------------------- runs against the emulator


def _check_segments(
    text: str, segments: list[dict[str, Any]], duration: float, words: bool
) -> None:
    assert " ".join(s["text"] for s in segments) == text
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    for a, b in itertools.pairwise(segments):
        assert a["end"] <= b["start"] + 1e-9
    assert all(0 <= s["start"] <= s["end"] <= duration + 0.01 for s in segments)
    if words:
        for s in segments:
            assert " ".join(w["word"] for w in s["words"]) == s["text"]
            assert all(
                s["start"] - 1e-9 <= w["start"] <= w["end"] <= s["end"] + 1e-9 for w in s["words"]
            )
    else:
        assert all(set(s) == {"start", "end", "text"} for s in segments)


@pytest.mark.parametrize("level", [True, "word"])
def test_timestamps_add_ordered_segments_whose_texts_join_to_the_text(
    emulator: Emulator, tmp_path: Path, level: Any
) -> None:
    samples = load_samples()
    df = pd.DataFrame({"audio": [s.path for s in samples]})
    kw = emulator_kwargs(emulator, tmp_path / "cache")
    out = df.cfai.transcribe("audio", model=WHISPER, timestamps=level, provenance=True, **kw)
    assert list(out.columns[1:3]) == ["audio_text", "audio_text_segments"]
    assert out["audio_text_segments"].dtype == object
    for sample, text, segments, duration in zip(
        samples,
        out["audio_text"],
        out["audio_text_segments"],
        out["audio_text_duration_s"],
        strict=True,
    ):
        assert text == sample.text
        assert duration == pytest.approx(sample.duration_s, abs=0.2)  # PyAV vs the manifest
        _check_segments(text, segments, duration, words=level == "word")
    assert out["audio_text_model"].unique().tolist() == [WHISPER]
    assert out["audio_text_language"].tolist() == ["en"] * len(samples)
    for body in whisper_bodies(emulator):
        valid_input(body)
    assert len(whisper_bodies(emulator)) == len(samples)

    table = pa.Table.from_pandas(out[["audio_text", "audio_text_segments"]])  # Arrow-friendly
    kind = table.schema.field("audio_text_segments").type
    assert pa.types.is_list(kind)
    assert pa.types.is_struct(kind.value_type)
    assert {f.name for f in kind.value_type} == (
        {"start", "end", "text", "words"} if level == "word" else {"start", "end", "text"}
    )
    out[["audio_text", "audio_text_segments"]].to_parquet(tmp_path / "out.parquet")
    back = pq.read_table(tmp_path / "out.parquet")["audio_text_segments"].to_pylist()
    assert back == out["audio_text_segments"].tolist()
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == len(out)


@pytest.mark.parametrize("level", [True, "word"])
def test_a_rerun_returns_the_segments_from_the_cache(
    emulator: Emulator, tmp_path: Path, level: Any
) -> None:
    df = pd.DataFrame({"audio": [s.path for s in load_samples()[:3]]})
    kw = emulator_kwargs(emulator, tmp_path / "cache", model=WHISPER, timestamps=level)
    first = df.cfai.transcribe("audio", provenance=True, **kw)
    sent = len(emulator.requests())
    again = df.cfai.transcribe("audio", provenance=True, **kw)
    assert len(emulator.requests()) == sent
    assert again["audio_text_cached"].all()
    assert again["audio_text_segments"].tolist() == first["audio_text_segments"].tolist()
    assert again["audio_text_language"].tolist() == first["audio_text_language"].tolist()
    assert again["audio_text_duration_s"].tolist() == first["audio_text_duration_s"].tolist()


def test_the_models_never_share_cache_entries_and_options_that_change_the_answer_are_keyed(
    emulator: Emulator, tmp_path: Path
) -> None:
    df = pd.DataFrame({"audio": [wav_bytes(i, 0.3) for i in range(3)]})
    kw = emulator_kwargs(emulator, tmp_path / "cache")
    runs: list[dict[str, Any]] = [
        {"model": WHISPER},
        {},  # gpt-4o after whisper: sent again
        {"model": WHISPER, "timestamps": True},
        {"model": WHISPER, "timestamps": "word"},
        {"model": WHISPER, "task": "translate"},
        {"model": WHISPER, "vad_filter": True},
        {"model": WHISPER, "prefix": "So"},
    ]
    for options in runs:
        before = len(emulator.requests())
        df.cfai.transcribe("audio", **options, **kw)
        assert len(emulator.requests()) - before == 3, options
    for options in [*runs, {"model": WHISPER, "timestamps": "segment"}]:
        before = len(emulator.requests())
        out = df.cfai.transcribe("audio", provenance=True, **options, **kw)
        assert len(emulator.requests()) == before, options
        assert out["audio_text_model"].unique().tolist() == [options.get("model", DEFAULT_MODEL)]
    for body in whisper_bodies(emulator):
        valid_input(body)
    assert [b.get("prefix") for b in whisper_bodies(emulator)][-3:] == ["So"] * 3


@pytest.mark.emulator(words_per_second=1.0)
def test_parts_of_long_audio_give_times_into_the_whole_recording(
    emulator: Emulator, tmp_path: Path
) -> None:
    long_wav(tmp_path / "long.wav", 75.0)
    df = pd.DataFrame({"audio": [str(tmp_path / "long.wav")]})
    kw = emulator_kwargs(emulator, tmp_path / "cache", model=WHISPER, timestamps="word")
    out = df.cfai.transcribe("audio", max_part_seconds=30, provenance=True, **kw)
    bodies = whisper_bodies(emulator)
    assert len(bodies) >= 3
    segments = out["audio_text_segments"][0]
    duration = out["audio_text_duration_s"][0]
    assert duration == pytest.approx(75.0, abs=0.5)
    _check_segments(out["audio_text"][0], segments, duration, words=True)
    assert segments[-1]["end"] > 60  # the last part's times are offsets into the recording
    texts = [s["text"] for s in segments]
    assert len(texts) > len(bodies)
    for body in bodies:
        valid_input(body)


def test_old_cache_files_without_the_new_columns_still_read(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    row = CachedRow.new("a" * 64, "old text", model=DEFAULT_MODEL, duration_s=2.0)
    old = RESULT_SCHEMA.remove(RESULT_SCHEMA.get_field_index("segments"))
    for name in ("detected_language", "options"):
        old = old.remove(old.get_field_index(name))
    table = pa.table({n: [getattr(row, n)] for n in old.names}, schema=old)
    cache.results_dir.mkdir(parents=True)
    pq.write_table(table, cache.results_dir / f"00000000000000000001-1-{'0' * 32}.parquet")
    assert Cache(tmp_path).lookup([row.key]) == {row.key: row}
    assert Cache(tmp_path).lookup_results([row.key]) == {
        row.key: ("old text", 2.0, DEFAULT_MODEL, None, None)
    }
    assert Cache(tmp_path).stats().rows == 1
    assert Cache(tmp_path).export(tmp_path / "all.parquet") == 1
    assert pq.read_table(tmp_path / "all.parquet").column_names == RESULT_SCHEMA.names


# ---------------------------------------------------------------- the emulator's whisper route


def _cues(vtt: str) -> list[tuple[float, float, str]]:
    assert vtt.startswith("WEBVTT\n\n")
    cues = []
    for block in vtt[len("WEBVTT\n\n") :].strip().split("\n\n"):
        timing, text = block.split("\n", 1)
        m = CUE.match(timing)
        assert m, timing
        g = [int(x) for x in m.groups()]
        cues.append(
            (
                g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000,
                g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000,
                text,
            )
        )
    return cues


def _post(emu: Emulator, body: Any) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        emu.run_url(WHISPER),
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_emulator_answers_with_the_schema_and_a_vtt_consistent_with_the_segments(
    emulator: Emulator,
) -> None:
    sample = load_samples()[0]
    audio = base64.b64encode(sample.path.read_bytes()).decode()
    status, answer = _post(emulator, {"audio": audio, "language": "en"})
    assert status == 200
    result = answer["result"]
    assert [e.message for e in OUTPUT.iter_errors(result)] == []
    assert result["text"] == sample.text
    assert result["word_count"] == len(sample.text.split())
    info = result["transcription_info"]
    assert info["duration"] == pytest.approx(sample.duration_s, abs=0.05)
    assert result["segments"][-1]["end"] == pytest.approx(info["duration"], abs=0.01)
    cues = _cues(result["vtt"])
    assert [(s["start"], s["end"], s["text"]) for s in result["segments"]] == cues
    words = [w["word"] for s in result["segments"] for w in s["words"]]
    assert words == sample.text.split()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, 3003),
        ({"audio": 3}, 400, 3003),
        ({"audio": "AAAA", "task": "summarize"}, 400, 3003),
        ({"audio": "AAAA", "vad_filter": "yes"}, 400, 3003),
        ({"audio": "AAAA", "initial_prompt": 1}, 400, 3003),
        ({"audio": "not base64!"}, 400, 5004),
        ({"audio": ""}, 400, 5004),
        ({"audio": base64.b64encode(b"just some text, not audio").decode()}, 400, 5004),
    ],
)
def test_the_emulator_refuses_bad_whisper_input(
    emulator: Emulator, body: dict[str, Any], status: int, code: int
) -> None:
    got, answer = _post(emulator, body)
    assert (got, answer["errors"][0]["code"]) == (status, code)


@pytest.mark.emulator(max_file_bytes=4096)
def test_whisper_has_the_unified_routes_size_limit(emulator: Emulator, tmp_path: Path) -> None:
    df = pd.DataFrame({"audio": [wav_bytes(3, seconds=1.0)]})
    out = df.cfai.transcribe(
        "audio", model=WHISPER, errors="coerce", **emulator_kwargs(emulator, tmp_path)
    )
    assert out["audio_text_error_code"].tolist() == ["3006"]
    assert [e["status"] for e in emulator.requests()] == [413]


@pytest.mark.emulator(p429=0.5, p500=0.2, retry_after=0.01, seed=7)
def test_whisper_rows_ride_out_the_same_faults(emulator: Emulator, tmp_path: Path) -> None:
    df = pd.DataFrame({"audio": [wav_bytes(i, 0.2) for i in range(12)]})
    kw = emulator_kwargs(emulator, tmp_path, model=WHISPER, timestamps=True)
    out = df.cfai.transcribe("audio", max_retries=20, **kw)
    assert out["audio_text"].notna().all()
    statuses = {e["status"] for e in emulator.requests()}
    assert 429 in statuses
    assert 200 in statuses
    for body in whisper_bodies(emulator):
        valid_input(body)
