"""Peak memory of a run over 200 vs 2,000 distinct 1 MB audio files (local, or in a bucket).

Each size runs in its own fresh Python process (so peaks do not mix) that
transcribes the files with ``df.cfai.transcribe`` against the emulator, which
runs in yet another process. The child reports its peak RSS (``ru_maxrss``)
and its RSS before the run; the table prints both and the ratio.

Targets (issue 5): peak RSS <= 300 MB, and the 2,000-file run <= 1.2x the
200-file run: audio is read when its request is about to be sent, and the
bytes in flight have a cap, so memory does not grow with the column.

With ``--bucket`` the files are objects in a local S3 server (moto, in its own
process) and the column holds ``s3://`` URLs read with ``storage_options``
(issue 19: objects are streamed and hashed as files are).

    .venv/bin/python benchmarks/memory.py            # 200 and 2,000 files
    .venv/bin/python benchmarks/memory.py --quick    # 50 and 500 files
    .venv/bin/python benchmarks/memory.py --bucket   # the same, from a bucket
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cf_transcribe_pandas.emulator import Emulator

CHILD = r"""
import json, resource, sys
import pandas as pd
import cf_transcribe_pandas  # noqa: F401

paths_file, cache_dir, base_url, token, account, storage = sys.argv[1:7]
paths = open(paths_file).read().split("\n")
df = pd.DataFrame({"audio": paths})
before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = df.cfai.transcribe(
    "audio", base_url=base_url, api_token=token, account_id=account,
    cache=cache_dir, progress=False, rate_limit=1_000_000, concurrency=64,
    storage_options=json.loads(storage) or None,
)
assert out["audio_text"].notna().all()
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": len(out), "before_mb": before_kb / 1024, "peak_mb": peak_kb / 1024}))
"""

SECONDS_PER_MB = 1_000_000 / (16_000 * 2)  # 16 kHz mono 16-bit: 1 MB is 31.25 s


def write_wavs(folder: Path, n: int, seed: int) -> list[str]:
    """``n`` distinct WAV files of about 1 MB each (16 kHz mono, tone plus noise)."""
    rng = np.random.default_rng(seed)
    frames = int(SECONDS_PER_MB * 16_000)
    t = np.arange(frames) / 16_000
    base = (3000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    paths = []
    for i in range(n):
        noise = rng.integers(-200, 200, size=frames, dtype=np.int16)
        path = folder / f"clip_{i:05d}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16_000)
            w.writeframes((base + noise).tobytes())
        paths.append(str(path))
    return paths


S3_SERVER = r"""
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the parent closes it
server.stop()
"""


@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, Any]]:
    """moto's S3 server in its own process (its memory is not the run's); its storage_options."""
    proc = subprocess.Popen(
        [sys.executable, "-c", S3_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield {"endpoint_url": f"http://127.0.0.1:{port}", "key": "bench", "secret": "bench"}
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def upload(paths: list[str], storage: dict[str, Any], prefix: str) -> list[str]:
    """Put the files in the bucket ``bench`` under ``prefix``; their ``s3://`` URLs."""
    import fsspec

    fs = fsspec.filesystem("s3", **storage)
    if not fs.exists("bench"):
        fs.mkdir("bench")
    urls = []
    for path in paths:
        key = f"bench/{prefix}/{Path(path).name}"
        fs.put_file(path, key)
        urls.append(f"s3://{key}")
    return urls


def measure(
    n: int, work: Path, emu: Emulator, seed: int, storage: dict[str, Any] | None = None
) -> dict[str, float]:
    folder = work / f"files_{n}"
    folder.mkdir()
    paths = write_wavs(folder, n, seed)
    values = paths if storage is None else upload(paths, storage, f"files_{n}")
    paths_file = work / f"paths_{n}.txt"
    paths_file.write_text("\n".join(values))
    cache_dir = work / f"cache_{n}"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(paths_file),
            str(cache_dir),
            emu.base_url,
            emu.token,
            emu.account_id,
            json.dumps(storage or {}),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child run over {n} files failed:\n{proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    for p in paths:
        os.unlink(p)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 and 500 files")
    parser.add_argument("--bucket", action="store_true", help="the files in a local S3 server")
    args = parser.parse_args(argv)
    small, large = (50, 500) if args.quick else (200, 2_000)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        emu = stack.enter_context(Emulator(port=0, process=True))
        storage = stack.enter_context(s3_server()) if args.bucket else None
        work = Path(tmp)
        rows = [(n, measure(n, work, emu, seed=n, storage=storage)) for n in (small, large)]
    where = "objects in a local S3 bucket (moto), s3:// URLs" if args.bucket else "local files"
    print(f"{where}; load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    print("| files (1 MB each) | RSS before run (MB) | peak RSS (MB) |")
    print("| ---: | ---: | ---: |")
    for n, r in rows:
        print(f"| {n:,} | {r['before_mb']:.0f} | {r['peak_mb']:.0f} |")
    ratio = rows[1][1]["peak_mb"] / rows[0][1]["peak_mb"]
    worst = max(r["peak_mb"] for _, r in rows)
    print(f"\npeak {large:,} files / peak {small:,} files = {ratio:.2f} (target <= 1.2)")
    print(f"largest peak = {worst:.0f} MB (target <= 300 MB)")
    return 0 if ratio <= 1.2 and worst <= 300 else 1


if __name__ == "__main__":
    sys.exit(main())
