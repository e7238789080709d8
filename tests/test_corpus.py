"""Corpus scale: many processes on one cache directory, bad files in it, and long frames.

What a researcher labeling a corpus relies on (docs/design.md, "Cache"):

* two processes transcribing overlapping halves of a corpus into the same
  cache directory at the same time end with the union cached, every file
  readable, and a third run over everything sends nothing;
* ``Cache.compact()`` in another process, while a run writes, loses nothing;
* corrupt or foreign files in the cache directory are skipped with a logged
  warning, never fatal;
* ``provenance=True`` says whether each row came from the cache, from which
  model, and how long its audio is;
* a recording whose request body is over 1 MiB goes through (aiohttp warns
  about raw bodies that large, an error under ``-W error``);
* the path -> sha256 memo means a rerun opens none of the audio files
  (counted with an audit hook on ``open`` in a child process);
* a cached rerun over rows in another order than they were written reads
  each part file a few times, not once per 1,024 rows;
* a 20,000-row frame runs with a bounded number of asyncio tasks.

Children are scripts written to ``tmp_path`` and run with this interpreter;
the emulator runs in the test process, and its request log is the witness.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clips import emulator_kwargs, wav_bytes, write_clips

from cf_transcribe_pandas.cache import RESULT_SCHEMA, Cache, CachedRow, cache_key
from cf_transcribe_pandas.emulator import Emulator

MODEL = "openai/gpt-4o-transcribe"
FAST = 1_000_000  # requests/minute: pacing never limits these runs
CLIPS = Path(__file__).parent / "data" / "audio"

# The child: optionally count `open` audit events on the audio files, wait for
# "go" on stdin when asked (so that two children really run at the same time),
# transcribe the listed paths, print one JSON line.
CHILD = r"""
import json, os, sys

cfg = json.loads(sys.argv[1])
import pandas as pd
import cf_transcribe_pandas  # registers df.cfai

watched = set(cfg["paths"]) | {os.path.realpath(p) for p in cfg["paths"]}
opens = [0]


def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if path in watched or os.path.abspath(path) in watched:
            opens[0] += 1


sys.addaudithook(hook)
if cfg.get("barrier"):
    print("ready", flush=True)
    sys.stdin.readline()
df = pd.DataFrame({"audio": cfg["paths"]})
out = df.cfai.transcribe(
    "audio",
    cache=cfg["cache"],
    concurrency=cfg["concurrency"],
    rate_limit=1e6,
    progress=False,
    account_id=cfg["account_id"],
    api_token=cfg["token"],
    base_url=cfg["base_url"],
)
print(json.dumps({"texts": out["audio_text"].tolist(), "opens": opens[0]}), flush=True)
"""


# ---------------------------------------------------------------- helpers


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(sha: str) -> str:
    return cache_key(sha, model=MODEL, language=None, prompt=None, temperature=None)


def _placeholder(sha: str) -> str:
    return f"transcript of {sha[:12]}"  # the emulator's text for unregistered audio


def _kwargs(emu: Emulator, cache: Path, **kw: Any) -> dict[str, Any]:
    return emulator_kwargs(emu, cache, rate_limit=FAST, **kw)


def _readable_part_files(cache: Path) -> list[Path]:
    """Every results part file, each read whole by pyarrow (raises on a torn file)."""
    files = sorted((cache / "results").glob("*.parquet"))
    for path in files:
        table = pq.read_table(path)
        assert table.schema.equals(RESULT_SCHEMA, check_metadata=False), path
    for path in (cache / "memo").glob("*.parquet"):
        pq.read_table(path)
    return files


class Children:
    """Child processes started by a test; killed at teardown if still alive."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "child.py"
        self.script.write_text(CHILD, encoding="utf-8")
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: list[Any] = []

    def start(
        self, emu: Emulator, paths: list[str], cache: Path, *, concurrency: int, barrier: bool
    ) -> subprocess.Popen[str]:
        cfg = {
            "paths": paths,
            "cache": str(cache),
            "concurrency": concurrency,
            "barrier": barrier,
            "account_id": emu.account_id,
            "token": emu.token,
            "base_url": emu.base_url,
        }
        log = open(self.tmp_path / f"child{len(self.procs)}.stderr", "w+", encoding="utf-8")  # noqa: SIM115
        self.logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, str(self.script), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def result(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        """Wait for the child; its JSON line."""
        out, _ = proc.communicate(timeout=120)
        log = self.logs[self.procs.index(proc)]
        log.seek(0)
        assert proc.returncode == 0, log.read()
        answer: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return answer

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        for log in self.logs:
            log.close()


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    made = Children(tmp_path)
    try:
        yield made
    finally:
        made.close()


# ---------------------------------------------------------------- many processes


def test_two_processes_on_overlapping_halves_share_one_cache(
    emulator: Emulator, children: Children, tmp_path: Path
) -> None:
    emulator.set_faults(latency=0.05)
    paths, shas = write_clips(tmp_path / "audio", 240, seed=100)
    cache = tmp_path / "cache"
    # A sends rows 0..159 in order, B rows 239..80: each starts with the rows
    # only it has, and both reach the shared rows 80..159 at about the same time.
    halves = (list(range(160)), list(range(239, 79, -1)))
    procs = [
        children.start(emulator, [paths[i] for i in half], cache, concurrency=4, barrier=True)
        for half in halves
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:  # both start together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    answers = [children.result(proc) for proc in procs]
    for answer, half in zip(answers, halves, strict=True):
        assert answer["texts"] == [_placeholder(shas[i]) for i in half]

    log = emulator.requests()
    only_a = {e["t"] for e in log if e["sha256"] in set(shas[:80])}
    only_b = {e["t"] for e in log if e["sha256"] in set(shas[160:])}
    assert min(only_a) < max(only_b)  # the two runs overlapped in time
    assert min(only_b) < max(only_a)
    sent = Counter(e["sha256"] for e in log)
    assert set(sent) == set(shas)
    assert all(sent[s] == 1 for s in shas[:80] + shas[160:])
    assert all(sent[s] <= 2 for s in shas[80:160])  # each process may buy a shared row once

    files = _readable_part_files(cache)
    writers = {f.name.split("-")[1] for f in files}
    assert len(writers) == 2  # both processes wrote part files
    found = Cache(cache).lookup([_key(s) for s in shas])
    assert len(found) == 240
    assert all(found[_key(s)].text == _placeholder(s) for s in shas)

    before = len(log)
    out = pd.DataFrame({"audio": paths}).cfai.transcribe("audio", **_kwargs(emulator, cache))
    assert len(emulator.requests()) == before  # the third run sends nothing
    assert out["audio_text"].tolist() == [_placeholder(s) for s in shas]


def test_compaction_in_another_process_during_a_run_loses_nothing(
    emulator: Emulator, children: Children, tmp_path: Path
) -> None:
    emulator.set_faults(latency=0.04)
    paths, shas = write_clips(tmp_path / "audio", 300, seed=2000)
    cache = tmp_path / "cache"
    proc = children.start(emulator, paths, cache, concurrency=4, barrier=False)

    # Another process compacts while the run writes: here, a thread of the test
    # process (the child is the other process).
    merges: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def compact_loop() -> None:
        store = Cache(cache)
        try:
            while not stop.is_set():
                result = store.compact()
                if result.files_before >= 2:
                    merges.append(result.files_before)
                time.sleep(0.02)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    compactor = threading.Thread(target=compact_loop)
    compactor.start()
    try:
        answer = children.result(proc)
    finally:
        stop.set()
        compactor.join()
    assert not errors
    assert len(merges) >= 3  # it really merged files written by the run, several times
    assert answer["texts"] == [_placeholder(s) for s in shas]

    _readable_part_files(cache)
    store = Cache(cache)
    found = store.lookup([_key(s) for s in shas])
    assert len(found) == 300
    result = store.compact()
    assert result.files_after == 1
    assert result.rows_after == 300

    before = len(emulator.requests())
    out = pd.DataFrame({"audio": paths}).cfai.transcribe("audio", **_kwargs(emulator, cache))
    assert len(emulator.requests()) == before
    assert out["audio_text"].tolist() == [_placeholder(s) for s in shas]


# ---------------------------------------------------------------- bad files


def test_corrupt_and_foreign_files_in_the_cache_dir_are_skipped_with_a_warning(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paths, shas = write_clips(tmp_path / "audio", 40, seed=3000)
    cache = tmp_path / "cache"
    store = Cache(cache)
    with store.writer() as writer:  # a real part file, about to be torn
        writer.add(CachedRow.new("0" * 64, "unrelated", model=MODEL))
    (good,) = (cache / "results").glob("*.parquet")
    torn = good.with_name(f"00000000000000000001-1-{'a' * 32}.parquet")
    data = good.read_bytes()
    torn.write_bytes(data[: len(data) // 2])
    bad = {
        "notes.parquet": b"key,text\nabc,hello\n",  # a CSV named .parquet
        torn.name: None,
        f"00000000000000000002-1-{'b' * 32}.parquet": b"",  # zero bytes
        "other.parquet": None,  # a Parquet file with other columns
    }
    pd.DataFrame({"x": [1, 2]}).to_parquet(cache / "results" / "other.parquet")
    for name, content in bad.items():
        if content is not None:
            (cache / "results" / name).write_bytes(content)
    (cache / "memo").mkdir()
    (cache / "memo" / "junk.parquet").write_bytes(b"\x00" * 100)

    with caplog.at_level(logging.WARNING, logger="cf_transcribe_pandas"):
        out = pd.DataFrame({"audio": paths}).cfai.transcribe(
            "audio", **_kwargs(emulator, cache, concurrency=4)
        )
    assert out["audio_text"].tolist() == [_placeholder(s) for s in shas]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in [*bad, "junk.parquet"]:
        hits = [m for m in warned if name in m]
        assert len(hits) == 1, (name, warned)  # once per file in a run, not once per lookup

    caplog.clear()
    before = len(emulator.requests())
    with caplog.at_level(logging.WARNING, logger="cf_transcribe_pandas"):
        again = pd.DataFrame({"audio": paths}).cfai.transcribe("audio", **_kwargs(emulator, cache))
    assert len(emulator.requests()) == before  # the good rows are still found
    assert again["audio_text"].tolist() == out["audio_text"].tolist()
    for name in bad:
        assert (cache / "results" / name).exists()  # not ours: never deleted


# ---------------------------------------------------------------- provenance


def test_provenance_columns_on_the_first_run_and_the_rerun(
    emulator: Emulator, tmp_path: Path
) -> None:
    with open(CLIPS / "manifest.csv", newline="", encoding="utf-8") as f:
        clips = [row for row in csv.DictReader(f) if row["accepted_by_model"] == "True"]
    emulator.register({row["sha256"]: row["text"] for row in clips})
    df = pd.DataFrame({"audio": [str(CLIPS / row["file"]) for row in clips]})
    cache = tmp_path / "cache"

    first = df.cfai.transcribe("audio", provenance=True, **_kwargs(emulator, cache))
    rerun = df.cfai.transcribe("audio", provenance=True, **_kwargs(emulator, cache))
    for out, cached in ((first, False), (rerun, True)):
        assert out["audio_text"].tolist() == [row["text"] for row in clips]
        assert out["audio_text_cached"].dtype == "bool"
        assert out["audio_text_cached"].tolist() == [cached] * len(clips)
        assert out["audio_text_model"].tolist() == [MODEL] * len(clips)
        assert str(out["audio_text_duration_s"].dtype) == "Float64"
        durations = out["audio_text_duration_s"].tolist()
        want = [float(row["duration_s"]) for row in clips]
        assert durations == pytest.approx(want, abs=0.05)
    assert rerun["audio_text_duration_s"].tolist() == first["audio_text_duration_s"].tolist()


def test_a_recording_over_1_mib_goes_through_with_warnings_as_errors(
    emulator: Emulator, tmp_path: Path
) -> None:
    # 40 s of 16 kHz mono WAV, 1.28 MB: aiohttp warns (ResourceWarning) for raw
    # bodies over 1 MiB, which pytest's filterwarnings=error turns into a failed row.
    data = wav_bytes(7000, seconds=40.0)
    assert len(data) > 2**20
    out = pd.DataFrame({"audio": [data]}).cfai.transcribe(
        "audio", **_kwargs(emulator, tmp_path / "cache")
    )
    assert out["audio_text"].tolist() == [_placeholder(_sha(data))]


# ---------------------------------------------------------------- the memo


def test_a_cached_rerun_opens_none_of_the_audio_files(
    emulator: Emulator, children: Children, tmp_path: Path
) -> None:
    paths, shas = write_clips(tmp_path / "audio", 60, seed=4000)
    cache = tmp_path / "cache"
    first = children.result(children.start(emulator, paths, cache, concurrency=4, barrier=False))
    assert first["opens"] >= len(paths)  # the first run reads (and hashes) every file
    sent = len(emulator.requests())
    assert sent == len(paths)

    rerun = children.result(children.start(emulator, paths, cache, concurrency=4, barrier=False))
    assert rerun["texts"] == first["texts"] == [_placeholder(s) for s in shas]
    assert len(emulator.requests()) == sent  # nothing sent
    assert rerun["opens"] == 0, "a cached rerun must find every hash in the memo, not re-read"


# ---------------------------------------------------------------- lookups at scale

# The child: a cached run over byte values in a given order, counting how often
# each Parquet file of the cache is opened (pyarrow reads files in C++, where
# audit hooks do not see them, so ParquetFile is wrapped).
LOOKUP_CHILD = r"""
import collections, json, os, sys
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import cf_transcribe_pandas  # registers df.cfai

cfg = json.loads(sys.argv[1])
opened = collections.Counter()


class CountingParquetFile(pq.ParquetFile):
    def __init__(self, source, *args, **kwargs):
        opened[os.path.basename(os.fspath(source))] += 1
        super().__init__(source, *args, **kwargs)


pq.ParquetFile = CountingParquetFile
values = [f"row {i:08d}".encode() for i in cfg["order"]]
out = pd.DataFrame({"audio": values}).cfai.transcribe(
    "audio",
    cache=cfg["cache"],
    progress=False,
    account_id=cfg["account_id"],
    api_token=cfg["token"],
    base_url=cfg["base_url"],
)
texts = out["audio_text"].tolist()
print(json.dumps({"texts_ok": all(isinstance(t, str) for t in texts), "opened": opened}))
"""


def test_a_shuffled_cached_rerun_reads_each_part_file_a_few_times_not_once_per_window(
    emulator: Emulator, tmp_path: Path
) -> None:
    # 20,000 cached rows in 100 part files (the batches of runs killed before their
    # writers merged them, written here in the documented format), read back in
    # another order than they were written (a filtered or re-sorted frame).
    n, per_file = 20_000, 200
    cache = tmp_path / "cache"
    (cache / "results").mkdir(parents=True)
    for start in range(0, n, per_file):
        rows = [
            dataclasses.asdict(
                CachedRow.new(_sha(f"row {i:08d}".encode()), f"text {i}", model=MODEL)
            )
            for i in range(start, start + per_file)
        ]
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, RESULT_SCHEMA), cache / "results" / name)
    files = len(list((cache / "results").glob("*.parquet")))
    assert files == n // per_file
    order = list(range(n))
    random.Random(6).shuffle(order)
    script = tmp_path / "lookup_child.py"
    script.write_text(LOOKUP_CHILD, encoding="utf-8")
    cfg = {
        "order": order,
        "cache": str(cache),
        "account_id": emulator.account_id,
        "token": emulator.token,
        "base_url": emulator.base_url,
    }
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["texts_ok"]
    assert emulator.counters()["requests"] == 0
    opened = Counter(answer["opened"])
    assert set(opened) <= {f.name for f in (cache / "results").glob("*.parquet")}
    # Each file is read for its keys once, then for its hits once per lookup:
    # a handful of lookups, not one per 1,024 rows (20 here, 1,000 for a million).
    assert max(opened.values()) <= 8, opened.most_common(3)


# ---------------------------------------------------------------- streaming


def test_a_20000_row_frame_runs_with_a_bounded_number_of_tasks(
    emulator: Emulator, tmp_path: Path
) -> None:
    distinct = [wav_bytes(6000 + i, seconds=0.02) for i in range(5)]
    n, concurrency = 20_000, 4
    df = pd.DataFrame({"audio": [distinct[i % 5] for i in range(n)]})
    most = 0
    events = 0

    def on_event(event: Any) -> None:
        nonlocal most, events
        events += 1
        most = max(most, len(asyncio.all_tasks()))  # on the run's loop thread

    out = df.cfai.transcribe(
        "audio",
        on_event=on_event,
        **_kwargs(emulator, tmp_path / "cache", concurrency=concurrency),
    )
    assert out["audio_text"].tolist() == [_placeholder(_sha(distinct[i % 5])) for i in range(n)]
    assert emulator.counters()["requests"] == 5  # duplicates are sent once
    assert events >= n
    # The producer, the workers, the run and a few helpers: not one task per row.
    assert 1 <= most <= concurrency + 10
