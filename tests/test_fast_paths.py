"""The fast paths of a run give the same answers as the plain ones.

Each shortcut taken for speed (a spliced JSON body, a path kept as a str,
short clips prepared on the event loop, lookups that return tuples) is
checked against the general code it stands in for, so a wrong shortcut
fails here rather than in a benchmark.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clips import emulator_kwargs, wav_bytes, write_clips
from hypothesis import given, settings
from hypothesis import strategies as st

from cf_transcribe_pandas import engine
from cf_transcribe_pandas.audio import to_source
from cf_transcribe_pandas.cache import Cache, CachedRow
from cf_transcribe_pandas.client import build_body, encode_body
from cf_transcribe_pandas.emulator import Emulator

MODEL = "openai/gpt-4o-transcribe"


def _reference(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------- the request body

_B64 = st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode("ascii"))


@settings(max_examples=300, deadline=None)
@given(
    payload=_B64,
    mime=st.sampled_from(["audio/wav", "audio/mpeg", 'we"ird\\mime', "audio/é"]),
    language=st.none() | st.sampled_from(["en", "fr", "EN"]),
    prompt=st.none() | st.text(max_size=40),
    temperature=st.none() | st.floats(0, 1),
)
def test_encode_body_equals_json_dumps(
    payload: str, mime: str, language: str | None, prompt: str | None, temperature: float | None
) -> None:
    body = build_body(
        f"data:{mime};base64,{payload}", language=language, prompt=prompt, temperature=temperature
    )
    assert encode_body(body) == _reference(body)
    assert encode_body(body["input"]) == _reference(body["input"])  # the gateway-URL form


@pytest.mark.parametrize(
    "file",
    [
        "https://example.com/a.wav",
        "data:audio/wav;base64,not base64 at all",
        'data:audio/wav;base64,ab"cd',
        "data:audio/wav;base64,ab\\cd",
        "data:audio/wav;base64,ab\x01cd",
        "data:audio/wav;base64,abcé",
        "data:audio/wav,plain%20text",
    ],
)
def test_encode_body_escapes_what_is_not_base64(file: str) -> None:
    body = (
        build_body(file) if file.startswith("https") else {"model": MODEL, "input": {"file": file}}
    )
    assert encode_body(body) == _reference(body)
    assert json.loads(encode_body(body)) == body


def test_encode_body_with_a_second_empty_file_key_falls_back() -> None:
    uri = "data:audio/wav;base64," + base64.b64encode(b"abc").decode()
    body = {"model": MODEL, "options": {"file": ""}, "input": {"file": uri}}
    assert json.loads(encode_body(body)) == body


# ---------------------------------------------------------------- local paths as str


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


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.wav").write_bytes(wav_bytes(1))
    (tmp_path / "link_dir").symlink_to(real)
    (real / "link.wav").symlink_to(real / "a.wav")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "value",
    [
        "{t}/real/a.wav",
        "real/a.wav",
        "./real/a.wav",
        "{t}/link_dir/a.wav",
        "{t}/real/link.wav",
        "{t}/real/../real/a.wav",
        "link_dir/../real/a.wav",
    ],
)
def test_stat_key_with_shared_directories_equals_the_plain_one(tree: Path, value: str) -> None:
    source = to_source(value.format(t=tree))
    key = source.stat_key()
    assert key is not None
    assert key[0] == os.path.realpath(tree / "real" / "a.wav")
    assert source.stat_key({}) == key
    dirs: dict[str, str] = {}
    to_source(str(tree / "real" / "a.wav")).stat_key(dirs)  # a directory already resolved
    assert source.stat_key(dirs) == key


# ---------------------------------------------------------------- cache lookups


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
    assert brief == {k: (r.text, r.duration_s, r.model) for k, r in full.items()}


# ---------------------------------------------------------------- prepared ahead, both ways


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "no cache"])
@pytest.mark.parametrize("inline", [True, False], ids=["on the loop", "in the pool"])
def test_short_clips_give_the_same_results_prepared_inline_or_in_threads(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    inline: bool,
    cached: bool,
) -> None:
    # Small slices, so that windows are resolved in several pieces and merged.
    monkeypatch.setattr(engine, "RESOLVE_SLICE", 16)
    if not inline:  # every batch and slice counts as slow: after two, the pool takes the rest
        monkeypatch.setattr(engine, "INLINE_ROW_SECONDS", 0.0)
        monkeypatch.setattr(engine, "INLINE_RESOLVE_ROW_SECONDS", 0.0)
    paths, shas = write_clips(tmp_path / "audio", 150, seed=4100)
    (tmp_path / "audio" / "text.wav").write_text("not audio", encoding="utf-8")
    values: list[Any] = [*paths, paths[0], str(tmp_path / "audio" / "text.wav")]
    values.append(str(tmp_path / "nope.wav"))
    first, new = wav_bytes(4100, seconds=0.05), wav_bytes(9999, seconds=0.05)
    values += [first, new]  # bytes equal to the first file, and new bytes
    # Without a cache, windows resolve on the loop too (with one, in the pool).
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


def test_prepared_batches_share_one_cache_lookup_and_find_copies(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Short files prepared on the loop are looked up several batches at a time,
    and the lookup still finds audio cached under another path (a copy): those
    rows come from the cache, the rest are sent once."""
    paths, shas = write_clips(tmp_path / "clips", 600, seed=300)
    cache_dir = tmp_path / "cache"
    first = pd.DataFrame({"audio": paths[::2]}).cfai.transcribe(
        "audio", **emulator_kwargs(emulator, cache_dir, rate_limit=100_000)
    )
    copies = tmp_path / "copies"
    copies.mkdir()
    values = []
    for i, path in enumerate(paths):  # even rows: copies of cached files; odd: new
        if i % 2 == 0:
            values.append(str(copies / f"copy{i:04d}.wav"))
            Path(values[-1]).write_bytes(Path(path).read_bytes())
        else:
            values.append(path)
    calls: list[int] = []
    real = Cache.lookup_results

    def counted(self: Cache, keys: Any) -> Any:
        keys = list(keys)
        calls.append(len(keys))
        return real(self, keys)

    monkeypatch.setattr(Cache, "lookup_results", counted)
    before = len(emulator.requests())
    out = pd.DataFrame({"audio": values}).cfai.transcribe(
        "audio", **emulator_kwargs(emulator, cache_dir, rate_limit=100_000)
    )
    sent = sorted(e["sha256"] for e in emulator.requests(since=before))
    assert sent == sorted(shas[1::2])  # the copies were not sent again
    assert out["audio_text"].iloc[::2].tolist() == first["audio_text"].tolist()
    assert out["audio_text"].notna().all()
    # 600 rows in batches of 64: one lookup per batch would be 10 calls.
    assert sum(calls) >= 600
    assert len(calls) <= 5, calls
