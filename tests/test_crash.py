"""Crash safety for real: ``kill -9`` a process in the middle of ``df.cfai.transcribe``.

A child process (a script written to ``tmp_path``) transcribes a few hundred
small WAV files against the emulator running in this test process, with a
cache directory; the test watches the emulator's request log and sends
SIGKILL mid-run. Then it checks what docs/design.md promises ("Cache flushing"):

* a kill loses at most one flush batch: the rows the service answered in the
  first run and that the rerun buys again number at most ``2 * concurrency``;
* nothing on disk is bought twice, every row has its text after the rerun,
  and a third run sends nothing;
* the cache directory holds only whole Parquet files (a write cut short by
  the kill leaves a temporary file, which readers ignore without a warning).

The emulator's log is the witness: ``status == 200`` entries are the rows the
service finished, ``sha256`` says which audio each request carried.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clips import emulator_kwargs, write_clips

from cf_transcribe_pandas.cache import RESULT_SCHEMA, Cache, cache_key
from cf_transcribe_pandas.emulator import Emulator

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")

MODEL = "openai/gpt-4o-transcribe"
CONCURRENCY = 8
FAST = 1_000_000  # requests/minute: pacing never limits these runs

# The child: transcribe the paths listed in a JSON config, optionally with the
# N-th Parquet file of the process cut in half (when it is fsynced, before its
# rename) and then stuck forever (so the kill lands inside a write,
# deterministically).
CHILD = r"""
import json, os, stat, sys, threading
import pandas as pd
import cf_transcribe_pandas  # registers df.cfai

cfg = json.loads(sys.argv[1])
stuck_at = cfg.get("stuck_at")
if stuck_at:
    real_fsync = os.fsync
    writes = [0]

    def fsync(fd):
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):  # a part file's temporary file, not a directory
            writes[0] += 1
            if writes[0] >= stuck_at:
                os.ftruncate(fd, st.st_size // 2)
                print("stuck", flush=True)
                threading.Event().wait()
        return real_fsync(fd)

    os.fsync = fsync

df = pd.DataFrame({"audio": cfg["paths"]})
out = df.cfai.transcribe(
    "audio",
    cache=cfg["cache"],
    concurrency=cfg["concurrency"],
    rate_limit=cfg["rate_limit"],
    progress=False,
    account_id=cfg["account_id"],
    api_token=cfg["token"],
    base_url=cfg["base_url"],
)
print("done", int(out["audio_text"].notna().sum()), flush=True)
"""


# ---------------------------------------------------------------- helpers


def _wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen[str]) -> None:
    """Poll until ``condition`` holds; fail early if the child died (a liveness bound only)."""
    deadline = time.monotonic() + 60.0
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the child exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


class Child:
    """The child process running ``df.cfai.transcribe``; killed at teardown if still alive."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.script = tmp_path / "child.py"
        self.script.write_text(CHILD, encoding="utf-8")
        self.stderr = open(tmp_path / "child.stderr", "w+", encoding="utf-8")  # noqa: SIM115
        self.proc: subprocess.Popen[str] | None = None

    def start(
        self, emu: Emulator, paths: list[str], cache: Path, **extra: Any
    ) -> subprocess.Popen[str]:
        """Start the child (once per test); ``extra`` overrides its settings."""
        assert self.proc is None
        cfg = {
            "paths": paths,
            "cache": str(cache),
            "concurrency": CONCURRENCY,
            "rate_limit": FAST,
            "account_id": emu.account_id,
            "token": emu.token,
            "base_url": emu.base_url,
            **extra,
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), json.dumps(cfg)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        return self.proc

    def kill(self) -> None:
        proc = self.proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL, self.errors()

    def errors(self) -> str:
        """What the child wrote to stderr."""
        self.stderr.seek(0)
        return self.stderr.read()

    def close(self) -> None:
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
            if proc.stdout is not None:
                proc.stdout.close()
        self.stderr.close()


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Child]:
    made = Child(tmp_path)
    try:
        yield made
    finally:
        made.close()


def _settle(emu: Emulator) -> list[dict[str, Any]]:
    """The log once the server has finished every request of the killed child."""
    deadline = time.monotonic() + 30.0
    while emu.counters()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.01)
    return emu.requests()


def _whole_files(cache_dir: Path) -> set[str]:
    """Read every results part file whole with pyarrow; return the sha256s they hold.

    Also checks that the directory holds nothing but part files and temporary
    files (names starting with a dot, ending in ``.tmp``).
    """
    shas: set[str] = set()
    results = cache_dir / "results"
    for entry in results.iterdir():
        if entry.name.startswith("."):
            assert entry.name.endswith(".tmp"), entry
            continue
        assert entry.suffix == ".parquet", entry
        table = pq.read_table(entry)  # raises on a torn file
        assert table.schema.equals(RESULT_SCHEMA, check_metadata=False)
        assert table.num_rows > 0
        shas.update(table["sha256"].to_pylist())
    memo = cache_dir / "memo"
    if memo.is_dir():
        for entry in memo.glob("*.parquet"):
            pq.read_table(entry)
    return shas


def _kwargs(emu: Emulator, cache: Path) -> dict[str, Any]:
    return emulator_kwargs(emu, cache, concurrency=CONCURRENCY, rate_limit=FAST)


def _key(sha: str) -> str:
    return cache_key(sha, model=MODEL, language=None, prompt=None, temperature=None)


def _expected(shas: list[str]) -> list[str]:
    return [f"transcript of {s[:12]}" for s in shas]  # the emulator's placeholder text


# ---------------------------------------------------------------- tests


def test_kill_9_mid_run_loses_at_most_one_flush_batch(
    emulator: Emulator, child: Child, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # With 0.1 s per request, a worker finishes at most one row while a batch
    # is being written, so the DESIGN bound holds whenever the kill lands.
    emulator.set_faults(latency=0.1)
    paths, shas = write_clips(tmp_path / "audio", 300, seed=1000)
    cache = tmp_path / "cache"

    proc = child.start(emulator, paths, cache)
    _wait_for(lambda: emulator.counters()["ok"] >= 100, "100 answers", proc)
    child.kill()

    log1 = _settle(emulator)
    answered = {e["sha256"] for e in log1 if e["status"] == 200}
    assert 100 <= len(answered) < 300  # killed mid-run
    on_disk = _whole_files(cache)
    assert on_disk <= answered  # only answered rows are cached
    assert on_disk  # and some batches made it to disk before the kill

    with caplog.at_level(logging.WARNING, logger="cf_transcribe_pandas"):
        out = pd.DataFrame({"audio": paths}).cfai.transcribe("audio", **_kwargs(emulator, cache))
    log2 = emulator.requests(len(log1))
    requested2 = [e["sha256"] for e in log2]
    assert all(e["status"] == 200 for e in log2)
    assert len(requested2) == len(set(requested2))  # no row twice
    assert not on_disk & set(requested2)  # nothing on disk is bought again
    rebought = answered & set(requested2)
    assert len(rebought) <= 2 * CONCURRENCY, (
        f"the kill lost {len(rebought)} answered rows; DESIGN allows one flush batch "
        f"(2 x concurrency = {2 * CONCURRENCY})"
    )
    assert set(requested2) == set(shas) - on_disk
    assert out["audio_text"].tolist() == _expected(shas)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    out3 = pd.DataFrame({"audio": paths}).cfai.transcribe("audio", **_kwargs(emulator, cache))
    assert len(emulator.requests()) == len(log1) + len(log2)  # the third run sends nothing
    assert out3["audio_text"].tolist() == _expected(shas)
    assert _whole_files(cache) == set(shas)
    assert len(Cache(cache)) == 300


def test_kill_9_inside_a_write_leaves_a_temp_file_that_readers_ignore(
    emulator: Emulator, child: Child, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The child's 4th Parquet write stops half way; the kill lands inside it.
    emulator.set_faults(latency=0.02)
    paths, shas = write_clips(tmp_path / "audio", 120, seed=5000)
    cache = tmp_path / "cache"
    proc = child.start(emulator, paths, cache, stuck_at=4)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "stuck", child.errors()
    child.kill()
    log1 = _settle(emulator)

    results = cache / "results"
    temps = [p for p in results.iterdir() if p.name.startswith(".")]
    assert len(temps) == 1
    assert temps[0].name.endswith(".parquet.tmp")
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(temps[0])  # the torn write
    on_disk = _whole_files(cache)
    assert len(list(results.glob("*.parquet"))) == 3
    assert len(on_disk) >= 3 * 2 * CONCURRENCY  # three whole batches

    with caplog.at_level(logging.WARNING, logger="cf_transcribe_pandas"):
        assert Cache(cache).stats().temp_files == 1
        out = pd.DataFrame({"audio": paths}).cfai.transcribe("audio", **_kwargs(emulator, cache))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # a fresh temp is quiet
    requested2 = {e["sha256"] for e in emulator.requests(len(log1))}
    assert requested2 == set(shas) - on_disk
    assert out["audio_text"].tolist() == _expected(shas)
    assert temps[0].exists()  # not ours to delete yet: it may belong to a live writer
    assert _whole_files(cache) == set(shas)


def test_kill_9_during_a_burst_of_small_flushes_leaves_only_whole_files(
    emulator: Emulator, child: Child, tmp_path: Path
) -> None:
    # No latency and concurrency 1: a flush every 2 rows, files appear as fast as the disk
    # allows, and every 16 of them are merged into one (the kill may land in a merge too).
    paths, shas = write_clips(tmp_path / "audio", 400, seed=9000)
    cache = tmp_path / "cache"
    proc = child.start(emulator, paths, cache, concurrency=1)
    results = cache / "results"

    def files() -> int:
        return len(list(results.glob("*.parquet"))) if results.is_dir() else 0

    def rows_on_disk() -> int:
        try:
            return len(_whole_files(cache))
        except (OSError, pa.ArrowInvalid):  # merged away or torn while read: ask again
            return 0

    # 100 answers and 50 rows in whole files (a writer on a busy machine lags its answers).
    _wait_for(
        lambda: files() >= 1 and emulator.counters()["ok"] >= 100 and rows_on_disk() >= 50,
        "50 rows on disk",
        proc,
    )
    child.kill()
    _settle(emulator)
    on_disk = _whole_files(cache)
    assert len(on_disk) >= 50
    cache_obj = Cache(cache)
    found = cache_obj.lookup([_key(s) for s in on_disk])
    assert len(found) == len(on_disk)
    assert cache_obj.stats().bad_files == 0

    out = pd.DataFrame({"audio": paths}).cfai.transcribe("audio", **_kwargs(emulator, cache))
    assert out["audio_text"].tolist() == _expected(shas)
    assert _whole_files(cache) == set(shas)
