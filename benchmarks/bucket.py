"""Requests a bucket sees: a first run, a cached rerun, and a rerun after some objects changed.

The objects (distinct 0.5 s WAVs, 16 kB each) are in moto's S3 server, run in
this process with a count of every request it answers; the runs transcribe
their ``s3://`` URLs with ``storage_options`` against the emulator. A cached
rerun should make metadata calls only (one listing per 1,000 keys of a prefix)
and no GetObject; a changed object (a new ETag) is read again, and only it.

    .venv/bin/python benchmarks/bucket.py             # 1,000 objects, 10 changed
    .venv/bin/python benchmarks/bucket.py --objects 200
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import tempfile
import threading
import time
import wave
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from moto.server import ThreadedMotoServer

import cf_transcribe_pandas  # noqa: F401  (registers df.cfai)
from cf_transcribe_pandas.emulator import Emulator


def wav(seed: int, seconds: float = 0.5, rate: int = 16_000) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * (180 + seed % 500) * t) + 0.01 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.round(np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


class Counted:
    """moto's S3 server with a count of the requests it answered, by kind."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    def start(self) -> str:
        self.server.start()
        wsgi = self.server._server  # the werkzeug server moto made
        assert wsgi is not None
        app = wsgi.app

        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"].strip("/")
            query = environ["QUERY_STRING"]
            kind = (
                "ListObjects"
                if "list-type" in query
                else "GetObject"
                if method == "GET" and "/" in path
                else "HeadObject"
                if method == "HEAD" and "/" in path
                else "PutObject"
                if method == "PUT" and "/" in path
                else f"{method} bucket"
            )
            with self.lock:
                self.seen[kind] += 1
            return app(environ, start_response)

        wsgi.app = counted
        host, port = self.server.get_host_and_port()
        return f"http://{host}:{port}"

    def take(self) -> Counter[str]:
        with self.lock:
            seen, self.seen = self.seen, Counter()
        return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1_000)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args(argv)
    s3 = Counted()
    endpoint = s3.start()
    storage = {"endpoint_url": endpoint, "key": "bench", "secret": "bench"}
    import fsspec

    fs = fsspec.filesystem("s3", **storage)
    fs.mkdir("calls")
    keys = [f"calls/2026-12/call-{i:05d}.wav" for i in range(args.objects)]
    for i, key in enumerate(keys):
        fs.pipe_file(key, wav(i))
    df = pd.DataFrame({"audio": [f"s3://{k}" for k in keys]})
    rows: list[tuple[str, Counter[str], int, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp, Emulator(port=0) as emu:
            kw = {
                "account_id": emu.account_id,
                "api_token": emu.token,
                "base_url": emu.base_url,
                "cache": Path(tmp) / "cache",
                "progress": False,
                "rate_limit": 1_000_000,
                "storage_options": storage,
            }

            def run(name: str) -> None:
                s3.take()
                before = emu.counters()["requests"]
                t0 = time.perf_counter()
                out = df.cfai.transcribe("audio", **kw)
                took = time.perf_counter() - t0
                assert out["audio_text"].notna().all()
                rows.append((name, s3.take(), emu.counters()["requests"] - before, took))

            run("first run")
            run("cached rerun")
            for i, key in enumerate(keys[: args.changed]):
                fs.pipe_file(key, wav(10_000_000 + i))
            run(f"rerun, {args.changed} objects changed")
    finally:
        s3.server.stop()
    print(f"{args.objects:,} objects of 16 kB in one prefix (moto S3 server, s3fs)")
    print("| run | ListObjects | HeadObject | GetObject | sent to the service | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, seen, sent, took in rows:
        print(
            f"| {name} | {seen['ListObjects']} | {seen['HeadObject']} | {seen['GetObject']} "
            f"| {sent} | {took:.1f} |"
        )
    cached = rows[1][1]
    return 0 if cached["GetObject"] == 0 and rows[2][1]["GetObject"] == args.changed else 1


if __name__ == "__main__":
    sys.exit(main())
