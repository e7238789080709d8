"""How many requests per second the emulator answers: it must never be a benchmark's bottleneck.

Starts the emulator in a subprocess (``Emulator(process=True)``), then drives it
from this process with a bare aiohttp client loop: ``--concurrency`` workers
(64) post a small real clip (``tests/data/audio/s11_en_wav.wav``, 40 KB, as a
data URI) for ``--seconds`` (4) each, after a short warm-up::

    python benchmarks/emulator_rps.py [--seconds 4] [--concurrency 64]

Rows:

- ``same clip``: one body, encoded once, posted again and again (unified form).
- ``same clip, per-model``: the same through ``/ai/run/{model}``.
- ``distinct clips``: every request carries different audio (the clip plus a
  counter), base64- and JSON-encoded per request as a real client does, so the
  emulator decodes and hashes every one.

Client and server share this machine's cores, so requests/s is a floor. The
last columns (with ``psutil`` installed) give the server's CPU time per request
and the rate one core could serve at that cost: the emulator's own capacity,
whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from cf_transcribe_pandas.emulator import Emulator

psutil: Any
try:
    psutil = importlib.import_module("psutil")  # a dev dependency; optional here
except ImportError:  # pragma: no cover
    psutil = None

CLIP = Path(__file__).resolve().parent.parent / "tests" / "data" / "audio" / "s11_en_wav.wav"
MODEL = "openai/gpt-4o-transcribe"


async def drive(
    url: str,
    headers: dict[str, str],
    make_body: Callable[[], bytes],
    *,
    concurrency: int,
    seconds: float,
) -> tuple[int, int, float]:
    """Post ``make_body()`` to ``url`` from ``concurrency`` workers for ``seconds``.

    Returns:
        (answers with status 200, other answers, elapsed seconds).
    """
    ok = failed = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal ok, failed
            while time.perf_counter() < deadline:
                async with session.post(url, data=make_body(), headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        ok += 1
                    else:
                        failed += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return ok, failed, elapsed


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description="Requests per second of the emulator.")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args()

    clip = CLIP.read_bytes()
    uri = "data:audio/wav;base64," + base64.b64encode(clip).decode()
    unified = json.dumps({"model": MODEL, "input": {"file": uri, "language": "en"}}).encode()
    per_model = json.dumps({"file": uri, "language": "en"}).encode()
    counter = itertools.count()

    def distinct() -> bytes:
        audio = clip + next(counter).to_bytes(8, "big")
        file = "data:audio/wav;base64," + base64.b64encode(audio).decode()
        return json.dumps({"model": MODEL, "input": {"file": file, "language": "en"}}).encode()

    rows = []
    with Emulator(port=0, process=True) as emu:
        headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
        cases: list[tuple[str, str, Callable[[], bytes]]] = [
            ("same clip", emu.run_url(), lambda: unified),
            ("same clip, per-model", emu.run_url(MODEL), lambda: per_model),
            ("distinct clips", emu.run_url(), distinct),
        ]
        server = psutil.Process(emu.pid) if psutil else None
        for name, url, make_body in cases:
            asyncio.run(
                drive(url, headers, make_body, concurrency=args.concurrency, seconds=args.warmup)
            )
            before = _cpu(server)
            ok, failed, elapsed = asyncio.run(
                drive(url, headers, make_body, concurrency=args.concurrency, seconds=args.seconds)
            )
            rows.append((name, ok, failed, elapsed, _cpu(server) - before))
        served = emu.counters()["requests"]

    print(
        f"emulator in a subprocess; clip {CLIP.name} ({len(clip)} B); "
        f"concurrency {args.concurrency}"
    )
    print(
        f"{'case':<22} {'requests':>9} {'errors':>7} {'seconds':>8} {'requests/s':>11} "
        f"{'server ms CPU/req':>18} {'1-core capacity/s':>18}"
    )
    for name, ok, failed, elapsed, cpu in rows:
        total = ok + failed
        per = f"{cpu / total * 1000:.3f}" if server and total else "n/a"
        cap = f"{total / cpu:.0f}" if server and cpu else "n/a"
        print(
            f"{name:<22} {total:>9} {failed:>7} {elapsed:>8.2f} {total / elapsed:>11.0f} "
            f"{per:>18} {cap:>18}"
        )
    print(f"the server counted {served} requests (warm-ups included)")


def _cpu(process: Any) -> float:
    """User + system CPU seconds of ``process`` so far (0 without psutil)."""
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


if __name__ == "__main__":
    main()
