"""Tests for the Parquet result store: real files in tmp_path, real processes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cf_transcribe_pandas._version import __version__
from cf_transcribe_pandas.cache import (
    CACHE_SCHEMA_VERSION,
    RESULT_SCHEMA,
    STALE_TEMP_SECONDS,
    Cache,
    CachedRow,
    KeyMaker,
    cache_key,
    default_cache_dir,
)

MODEL = "openai/gpt-4o-transcribe"
REPO = Path(__file__).resolve().parents[1]


def sha(i: int | str) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def make_row(i: int | str, text: str | None = None, **kw: object) -> CachedRow:
    return CachedRow.new(sha(i), text if text is not None else f"transcript {i}", model=MODEL, **kw)  # type: ignore[arg-type]


def part_files(cache: Cache, sub: str = "results") -> list[Path]:
    directory = cache.path / sub
    return sorted(directory.glob("*.parquet")) if directory.exists() else []


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def run_python(code: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    _out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()


# Writes rows "<tag>-0" ... "<tag>-<n-1>" in order, flush_rows at a time.
WRITER_SCRIPT = """
import sys, time, hashlib
from cf_transcribe_pandas.cache import Cache, CachedRow
path, tag = sys.argv[1], sys.argv[2]
n, batch, pause = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
cache = Cache(path)
with cache.writer(flush_rows=batch, flush_seconds=None) as w:
    for i in range(n):
        s = hashlib.sha256(f"{tag}-{i}".encode()).hexdigest()
        w.add(CachedRow.new(s, f"{tag} {i}", model="openai/gpt-4o-transcribe"))
        if pause and (i + 1) % batch == 0:
            time.sleep(pause)
"""


def tagged_keys(tag: str, n: int) -> list[str]:
    return [
        cache_key(sha(f"{tag}-{i}"), model=MODEL, language=None, prompt=None, temperature=None)
        for i in range(n)
    ]


# ------------------------------------------------------------------------ keys


def test_cache_key_is_sha256_of_canonical_json() -> None:
    a = "a" * 64
    expected_json = (
        '{"encode":"auto","language":null,"model":"openai/gpt-4o-transcribe",'
        f'"prompt":null,"sha256":"{a}","temperature":null,"v":{CACHE_SCHEMA_VERSION}}}'
    )
    key = cache_key(a, model=MODEL, language=None, prompt=None, temperature=None)
    assert key == hashlib.sha256(expected_json.encode()).hexdigest()
    # Pinned: a change here orphans every cache in the world; bump CACHE_SCHEMA_VERSION instead.
    assert key == "2e1c5b3eb9fa42bb0861fc5e112da675880d9080e4f60be2c062c06319adbbf5"
    key2 = cache_key(
        a, model=MODEL, language="fr", prompt="Café, naïve — ok", temperature=0.2, encode="opus"
    )
    assert key2 == "503d691d32022aafb535047408ba684fd8a2738abe20e148a6e78a299ed70bc1"


@pytest.mark.parametrize(
    "options", [None, {"task": None}, {"task": "translate", "timestamps": "word"}]
)
@pytest.mark.parametrize("temperature", [None, 0, -0.0, 0.1 + 0.2, 1e-7, 2])
@pytest.mark.parametrize(
    ("language", "prompt"),
    [(None, None), ("en", ""), ("dé", 'Say "hi"\n\t\x01 \\ 😀 café'), (None, "</script>")],
)
def test_a_run_s_keys_are_sha256_of_the_canonical_json(
    language: str | None,
    prompt: str | None,
    temperature: float | None,
    options: dict[str, object] | None,
) -> None:
    """KeyMaker writes the shared parameters once and fills in each row's: its text must be
    exactly what json.dumps(sort_keys=True) makes of the whole payload, escapes included."""
    extra = {k: v for k, v in (options or {}).items() if v is not None}
    maker = KeyMaker(model="m\u2603", temperature=temperature, encode="flac", options=options)
    for digest in (sha(3), sha(3).upper(), 'not "hex" é'):
        payload: dict[str, object] = {
            "v": CACHE_SCHEMA_VERSION,
            "sha256": digest.lower() if digest == sha(3).upper() else digest,
            "model": "m\u2603",
            "language": language,
            "prompt": prompt,
            "temperature": None if temperature is None else round(float(temperature), 6) + 0.0,
            "encode": "flac",
        }
        if extra:
            payload["options"] = json.dumps(extra, sort_keys=True, separators=(",", ":"))
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        want = hashlib.sha256(text.encode("ascii")).hexdigest()
        assert maker.key(digest, language, prompt) == want
        assert (
            cache_key(
                digest,
                model="m\u2603",
                language=language,
                prompt=prompt,
                temperature=temperature,
                encode="flac",
                options=options,
            )
            == want
        )


def test_cache_key_is_the_same_in_a_fresh_process() -> None:
    params = {"model": MODEL, "language": "de", "prompt": "Grüße 你好", "temperature": 0.7}
    code = (
        "import json, sys; from cf_transcribe_pandas.cache import cache_key; "
        "p = json.loads(sys.argv[1]); print(cache_key(p.pop('sha'), **p))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps({"sha": sha(1), **params})],
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == cache_key(sha(1), **params)  # type: ignore[arg-type]


def test_each_parameter_changes_the_key() -> None:
    base: dict[str, object] = {
        "model": MODEL,
        "language": None,
        "prompt": None,
        "temperature": None,
        "encode": "auto",
    }
    variants: list[tuple[str, object]] = [
        ("model", "other/model"),
        ("language", "en"),
        ("prompt", ""),
        ("prompt", "names: Zoë"),
        ("temperature", 0.0),  # None means "not sent": a different request
        ("temperature", 0.5),
        ("encode", "opus"),
    ]
    keys = {cache_key(sha(1), **base)}  # type: ignore[arg-type]
    keys.add(cache_key(sha(2), **base))  # type: ignore[arg-type]
    for name, value in variants:
        keys.add(cache_key(sha(1), **{**base, name: value}))  # type: ignore[arg-type]
    assert len(keys) == 2 + len(variants)


def test_cache_key_normalizes_equivalent_values() -> None:
    def k(s: str, t: object) -> str:
        return cache_key(s, model=MODEL, language=None, prompt=None, temperature=t)  # type: ignore[arg-type]

    assert k(sha(1), None) == k(sha(1).upper(), None)
    assert k(sha(1), 0) == k(sha(1), 0.0) == k(sha(1), -0.0)
    assert k(sha(1), 0.1 + 0.2) == k(sha(1), 0.3)
    assert k(sha(1), 1) == k(sha(1), 1.0)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"temperature": True}, TypeError),
        ({"temperature": "0.5"}, TypeError),
        ({"temperature": float("nan")}, ValueError),
        ({"temperature": float("inf")}, ValueError),
        ({"model": None}, TypeError),
        ({"language": 5}, TypeError),
        ({"encode": None}, TypeError),
    ],
)
def test_cache_key_rejects_bad_values(kwargs: dict[str, object], error: type[Exception]) -> None:
    params: dict[str, object] = {"model": MODEL, "language": None, "prompt": None}
    params["temperature"] = None
    params.update(kwargs)
    with pytest.raises(error):
        cache_key(sha(1), **params)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cache_key("", model=MODEL, language=None, prompt=None, temperature=None)


params_strategy = st.fixed_dictionaries(
    {
        "sha256": st.sampled_from([sha(i) for i in range(3)]),
        "model": st.sampled_from([MODEL, "@cf/openai/whisper", "m"]),
        "language": st.none() | st.sampled_from(["en", "fr", ""]),
        "prompt": st.none() | st.text(max_size=8),
        "temperature": st.none() | st.integers(0, 10).map(lambda i: i / 10),
        "encode": st.sampled_from(["auto", "opus", "never"]),
    }
)


@settings(max_examples=300, deadline=None)
@given(a=params_strategy, b=params_strategy)
def test_keys_equal_exactly_when_params_equal(a: dict[str, object], b: dict[str, object]) -> None:
    def key(p: dict[str, object]) -> str:
        rest = {k: v for k, v in p.items() if k != "sha256"}
        return cache_key(str(p["sha256"]), **rest)  # type: ignore[arg-type]

    assert (key(a) == key(b)) == (a == b)
    assert key(a) == key(dict(a))
    assert len(key(a)) == 64


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CF_TRANSCRIBE_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CF_TRANSCRIBE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "cf-transcribe-pandas"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == tmp_path / ".cache" / "cf-transcribe-pandas"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_cache_dir() == tmp_path / "Library" / "Caches" / "cf-transcribe-pandas"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_cache_dir() == tmp_path / "local" / "cf-transcribe-pandas"


# ------------------------------------------------------------------------ rows


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    rows = [
        make_row(1),
        make_row(2, "Grüße, 你好 🎧\nsecond line", language="de", prompt="p", temperature=0.3),
        make_row(3, "", temperature=0.0, encode="opus", duration_s=12.25),
    ]
    with cache.writer() as w:
        for row in rows:
            w.add(row)
    got = cache.lookup(r.key for r in rows)
    assert got == {r.key: r for r in rows}
    assert got[rows[1].key].created_at.tzinfo is not None
    assert got[rows[0].key].version == __version__
    assert cache.lookup_texts([rows[1].key]) == {rows[1].key: rows[1].text}
    assert len(cache) == 3
    assert cache.contains(rows[0].key)
    assert rows[2].key in cache


def test_lookup_of_missing_keys_and_missing_dir(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "not-yet")
    assert cache.lookup([make_row(1).key]) == {}
    assert cache.lookup([]) == {}
    assert len(cache) == 0
    assert not cache.contains("x")
    assert cache.memo_get("/a.wav", 1, 1) is None
    assert not cache.path.exists()  # reading never creates the directory
    with cache.writer() as w:
        w.add(make_row(1))
    assert cache.lookup([make_row(2).key, "not-a-key"]) == {}
    assert (cache.path / "VERSION").read_text().strip() == str(CACHE_SCHEMA_VERSION)


def test_a_long_lived_cache_sees_what_others_do(tmp_path: Path) -> None:
    reader, other = Cache(tmp_path), Cache(tmp_path)
    rows = [make_row(i) for i in range(40)]
    with other.writer(flush_rows=10) as w:
        for row in rows[:20]:
            w.add(row)
    assert len(reader.lookup(r.key for r in rows)) == 20  # remembers those files' keys
    with other.writer(flush_rows=10) as w:
        for row in rows[20:]:
            w.add(row)
    assert reader.lookup([rows[35].key]) == {rows[35].key: rows[35]}  # new files are read
    other.compact()
    for row in rows:  # one-key lookups after the files it remembers were merged away
        assert reader.lookup([row.key]) == {row.key: row}
    assert len(reader.lookup_texts(r.key for r in rows)) == 40
    other.clear()
    assert reader.lookup(r.key for r in rows) == {}
    assert reader.memo_get("/a.wav", 1, 1) is None
    other.memo_put("/a.wav", 1, 1, sha(1))
    assert reader.memo_get("/a.wav", 1, 1) == sha(1)


def test_part_files_have_the_documented_schema(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with cache.writer() as w:
        w.add(make_row(1))
    (path,) = part_files(cache)
    table = pq.read_table(path)
    assert table.schema.equals(RESULT_SCHEMA, check_metadata=False)
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")


# ------------------------------------------------------------------------ writer


def test_writer_flushes_by_count(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    w = cache.writer(flush_rows=5, flush_seconds=None)
    for i in range(4):
        w.add(make_row(i))
    assert part_files(cache) == []
    assert w.pending == 4
    w.add(make_row(4))
    assert len(part_files(cache)) == 1  # written by add(), no flush() call
    assert w.pending == 0
    w.add_many([make_row(i) for i in range(5, 17)])
    assert len(part_files(cache)) == 2
    assert w.pending == 0
    w.close()
    assert w.rows_written == 17
    assert w.files_written == 2
    assert len(cache.lookup(make_row(i).key for i in range(17))) == 17


def test_writer_rows_read_back_as_written_whatever_their_created_at(tmp_path: Path) -> None:
    """Every kind of datetime reads back as the same instant, as Arrow reads it
    (naive is UTC); a row made now reads back as made now."""
    cache = Cache(tmp_path)
    paris = dt.timezone(dt.timedelta(hours=2))
    moments = [
        dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 1, 2, 3, 4, 5, 678901),  # naive
        dt.datetime(2026, 1, 2, 5, 4, 5, 678901, tzinfo=paris),
        dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=dt.timezone.utc),  # before the epoch
    ]
    rows = [
        CachedRow.new(f"{i:064X}", f"t{i}", model=MODEL, temperature=0.1 + 0.2, created_at=m)
        for i, m in enumerate(moments)
    ]
    with cache.writer(flush_rows=100, flush_seconds=None) as w:
        w.add_many(rows)
        before = dt.datetime.now(dt.timezone.utc)
        want = CachedRow.new("AB" * 32, "new", model=MODEL, language="fr", duration_s=1.5)
        after = dt.datetime.now(dt.timezone.utc)
        w.add(want)
    got = Cache(tmp_path).lookup([*(r.key for r in rows), want.key])
    for row, moment in zip(rows, moments, strict=True):
        as_utc = moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
        assert got[row.key] == dataclasses.replace(row, created_at=as_utc)
        assert got[row.key].temperature == 0.3
        assert got[row.key].sha256 == row.sha256.lower()
    new = got[want.key]
    assert before - dt.timedelta(milliseconds=1) <= new.created_at <= after
    assert new == CachedRow.new(
        "ab" * 32, "new", model=MODEL, language="fr", duration_s=1.5, created_at=new.created_at
    )


def test_a_cache_writes_again_after_its_directory_is_removed(tmp_path: Path) -> None:
    """A Cache makes its directories once; if they vanish (a clear or an rm from
    elsewhere) the next write makes them again instead of failing."""
    cache = Cache(tmp_path / "cache")
    with cache.writer(flush_rows=1, flush_seconds=None) as w:
        w.add(make_row(1))
        shutil.rmtree(tmp_path / "cache")
        w.add(make_row(2))
    cache.memo_put("/a.wav", 1, 2, sha(3))
    shutil.rmtree(tmp_path / "cache" / "memo")
    cache.memo_put("/b.wav", 1, 2, sha(4))
    fresh = Cache(tmp_path / "cache")
    assert set(fresh.lookup([make_row(1).key, make_row(2).key])) == {make_row(2).key}
    assert fresh.memo_get("/b.wav", 1, 2) == sha(4)
    assert (tmp_path / "cache" / "VERSION").exists()


def test_writer_flushes_by_time_without_new_rows(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    w = cache.writer(flush_rows=1000, flush_seconds=0.2)
    w.add(make_row(1))
    wait_for(lambda: len(part_files(cache)) == 1)
    assert cache.lookup([make_row(1).key])
    w.add(make_row(2))  # a second batch gets its own timer
    wait_for(lambda: len(part_files(cache)) == 2)
    w.close()
    assert w.files_written == 2


def test_background_writer_never_writes_in_add(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with cache.writer(flush_rows=3, flush_seconds=None, background=True) as w:
        for i in range(3):
            w.add(make_row(i))
        wait_for(lambda: len(part_files(cache)) == 1)
        w.add(make_row(3))
    assert len(cache.lookup(make_row(i).key for i in range(4))) == 4


def test_writer_close_flush_and_misuse(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    w = cache.writer(flush_seconds=None)
    assert w.flush() == 0
    w.add(make_row(1))
    assert w.flush() == 1
    w.add(make_row(2))
    w.close()
    w.close()  # idempotent
    assert w.closed
    assert w.files_written == 2
    assert len(cache.lookup([make_row(1).key, make_row(2).key])) == 2
    with pytest.raises(RuntimeError):
        w.add(make_row(3))
    with pytest.raises(TypeError):
        cache.writer().add({"key": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flush_rows"):
        cache.writer(flush_rows=0)
    with pytest.raises(ValueError, match="flush_seconds"):
        cache.writer(flush_seconds=0)


def test_writer_is_thread_safe(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    rows = [make_row(i) for i in range(2000)]
    with cache.writer(flush_rows=7, flush_seconds=0.05) as w:

        def work(part: list[CachedRow]) -> None:
            for row in part:
                w.add(row)

        threads = [threading.Thread(target=work, args=(rows[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert w.rows_written == 2000
    assert w.files_written >= 2000 // 7
    assert sum(pq.read_table(p).num_rows for p in part_files(cache)) == 2000
    assert cache.lookup(r.key for r in rows) == {r.key: r for r in rows}


def test_failed_write_keeps_rows_for_the_next_flush(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cache.path.mkdir()
    (cache.path / "results").write_text("a file where the directory should be")
    w = cache.writer(flush_seconds=None)
    w.add(make_row(1))
    with pytest.raises(OSError):  # noqa: PT011 - the errno differs by platform
        w.flush()
    assert w.pending == 1
    (cache.path / "results").unlink()
    w.close()
    assert cache.lookup([make_row(1).key])


def test_unclosed_writer_is_flushed_at_exit(tmp_path: Path) -> None:
    code = """
    import sys
    from cf_transcribe_pandas.cache import Cache, CachedRow
    w = Cache(sys.argv[1]).writer(flush_seconds=None)
    w.add(CachedRow.new("ab" * 32, "saved at exit", model="m"))
    """
    finish(run_python(code, str(tmp_path)))
    key = cache_key("ab" * 32, model="m", language=None, prompt=None, temperature=None)
    assert Cache(tmp_path).lookup([key])[key].text == "saved at exit"


# ------------------------------------------------------------------------ bad files


def test_bad_files_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = Cache(tmp_path)
    rows = [make_row(i) for i in range(10)]
    for part in (rows[:5], rows[5:]):  # two writers: two files
        with cache.writer() as w:
            w.add_many(part)
    results = cache.path / "results"
    good = part_files(cache)[0].read_bytes()
    name = "00000000000000000001-1-" + "0" * 32
    (results / f"{name}.parquet").write_bytes(good[: len(good) // 2])  # truncated
    (results / "empty.parquet").write_bytes(b"")
    (results / "table.parquet").write_text("key,text\nabc,hello\n")  # a CSV
    pq.write_table(pa.table({"a": [1, 2]}), results / "foreign.parquet")
    stale = results / f".{name[:-1]}1.parquet.tmp"
    stale.write_bytes(good)
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    (results / f".{name[:-1]}2.parquet.tmp").write_bytes(good[:10])  # being written now

    with caplog.at_level(logging.WARNING, logger="cf_transcribe_pandas"):
        got = cache.lookup(r.key for r in rows)
    assert got == {r.key: r for r in rows}
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all(r.name.startswith("cf_transcribe_pandas") for r in caplog.records)
    for bad in (f"{name}.parquet", "empty.parquet", "table.parquet", "foreign.parquet"):
        assert sum(bad in m for m in messages) == 1, (bad, messages)
    assert sum(stale.name in m for m in messages) == 1
    assert not any(f"{name[:-1]}2" in m for m in messages)  # a fresh temp is normal

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cf_transcribe_pandas"):
        assert len(cache.lookup(r.key for r in rows)) == 10
    assert not caplog.records  # warned once per file

    stats = cache.stats()
    assert (stats.rows, stats.files, stats.bad_files, stats.temp_files) == (10, 2, 4, 2)
    result = cache.compact()
    assert result.temp_files_removed == 1
    assert not stale.exists()
    # Foreign names are never merged or deleted; our truncated file is not readable, so kept too.
    left = {p.name for p in part_files(cache)}
    assert {"empty.parquet", "table.parquet", "foreign.parquet", f"{name}.parquet"} <= left
    assert len(cache.lookup(r.key for r in rows)) == 10


# ------------------------------------------------------------------------ processes


def test_two_processes_write_the_same_dir(tmp_path: Path) -> None:
    procs = [
        run_python(WRITER_SCRIPT, str(tmp_path), tag, "2000", "20", "0") for tag in ("p1", "p2")
    ]
    for proc in procs:
        finish(proc)
    cache = Cache(tmp_path)
    files = part_files(cache)
    # 200 batches of 20, merged as they came: whole files, every row at least once
    # (two processes merging the same files at once may leave duplicates).
    assert 1 < len(files) < 200
    sizes = [pq.read_table(path).num_rows for path in files]
    assert all(n % 20 == 0 for n in sizes)
    assert sum(sizes) >= 4000
    assert not list((tmp_path / "results").glob(".*"))
    keys = tagged_keys("p1", 2000) + tagged_keys("p2", 2000)
    got = cache.lookup_texts(keys)
    assert len(got) == 4000
    assert got[keys[2001]] == "p2 1"


def assert_prefix(found: set[str], keys: list[str]) -> int:
    """The rows of one sequential writer seen by a reader are a prefix of its keys."""
    n = len(found)
    assert found == set(keys[:n]), "a reader missed rows that were flushed before others"
    return n


def test_compaction_while_another_process_writes_loses_nothing(tmp_path: Path) -> None:
    n = 1000
    keys = tagged_keys("w", n)
    cache = Cache(tmp_path)
    proc = run_python(WRITER_SCRIPT, str(tmp_path), "w", str(n), "5", "0.01")
    merges = 0
    stop = threading.Event()
    errors: list[BaseException] = []

    def compact_loop() -> None:
        nonlocal merges
        try:
            while not stop.is_set():
                if cache.compact().files_before > 1:
                    merges += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    compactor = threading.Thread(target=compact_loop)
    compactor.start()
    seen = 0
    try:
        while proc.poll() is None:
            # Every lookup, at any moment, sees every row flushed before the others.
            seen = max(seen, assert_prefix(set(cache.lookup_texts(keys)), keys))
    finally:
        stop.set()
        compactor.join()
    finish(proc)
    assert not errors
    assert merges >= 3
    assert_prefix(set(cache.lookup_texts(keys)), keys)
    result = cache.compact()
    assert result.files_after == 1
    assert len(cache.lookup(keys)) == n
    assert len(cache) == n


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_kill_9_never_leaves_a_half_file(tmp_path: Path) -> None:
    proc = run_python(WRITER_SCRIPT, str(tmp_path), "k", "1000000", "20", "0")
    cache = Cache(tmp_path)
    wait_for(lambda: len(part_files(cache)) >= 30)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    rows = 0
    for path in part_files(cache):
        n = pq.read_table(path).num_rows  # whole files only: batches of 20, or merged ones
        assert n % 20 == 0
        rows += n
    keys = tagged_keys("k", rows + 40)
    assert_prefix(set(cache.lookup_texts(keys)), keys)


# ------------------------------------------------------------------------ duplicates


def test_duplicate_keys_resolve_deterministically(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    late = make_row(1, "late", created_at=t0 + dt.timedelta(seconds=5))
    early = make_row(1, "early", created_at=t0)
    first_file = make_row(2, "first file", created_at=t0)
    second_file = make_row(2, "second file", created_at=t0)
    first_row = make_row(3, "first row", created_at=t0)
    second_row = make_row(3, "second row", created_at=t0)
    with cache.writer() as w:
        w.add_many([late, first_file, first_row, second_row])
    with cache.writer() as w:
        w.add_many([early, second_file])
    expected = {early.key: "early", first_file.key: "first file", first_row.key: "first row"}

    def texts() -> dict[str, str]:
        return {k: r.text for k, r in cache.lookup(expected).items()}

    assert texts() == expected
    assert Cache(tmp_path).lookup_texts(expected) == expected
    assert cache.stats().rows == 3
    result = cache.compact()
    assert (result.files_before, result.files_after) == (2, 1)
    assert (result.rows_before, result.rows_after) == (6, 3)
    assert texts() == expected
    # A later writer's duplicate does not displace the earliest row.
    with cache.writer() as w:
        w.add(make_row(1, "even later"))
    assert texts() == expected


# ------------------------------------------------------------------------ memo


def test_memo_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    audio = tmp_path / "a.wav"
    entries: list[tuple[str | os.PathLike[str], int, int, str]] = [
        (audio, 100, 1_700_000_000_123_456_789, sha(1)),
        ("b.wav", 5, 7, sha(2)),
    ]
    assert cache.memo_put_many(entries) == 2
    assert cache.memo_put_many([]) == 0
    assert cache.memo_get(audio, 100, 1_700_000_000_123_456_789) == sha(1)
    assert cache.memo_get(str(audio), 100, 1_700_000_000_123_456_789) == sha(1)
    assert cache.memo_get(audio, 100, 1_700_000_000_123_456_790) is None  # mtime changed
    assert cache.memo_get(audio, 101, 1_700_000_000_123_456_789) is None  # size changed
    assert cache.memo_get(tmp_path / "b.wav", 5, 7) == sha(2)  # stored absolute
    queries: list[tuple[str | os.PathLike[str], int, int]] = [
        ("b.wav", 5, 7),
        (audio, 1, 1),
        (str(audio), 100, 1_700_000_000_123_456_789),
    ]
    assert cache.memo_get_many(queries) == {queries[0]: sha(2), queries[2]: sha(1)}
    cache.memo_put("b.wav", 5, 7, sha(3))  # the same file seen again with another hash
    assert cache.memo_get("b.wav", 5, 7) == sha(3)  # the latest wins
    cache.compact()
    assert len(part_files(cache, "memo")) == 1
    assert cache.memo_get("b.wav", 5, 7) == sha(3)
    assert cache.stats().memo_entries == 2


def test_memo_at_scale_is_one_pass(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    entries = [(f"/corpus/{i:06d}.flac", i, 10**18 + i) for i in range(20_000)]
    cache.memo_put_many((p, s, m, sha(i)) for i, (p, s, m) in enumerate(entries))
    cache.memo_put_many((p, s, m, sha(i)) for i, (p, s, m) in enumerate(entries[:100]))
    got = cache.memo_get_many([*entries, ("/corpus/new.flac", 1, 1)])
    assert len(got) == 20_000
    assert got[entries[12_345]] == sha(12_345)


# ------------------------------------------------------------------------ tools


def test_stats_export_clear(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    t0 = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    rows = [make_row(i, created_at=t0 + dt.timedelta(hours=i)) for i in range(6)]
    other = CachedRow.new(sha(9), "x", model="other", created_at=t0 - dt.timedelta(days=1))
    batches = [*rows, other, rows[0]]
    for start in range(0, 8, 2):  # four writers: four files
        with cache.writer() as w:
            w.add_many(batches[start : start + 2])
    cache.memo_put("/a.wav", 1, 2, sha(1))

    stats = cache.stats()
    assert stats.rows == 7
    assert stats.files == 4
    assert dict(stats.models) == {MODEL: 6, "other": 1}
    assert stats.oldest == other.created_at
    assert stats.newest == rows[5].created_at
    assert (stats.memo_entries, stats.memo_files, stats.bad_files) == (1, 1, 0)
    assert stats.bytes_on_disk > 0
    assert json.loads(json.dumps(stats.as_dict()))["models"]["other"] == 1

    out = tmp_path / "export.parquet"
    assert cache.export(out) == 7
    table = pq.read_table(out)
    assert table.column_names == [
        "key",
        "sha256",
        "model",
        "language",
        "prompt",
        "temperature",
        "encode",
        "text",
        "duration_s",
        "created_at",
        "version",
        "options",
        "detected_language",
        "segments",
    ]
    assert table["created_at"].to_pylist()[0] == other.created_at  # oldest first
    assert sorted(table["key"].to_pylist()) == sorted(r.key for r in [*rows, other])
    assert {p.name for p in tmp_path.iterdir()} == {"c", "export.parquet"}  # no temp left

    foreign = cache.path / "results" / "mine.txt"
    foreign.write_text("not the cache's")
    cleared = cache.clear()
    assert cleared.files_removed == 4 + 1 + 2  # results, memo, VERSION + README.txt
    assert cleared.kept == (foreign,)
    assert foreign.exists()
    assert cache.lookup(r.key for r in rows) == {}
    assert cache.stats().rows == 0
    foreign.unlink()
    cache.clear()
    assert not cache.path.exists()
    assert Cache(tmp_path / "never").clear().files_removed == 0


def test_compact_reports_and_keeps_rows(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    assert cache.compact().files_after == 0  # missing dir
    rows = [make_row(i) for i in range(30)]
    for start in range(0, 30, 3):  # ten writers: ten files
        with cache.writer() as w:
            w.add_many(rows[start : start + 3])
    assert cache.stats().files == 10
    result = cache.compact()
    assert (result.files_before, result.files_after) == (10, 1)
    assert (result.rows_before, result.rows_after) == (30, 30)
    again = cache.compact()
    assert (again.files_before, again.files_after) == (1, 1)
    assert cache.lookup(r.key for r in rows) == {r.key: r for r in rows}


def test_a_long_run_leaves_few_files_and_loses_no_row(tmp_path: Path) -> None:
    """Small part files are merged as they are written: 1,000 batches leave a few
    dozen files, and every row reads back, through a fresh Cache too."""
    cache = Cache(tmp_path)
    rows = [make_row(i) for i in range(5000)]
    with cache.writer(flush_rows=5, flush_seconds=None) as w:
        for row in rows:
            w.add(row)
    assert w.files_written == 1000
    files = part_files(cache)
    assert len(files) < 60
    assert sum(pq.read_table(p).num_rows for p in files) == 5000
    keys = [r.key for r in rows]
    assert Cache(tmp_path).lookup(keys) == {r.key: r for r in rows}
    assert len(cache) == 5000
    for i in range(0, 5000, 499):  # one-key lookups, as a run makes for rows hashed late
        assert cache.lookup_results([keys[i]]) == {keys[i]: (rows[i].text, None, MODEL, None, None)}
    assert not list((tmp_path / "results").glob(".*"))


def test_a_writer_merges_the_files_it_made_when_it_closes(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with cache.writer() as other:
        other.add(make_row("other"))
    (others,) = part_files(cache)
    rows = [make_row(i) for i in range(40)]
    w = cache.writer(flush_rows=4, flush_seconds=None)
    for start in range(0, 40, 4):
        w.add_many(rows[start : start + 4])
    assert len(part_files(cache)) == 1 + 10
    w.close()
    files = part_files(cache)
    assert len(files) == 2
    assert others in files  # another writer's file is left as it is
    assert pq.read_table(others).num_rows == 1
    assert Cache(tmp_path).lookup(r.key for r in rows) == {r.key: r for r in rows}


def test_the_next_write_tidies_many_small_files_left_behind(tmp_path: Path) -> None:
    """Part files left by killed runs (or an older version that never merged) are
    merged by the next writer, MERGE_FILES at a time, and no row is lost."""
    results = tmp_path / "results"
    results.mkdir()
    rows = [make_row(i) for i in range(200)]
    for start in range(0, 200, 5):
        table = pa.Table.from_pylist(
            [dataclasses.asdict(r) for r in rows[start : start + 5]], RESULT_SCHEMA
        )
        name = f"{time.time_ns():020d}-{os.getpid()}-{start:032x}.parquet"
        pq.write_table(table, results / name)
    cache = Cache(tmp_path)
    assert len(part_files(cache)) == 40
    with cache.writer() as w:
        w.add(make_row("new"))
    assert len(part_files(cache)) <= 16
    assert Cache(tmp_path).lookup(r.key for r in rows) == {r.key: r for r in rows}


def test_memo_files_are_merged_and_latest_still_wins(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    for i in range(100):
        cache.memo_put_many([(f"/a/{i}.wav", i, i, sha(i)), ("/same.wav", 1, 1, sha(1000 + i))])
    assert len(part_files(cache, "memo")) < 30
    got = Cache(tmp_path).memo_get_many([(f"/a/{i}.wav", i, i) for i in range(100)])
    assert got == {(f"/a/{i}.wav", i, i): sha(i) for i in range(100)}
    assert cache.memo_get("/same.wav", 1, 1) == sha(1099)


def test_lookups_of_every_size_agree(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    rows = [
        make_row(i, duration_s=None if i % 3 else i / 2, language="en" if i % 2 else None)
        for i in range(300)
    ]
    with cache.writer(flush_rows=7, flush_seconds=None) as w:
        w.add_many(rows)
    keys = [r.key for r in rows]
    full = Cache(tmp_path).lookup([*keys, "0" * 64, "", "not a key"])
    assert full == {r.key: r for r in rows}
    brief = Cache(tmp_path).lookup_results(reversed(keys))
    assert brief == {
        k: (r.text, r.duration_s, r.model, r.detected_language, r.segments) for k, r in full.items()
    }
    assert Cache(tmp_path).lookup_texts(keys + keys) == {k: r.text for k, r in full.items()}
    one = Cache(tmp_path)
    assert all(one.lookup([k]) == {k: full[k]} for k in keys[::10])
