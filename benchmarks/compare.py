"""This library against what a user would write instead, side by side, in one run.

``make bench`` (or ``python benchmarks/compare.py [--quick]``) starts the
emulator in a subprocess (``Emulator(process=True)``) and sends the same
rows (distinct small WAV files, one per row) through four clients, one after
the other, resetting the emulator in between (same seed, same faults):

- ``cf-transcribe-pandas``: ``df.cfai.transcribe("audio", ...)`` with a fresh
  temporary cache directory (the default experience, minus the progress bar).
- ``bare aiohttp``: the HTTP stack's limit. One ``aiohttp.ClientSession``, an
  ``asyncio.Semaphore`` of the same concurrency, the unified body built per
  row (read the file, base64, JSON). On any failure it waits ``Retry-After``
  (else 1 s) and resends, up to 10 attempts: the least a script needs to finish.
- ``cloudflare SDK``: the official ``cloudflare`` package's ``AsyncCloudflare``
  with its defaults (``max_retries=2``: it honors ``Retry-After`` up to 60 s,
  else backs off 0.5-8 s) and a semaphore; ``client.ai.run(model,
  account_id=..., extra_body={"file": data_uri})`` on the per-model route, in
  ``asyncio.gather(..., return_exceptions=True)``. Rows whose call still raises
  are sent again in another pass, as a user who needs every row would, until
  all are done or ``SDK_DEADLINE`` (10 minutes) has passed.
- ``requests, sequential``: a plain ``for`` loop over ``requests.Session.post``
  with the bare loop's retry rule. It runs on fewer rows; its rows/s is
  extrapolated from them (the table says so).

Scenarios (the emulator's settings; concurrency 64 everywhere):

- ``rate-bound``: the emulator admits 600 requests per sliding 60 s window
  (429 code 3040 + ``Retry-After`` beyond), 0.3 s per run; the library gets
  ``rate_limit=600``. At least 60 s of steady state (``--quick``: about 12 s).
  Ratio: rows/s over the limit (10/s). No SDK (it adds a minute and no target;
  ``--quick`` runs it).
- ``rate-bound-whisper``: ``rate-bound`` with ``@cf/openai/whisper-large-v3-turbo``
  (its own route, raw base64 audio; the library with ``timestamps=True``), the
  library alone (``--quick``: and the bare loop). Ratio: over the limit.
- ``rate-bound-10s``: the same 600/min, enforced as 100 per sliding
  10 s: a service that does not let a client spend a minute's allowance in a
  burst, where bursts and retries turn into 429 storms. Ratio: over the limit.
- ``latency-bound``: 1 s per run, no limit. Ratio: over the bare loop.
- ``cpu-bound``: 0 s per run, no limit; client and server share the cores.
  Ratio: over the bare loop. No user runs this (one account may send 12
  requests a second); it is a sanity floor for the library's per-row CPU with
  its default cache: >= 0.5x the bare loop and >= 3x the official SDK. The
  library and the bare loop alternate 5 times; the ratio is the median of the
  5 rounds' ratios, each of two runs side by side, so the shared machine's
  load drifting between rounds moves it less than a ratio of medians.
- ``rate-bound-block``: the same 600/min, but the first request over it
  blocks the account for 2 minutes: every request is refused (429 3040,
  ``Retry-After`` the seconds left), whatever the rate, as Cloudflare's
  rate-limiting rules do by default (the Cloudflare API's own global limit
  blocks for 5 minutes). A client that paces itself never starts a block; one
  that bursts does, and as the block is longer than the SDK's 60 s cap on
  ``Retry-After`` its retries turn into a 429 storm. Ratio: over the limit.
  The library and the SDK only. Not in ``--quick``.
- ``faulty``: 20 % 429 (3040, Retry-After 1 s), 5 % 5xx, 2 % connection
  resets, 0.2 s per run, fixed seed, no limit. Ratio: over the bare loop, the
  median of 3 rounds' side-by-side ratios (one round moved 0.8-1.4x: which
  requests draw the faults varies with the order they arrive in).
- ``faulty-720``: the same faults under the account limit (720/min); the
  library gets ``rate_limit=720``. Ratio: over the limit (12/s), and over the
  best possible (every attempt at the limit; 0.745 of it succeed).
- ``capacity-bursts``: the account limit (720/min) and the model out of
  capacity in bursts: each 30 s ends with 7.5 s in which 80 % of requests get
  429 3040 (whatever the rate), 0.2 s per run. Ratio: over the limit, and
  over the best possible over the client's run (the limit, less the bursts'
  refusals).

The emulator's sliding window lets a client that ignores the limit spend a
whole window's allowance in a few seconds, so over a run of a few windows such
a client shows more rows/s than the limit (its long-run rate is the limit, at
best) and pays for it in 429 answers; the 10 s window scenario shows how many
when the service enforces the rate over shorter spans. ``rate-bound-block``
shows what bursting costs where the service punishes it.

A "429 storm" (the condition of the ">= 1.5x the SDK" target) is a run in which
the SDK received more 429 answers than it has rows: its retries were refused
again and again, not just its opening burst once.

Columns: rows/s (rows finished / wall seconds), the ratio, 429 answers the
client received, rows finished, and duplicate successful requests (audio the
emulator answered 200 for more than once: bought twice). The table is
Markdown; the load average of the machine is printed with it, because the
numbers mean little on a busy machine. Nothing is asserted: the last lines
compare the library's numbers with the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd

import cf_transcribe_pandas  # noqa: F401  (registers df.cfai)
from cf_transcribe_pandas.emulator import Emulator

MODEL = "openai/gpt-4o-transcribe"
WHISPER = "@cf/openai/whisper-large-v3-turbo"
CONCURRENCY = 64
LIBRARY = "cf-transcribe-pandas"
MAX_ATTEMPTS = 10
SDK_DEADLINE = 600.0
SECONDS_PER_CLIP = 0.25
RATE = 16_000


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """One emulator setting and what to compare against."""

    name: str
    rows: int
    sequential_rows: int  # 0: the sequential loop skips this scenario
    faults: dict[str, Any]
    rate_limit: float
    ratio_to: str  # "limit" or "bare"
    limit_per_s: float | None = None
    what: str = ""
    rounds: int = 1  # the library and the bare loop alternate this many times; medians shown
    model: str = MODEL  # another model: the library and the bare loop only
    clients: tuple[str, ...] | None = None  # None: every client; else only these (time)


def scenarios(quick: bool) -> list[Scenario]:
    """The four scenarios; ``quick`` shrinks the row counts for a smoke run."""
    return [
        Scenario(
            "rate-bound",
            rows=120 if quick else 660,  # over one window's 600: bursts draw 429s
            sequential_rows=15 if quick else 0,
            faults={"rpm_limit": 600, "latency": 0.3},
            rate_limit=600,
            ratio_to="limit",
            limit_per_s=10.0,
            what="600 requests/min sliding window, 0.3 s per run; rate_limit=600",
            clients=None if quick else (LIBRARY, "bare aiohttp", "requests, sequential"),
        ),
        Scenario(
            "rate-bound-whisper",
            rows=120 if quick else 660,
            sequential_rows=0,
            faults={"rpm_limit": 600, "latency": 0.3},
            rate_limit=600,
            ratio_to="limit",
            limit_per_s=10.0,
            what="rate-bound with @cf/openai/whisper-large-v3-turbo (its own route, raw "
            "base64 audio, timestamps=True); the library"
            + (" and the bare loop" if quick else " alone"),
            model=WHISPER,
            clients=None if quick else (LIBRARY,),
        ),
        Scenario(
            "rate-bound-10s",
            rows=200,
            sequential_rows=0,
            faults={"rpm_limit": 100, "rate_window": 10.0, "latency": 0.3},
            rate_limit=600,
            ratio_to="limit",
            limit_per_s=10.0,
            what="the same 600/min enforced as 100 per sliding 10 s, 0.3 s per run; rate_limit=600",
        ),
        *(
            []
            if quick
            else [
                Scenario(
                    "rate-bound-block",
                    rows=720,
                    sequential_rows=0,
                    faults={"rpm_limit": 600, "rate_block": 120.0, "latency": 0.3},
                    rate_limit=600,
                    ratio_to="limit",
                    limit_per_s=10.0,
                    what="600 requests/min sliding window; the first request over it blocks "
                    "the account for 120 s; 0.3 s per run; rate_limit=600; the library and "
                    "the SDK",
                    clients=(LIBRARY, "cloudflare SDK"),
                )
            ]
        ),
        Scenario(
            "latency-bound",
            rows=256 if quick else 640,
            sequential_rows=4 if quick else 5,
            faults={"latency": 1.0},
            rate_limit=1_000_000,
            ratio_to="bare",
            what="1 s per run, no limit, 64 in flight",
        ),
        Scenario(
            "cpu-bound",
            rows=400 if quick else 3000,
            sequential_rows=50 if quick else 200,
            faults={},
            rate_limit=1_000_000,
            ratio_to="bare",
            what="0 s per run, no limit, 64 in flight (a sanity floor, not a user's scenario); "
            f"the library and the bare loop alternate {3 if quick else 5} times: median rows/s, "
            "ratio the median of the rounds' ratios",
            rounds=3 if quick else 5,
        ),
        Scenario(
            "faulty",
            rows=200 if quick else 800,
            sequential_rows=15 if quick else 0,
            faults={
                "latency": 0.2,
                "p429": 0.2,
                "retry_after": 1.0,
                "p500": 0.05,
                "p_reset": 0.02,
                "seed": 20240806,
            },
            rate_limit=1_000_000,
            ratio_to="bare",
            what="20 % 429 (Retry-After 1 s), 5 % 5xx, 2 % resets, 0.2 s per run, no limit"
            + ("" if quick else "; the library and the bare loop alternate 3 times"),
            rounds=1 if quick else 3,
        ),
        Scenario(
            "faulty-720",
            rows=120 if quick else 360,
            sequential_rows=0,
            faults={
                "rpm_limit": 720,
                "latency": 0.2,
                "p429": 0.2,
                "retry_after": 1.0,
                "p500": 0.05,
                "p_reset": 0.02,
                "seed": 20240806,
            },
            rate_limit=720,
            ratio_to="limit",
            limit_per_s=12.0,
            what="the same faults under the account limit: 720/min sliding window; rate_limit=720",
        ),
        Scenario(
            "capacity-bursts",
            rows=200 if quick else 640,
            sequential_rows=0,
            faults={
                "rpm_limit": 720,
                "latency": 0.2,
                "burst_every": 10.0 if quick else 30.0,
                "burst_seconds": 2.5 if quick else 7.5,
                "burst_share": 0.8,
                "retry_after": 1.0,
                "seed": 20240806,
            },
            rate_limit=720,
            ratio_to="limit",
            limit_per_s=12.0,
            what="720/min sliding window + the model out of capacity: each "
            + ("10 s" if quick else "30 s")
            + " ends with a quarter of it at 80 % 429 3040; rate_limit=720",
        ),
    ]


@dataclass
class Outcome:
    """One client's run of one scenario, with the emulator's counters."""

    scenario: str
    client: str
    rows: int
    finished: int
    seconds: float
    requests: int = 0
    n429: int = 0
    duplicates: int = 0
    extrapolated: bool = False
    paired: float | None = None  # median of the rounds' library / bare ratios (rounds > 1)

    @property
    def rows_per_s(self) -> float:
        return self.finished / self.seconds if self.seconds > 0 else 0.0


# --------------------------------------------------------------------------- audio


def write_clips(folder: Path, n: int) -> list[Path]:
    """``n`` distinct 0.25 s mono WAV files (a tone whose pitch and noise differ per row)."""
    paths = []
    samples = round(SECONDS_PER_CLIP * RATE)
    t = np.arange(samples) / RATE
    for i in range(n):
        rng = np.random.default_rng(i)
        signal = 0.3 * np.sin(2 * np.pi * (150 + i % 700) * t) + 0.02 * rng.standard_normal(samples)
        pcm = np.round(np.clip(signal, -1, 1) * 32767).astype("<i2")
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm.tobytes())
        path = folder / f"clip_{i:05d}.wav"
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def data_uri(path: Path) -> str:
    """What every client sends as ``file``."""
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def retry_delay(retry_after: str | None) -> float:
    """The baselines' wait before a resend: Retry-After seconds when given, else 1 s."""
    try:
        return max(0.0, float(retry_after)) if retry_after is not None else 1.0
    except ValueError:
        return 1.0


# --------------------------------------------------------------------------- clients


def run_library(emu: Emulator, paths: list[Path], sc: Scenario, cache_root: Path) -> int:
    """df.cfai.transcribe over the rows; returns rows finished."""
    df = pd.DataFrame({"audio": [str(p) for p in paths]})
    with tempfile.TemporaryDirectory(dir=cache_root) as folder:
        out = df.cfai.transcribe(
            "audio",
            errors="coerce",
            cache=folder,
            progress=False,
            concurrency=CONCURRENCY,
            rate_limit=sc.rate_limit,
            model=sc.model,
            timestamps=sc.model == WHISPER,
            account_id=emu.account_id,
            api_token=emu.token,
            base_url=emu.base_url,
        )
    return int(out["audio_text"].notna().sum())


def bare_body(path: Path, model: str) -> str:
    """The JSON a script would post: the unified body, or whisper's raw base64 input."""
    if model == WHISPER:
        return json.dumps({"audio": base64.b64encode(path.read_bytes()).decode("ascii")})
    return json.dumps({"model": MODEL, "input": {"file": data_uri(path)}})


async def run_bare(emu: Emulator, paths: list[Path], model: str = MODEL) -> int:
    """The bare aiohttp loop: a semaphore, one session, the same bodies; returns rows finished."""
    url = emu.run_url(model) if model != MODEL else emu.run_url()
    headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
    sem = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(path: Path) -> bool:
            async with sem:
                body = bare_body(path, model)
                for _ in range(MAX_ATTEMPTS):
                    retry_after = None
                    try:
                        async with session.post(url, data=body, headers=headers) as resp:
                            payload = await resp.read()
                            if resp.status == 200:
                                return isinstance(json.loads(payload)["result"]["text"], str)
                            retry_after = resp.headers.get("Retry-After")
                    except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                        pass
                    await asyncio.sleep(retry_delay(retry_after))
                return False

        done = await asyncio.gather(*(one(p) for p in paths))
    return sum(done)


async def run_sdk(emu: Emulator, paths: list[Path]) -> int:
    """The official SDK with its default retries and a semaphore, in passes; returns rows done."""
    from cloudflare import AsyncCloudflare

    client = AsyncCloudflare(api_token=emu.token, base_url=emu.base_url)
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(path: Path) -> Any:
        async with sem:
            return await client.ai.run(
                MODEL, account_id=emu.account_id, extra_body={"file": data_uri(path)}
            )

    todo, finished = list(paths), 0
    deadline = time.monotonic() + SDK_DEADLINE
    try:
        while todo and time.monotonic() < deadline:
            results = await asyncio.gather(*(one(p) for p in todo), return_exceptions=True)
            ok = [isinstance(r, dict) and isinstance(r.get("text"), str) for r in results]
            finished += sum(ok)
            todo = [p for p, good in zip(todo, ok, strict=True) if not good]
    finally:
        await client.close()
    return finished


def run_sequential(emu: Emulator, paths: list[Path]) -> int:
    """A plain loop over requests.Session.post; returns rows finished."""
    import requests

    url = emu.run_url()
    headers = {"Authorization": f"Bearer {emu.token}"}
    finished = 0
    with requests.Session() as session:
        session.trust_env = False  # no proxy for 127.0.0.1
        for path in paths:
            body = {"model": MODEL, "input": {"file": data_uri(path)}}
            for _ in range(MAX_ATTEMPTS):
                retry_after = None
                try:
                    resp = session.post(url, json=body, headers=headers, timeout=60)
                    if resp.status_code == 200:
                        finished += isinstance(resp.json()["result"]["text"], str)
                        break
                    retry_after = resp.headers.get("Retry-After")
                except requests.RequestException:
                    pass
                time.sleep(retry_delay(retry_after))
    return finished


# --------------------------------------------------------------------------- driver


def measure(
    emu: Emulator, sc: Scenario, client: str, paths: list[Path], run: Callable[[], int]
) -> Outcome:
    """Reset the emulator to the scenario, time ``run``, read the counters."""
    emu.reset()
    if sc.faults:
        emu.set_faults(**sc.faults)
    start = time.perf_counter()
    finished = run()
    seconds = time.perf_counter() - start
    counters = emu.counters()
    status = counters["status"]
    duplicates = sum(n - 1 for n in counters["ok_by_sha256"].values() if n > 1)
    return Outcome(
        sc.name,
        client,
        rows=len(paths),
        finished=finished,
        seconds=seconds,
        requests=int(counters["requests"]),
        n429=int(status.get("429", 0)),
        duplicates=duplicates,
    )


def run_scenario(
    emu: Emulator, sc: Scenario, paths: list[Path], cache_root: Path, clients: list[str]
) -> list[Outcome]:
    """Every client over the scenario's rows, one after the other."""
    rows = paths[: sc.rows]
    runs: dict[str, tuple[list[Path], Callable[[], int]]] = {
        LIBRARY: (rows, lambda: run_library(emu, rows, sc, cache_root)),
        "bare aiohttp": (rows, lambda: asyncio.run(run_bare(emu, rows, sc.model))),
        "cloudflare SDK": (rows, lambda: asyncio.run(run_sdk(emu, rows))),
        "requests, sequential": (
            rows[: sc.sequential_rows],
            lambda: run_sequential(emu, rows[: sc.sequential_rows]),
        ),
    }
    tries: dict[str, list[Outcome]] = {}
    for round_ in range(sc.rounds):
        for client in clients:
            if client == "requests, sequential" and not sc.sequential_rows:
                continue  # shown where it says something: latency- and cpu-bound (and --quick)
            if sc.model != MODEL and client not in (LIBRARY, "bare aiohttp"):
                continue  # the SDK and the loop send gpt-4o-transcribe's body
            if round_ and client not in (LIBRARY, "bare aiohttp"):
                continue
            if sc.clients is not None and client not in sc.clients:
                continue
            subset, fn = runs[client]
            outcome = measure(emu, sc, client, subset, fn)
            outcome.extrapolated = client == "requests, sequential"
            print(
                f"  {sc.name:<16} {client:<22} {outcome.finished:>5}/{outcome.rows:<5} rows "
                f"{outcome.seconds:7.1f} s  {outcome.rows_per_s:8.1f} rows/s  "
                f"429s {outcome.n429}  load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            tries.setdefault(client, []).append(outcome)
    medians = {c: sorted(t, key=lambda o: o.rows_per_s)[len(t) // 2] for c, t in tries.items()}
    bare = tries.get("bare aiohttp", [])
    if sc.rounds > 1 and LIBRARY in medians and len(bare) == len(tries[LIBRARY]):
        rounds = zip(tries[LIBRARY], bare, strict=True)
        pairs = sorted(o.rows_per_s / b.rows_per_s for o, b in rounds)
        medians[LIBRARY].paired = pairs[len(pairs) // 2]
    return list(medians.values())


def best_share(sc: Scenario, seconds: float) -> float | None:
    """The most of the limit a client could finish over ``seconds`` (it sends at the
    limit and every attempt that is not refused or failed finishes a row), for the
    scenarios with capacity refusals; None for the others."""
    f = sc.faults
    if not sc.limit_per_s or not (f.get("p429") or f.get("burst_every")):
        return None
    succeed = (1 - f.get("p_reset", 0.0)) * (1 - f.get("p408", 0.0)) * (1 - f.get("p500", 0.0))
    every, refused = f.get("burst_every"), f.get("p429", 0.0)
    if every is None or seconds <= 0:
        return succeed * (1 - refused)
    burst, start, in_burst = f["burst_seconds"], every - f["burst_seconds"], 0.0
    while start < seconds:
        in_burst += max(0.0, min(seconds, start + burst) - start)
        start += every
    mean_refused = (refused * (seconds - in_burst) + f["burst_share"] * in_burst) / seconds
    return succeed * (1 - mean_refused)


def to_bare(o: Outcome, bare: Outcome) -> float:
    """``o``'s rows/s over the bare loop's: the median of the rounds' ratios, when paired."""
    return o.paired if o.paired is not None else o.rows_per_s / bare.rows_per_s


def ratio(o: Outcome, sc: Scenario, bare: Outcome | None) -> str:
    if sc.ratio_to == "limit" and sc.limit_per_s:
        share = o.rows_per_s / sc.limit_per_s
        best = best_share(sc, o.seconds)
        return f"{share:.3f} of limit" + (f", {share / best:.2f}× best" if best else "")
    if bare is not None and bare.rows_per_s > 0:
        return f"{to_bare(o, bare):.2f}× bare"
    return "n/a"


def table(results: dict[str, list[Outcome]], by_name: dict[str, Scenario]) -> str:
    lines = [
        "| scenario | client | rows/s | ratio | 429s received | rows finished "
        "| duplicate 200s | seconds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, outcomes in results.items():
        sc = by_name[name]
        bare = next((o for o in outcomes if o.client == "bare aiohttp"), None)
        for o in outcomes:
            client = o.client + (f" ({o.rows} rows, extrapolated)" if o.extrapolated else "")
            lines.append(
                f"| {name} | {client} | {o.rows_per_s:.1f} | {ratio(o, sc, bare)} | "
                f"{o.n429:,} of {o.requests:,} | {o.finished:,}/{o.rows:,} | "
                f"{o.duplicates:,} | {o.seconds:.1f} |"
            )
    return "\n".join(lines)


def verdicts(results: dict[str, list[Outcome]], by_name: dict[str, Scenario]) -> list[str]:
    """The library's numbers against the targets (printed, never asserted)."""
    out = []

    def get(name: str, client: str) -> Outcome | None:
        return next((o for o in results.get(name, []) if o.client == client), None)

    def mark(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    for name in ("rate-bound", "rate-bound-whisper", "rate-bound-10s", "rate-bound-block"):
        lib = get(name, LIBRARY)
        sc = by_name.get(name)
        if lib is not None and sc is not None and sc.limit_per_s:
            share = lib.rows_per_s / sc.limit_per_s
            pct = 100 * lib.n429 / max(1, lib.requests)
            out.append(
                f"{mark(share >= 0.97 and pct <= 0.5)} {name}: {share:.3f} of the limit "
                f"(target >= 0.97) with {pct:.2f} % 429s (target <= 0.5 %)"
            )
    for name in ("latency-bound", "faulty"):
        lib, bare = get(name, LIBRARY), get(name, "bare aiohttp")
        if lib is not None and bare is not None and bare.rows_per_s > 0:
            r = to_bare(lib, bare)
            out.append(f"{mark(r >= 0.9)} {name}: {r:.2f}× the bare loop (target >= 0.9)")
    lib, bare = get("cpu-bound", LIBRARY), get("cpu-bound", "bare aiohttp")
    sdk = get("cpu-bound", "cloudflare SDK")
    if lib is not None and bare is not None and sdk is not None and bare.rows_per_s > 0:
        r, r_sdk = to_bare(lib, bare), lib.rows_per_s / max(sdk.rows_per_s, 1e-9)
        out.append(
            f"{mark(r >= 0.5 and r_sdk >= 3)} cpu-bound (a sanity floor): {r:.2f}× the bare "
            f"loop (target >= 0.5) and {r_sdk:.1f}× the SDK (target >= 3), default cache"
        )
    for name in results:
        lib, sdk = get(name, LIBRARY), get(name, "cloudflare SDK")
        if lib is None or sdk is None or sdk.n429 == 0:
            continue
        r = lib.rows_per_s / sdk.rows_per_s if sdk.rows_per_s else float("inf")
        per_row = sdk.n429 / max(1, sdk.rows)
        if per_row > 1:
            out.append(
                f"{mark(r >= 1.5)} {name}: {r:.2f}× the SDK, whose retries drew a storm of "
                f"{sdk.n429:,} 429s ({per_row:.1f} per row; target >= 1.5×)"
            )
        else:
            out.append(
                f"note {name}: {r:.2f}× the SDK, which drew {sdk.n429:,} 429s "
                f"({per_row:.2f} per row): no storm, its retries wait out Retry-After"
            )
    for name, floor in (("faulty-720", 0.9), ("capacity-bursts", 0.85)):
        lib, sc = get(name, LIBRARY), by_name.get(name)
        best = None if lib is None or sc is None else best_share(sc, lib.seconds)
        if lib is not None and sc is not None and sc.limit_per_s and best:
            share = lib.rows_per_s / sc.limit_per_s
            out.append(
                f"{mark(share >= floor * best)} {name}: {share:.3f} of the limit, "
                f"{share / best:.2f}× the best possible ({best:.3f}: every attempt at the "
                f"limit, refused or failed at the scenario's rates; target >= {floor})"
            )
    for name in ("faulty", "faulty-720", "capacity-bursts"):
        lib = get(name, LIBRARY)
        if lib is not None:
            out.append(
                f"{mark(lib.finished == lib.rows and lib.duplicates == 0)} {name}: "
                f"{lib.finished}/{lib.rows} rows finished, {lib.duplicates} bought twice "
                "(target: all, none)"
            )
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the scenarios and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 3 min)")
    parser.add_argument(
        "--only", action="append", help="run only this scenario (repeatable)", default=None
    )
    parser.add_argument(
        "--clients",
        default="cf-transcribe-pandas,bare aiohttp,cloudflare SDK,requests, sequential",
        help="comma-separated client names (default: all four)",
    )
    args = parser.parse_args(argv)
    names = [LIBRARY, "bare aiohttp", "cloudflare SDK", "requests, sequential"]
    clients = [n for n in names if n in args.clients]
    chosen = [s for s in scenarios(args.quick) if not args.only or s.name in args.only]
    by_name = {s.name: s for s in chosen}
    load_start = os.getloadavg()
    started = time.perf_counter()
    results: dict[str, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as tmp:
        root = Path(tmp)
        (root / "clips").mkdir()
        paths = write_clips(root / "clips", max(s.rows for s in chosen))
        with Emulator(port=0, process=True) as emu:
            for sc in chosen:
                print(f"{sc.name}: {sc.what}", flush=True)
                results[sc.name] = run_scenario(emu, sc, paths, root, clients)
    load_end = os.getloadavg()
    import cloudflare

    print()
    print(
        f"cf-transcribe-pandas benchmark{' (--quick)' if args.quick else ''}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, aiohttp "
        f"{aiohttp.__version__}, cloudflare {cloudflare.__version__}; emulator in a subprocess; "
        f"concurrency {CONCURRENCY}; {SECONDS_PER_CLIP} s WAV clips, distinct per row; "
        f"{time.perf_counter() - started:.0f} s in all."
    )
    print(
        f"Load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/"
        f"{load_start[2]:.2f}, at end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f} "
        "(the machine is shared: the cpu-bound row is the one that moves most)."
    )
    print()
    for sc in chosen:
        print(f"- {sc.name}: {sc.what}")
    print()
    print(table(results, by_name))
    print()
    for line in verdicts(results, by_name):
        print(line)


if __name__ == "__main__":
    main()
