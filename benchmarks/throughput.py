"""Is ``df.cfai.transcribe`` as fast as the limit allows? Three ratios, side by side.

The emulator runs in a subprocess (``Emulator(process=True)``) so that client
and server do not share an event loop. Every row carries distinct audio (short
generated WAVs, a different tone per row), and ``cache=False``, so every row is
a real request::

    python benchmarks/throughput.py            # about 4 minutes
    python benchmarks/throughput.py --quick    # about 2 minutes

Cases (targets in brackets):

a. **rate-bound**: the emulator admits 600 requests per 60 s sliding window
   (then 429 + Retry-After); ``rate_limit=600``. Achieved requests/minute over a
   steady window (the middle of the run, at least 90 s by default), divided by
   600 [>= 0.97], and the share of 429 answers [<= 0.5 %]. ``--quick`` runs
   700 rows, just over one 60 s window.
b. **latency-bound**: every answer takes 1 s; ``concurrency=64``, no rate
   limit in the way. Rows/s over the steady middle of the run, divided by 64
   (the most 64 requests in flight can do at 1 s each) [>= 0.9].
c. **CPU-bound**: no latency, no limit. Rows/s of the library divided by rows/s
   of a bare aiohttp loop that sends the same kind of requests (as many 1 s
   WAVs, base64 data URI + JSON built per request, as any client must) at the
   same concurrency [>= 0.9]. Every run sends audio of its own, so that the
   emulator (which remembers payloads it decoded) does the same work for both.
   Rows/s are taken over the steady middle 80 % of each run (answers as the
   server logged them), as in (b).
   Rounds run in pairs, in alternating order, so that load from other
   processes hits both alike; the ratio is the median of the pairs' ratios.
   The client's CPU time per row (this process: no emulator in it) is shown
   too, a figure that other load does not move much.

The machine's core count and load average are printed with the table:
client, server and anything else running share those cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import sys
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
import pandas as pd

import cf_transcribe_pandas  # noqa: F401  (registers df.cfai)
from cf_transcribe_pandas.emulator import Emulator

MODEL = "openai/gpt-4o-transcribe"
NO_LIMIT = 1_000_000.0  # requests/minute: the limiter never waits


def make_clips(n: int, *, seconds: float = 1.0, rate: int = 16_000, seed: int = 0) -> list[bytes]:
    """``n`` distinct 16-bit mono WAVs: a tone of a different pitch plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    clips = []
    for i in range(n):
        signal = 0.3 * np.sin(2 * np.pi * (150 + i * 0.37) * t)
        signal += 0.01 * rng.standard_normal(t.size)
        pcm = np.round(signal * 32767).astype("<i2")
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
        clips.append(buf.getvalue())
    return clips


def credentials(emu: Emulator) -> dict[str, Any]:
    return {"account_id": emu.account_id, "api_token": emu.token, "base_url": emu.base_url}


def library(emu: Emulator, clips: Sequence[bytes], **kwargs: Any) -> tuple[pd.DataFrame, float]:
    """One ``df.cfai.transcribe`` over ``clips``; returns the frame and the wall time."""
    df = pd.DataFrame({"audio": list(clips)})
    start = time.perf_counter()
    out = df.cfai.transcribe(
        "audio", cache=False, progress=False, errors="coerce", **credentials(emu), **kwargs
    )
    elapsed = time.perf_counter() - start
    failed = int(out["audio_text"].isna().sum())
    if failed:
        raise SystemExit(f"{failed} rows failed: {out.attrs.get('cfai_summary')}")
    return out, elapsed


async def bare_loop(emu: Emulator, clips: Sequence[bytes], concurrency: int) -> float:
    """Send the same requests with nothing but aiohttp; returns the wall time."""
    url = emu.run_url()
    headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
    todo = iter(clips)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for clip in todo:
                uri = "data:audio/wav;base64," + base64.b64encode(clip).decode("ascii")
                body = json.dumps({"model": MODEL, "input": {"file": uri}}).encode()
                async with session.post(url, data=body, headers=headers) as response:
                    payload = await response.json()
                    if response.status != 200 or not payload["result"]["text"]:
                        raise SystemExit(f"bare loop got HTTP {response.status}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


def steady_rate(times: Sequence[float], trim: float) -> tuple[float, float]:
    """Events per second between the ``trim`` and ``1 - trim`` quantiles of ``times``.

    Returns:
        (events per second, length of the window in seconds).
    """
    ts = sorted(times)
    lo = int(len(ts) * trim)
    hi = len(ts) - 1 - int(len(ts) * trim)
    span = ts[hi] - ts[lo]
    return (hi - lo) / span, span


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


@dataclass
class Row:
    case: str
    measured: str
    ratio: float
    target: str
    ok: bool
    note: str


def rate_bound(rows: int, trim: float) -> Row:
    limit = 600
    clips = make_clips(rows, seed=1)
    with Emulator(port=0, process=True, rpm_limit=limit) as emu:
        _, wall = library(emu, clips, rate_limit=limit, concurrency=64)
        log = emu.requests()
    admitted = [e["t"] for e in log if e["status"] == 200]
    throttled = sum(1 for e in log if e["status"] == 429)
    per_s, span = steady_rate(admitted, trim)
    ratio = per_s * 60 / limit
    share = throttled / len(log)
    return Row(
        "a. rate-bound (600/min)",
        f"{per_s * 60:.1f} req/min over {span:.0f} s; 429s {throttled}/{len(log)}",
        ratio,
        ">= 0.97, 429s <= 0.5 %",
        ratio >= 0.97 and share <= 0.005,
        f"429 share {share:.2%}; whole run {len(admitted) / wall * 60:.1f} req/min",
    )


def latency_bound(rows: int, trim: float) -> Row:
    concurrency = 64
    clips = make_clips(rows, seed=2)
    with Emulator(port=0, process=True, latency=1.0) as emu:
        _, wall = library(emu, clips, rate_limit=NO_LIMIT, concurrency=concurrency)
        log = emu.requests()
    per_s, span = steady_rate([e["t_done"] for e in log if e["status"] == 200], trim)
    ratio = per_s / concurrency
    return Row(
        "b. latency-bound (1 s, 64)",
        f"{per_s:.1f} rows/s over {span:.0f} s",
        ratio,
        ">= 0.9",
        ratio >= 0.9,
        f"whole run {rows / wall:.1f} rows/s",
    )


def cpu_bound(rows: int, pairs: int, concurrency: int) -> Row:
    ratios: list[float] = []
    lib_rates: list[float] = []
    bare_rates: list[float] = []
    lib_cpu: list[float] = []
    bare_cpu: list[float] = []
    runs = 0

    def fresh() -> list[bytes]:
        # New audio for every run: the emulator remembers payloads it decoded, so a
        # run repeating the previous run's bodies would find the server cheaper.
        nonlocal runs
        runs += 1
        return make_clips(rows, seed=100 + runs)

    def served() -> float:
        # Rows/s in the steady middle of the run, as the server saw them answered:
        # start-up and shutdown (session, threads, the frame) are left out.
        return steady_rate([e["t_done"] for e in emu.requests() if e["status"] == 200], 0.1)[0]

    def run_bare() -> None:
        clips = fresh()
        cpu = time.process_time()
        asyncio.run(bare_loop(emu, clips, concurrency))
        bare_cpu.append((time.process_time() - cpu) / rows * 1000)
        bare_rates.append(served())

    def run_library() -> None:
        clips = fresh()
        cpu = time.process_time()
        library(emu, clips, rate_limit=NO_LIMIT, concurrency=concurrency)
        lib_cpu.append((time.process_time() - cpu) / rows * 1000)
        lib_rates.append(served())

    with Emulator(port=0, process=True) as emu:
        warm = make_clips(100, seed=3)
        library(emu, warm, rate_limit=NO_LIMIT, concurrency=concurrency)
        asyncio.run(bare_loop(emu, warm, concurrency))
        for i in range(pairs):
            # Side by side, in alternating order, so that load from other processes
            # (and its drift) hits both alike; each pair gives one ratio.
            for run in (run_bare, run_library) if i % 2 == 0 else (run_library, run_bare):
                emu.reset()
                run()
            ratios.append(lib_rates[-1] / bare_rates[-1])
    ratio = statistics.median(ratios)
    return Row(
        f"c. CPU-bound (0 s, {concurrency})",
        f"library {statistics.median(lib_rates):.0f} rows/s vs bare "
        f"{statistics.median(bare_rates):.0f}",
        ratio,
        ">= 0.9",
        ratio >= 0.9,
        f"median of {pairs} paired ratios ("
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"); client CPU per row: library {statistics.median(lib_cpu):.2f} ms, "
        f"bare {statistics.median(bare_cpu):.2f} ms",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 2 minutes)")
    parser.add_argument(
        "--only", choices=["a", "b", "c"], action="append", help="run only these cases"
    )
    args = parser.parse_args(argv)
    cases = args.only or ["a", "b", "c"]
    quick = args.quick
    print(
        f"cf-transcribe-pandas throughput; {os.cpu_count()} cores, load average "
        f"(1/5 min) at start {load()}; emulator in a subprocess; distinct 1 s WAVs",
        flush=True,
    )
    results: list[Row] = []
    for case in cases:
        started = load()
        if case == "a":
            row = rate_bound(rows=700 if quick else 1200, trim=0.04)
        elif case == "b":
            row = latency_bound(rows=640 if quick else 1920, trim=0.1)
        else:
            row = cpu_bound(rows=1500, pairs=2 if quick else 6, concurrency=32)
        row.note += f"; load {started} -> {load()}"
        results.append(row)
        print(f"  done: {row.case}: {row.ratio:.3f}", flush=True)
    width = max(len(r.case) for r in results)
    mwidth = max(len(r.measured) for r in results)
    print()
    print(f"{'case':<{width}}  {'measured':<{mwidth}}  ratio  target                  met")
    for r in results:
        print(
            f"{r.case:<{width}}  {r.measured:<{mwidth}}  {r.ratio:5.3f}  {r.target:<22}  "
            f"{'yes' if r.ok else 'NO'}"
        )
    print()
    for r in results:
        print(f"{r.case}: {r.note}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
