"""Does the Dask path reach the account's rate limit, and never pass it, on 1 and 2 workers?

A latency-bound run: the emulator (in a subprocess) answers every request
after ``--latency`` seconds (0.5) and enforces ``--limit`` requests/minute
(600) with a sliding 60 s window, and the run's ``rate_limit`` is the same
number. Each setup transcribes ``--rows`` distinct tiny clips (by default
enough to span more than one 60 s window), with the cache off, and the table
reads the emulator's request log:

- ``req/min ÷ limit``: requests over the span from the first arrival to the
  last, per minute, over the limit. The target is >= 0.9: the cluster's
  shared limiter must not leave the limit unused.
- ``max 60 s ÷ limit``: the most requests that arrived in any 60 s window,
  over the limit. Must never exceed 1.0, whatever the number of workers.
- ``429s``: answers the emulator had to refuse (should be 0).

Rows: ``pandas`` (one process, the engine's own limiter, for reference), then
``dask N workers`` (a LocalCluster with N single-threaded worker processes,
2 partitions per worker, one token service for the cluster)::

    python benchmarks/dask_scale.py [--rows 720] [--limit 600] [--latency 0.5] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import array
import bisect
import io
import logging
import time
import wave
from typing import Any

import dask
import dask.dataframe as dd
import distributed
import pandas as pd

import cf_transcribe_pandas  # noqa: F401  (registers df.cfai)
import cf_transcribe_pandas.dask as cfd
from cf_transcribe_pandas.emulator import Emulator


def tiny_wav(i: int) -> bytes:
    """0.1 s of 8 kHz mono audio, different bytes for every ``i``."""
    frames = array.array("h", [0] * 800)
    frames[0], frames[1] = i % 32768, i // 32768
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames.tobytes())
    return buf.getvalue()


def frame(start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"audio": [tiny_wav(i) for i in range(start, start + n)]})


def max_in_window(times: list[float], window: float = 60.0) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def measure(emu: Emulator, limit: float, seconds: float) -> dict[str, Any]:
    log = emu.requests()
    times = sorted(e["t"] for e in log)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    rpm = (len(times) - 1) / span * 60 if len(times) > 1 else float("nan")
    return {
        "requests": len(log),
        "429s": sum(1 for e in log if e["status"] == 429),
        "seconds": seconds,
        "rpm": rpm,
        "ratio": rpm / limit,
        "window": max_in_window(times) / limit,
    }


def run_pandas(emu: Emulator, rows: pd.DataFrame, limit: float) -> dict[str, Any]:
    emu.reset()
    start = time.perf_counter()
    rows.cfai.transcribe(
        "audio",
        cache=False,
        progress=False,
        rate_limit=limit,
        account_id=emu.account_id,
        api_token=emu.token,
        base_url=emu.base_url,
    )
    return measure(emu, limit, time.perf_counter() - start)


def run_dask(emu: Emulator, rows: pd.DataFrame, limit: float, workers: int) -> dict[str, Any]:
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with dask.config.set({"dataframe.convert-string": False}):  # keep bytes as bytes
            ddf = dd.from_pandas(rows, npartitions=2 * workers)
        out = cfd.transcribe(
            ddf,
            "audio",
            cache=False,
            rate_limit=limit,
            account_id=emu.account_id,
            api_token=emu.token,
            base_url=emu.base_url,
            client=client,
        )
        emu.reset()
        start = time.perf_counter()
        out.compute()
        seconds = time.perf_counter() - start
    return measure(emu, limit, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="rows per setup (1.2 x limit)")
    parser.add_argument("--limit", type=int, default=600, help="requests/minute (600)")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per answer (0.5)")
    parser.add_argument("--workers", default="1,2", help="worker counts to run (1,2)")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas row")
    args = parser.parse_args()
    rows = args.rows or int(1.2 * args.limit)
    limit = args.limit
    logging.getLogger("distributed").setLevel(logging.ERROR)

    results: list[tuple[str, dict[str, Any]]] = []
    with Emulator(port=0, process=True, rpm_limit=limit, latency=args.latency) as emu:
        offset = 0
        if not args.no_pandas:
            results.append(("pandas (1 process)", run_pandas(emu, frame(offset, rows), limit)))
            offset += rows
        for workers in (int(w) for w in args.workers.split(",")):
            name = f"dask {workers} worker{'s' if workers > 1 else ''}"
            results.append((name, run_dask(emu, frame(offset, rows), limit, workers)))
            offset += rows

    print(
        f"\n{rows} distinct rows per setup; emulator: {limit} requests/min "
        f"(sliding 60 s window), {args.latency} s per answer; rate_limit={limit}\n"
    )
    header = (
        f"{'setup':<20} {'requests':>8} {'429s':>5} {'seconds':>8} {'req/min':>8} "
        f"{'÷ limit':>8} {'max 60 s ÷ limit':>17}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results:
        print(
            f"{name:<20} {r['requests']:>8} {r['429s']:>5} {r['seconds']:>8.1f} "
            f"{r['rpm']:>8.1f} {r['ratio']:>8.3f} {r['window']:>17.3f}"
        )


if __name__ == "__main__":
    main()
