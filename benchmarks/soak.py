"""Fault soak: kill -9 a long run three times, resume it, and count what was lost or bought twice.

``python benchmarks/soak.py [--rows 5000] [--kills 3] [--concurrency 32] [--rate-limit 3000]``

1. Writes ``--rows`` distinct tiny WAV files and starts a faulty emulator in its
   own process (20 % 429 with Retry-After 1 s, 5 % 5xx, 2 % connection resets,
   50-150 ms per run, fixed seed).
2. Runs a worker subprocess (this file with ``--worker``) that calls
   ``df.cfai.transcribe("audio", cache=DIR, errors="coerce")`` over all rows.
   ``--kills`` times, after a random delay and only while the emulator is
   answering 200s to it, the worker gets SIGKILL; a new worker resumes the same
   call. After the last kill the worker runs to its end (and is restarted if
   some rows failed, as a user would rerun).
3. Checks, from the cache directory and the emulator's request log:

   - every row is in the cache (``Cache.lookup`` on every row's key) with the
     emulator's text for its audio, and no key is stored twice;
   - rows re-bought (a 200 for audio that already had a 200) are at most
     ``kills * 2 * concurrency``: the cache flushes every ``2 * concurrency``
     rows or 2 s, so a kill -9 loses at most that batch;
   - every Parquet file in the cache directory reads with pyarrow (a kill in
     the middle of a write leaves at most a temporary file, never a torn part).

Prints the counts and exits 1 if a check fails. Takes two or three minutes.
``--keep`` keeps the temporary directory, with the emulator's request log
(``emulator_log.json``) and the kills (``kills.json``) for a closer look.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

FAULTS: dict[str, Any] = {
    "latency": 0.05,
    "latency_jitter": 0.1,
    "p429": 0.2,
    "retry_after": 1.0,
    "p500": 0.05,
    "p_reset": 0.02,
}
MODEL = "openai/gpt-4o-transcribe"


# --------------------------------------------------------------------------- worker


def worker(args: argparse.Namespace) -> int:
    """The run being killed: one df.cfai.transcribe call over every row."""
    import pandas as pd

    import cf_transcribe_pandas  # noqa: F401  (registers df.cfai)

    paths = Path(args.list).read_text(encoding="utf-8").split("\n")
    df = pd.DataFrame({"audio": [p for p in paths if p]})
    out = df.cfai.transcribe(
        "audio",
        errors="coerce",
        cache=args.cache,
        progress=False,
        concurrency=args.concurrency,
        rate_limit=args.rate_limit,
        account_id=args.account_id,
        api_token=os.environ["SOAK_API_TOKEN"],
        base_url=args.base_url,
    )
    failed = int(out["audio_text"].isna().sum())
    print(json.dumps({"rows": len(out), "failed": failed}), flush=True)
    return 0


# --------------------------------------------------------------------------- driver


def write_clips(folder: Path, n: int) -> list[Path]:
    """``n`` distinct 0.1 s 8 kHz mono WAV files."""
    rate, samples = 8000, 800
    t = np.arange(samples) / rate
    paths = []
    for i in range(n):
        noise = np.random.default_rng(i).standard_normal(samples)
        signal_ = 0.3 * np.sin(2 * np.pi * (200 + i % 900) * t) + 0.02 * noise
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(np.round(np.clip(signal_, -1, 1) * 32767).astype("<i2").tobytes())
        path = folder / f"soak_{i:05d}.wav"
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def start_worker(
    args: argparse.Namespace, emu: Any, listing: Path, cache: Path, logs: Path
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--list",
        str(listing),
        "--cache",
        str(cache),
        "--concurrency",
        str(args.concurrency),
        "--rate-limit",
        str(args.rate_limit),
        "--account-id",
        emu.account_id,
        "--base-url",
        emu.base_url,
    ]
    env = dict(os.environ, SOAK_API_TOKEN=emu.token)  # not on the command line
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    with open(logs / "stdout.txt", "wb") as out, open(logs / "stderr.txt", "ab") as err:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=err, start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    """Run the soak (or, with ``--worker``, one worker) and print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate-limit", type=float, default=3000.0)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--list", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--account-id", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    tmp = Path(tempfile.mkdtemp(prefix="cf-soak-"))
    try:
        return soak(args, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def kill_when_flowing(
    proc: subprocess.Popen[bytes], emu: Any, ok_at_start: int, delay: float
) -> bool:
    """SIGKILL the worker after ``delay`` s, at a moment when 200s are flowing to it.

    Returns:
        Whether it was killed (False: it finished first).
    """
    deadline = time.monotonic() + delay
    last_ok, last_change = ok_at_start, time.monotonic()
    while proc.poll() is None:
        time.sleep(0.1)
        ok = emu.counters()["ok"]
        now = time.monotonic()
        if ok != last_ok:
            last_ok, last_change = ok, now
        if now >= deadline and ok > ok_at_start and now - last_change < 0.3:
            break
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def record_kill(
    emu: Any,
    kills: list[dict[str, Any]],
    cache: Any,
    shas: list[str],
    keys: list[str],
    delay: float,
) -> dict[str, Any]:
    """Rows the killed worker was answered 200 for that are not in the cache: bought,
    then lost to the kill (the next run buys them again)."""
    since = kills[-1]["log_index"] if kills else 0
    entries = emu.requests()
    ok_shas = {e["sha256"] for e in entries[since:] if e["status"] == 200}
    found = cache.lookup(keys)
    stored = {sha for sha, key in zip(shas, keys, strict=True) if key in found}
    print(
        f"kill {len(kills) + 1}: SIGKILL after {delay:.1f} s; this worker was "
        f"answered {len(ok_shas):,} rows, the cache holds {len(found):,}; "
        f"{len(ok_shas - stored)} answered rows were not flushed yet",
        flush=True,
    )
    return {
        "after_s": round(delay, 1),
        "answered": len(ok_shas),
        "in_cache": len(found),
        "lost": ok_shas - stored,
        "log_index": len(entries),
    }


def finished(proc: subprocess.Popen[bytes], tmp: Path) -> bool:
    """Wait for the worker to end on its own; False (with its stderr shown) if it failed."""
    try:
        proc.wait(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        print("the worker did not finish within 15 minutes", file=sys.stderr)
        return False
    if proc.returncode != 0:
        err = (tmp / "stderr.txt").read_text(encoding="utf-8", errors="replace")
        print(err[-3000:], file=sys.stderr)
        print(f"the worker exited with code {proc.returncode}", file=sys.stderr)
        return False
    return True


def soak(args: argparse.Namespace, tmp: Path) -> int:
    import pyarrow.parquet as pq

    from cf_transcribe_pandas.cache import Cache, cache_key
    from cf_transcribe_pandas.emulator import Emulator

    rng = random.Random(args.seed)
    (tmp / "clips").mkdir()
    paths = write_clips(tmp / "clips", args.rows)
    listing = tmp / "rows.txt"
    listing.write_text("\n".join(str(p) for p in paths), encoding="utf-8")
    shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    keys = [
        cache_key(sha, model=MODEL, language=None, prompt=None, temperature=None) for sha in shas
    ]
    cache_dir = tmp / "cache"
    started = time.perf_counter()
    kills: list[dict[str, Any]] = []
    runs = 0
    with Emulator(port=0, process=True, seed=args.seed, **FAULTS) as emu:
        while True:
            runs += 1
            proc = start_worker(args, emu, listing, cache_dir, tmp)
            ok_at_start = emu.counters()["ok"]
            delay = rng.uniform(5.0, 35.0)
            if len(kills) < args.kills and kill_when_flowing(proc, emu, ok_at_start, delay):
                kills.append(record_kill(emu, kills, Cache(cache_dir), shas, keys, delay))
                continue
            if not finished(proc, tmp):
                return 1
            out = (tmp / "stdout.txt").read_text(encoding="utf-8")
            summary = json.loads(out.strip().splitlines()[-1])
            print(f"run {runs}: finished, {summary['failed']} rows failed", flush=True)
            if summary["failed"] == 0 or runs > args.kills + 5:
                break
        log = emu.requests()
        counters = emu.counters()
    if args.keep:
        (tmp / "emulator_log.json").write_text(json.dumps(log), encoding="utf-8")
        (tmp / "kills.json").write_text(
            json.dumps([dict(k, lost=sorted(k["lost"])) for k in kills]), encoding="utf-8"
        )
    seconds = time.perf_counter() - started

    # Every row in the cache with the emulator's text.
    cache = Cache(cache_dir)
    hits = cache.lookup(keys)
    wrong_text = sum(
        1
        for key, sha in zip(keys, shas, strict=True)
        if key in hits and hits[key].text != f"transcript of {sha[:12]}"
    )
    # Every Parquet file readable; count the rows stored per key.
    parquet_files = sorted(cache_dir.rglob("*.parquet"))
    corrupt: list[str] = []
    stored: collections.Counter[str] = collections.Counter()
    for f in parquet_files:
        try:
            table = pq.read_table(f)
        except Exception as exc:  # any failure to read is what we count
            corrupt.append(f"{f.name}: {exc}")
            continue
        if f.parent.name == "results":
            stored.update(table.column("key").to_pylist())
    temps = [f for f in cache_dir.rglob("*") if f.is_file() and f.name.endswith(".tmp")]
    stored_twice = sum(1 for k in keys if stored[k] > 1)
    # Re-bought: a 200 for audio that had already had a 200.
    seen: set[str] = set()
    rebought = 0
    for kill in kills:
        later = {e["sha256"] for e in log[kill["log_index"] :] if e["status"] == 200}
        kill["bought_again"] = len(kill["lost"] & later)
    for entry in sorted(log, key=lambda e: e["i"]):
        if entry["status"] == 200 and entry["sha256"]:
            if entry["sha256"] in seen:
                rebought += 1
            seen.add(entry["sha256"])
    bound = args.kills * 2 * args.concurrency
    status = counters["status"]

    print()
    print(
        f"soak: {args.rows:,} rows, concurrency {args.concurrency}, rate_limit "
        f"{args.rate_limit:g}/min, faults {FAULTS}, {len(kills)} SIGKILLs, {runs} worker runs, "
        f"{seconds:.0f} s, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"emulator: {counters['requests']:,} requests, {counters['ok']:,} 200s, "
        f"{status.get('429', 0):,} 429s, "
        f"{sum(v for k, v in status.items() if k.startswith('5')):,} 5xx, "
        f"{counters['resets']:,} resets, {status.get('499', 0):,} abandoned by a killed worker"
    )
    for n, kill in enumerate(kills, 1):
        print(
            f"kill {n} after {kill['after_s']} s: the worker had been answered "
            f"{kill['answered']:,} rows; {len(kill['lost'])} of them were not in the cache "
            f"(lost to the kill), {kill['bought_again']} of those bought again later"
        )
    checks = [
        (len(hits) == args.rows, f"rows in the cache: {len(hits):,} of {args.rows:,}"),
        (wrong_text == 0, f"rows with the wrong text: {wrong_text}"),
        (stored_twice == 0, f"keys stored more than once: {stored_twice}"),
        (
            rebought <= bound,
            f"re-bought (a 200 for audio that already had one): {rebought} "
            f"(bound {args.kills} x 2 x {args.concurrency} = {bound})",
        ),
        (
            not corrupt,
            f"Parquet files: {len(parquet_files)}, unreadable: {len(corrupt)}"
            + (f" ({'; '.join(corrupt[:3])})" if corrupt else ""),
        ),
    ]
    print(f"temporary files left by killed writes: {len(temps)} (ignored by readers)")
    for ok, line in checks:
        print(f"{'PASS' if ok else 'FAIL'} {line}")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
