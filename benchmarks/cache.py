"""Corpus-scale cache benchmark: fully cached reruns through ``df.cfai.transcribe``.

Three parts, one table::

    python benchmarks/cache.py                 # about 2 minutes on 2 cores
    python benchmarks/cache.py --rows 1000000  # part (a) at a million rows

a. **100,000 cached rows**: synthetic transcripts written with
   ``Cache.writer(flush_rows=128)`` (the batches a run at the default
   concurrency 64 writes), then a fully cached run over 100,000 rows of bytes
   values (distinct small byte strings, each in the cache): seconds, rows/s,
   requests [= 0]; with the rows in the order they were written and shuffled
   (a rerun over a filtered or re-sorted frame); again after ``Cache.compact()``.
b. **the memo**: 10,000 real small WAV files. First run, then the cached
   rerun: audio files opened (an audit hook on ``open``) [rerun: 0] and bytes
   read by the process (``rchar`` of ``/proc/self/io``, sockets and Parquet
   included). A third run with the memo directory removed must re-read and
   re-hash every file, then look each hash up: a rerun after a ``kill -9``
   while the memo is written only when a run ends, or audio at new paths.
c. **target**: the cached rerun of those 10,000 rows takes at most 1/20 of the
   first run against a 0-latency emulator in a subprocess
   (``Emulator(process=True)``, ``rate_limit=1e6`` so pacing never waits)
   [ratio <= 0.05], with 0 requests. Twice: in the same process (a notebook
   rerunning a cell: the Cache remembers the part files it wrote), and with a
   fresh ``Cache`` object, which lists and reads the part files as a new
   process would (the interpreter's start-up and imports not counted).
d. **new audio, big cache**: 2,000 new files (nothing cached) into an empty
   cache, then into the 100,000-row cache of part (a) before compaction: a
   corpus that grows, or a second process joining a shared cache. Each new
   row is looked up in the cache; the ratio shows what the big cache costs.

Nothing is asserted; the ``target`` column says whether a target is met.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import cf_transcribe_pandas  # noqa: F401  (registers df.cfai)
from cf_transcribe_pandas.cache import Cache, CachedRow
from cf_transcribe_pandas.emulator import Emulator

MODEL = "openai/gpt-4o-transcribe"
TEXT = "the quick brown fox jumps over the lazy dog " * 6  # ~270 characters


# ---------------------------------------------------------------- measuring


class OpenCounter:
    """Counts ``open`` audit events on a set of paths (audit hooks cannot be removed)."""

    def __init__(self) -> None:
        self.watched: frozenset[str] = frozenset()
        self.count = 0
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and self.watched and args:
            path = args[0]
            if isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path) in self.watched:
                self.count += 1

    def watch(self, paths: list[str]) -> None:
        self.watched = frozenset(paths) | frozenset(os.path.realpath(p) for p in paths)


def rchar() -> int | None:
    """Bytes this process has read through read() and friends (Linux), else None."""
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


@dataclass
class Row:
    part: str
    step: str
    rows: int
    seconds: float
    requests: int
    opens: int | None = None
    read_mb: float | None = None
    ratio: float | None = None  # seconds / seconds of the part's first run
    target: str = ""


def measured(
    emu: Emulator, opens: OpenCounter, fn: Callable[[], pd.DataFrame]
) -> tuple[float, int, int, float | None, pd.DataFrame]:
    """Run ``fn``; its seconds, requests sent, audio opens, MB read, and the frame."""
    before_requests = emu.counters()["requests"]
    before_opens = opens.count
    before_read = rchar()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    after_read = rchar()
    read_mb = (
        (after_read - before_read) / 1e6
        if before_read is not None and after_read is not None
        else None
    )
    requests = emu.counters()["requests"] - before_requests
    return seconds, requests, opens.count - before_opens, read_mb, out


# ---------------------------------------------------------------- data


def wav(seed: int, seconds: float = 0.1, rate: int = 16_000) -> bytes:
    """A distinct 16-bit mono WAV per seed (a tone plus a little noise)."""
    n = int(seconds * rate)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    signal = 0.3 * np.sin(2 * np.pi * (180 + seed % 500) * t) + 0.01 * rng.standard_normal(n)
    pcm = np.round(np.clip(signal, -1, 1) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def synthetic_cache(cache: Cache, n: int, flush_rows: int) -> tuple[list[bytes], float]:
    """Cache ``n`` transcripts for the byte strings ``b"row 00000001"`` ...; returns them."""
    values = [f"row {i:08d}".encode() for i in range(n)]
    t0 = time.perf_counter()
    with cache.writer(flush_rows=flush_rows, flush_seconds=None) as writer:
        for start in range(0, n, flush_rows):  # one part file per batch, as a run writes them
            writer.add_many(
                CachedRow.new(hashlib.sha256(v).hexdigest(), f"{i} {TEXT}", model=MODEL)
                for i, v in enumerate(values[start : start + flush_rows], start)
            )
    return values, time.perf_counter() - t0


# ---------------------------------------------------------------- the parts


def part_a(
    emu: Emulator, opens: OpenCounter, base: Path, n: int, new_files: int, table: list[Row]
) -> None:
    cache = Cache(base / "synthetic")
    values, build = synthetic_cache(cache, n, flush_rows=128)
    files = cache.stats().files
    table.append(Row("a", f"write {n:,} rows, {files:,} files", n, build, 0))
    in_order = pd.DataFrame({"audio": values})
    shuffled = in_order.sample(frac=1.0, random_state=1)  # not the order the rows were written
    kwargs = run_kwargs(emu, cache.path, concurrency=64)
    for label, df in (
        (f"cached run, {files:,} files", in_order),
        (f"cached run, {files:,} files, shuffled", shuffled),
        ("cached run, compacted", in_order),
        ("cached run, compacted, shuffled", shuffled),
    ):
        if label == "cached run, compacted":
            part_d(emu, opens, base, cache.path, new_files, table)
            cache.compact()
        seconds, requests, _o, _mb, out = measured(emu, opens, transcribe(df, kwargs))
        assert out["audio_text"].notna().all()
        table.append(Row("a", label, n, seconds, requests, target=_mark(requests == 0)))


def part_d(
    emu: Emulator, opens: OpenCounter, base: Path, big: Path, n: int, table: list[Row]
) -> None:
    """New files into an empty cache, then the same number into the big cache."""
    paths = write_wavs(base / "new", n, seed=10**6)
    df = pd.DataFrame({"audio": paths})
    empty = transcribe(df, run_kwargs(emu, base / "empty", concurrency=64))
    first, requests, _o, _mb, _out = measured(emu, opens, empty)
    table.append(Row("d", "new files, empty cache", n, first, requests, ratio=1.0))
    seconds, requests, _o, _mb, _out = measured(
        emu, opens, transcribe(df, run_kwargs(emu, big, concurrency=64))
    )
    files = Cache(big).stats().files
    table.append(
        Row(
            "d", f"new files, cache of {files:,} files", n, seconds, requests, ratio=seconds / first
        )
    )


def write_wavs(directory: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct small WAV files in ``directory``; their paths."""
    directory.mkdir()
    paths = []
    for i in range(n):
        path = directory / f"{i:06d}.wav"
        path.write_bytes(wav(seed + i))
        paths.append(str(path))
    return paths


def part_bc(
    emu: Emulator, opens: OpenCounter, base: Path, n: int, concurrency: int, table: list[Row]
) -> None:
    paths = write_wavs(base / "audio", n)
    opens.watch(paths)
    cache = base / "files"
    df = pd.DataFrame({"audio": paths})
    kwargs = run_kwargs(emu, cache, concurrency=concurrency)

    run = transcribe(df, kwargs)
    first, requests, o, mb, out = measured(emu, opens, run)
    assert out["audio_text"].notna().all()
    table.append(Row("b,c", "first run", n, first, requests, o, mb, 1.0))

    # A rerun lasts a fraction of a second, so a collector pause or another process
    # moves it by a third: each rerun is timed three times and the median is shown.
    for step, make in (
        ("cached rerun", lambda: run),
        # As a new process would: a Cache object that has read nothing yet, so the
        # part files are listed and read (the rerun above finds the rows this
        # process wrote in memory). The interpreter's start-up is not counted.
        ("cached rerun, fresh Cache", lambda: transcribe(df, {**kwargs, "cache": Cache(cache)})),
    ):
        tries = sorted((measured(emu, opens, make()) for _ in range(3)), key=lambda m: m[0])
        seconds, requests, o, mb, out = tries[1]
        ok = seconds <= first / 20 and all(t[1] == 0 and t[2] == 0 for t in tries)
        label = f"{step} (median of {', '.join(f'{t[0]:.2f}' for t in tries)})"
        table.append(Row("b,c", label, n, seconds, requests, o, mb, seconds / first, _mark(ok)))

    shutil.rmtree(cache / "memo")  # as after a kill -9: the memo is written when a run ends
    seconds, requests, o, mb, out = measured(emu, opens, run)
    table.append(Row("b,c", "cached rerun, no memo", n, seconds, requests, o, mb, seconds / first))


def transcribe(df: pd.DataFrame, kwargs: dict[str, Any]) -> Callable[[], pd.DataFrame]:
    """A function running ``df.cfai.transcribe("audio", **kwargs)``."""

    def run() -> pd.DataFrame:
        out: pd.DataFrame = df.cfai.transcribe("audio", **kwargs)
        return out

    return run


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def run_kwargs(emu: Emulator, cache: Path, *, concurrency: int) -> dict[str, Any]:
    return {
        "account_id": emu.account_id,
        "api_token": emu.token,
        "base_url": emu.base_url,
        "cache": cache,
        "concurrency": concurrency,
        "rate_limit": 1e6,
        "progress": False,
    }


def print_table(table: list[Row]) -> None:
    header = (
        f"{'part':<4} {'step':<58} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'requests':>8} "
        f"{'audio opens':>11} {'MB read':>8} {'x first':>8} {'target':>6}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in table:
        rate = r.rows / r.seconds if r.seconds > 0 else float("inf")
        opens = "" if r.opens is None else f"{r.opens:,}"
        read = "" if r.read_mb is None else f"{r.read_mb:.1f}"
        ratio = "" if r.ratio is None else f"{r.ratio:.3f}"
        print(
            f"{r.part:<4} {r.step:<58} {r.rows:>9,} {r.seconds:>8.2f} {rate:>9,.0f} "
            f"{r.requests:>8,} {opens:>11} {read:>8} {ratio:>8} {r.target:>6}"
        )
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    print(f"\n{os.cpu_count()} cores; load average {', '.join(f'{x:.1f}' for x in load)}")
    print("targets: (a) 0 requests; (c) cached rerun <= 0.05 x first run, 0 requests, 0 opens")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="cached rows in part (a)")
    parser.add_argument("--files", type=int, default=10_000, help="real files in parts (b, c)")
    parser.add_argument("--new-files", type=int, default=2_000, help="new files in part (d)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the data")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="cf-cache-bench-", dir=args.dir))
    opens = OpenCounter()
    table: list[Row] = []
    try:
        with Emulator(port=0, process=True) as emu:
            part_a(emu, opens, base, args.rows, args.new_files, table)
            print_table(table)
            part_bc(emu, opens, base, args.files, args.concurrency, table)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_table(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
