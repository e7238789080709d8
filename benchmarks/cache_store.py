"""Benchmark the Parquet result store (cf_transcribe_pandas.cache).

Writes 100,000 synthetic rows in batches of 100 (about 1,000 part files, each
written atomically with fsync), then times a lookup of all 100,000 keys before
and after compaction, and lookups in a 1,000,000-row compacted cache. Also
times the path -> hash memo over 1,000,000 paths. Every lookup row uses a new
Cache (cold: nothing remembered), except the "warm Cache" rows, which repeat
one-key lookups on a Cache that has read the directory once (the engine's
pattern for rows hashed during the run).

Run: .venv/bin/python benchmarks/cache_store.py [--big-rows 1000000] [--dir DIR]
Prints one table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from cf_transcribe_pandas.cache import Cache, CachedRow, cache_key

MODEL = "openai/gpt-4o-transcribe"
TEXT = "the quick brown fox jumps over the lazy dog " * 6  # ~270 chars, a short clip


def synthetic_rows(start: int, n: int) -> list[CachedRow]:
    """Rows with distinct audio hashes and a realistic text length."""
    now = dt.datetime.now(dt.timezone.utc)
    out = []
    for i in range(start, start + n):
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        key = cache_key(sha, model=MODEL, language="en", prompt=None, temperature=None)
        out.append(
            CachedRow(
                key=key,
                sha256=sha,
                model=MODEL,
                language="en",
                prompt=None,
                temperature=None,
                encode="auto",
                text=f"{i} {TEXT}",
                duration_s=12.5,
                created_at=now,
            )
        )
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="0 to skip")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the caches")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="cf-cache-bench-", dir=args.dir))
    table: list[tuple[str, int, int, float, int]] = []  # step, files, rows, seconds, items

    def row(step: str, files: int, rows: int, seconds: float, items: int) -> None:
        table.append((step, files, rows, seconds, items))
        print(f"  {step}: {seconds:.2f} s", flush=True)

    try:
        cache = Cache(base / "small")
        rows = synthetic_rows(0, args.rows)
        keys = [r.key for r in rows]

        def write() -> None:
            with cache.writer(flush_rows=args.batch, flush_seconds=None) as w:
                for r in rows:
                    w.add(r)

        seconds, _ = timed(write)
        files = cache.stats().files
        row(f"write, batches of {args.batch}", files, args.rows, seconds, args.rows)

        small = cache.path
        seconds, got = timed(lambda: Cache(small).lookup(keys))
        assert len(got) == args.rows
        row("lookup all keys", files, args.rows, seconds, len(keys))
        seconds, texts = timed(lambda: Cache(small).lookup_texts(keys))
        assert len(texts) == args.rows
        row("lookup_texts all keys", files, args.rows, seconds, len(keys))
        seconds, got = timed(lambda: Cache(small).lookup(keys[:100]))
        row("lookup 100 keys", files, args.rows, seconds, 100)
        warm = Cache(small)
        warm.lookup(keys[-1:])
        seconds, _ = timed(lambda: [warm.lookup([k]) for k in keys[:200]])
        row("200 one-key lookups, warm Cache", files, args.rows, seconds, 200)

        seconds, result = timed(cache.compact)
        row("compact", result.files_before, result.rows_before, seconds, result.rows_before)
        files = result.files_after

        seconds, got = timed(lambda: Cache(small).lookup(keys))
        assert len(got) == args.rows
        row("lookup all keys, compacted", files, args.rows, seconds, len(keys))
        seconds, texts = timed(lambda: Cache(small).lookup_texts(keys))
        row("lookup_texts all keys, compacted", files, args.rows, seconds, len(keys))
        seconds, got = timed(lambda: Cache(small).lookup(keys[:100]))
        row("lookup 100 keys, compacted", files, args.rows, seconds, 100)
        seconds, stats = timed(cache.stats)
        row("stats, compacted", files, stats.rows, seconds, stats.rows)
        rows.clear()  # free memory before the big cache

        if args.big_rows:
            big = Cache(base / "big")
            chunk = 100_000
            build = 0.0  # time spent writing, not making the synthetic rows
            with big.writer(flush_rows=chunk, flush_seconds=None) as w:
                for start in range(0, args.big_rows, chunk):
                    batch = synthetic_rows(start, min(chunk, args.big_rows - start))
                    t0 = time.perf_counter()
                    w.add_many(batch)
                    build += time.perf_counter() - t0
            n_big = args.big_rows
            row(f"big: write, batches of {chunk:,}", big.stats().files, n_big, build, n_big)
            seconds, result = timed(big.compact)
            row("big: compact", result.files_before, result.rows_before, seconds, n_big)
            bigp = big.path
            probe = keys  # the first 100,000 rows are also in the big cache
            seconds, got = timed(lambda: Cache(bigp).lookup(probe))
            assert len(got) == len(probe)
            row(f"big: lookup {len(probe):,} keys", 1, n_big, seconds, len(probe))
            seconds, texts = timed(lambda: Cache(bigp).lookup_texts(probe))
            row(f"big: lookup_texts {len(probe):,} keys", 1, n_big, seconds, len(probe))
            warm = Cache(bigp)
            warm.lookup(keys[-1:])
            seconds, _ = timed(lambda: [warm.lookup([k]) for k in keys[:200]])
            row("big: 200 one-key lookups, warm Cache", 1, n_big, seconds, 200)
            all_keys = pq.read_table(big.results_dir, columns=["key"])["key"].to_pylist()
            seconds, texts = timed(lambda: Cache(bigp).lookup_texts(all_keys))
            assert len(texts) == n_big
            row(f"big: lookup_texts all {n_big:,} keys", 1, n_big, seconds, n_big)
            texts = {}
            seconds, got = timed(lambda: Cache(bigp).lookup(all_keys))
            assert len(got) == n_big
            row(f"big: lookup all {n_big:,} keys", 1, n_big, seconds, n_big)
            got = {}
            misses = [hashlib.sha256(f"miss{i}".encode()).hexdigest() for i in range(len(probe))]
            seconds, got = timed(lambda: Cache(bigp).lookup(misses))
            assert not got
            row(f"big: lookup {len(misses):,} missing keys", 1, n_big, seconds, len(misses))

            entries = [
                (f"/corpus/audio/{i:07d}.flac", 1000 + i, 10**18 + i) for i in range(args.big_rows)
            ]
            shas = [f"{i:064x}" for i in range(args.big_rows)]
            seconds, _ = timed(
                lambda: big.memo_put_many(
                    (p, s, m, h) for (p, s, m), h in zip(entries, shas, strict=True)
                )
            )
            row("big: memo_put_many", 1, args.big_rows, seconds, args.big_rows)
            seconds, memo = timed(lambda: big.memo_get_many(entries))
            assert len(memo) == args.big_rows
            row("big: memo_get_many all paths", 1, args.big_rows, seconds, args.big_rows)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print()
    header = f"{'step':<40} {'files':>6} {'rows':>9} {'seconds':>8} {'items/s':>11}"
    print(header)
    print("-" * len(header))
    for step, files, nrows, seconds, items in table:
        rate = items / seconds if seconds > 0 else float("inf")
        print(f"{step:<40} {files:>6} {nrows:>9} {seconds:>8.2f} {rate:>11,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
