"""audio/: inputs, sniffing, validation, re-encoding, splitting, text joins.

The real clips in tests/data/audio cover every container the service takes
and three it refuses; tests/nasty_audio.py writes the bad and odd inputs.
The two long WAVs are generated once per module.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import http.server
import io
import itertools
import math
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nasty_audio import (
    RATE,
    SpeechLike,
    alaw_wav,
    empty_file,
    flac_file,
    float_wav,
    header_only_wav,
    long_wav,
    mp3_file,
    mulaw_wav,
    speech_like,
    symlink_to,
    text_file,
    to_int16,
    tone,
    truncated_mp3,
    truncated_wav,
    unfinished_wav,
    video_without_audio,
    wav_6ch_24bit,
    wav_bytes,
    write_wav,
)

from cf_transcribe_pandas import audio
from cf_transcribe_pandas.audio import (
    ACCEPTED,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_SECONDS,
    AudioInfo,
    Part,
    Source,
    data_uri,
    join_prompt,
    join_texts,
    local_path,
    looks_cut,
    mime_for,
    path_stat_key,
    prepare,
    probe,
    request_bytes,
    sha256_of,
    sniff,
    split_part,
    tail_words,
    to_source,
)
from cf_transcribe_pandas.errors import AudioError, ConfigurationError

DATA = Path(__file__).parent / "data" / "audio"
MANIFEST = list(csv.DictReader(io.StringIO((DATA / "manifest.csv").read_text(encoding="utf-8"))))
ACCEPTED_CLIPS = [r for r in MANIFEST if r["accepted_by_model"] == "True"]
REFUSED_CLIPS = [r for r in MANIFEST if r["accepted_by_model"] == "False"]
# manifest "container" -> what sniff names it
SNIFFED = {"mpga": "mp3", "mpeg": "mp3", "opus": "ogg", "wav44st": "wav"}
MIME_OF = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "mp4": "audio/mp4",
    "m4a": "audio/mp4",
    "webm": "audio/webm",
}
MiB = 1024 * 1024


def _ids(rows: list[dict[str, str]]) -> list[str]:
    return [r["file"] for r in rows]


def _decode_seconds(data: bytes) -> float:
    """Length of some audio by decoding it all (the ground truth)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


def _fits(part: Part, max_bytes: int = MAX_REQUEST_BYTES, max_s: float = 600.0) -> None:
    assert part.bytes * 4 / 3 < max_bytes
    assert request_bytes(part.bytes, part.mime) <= max_bytes
    assert len(part.data_uri) + audio.REQUEST_OVERHEAD_BYTES <= max_bytes
    assert part.duration_s is not None
    assert part.duration_s <= max_s + 1e-6
    assert part.duration_s <= MAX_REQUEST_SECONDS


def _check_split(parts: list[Part], signal: SpeechLike, *, max_s: float = 600.0) -> None:
    assert len(parts) >= 2
    for part in parts:
        _fits(part, max_s=max_s)
        assert part.reencoded
        assert sniff(part.audio()) in ACCEPTED
    assert parts[0].start_s == 0.0
    for before, after in itertools.pairwise(parts):
        assert before.duration_s is not None
        assert after.start_s == pytest.approx(before.start_s + before.duration_s, abs=1e-3)
        # every cut lands in a silent gap of the generated signal
        assert signal.in_gap(after.start_s, slack=0.01), after.start_s
    total = sum(p.duration_s or 0.0 for p in parts)
    assert total == pytest.approx(signal.duration_s, rel=0.01)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def long30(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SpeechLike]:
    """30 minutes of 16 kHz mono 16-bit WAV: 57.6 MB, over 25 MB and 1,500 s."""
    path = tmp_path_factory.mktemp("long") / "thirty minutes.wav"
    return path, long_wav(path, 1800.0, seed=1)


@pytest.fixture(scope="module")
def long30_parts(long30: tuple[Path, SpeechLike]) -> list[Part]:
    path, _ = long30
    return prepare(path.read_bytes(), label=path.name)


@pytest.fixture(scope="module")
def long12(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SpeechLike]:
    """12 minutes of 8 kHz WAV: 11.5 MB (a request fits) but over 600 s."""
    path = tmp_path_factory.mktemp("long") / "twelve.wav"
    return path, long_wav(path, 720.0, rate=8000, seed=2)


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving tmp_path."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------- the clips


@pytest.mark.parametrize("row", MANIFEST, ids=_ids(MANIFEST))
def test_sniff_names_every_clip_by_content(row: dict[str, str]) -> None:
    head = (DATA / row["file"]).read_bytes()[:4096]
    assert sniff(head) == SNIFFED.get(row["container"], row["container"])


@pytest.mark.parametrize("row", ACCEPTED_CLIPS, ids=_ids(ACCEPTED_CLIPS))
def test_accepted_clips_go_byte_for_byte(row: dict[str, str]) -> None:
    data = (DATA / row["file"]).read_bytes()
    parts = prepare(data, label=row["file"], encode="auto")
    assert len(parts) == 1
    part = parts[0]
    fmt = SNIFFED.get(row["container"], row["container"])
    assert part.mime == MIME_OF[fmt]
    assert part.data_uri.startswith(f"data:{MIME_OF[fmt]};base64,")
    assert base64.b64decode(part.data_uri.split(",", 1)[1]) == data
    assert hashlib.sha256(part.audio()).hexdigest() == row["sha256"]
    assert not part.reencoded
    assert part.bytes == len(data) == int(row["bytes"])
    assert part.start_s == 0.0
    assert part.duration_s == pytest.approx(float(row["duration_s"]), rel=0.03)


@pytest.mark.parametrize("row", REFUSED_CLIPS, ids=_ids(REFUSED_CLIPS))
def test_refused_clips_are_reencoded_to_flac(row: dict[str, str]) -> None:
    parts = prepare((DATA / row["file"]).read_bytes(), label=row["file"])
    assert len(parts) == 1
    out = parts[0].audio()
    assert sniff(out) == "flac"
    assert parts[0].mime == "audio/flac"
    assert parts[0].reencoded
    info = probe(out)
    assert (info.sample_rate, info.channels, info.accepted) == (16000, 1, True)
    assert _decode_seconds(out) == pytest.approx(float(row["duration_s"]), rel=0.02)
    assert parts[0].duration_s == pytest.approx(float(row["duration_s"]), rel=0.02)


@pytest.mark.parametrize("row", MANIFEST, ids=_ids(MANIFEST))
def test_probe_reads_headers_of_every_clip(row: dict[str, str]) -> None:
    path = DATA / row["file"]
    info = probe(path)
    assert info.format == SNIFFED.get(row["container"], row["container"])
    assert info.mime == mime_for(info.format)
    assert info.accepted is (row["accepted_by_model"] == "True")
    assert info.bytes == int(row["bytes"])
    assert info.duration_s == pytest.approx(float(row["duration_s"]), rel=0.03)
    assert info.sample_rate in (16000, 22050, 44100, 48000)
    assert info.channels in (1, 2)
    assert info.codec
    # probe takes the same inputs as to_source, and bytes
    assert probe(str(path)) == info
    assert probe(path.read_bytes()).duration_s == pytest.approx(info.duration_s, rel=0.03)


def test_ogg_codec_tells_vorbis_from_opus() -> None:
    assert probe(DATA / "s00_en_ogg.ogg").codec == "vorbis"
    assert probe(DATA / "s00_en_opus.ogg").codec == "opus"


def test_44k_stereo_wav_shrinks_a_lot_as_flac_and_opus() -> None:
    data = (DATA / "s00_en_wav44st.wav").read_bytes()
    (flac,) = prepare(data, label="wav44st", encode="flac")
    (opus,) = prepare(data, label="wav44st", encode="opus")
    assert flac.mime == "audio/flac"
    assert sniff(flac.audio()) == "flac"
    assert opus.mime == "audio/ogg"
    assert probe(opus.audio()).codec == "opus"
    assert len(data) / flac.bytes > 5
    assert len(data) / opus.bytes > 25
    for part in (flac, opus):
        assert _decode_seconds(part.audio()) == pytest.approx(3.691, rel=0.02)


def test_reencoding_is_reproducible() -> None:
    data = (DATA / "s00_en_aiff.aiff").read_bytes()
    assert prepare(data, label="a")[0].data_uri == prepare(data, label="a")[0].data_uri
    assert prepare(data, label="a", encode="opus") == prepare(data, label="a", encode="opus")


# --------------------------------------------------------------------------- encode modes


def test_encode_original_keeps_odd_wav_but_converts_refused(tmp_path: Path) -> None:
    mulaw = mulaw_wav(tmp_path / "phone.wav").read_bytes()
    (kept,) = prepare(mulaw, label="phone.wav", encode="original")
    assert kept.audio() == mulaw
    assert kept.mime == "audio/wav"
    assert not kept.reencoded
    (converted,) = prepare((DATA / "s00_en_caf.caf").read_bytes(), label="c", encode="original")
    assert converted.mime == "audio/flac"
    assert converted.reencoded


@pytest.mark.parametrize(("encode", "mime"), [("flac", "audio/flac"), ("opus", "audio/ogg")])
def test_encode_flac_and_opus_always_reencode(encode: Any, mime: str) -> None:
    data = (DATA / "s02_en_mp3.mp3").read_bytes()
    (part,) = prepare(data, label="mp3", encode=encode)
    assert part.mime == mime
    assert part.reencoded
    info = probe(part.audio())
    assert info.channels == 1
    assert part.duration_s == pytest.approx(4.15, rel=0.03)


@pytest.mark.parametrize(
    "kwargs",
    [{"encode": "mp3"}, {"max_part_seconds": 0}, {"max_request_bytes": 100}],
)
def test_bad_options_are_configuration_errors(kwargs: Any) -> None:
    with pytest.raises(ConfigurationError):
        prepare((DATA / "s11_en_wav.wav").read_bytes(), label="x", **kwargs)


# --------------------------------------------------------------------------- nasty files


@pytest.mark.parametrize(
    ("make", "name", "code", "reason"),
    [
        (empty_file, "empty.wav", "empty_file", "empty"),
        (text_file, "notes.wav", "unreadable_audio", "text"),
        (truncated_wav, "cut.wav", "unreadable_audio", "truncated"),
        (truncated_mp3, "cut.mp3", "unreadable_audio", "truncated"),
        (header_only_wav, "header.wav", "empty_file", "no audio"),
        (video_without_audio, "silent film.mp4", "no_audio_stream", "no audio stream"),
    ],
)
def test_bad_files_are_named_audio_errors(
    tmp_path: Path, make: Any, name: str, code: str, reason: str
) -> None:
    path = make(tmp_path / name)
    with pytest.raises(AudioError) as info:
        prepare(to_source(path).read() if path.stat().st_size else b"", label=path.name)
    assert info.value.code == code
    assert path.name in str(info.value)
    assert reason in str(info.value)
    assert info.value.error_code == code


def test_empty_file_fails_at_read_and_hash(tmp_path: Path) -> None:
    source = to_source(empty_file(tmp_path / "e.mp3"))
    for call in (source.read, lambda: sha256_of(source), lambda: probe(source)):
        with pytest.raises(AudioError, match=r"e\.mp3") as info:
            call()
        assert info.value.code == "empty_file"


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    source = to_source(tmp_path / "nope.wav")  # cheap: no error yet
    assert source.kind == "path"
    for call in (source.read, source.stat_key, lambda: sha256_of(source), lambda: probe(source)):
        with pytest.raises(AudioError, match=r"nope\.wav: file not found") as info:
            call()
        assert info.value.code == "file_not_found"


def test_directory_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as info:
        to_source(tmp_path).read()
    assert info.value.code == "unsupported_input"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_is_permission_denied(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "locked.wav", to_int16(tone(0.5)))
    path.chmod(0)
    with pytest.raises(AudioError) as info:
        to_source(path).read()
    assert info.value.code == "permission_denied"


def test_truncated_header_promising_audio_with_none_present() -> None:
    data = wav_bytes(np.zeros(0, dtype=np.int16), declared_data_bytes=32000)
    with pytest.raises(AudioError, match="truncated") as info:
        prepare(data, label="x.wav")
    assert info.value.code == "unreadable_audio"


@pytest.mark.parametrize(
    ("make", "name", "mime"),
    [(flac_file, "really flac.mp3", "audio/flac"), (mp3_file, "really mp3.wav", "audio/mpeg")],
)
def test_wrong_extensions_follow_the_content(
    tmp_path: Path, make: Any, name: str, mime: str
) -> None:
    data = make(tmp_path / name).read_bytes()
    (part,) = prepare(data, label=name)
    assert part.mime == mime
    assert part.audio() == data
    assert probe(tmp_path / name).mime == mime


@pytest.mark.parametrize(
    ("make", "seconds"),
    [
        (mulaw_wav, 3.0),
        (alaw_wav, 3.0),
        (wav_6ch_24bit, 3.0),
        (float_wav, 3.0),
        (unfinished_wav, 3.0),
    ],
)
def test_odd_wavs_are_reencoded(tmp_path: Path, make: Any, seconds: float) -> None:
    path = make(tmp_path / "odd.wav")
    assert probe(path).accepted is False
    (part,) = prepare(path.read_bytes(), label=path.name)
    assert part.mime == "audio/flac"
    assert part.reencoded
    info = probe(part.audio())
    assert (info.sample_rate, info.channels) == (16000, 1)
    assert _decode_seconds(part.audio()) == pytest.approx(seconds, rel=0.02)


def test_garbage_behind_a_valid_header_is_unreadable() -> None:
    head = (DATA / "s00_en_flac.flac").read_bytes()[:200]
    garbage = np.random.default_rng(3).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    with pytest.raises(AudioError) as info:
        prepare(head + garbage, label="bad.flac")
    assert info.value.code == "unreadable_audio"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        [
            b"",
            b"RIFF\x00\x00\x00\x00WAVE",
            b"fLaC",
            b"OggS",
            b"ID3\x04\x00\x00\x00\x00\x00\x00",
            b"\xff\xfb\x90\x64",
        ]
    ),
    st.binary(max_size=600),
)
def test_prepare_only_ever_raises_audio_errors(magic: bytes, body: bytes) -> None:
    codes = {"empty_file", "unreadable_audio", "no_audio_stream"}
    parts: list[Part] = []
    code: Any = None
    try:
        parts = prepare(magic + body, label="random")
    except AudioError as exc:
        code = exc.code
    assert code in codes or (parts and all(sniff(p.audio()) in ACCEPTED for p in parts))


# --------------------------------------------------------------------------- long audio


def test_thirty_minutes_is_split_at_quiet_points(
    long30: tuple[Path, SpeechLike], long30_parts: list[Part]
) -> None:
    _, signal = long30
    _check_split(long30_parts, signal)
    assert all(p.mime == "audio/flac" for p in long30_parts)


def test_twelve_minutes_under_25mb_is_split_by_duration(long12: tuple[Path, SpeechLike]) -> None:
    path, signal = long12
    data = path.read_bytes()
    assert request_bytes(len(data), "audio/wav") < MAX_REQUEST_BYTES  # bytes alone would pass
    parts = prepare(data, label=path.name)
    _check_split(parts, signal)
    # with the limit raised, the same file goes as it is
    (whole,) = prepare(data, label=path.name, max_part_seconds=900)
    assert whole.audio() == data
    assert whole.duration_s == pytest.approx(720.0)


def test_parts_obey_small_limits(tmp_path: Path) -> None:
    signal = speech_like(200.0, seed=4)
    data = wav_bytes(signal.samples)
    parts = prepare(data, label="x", max_part_seconds=60.0, max_request_bytes=400_000)
    _check_split(parts, signal, max_s=60.0)
    for part in parts:
        _fits(part, max_bytes=400_000, max_s=60.0)


def test_a_part_too_big_for_flac_falls_back_to_opus() -> None:
    noise = np.random.default_rng(5).normal(0, 0.3, RATE * 30).astype(np.float32)
    data = wav_bytes(to_int16(noise))
    (part,) = prepare(data, label="noise", max_request_bytes=700_000)
    assert part.mime == "audio/ogg"
    assert request_bytes(part.bytes, part.mime) <= 700_000
    # encode="flac" never switches codec: it splits instead
    parts = prepare(data, label="noise", encode="flac", max_request_bytes=700_000)
    assert len(parts) >= 2
    assert {p.mime for p in parts} == {"audio/flac"}
    assert sum(p.duration_s or 0 for p in parts) == pytest.approx(30.0, rel=0.01)


def test_split_part_cuts_in_a_quiet_middle() -> None:
    signal = speech_like(90.0, seed=6)
    (part,) = prepare(wav_bytes(signal.samples), label="x", encode="flac")
    shifted = Part(part.data_uri, part.duration_s, 100.0, part.bytes, part.mime, True)
    first, second = split_part(shifted, label="x")
    assert first.start_s == 100.0
    assert second.start_s == pytest.approx(100.0 + (first.duration_s or 0), abs=1e-3)
    assert 90.0 * 0.3 < (first.duration_s or 0) < 90.0 * 0.7
    assert signal.in_gap(second.start_s - 100.0, slack=0.01)
    assert (first.duration_s or 0) + (second.duration_s or 0) == pytest.approx(90.0, rel=0.01)
    (opus_half, _) = split_part(part, label="x", encode="opus")
    assert opus_half.mime == "audio/ogg"


def test_split_part_leaves_short_parts_alone() -> None:
    (part,) = prepare((DATA / "s00_en_flac.flac").read_bytes(), label="x")
    assert split_part(part, label="x") == [part]


# --------------------------------------------------------------------------- inputs


def test_paths_relative_home_unicode_and_symlinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (DATA / "s11_en_wav.wav").read_bytes()
    odd = tmp_path / "réunion d’équipe 会議 #1.wav"
    odd.write_bytes(data)
    link = symlink_to(odd, tmp_path / "link to clip.wav")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for value in (odd, str(odd), odd.name, f"~/{odd.name}", link, str(link), odd.as_uri()):
        source = to_source(value)
        assert source.kind == "path"
        assert source.read() == data
        assert sha256_of(source) == hashlib.sha256(data).hexdigest()
        key = source.stat_key()
        assert key is not None
        assert key[0] == str(odd.resolve())
        assert key[1] == len(data)
    assert to_source(f"~/{odd.name}").label == str(odd)


def test_stat_key_changes_when_the_file_does(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", to_int16(tone(0.5)))
    before = to_source(path).stat_key()
    write_wav(path, to_int16(tone(0.7)))
    os.utime(path, ns=(1, 1))
    assert to_source(path).stat_key() != before


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
def test_stat_key_with_a_run_s_resolved_directories_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """A run shares resolved directories between rows; the keys stay those of realpath."""
    real = tmp_path / "real"
    real.mkdir()
    write_wav(real / "a.wav", to_int16(tone(0.2)))
    (tmp_path / "link_dir").symlink_to(real)
    (real / "link.wav").symlink_to(real / "a.wav")
    monkeypatch.chdir(tmp_path)
    fspath = local_path(value.format(t=tmp_path))
    assert fspath is not None
    key = path_stat_key(fspath)
    assert key[0] == os.path.realpath(real / "a.wav")
    assert key[1] == (real / "a.wav").stat().st_size
    dirs: dict[str, str] = {}
    assert path_stat_key(str(real / "a.wav"), dirs)[0] == key[0]  # a directory resolved
    assert path_stat_key(fspath, dirs) == key
    assert to_source(value.format(t=tmp_path)).stat_key(dirs) == key
    with pytest.raises(AudioError) as info:
        path_stat_key(str(real / "gone.wav"), dirs)
    assert info.value.code == "file_not_found"


def test_local_path_takes_only_str_paths() -> None:
    assert local_path("a//b.wav") == str(Path("a//b.wav"))
    assert local_path(" clip.wav ") == " clip.wav "
    for value in ("", "  ", "data:audio/wav;base64,AAAA", "s3://b/a.wav", "file:///a.wav", b"x"):
        assert local_path(value) is None


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_bytes_like_values(kind: Any) -> None:
    data = (DATA / "s02_en_mp3.mp3").read_bytes()
    source = to_source(kind(data))
    assert source.kind == "bytes"
    assert source.label == f"<bytes len={len(data)}>"
    assert source.read() == data
    assert isinstance(source.read(), bytes)
    assert source.stat_key() is None
    assert source.identity() is None
    assert sha256_of(source) == hashlib.sha256(data).hexdigest()


def test_bytearray_is_copied_at_creation() -> None:
    buf = bytearray((DATA / "s11_en_wav.wav").read_bytes())
    source = to_source(buf)
    buf[:4] = b"XXXX"
    assert source.read()[:4] == b"RIFF"


def test_data_uri_is_decoded_and_its_mime_ignored() -> None:
    data = (DATA / "s02_en_mp3.mp3").read_bytes()
    uri = "data:audio/wav;base64," + base64.b64encode(data).decode()  # lies: it is mp3
    source = to_source(uri)
    assert source.kind == "bytes"
    assert "data URI" in source.label
    assert source.read() == data
    assert sha256_of(source) == hashlib.sha256(data).hexdigest()  # the original bytes
    (part,) = prepare(source.read(), label=source.label)
    assert part.data_uri == data_uri(data, "audio/mpeg")


def test_data_uri_encodings() -> None:
    data = bytes(range(250, 256)) * 3
    urlsafe = base64.urlsafe_b64encode(data).decode()
    assert "-" in urlsafe or "_" in urlsafe
    assert to_source(f"data:audio/wav;base64,{urlsafe}").read() == data
    assert to_source("data:audio/wav,%00%01abc").read() == b"\x00\x01abc"
    with pytest.raises(AudioError, match="base64 is malformed") as info:
        to_source("data:audio/wav;base64,AAAAA").read()
    assert info.value.code == "unsupported_input"


def test_malformed_data_uri() -> None:
    with pytest.raises(AudioError) as info:
        to_source("data:audio/wav;base64").read()
    assert info.value.code == "unsupported_input"


def test_https_url_is_passed_through_untouched() -> None:
    url = "https://user:secret@example.com/audio/clip.mp3?X-Amz-Signature=abc#t"
    source = to_source(url)
    assert source.kind == "url"
    assert source.passthrough
    assert source.url == url
    assert "secret" not in source.label
    assert "abc" not in source.label
    assert source.identity() == f"url:{url}"
    assert sha256_of(source) == hashlib.sha256(f"url:{url}".encode()).hexdigest()
    info = probe(source)  # no download
    assert (info.format, info.mime, info.bytes, info.accepted) == ("mp3", "audio/mpeg", 0, True)


def test_urls_and_data_uris_tolerate_surrounding_whitespace(tmp_path: Path) -> None:
    assert to_source("  https://example.com/a.wav\n").url == "https://example.com/a.wav"
    assert to_source(" data:audio/wav;base64,AAAA ").read() == b"\x00\x00\x00"
    spaced = tmp_path / " spaced .wav "
    spaced.write_bytes(b"x")
    assert to_source(str(spaced)).read() == b"x"  # paths are taken as written


def test_fetch_urls_downloads_over_http(http_dir: tuple[str, Path]) -> None:
    base, root = http_dir
    data = (DATA / "s05_en_m4a.m4a").read_bytes()
    (root / "clip.m4a").write_bytes(data)
    source = to_source(f"{base}/clip.m4a", fetch_urls=True)
    assert source.kind == "url"
    assert not source.passthrough
    assert source.read() == data
    assert sha256_of(source) == hashlib.sha256(data).hexdigest()
    assert probe(source).format == "m4a"
    with pytest.raises(AudioError) as info:
        to_source(f"{base}/missing.wav", fetch_urls=True).read()
    assert info.value.code == "file_not_found"


def test_fetch_failure_is_fetch_failed() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(AudioError) as info:
        to_source(f"http://127.0.0.1:{port}/x.wav", fetch_urls=True).read()
    assert info.value.code == "fetch_failed"


def test_fsspec_memory_urls() -> None:
    import fsspec

    data = (DATA / "s01_en_flac.flac").read_bytes()
    url = f"memory://audio-{uuid.uuid4().hex}/clip.flac"
    with fsspec.open(url, "wb") as f:
        f.write(data)
    try:
        source = to_source(url)
        assert source.kind == "fsspec"
        assert source.stat_key() is None
        assert source.read() == data
        assert sha256_of(source) == hashlib.sha256(data).hexdigest()
        info = probe(source)
        assert (info.format, info.bytes) == ("flac", len(data))
        assert info.duration_s == pytest.approx(3.974, rel=0.01)
        with pytest.raises(AudioError) as err:
            to_source(url + ".missing").read()
        assert err.value.code == "file_not_found"
    finally:
        fsspec.filesystem("memory").rm(url)


def test_fsspec_missing_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(AudioError, match="pip install fsspec s3fs") as info:
        to_source("s3://bucket/a.wav")
    assert info.value.code == "unsupported_input"


def test_unknown_url_scheme() -> None:
    with pytest.raises(AudioError, match="unknown URL scheme") as info:
        to_source("nosuchproto://bucket/a.wav")
    assert info.value.code == "unsupported_input"


def test_hugging_face_bytes_dict() -> None:
    data = (DATA / "s03_en_ogg.ogg").read_bytes()
    source = to_source({"bytes": data, "path": "train/s03.ogg"})
    assert source.kind == "bytes"
    assert source.label == "s03.ogg (bytes)"
    assert source.read() == data


def test_hugging_face_path_dict(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "p.wav", to_int16(tone(0.5)))
    source = to_source({"bytes": None, "path": str(path)})
    assert source.kind == "path"
    assert source.read() == path.read_bytes()


@pytest.mark.parametrize("layout", ["mono", "channels_first", "channels_last", "float64"])
def test_hugging_face_array_dict(layout: str) -> None:
    mono = tone(2.0, 22050)
    array: Any = {
        "mono": mono,
        "channels_first": np.stack([mono, mono]),
        "channels_last": np.stack([mono, mono]).T,
        "float64": mono.astype(np.float64),
    }[layout]
    source = to_source({"array": array, "sampling_rate": 22050, "path": None})
    assert source.kind == "array"
    data = source.read()
    assert sniff(data) == "wav"
    info = probe(data)
    assert info.sample_rate == 22050
    assert info.duration_s == pytest.approx(2.0)
    assert info.channels == (1 if array.ndim == 1 else 2)
    assert sha256_of(source) == sha256_of(to_source({"array": array, "sampling_rate": 22050}))
    (part,) = prepare(data, label=source.label)
    assert part.audio() == data


def test_hugging_face_array_with_nan_and_clipping() -> None:
    array = np.array([0.0, np.nan, 2.0, -2.0, np.inf] * 1000, dtype=np.float32)
    data = to_source({"array": array, "sampling_rate": 16000}).read()
    pcm = np.frombuffer(data[44:], dtype="<i2")
    assert pcm.max() == 32767
    assert pcm.min() == -32767
    assert pcm[1] == 0


@pytest.mark.parametrize(
    "value",
    [
        {"path": None},
        {"array": [0.1], "sampling_rate": None},
        {"bytes": 12},
        {"array": np.zeros((2, 2, 2)), "sampling_rate": 8000},
    ],
)
def test_bad_hugging_face_dicts(value: Any) -> None:
    with pytest.raises(AudioError) as info:
        to_source(value)
    assert info.value.code == "unsupported_input"


def test_empty_array_is_empty_file() -> None:
    with pytest.raises(AudioError) as info:
        to_source({"array": np.zeros(0, np.float32), "sampling_rate": 16000}).read()
    assert info.value.code == "empty_file"


@pytest.mark.parametrize("value", [None, float("nan"), np.float64("nan"), pd.NA, pd.NaT])
def test_na_values(value: Any) -> None:
    source = to_source(value)
    assert source.kind == "na"
    assert probe(source) == AudioInfo(None, None, None, 0, None, None, False, None)
    with pytest.raises(ValueError, match="NA"):
        source.read()
    with pytest.raises(ValueError, match="NA"):
        sha256_of(source)


@pytest.mark.parametrize(
    ("value", "name"),
    [(42, "int"), ([b"x"], "list"), (3.5, "float"), ("", "str"), (np.zeros(3), "ndarray")],
)
def test_unsupported_values_name_their_type(value: Any, name: str) -> None:
    with pytest.raises(AudioError) as info:
        to_source(value)
    assert info.value.code == "unsupported_input"
    if name != "str":
        assert name in str(info.value)


def test_creating_a_source_reads_nothing(tmp_path: Path) -> None:
    # a path that does not exist yet, an unreachable URL, a broken data URI:
    # all fine until read
    to_source(tmp_path / "later.wav")
    to_source("https://127.0.0.1:9/never.wav", fetch_urls=True)
    to_source("data:audio/wav;base64,@@@@")
    source = to_source(Path("x.wav"))
    assert isinstance(source, Source)
    assert source.size_hint() is None


def test_size_hints(tmp_path: Path) -> None:
    data = (DATA / "s11_en_wav.wav").read_bytes()
    assert to_source(DATA / "s11_en_wav.wav").size_hint() == len(data)
    assert to_source(data).size_hint() == len(data)
    uri_hint = to_source(data_uri(data, "audio/wav")).size_hint()
    assert uri_hint is not None
    assert abs(uri_hint - len(data)) < 100
    array_source = to_source({"array": np.zeros(1000, np.float32), "sampling_rate": 8000})
    assert array_source.size_hint() == len(array_source.read())
    assert to_source("https://example.com/a.wav").size_hint() is None


# --------------------------------------------------------------------------- sniff, mime


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"RF64\xff\xff\xff\xffWAVEds64", "wav"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", None),
        (b"ID3\x04\x00\x00\x00\x00\x00\x05" + b"\x00" * 5 + b"fLaC\x00\x00\x00\x22", "flac"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xf1\x50\x80", "aac"),
        (b"ID3\x04\x00\x00\x00\x00\x7f\x7f", "mp3"),  # tag longer than the head
        (b"\xff\xfd\x90\x00" + b"\x00" * 413 + b"\xff\xfd\x90\x00", "mp3"),  # MPEG-1 layer II
        (b"\xff\xfb\x90\x64" + b"\x00" * 413 + b"\xff\xfb\x90\x64", "mp3"),  # MPEG-1 layer III
        (b"\xff\xfb\x90\x64" + b"\x00" * 413 + b"JUNK", None),  # no second frame
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "aac"),
        (b"OggS\x00\x02", "ogg"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", "matroska"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "webm"),
        (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00", "m4a"),
        (b"\x00\x00\x00\x18ftypdash\x00\x00\x00\x00", "mp4"),
        (b"\x00\x00\x00\x18ftyp3gp4\x00\x00\x00\x00", "3gp"),
        (b"FORM\x00\x00\x00\x00AIFC", "aiff"),
        (b"caff\x00\x01\x00\x00", "caf"),
        (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"), "wma"),
        (b".snd\x00\x00\x00\x18", "au"),
        (b"#!AMR\n", "amr"),
        (b"hello, this is text", None),
        (b"", None),
        (b"\xff", None),
    ],
)
def test_sniff_magic_bytes(head: bytes, fmt: str | None) -> None:
    assert sniff(head) == fmt


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            b"",
            b"ID3\x03\x00\x00",
            b"\xff\xfb",
            b"\xff\xf1",
            b"\x1a\x45\xdf\xa3",
            b"RIFF",
            b"\x00\x00\x00\x20ftyp",
        ]
    ),
    st.binary(max_size=1024),
)
def test_sniff_never_raises(prefix: bytes, body: bytes) -> None:
    result = sniff(prefix + body)
    assert result is None or isinstance(result, str)
    assert sniff(memoryview(prefix + body)) == result


def test_mime_for() -> None:
    assert {f: mime_for(f) for f in MIME_OF} == MIME_OF
    assert mime_for("mpga") == mime_for("mpeg") == "audio/mpeg"
    assert mime_for("nonsense") == mime_for(None) == "application/octet-stream"


def test_data_uri_and_request_bytes() -> None:
    uri = data_uri(b"\x00\x01\x02\x03", "audio/wav")
    assert uri == "data:audio/wav;base64,AAECAw=="
    assert request_bytes(4, "audio/wav") == len(uri) + audio.REQUEST_OVERHEAD_BYTES


# --------------------------------------------------------------------------- texts


def test_looks_cut_thresholds() -> None:
    assert not looks_cut("word " * 1000, 600.0)
    assert looks_cut("word " * 1400, 600.0)
    assert looks_cut("a" * 7000, None)
    assert looks_cut("会議" * 950, 600.0)  # 1,900 CJK characters, about 1,900 tokens
    assert not looks_cut("会議" * 300, 600.0)
    assert not looks_cut("", None)


@given(st.text(), st.integers(min_value=0, max_value=60))
def test_tail_words_is_a_short_suffix(text: str, n: int) -> None:
    tail = tail_words(text, n)
    normal = " ".join(text.split())
    assert normal.endswith(tail)
    assert len(tail.split()) <= n
    assert len(tail) <= 12 * n
    if len(text.split()) <= n and len(normal) <= 12 * n:
        assert tail == normal


@given(st.lists(st.text(alphabet="ab \n", max_size=12), max_size=6))
def test_join_texts_single_spaces_in_order(texts: list[str]) -> None:
    joined = join_texts(texts)
    assert joined == " ".join(t.strip() for t in texts if t.strip())
    assert joined.split() == [w for t in texts for w in t.split()]


@given(
    st.one_of(st.none(), st.text(alphabet="xy ", max_size=400)),
    st.one_of(st.none(), st.text(alphabet="uv ", max_size=400)),
    st.integers(min_value=1, max_value=250),
)
def test_join_prompt_keeps_user_first_and_stays_short(
    tail: str | None, user: str | None, max_words: int
) -> None:
    prompt = join_prompt(tail, user, max_words=max_words)
    if not (tail or "").split() and not (user or "").split():
        assert prompt is None
        return
    assert prompt is not None
    words = prompt.split()
    assert len(words) <= max_words
    user_words = (user or "").split()[:max_words]
    assert words[: len(user_words)] == user_words
    rest = words[len(user_words) :]
    assert rest == ((tail or "").split()[-len(rest) :] if rest else [])


def test_join_prompt_default_size() -> None:
    prompt = join_prompt(tail_words("one two three " * 50), "Acme Corp, Kubernetes")
    assert prompt is not None
    assert prompt.startswith("Acme Corp, Kubernetes ")
    assert prompt.endswith("one two three")
    assert len(prompt.split()) == 3 + 30
    assert join_prompt(None, None) is None
    assert join_prompt("", "  ") is None
    assert len(join_prompt("w " * 500, "u " * 500).split()) == 200  # type: ignore[union-attr]


def test_duration_math_of_limits() -> None:
    # a 600 s part of 16 kHz mono FLAC can never exceed the request limit
    assert request_bytes(600 * RATE * 2, "audio/flac") < MAX_REQUEST_BYTES
    assert math.isclose(MAX_REQUEST_SECONDS, 1500.0)


def test_plain_pcm_wav_is_sent_as_is_and_a_cut_one_refused() -> None:
    """A complete 16-bit PCM WAV goes byte for byte with its header's length; the same
    file cut short, or its header alone, is refused before any request."""
    data = (DATA / "s00_en_wav.wav").read_bytes()
    (part,) = prepare(data, label="plain.wav")
    assert part.audio() == data
    assert not part.reencoded
    assert part.duration_s == pytest.approx(3.691, abs=0.01)
    info = probe(data)
    assert (info.format, info.codec, info.accepted) == ("wav", "pcm_s16le", True)
    with pytest.raises(AudioError, match="truncated") as cut:
        prepare(data[: len(data) // 2], label="cut.wav")
    assert cut.value.code == "unreadable_audio"
    with pytest.raises(AudioError) as bare:
        prepare(b"RIFF\x00\x00\x00\x00WAVE", label="bare.wav")
    assert bare.value.code in ("empty_file", "unreadable_audio")


def test_source_open_reads_in_place_and_names_errors(tmp_path: Path) -> None:
    data = (DATA / "s02_en_mp3.mp3").read_bytes()
    for value in (DATA / "s02_en_mp3.mp3", data, data_uri(data, "audio/mpeg")):
        with to_source(value).open() as f:
            assert f.read(4) == data[:4]
            f.seek(0, io.SEEK_END)
            assert f.tell() == len(data)
    with pytest.raises(AudioError) as info, to_source(tmp_path / "gone.mp3").open():
        pass
    assert info.value.code == "file_not_found"


def test_importing_the_package_does_not_load_pyav() -> None:
    """PyAV (FFmpeg, ~16 MB) loads only when audio is decoded, probed or encoded."""
    code = (
        "import sys, cf_transcribe_pandas\n"
        "from cf_transcribe_pandas.audio import sha256_of, to_source\n"
        f"sha256_of(to_source({str(DATA / 's00_en_wav.wav')!r}))\n"
        "assert 'av' not in sys.modules, 'av imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
