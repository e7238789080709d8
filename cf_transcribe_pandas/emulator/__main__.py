"""Command line: ``python -m cf_transcribe_pandas.emulator`` (and ``cf-transcribe emulator``).

Serves the emulator until SIGINT or SIGTERM. The first line printed is the
base URL, then the account id and token to use::

    http://127.0.0.1:8787/client/v4 account_id=test-account token=test-token
    export CLOUDFLARE_BASE_URL=http://127.0.0.1:8787/client/v4 CLOUDFLARE_ACCOUNT_ID=...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from cf_transcribe_pandas.emulator.config import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_TOKEN,
    EmulatorConfig,
)

__all__ = ["build_parser", "main"]

_PROG = "python -m cf_transcribe_pandas.emulator"


EPILOG = """Point the library or `cf-transcribe run` at it with the printed
`export CLOUDFLARE_...` line.

examples:
  cf-transcribe emulator --port 8787
  cf-transcribe emulator --port 8787 --rpm-limit 600 --latency 0.2 --p429 0.05
  cf-transcribe emulator --preset flaky --manifest tests/data/audio/manifest.csv
"""

_SETTINGS: tuple[tuple[str, str, type, str], ...] = (
    ("--rpm-limit", "N", int, "requests per minute (sliding 60 s window) before 429 3040"),
    (
        "--rate-block",
        "S",
        float,
        "once over --rpm-limit, refuse every request for S seconds (Cloudflare's block)",
    ),
    ("--quota", "N", int, "successful requests before 429 3036 (daily allocation)"),
    ("--latency", "S", float, "seconds each model run takes"),
    ("--latency-jitter", "S", float, "up to this many random seconds added to latency"),
    ("--p429", "P", float, "probability of 429 3040 with Retry-After"),
    ("--retry-after", "S", float, "Retry-After seconds sent with --p429 answers"),
    ("--burst-every", "S", float, "a capacity burst every S seconds (429 3040, any rate)"),
    ("--burst-seconds", "S", float, "how long each burst lasts (default 30)"),
    ("--burst-share", "P", float, "share of requests refused during a burst (default 0.8)"),
    ("--p500", "P", float, "probability of a 500/502/503 answer"),
    ("--p-html", "P", float, "share of 5xx answers with an HTML body (default 0.25)"),
    ("--p408", "P", float, "probability of 408 3007 (timeout)"),
    ("--p-reset", "P", float, "probability of dropping the connection without answer"),
    ("--slow-body", "S", float, "seconds over which each success body is streamed"),
    ("--seed", "N", int, "seed of the random faults"),
    ("--words-per-second", "W", float, "answer 'w1 w2 ...' by probed duration"),
    ("--max-output-words", "N", int, "cap of --words-per-second answers (default 1500)"),
)
"""The limit and fault flags (flag, metavar, type, help); each sets the field of its name."""

_FLAG_FIELDS = (
    "token",
    "account_id",
    "models",
    "preset",
    *(flag[2:].replace("-", "_") for flag, _, _, _ in _SETTINGS),
    "blocked",
    "manifests",
    "load_samples",
)
"""The flags that set an :class:`EmulatorConfig` field when given."""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser of the emulator command."""
    parser = argparse.ArgumentParser(
        prog=prog or _PROG,
        description=(
            "A local stand-in for Cloudflare Workers AI (openai/gpt-4o-transcribe) with "
            "limits and fault injection. Prints the base URL first, then serves until "
            "Ctrl-C or SIGTERM."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_identity(parser)
    for flag, metavar, kind, text in _SETTINGS:
        parser.add_argument(flag, metavar=metavar, type=kind, help=text)
    _add_sources(parser)
    return parser


def _add_identity(parser: argparse.ArgumentParser) -> None:
    """Where to listen, what to accept, and the preset."""
    add = parser.add_argument
    add("--host", metavar="HOST", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    add(
        "--port",
        metavar="N",
        type=int,
        default=8787,
        help="port to bind; 0 picks a free one (default 8787)",
    )
    add("--token", metavar="TOKEN", help=f"API token to accept (default {DEFAULT_TOKEN!r})")
    add("--account-id", metavar="ID", help=f"account id to accept (default {DEFAULT_ACCOUNT_ID!r})")
    add(
        "--model",
        metavar="MODEL",
        action="append",
        dest="models",
        help="model to accept (repeatable)",
    )
    add(
        "--preset",
        metavar="NAME",
        help="named limits and faults: ideal, realistic, flaky, throttled",
    )


def _add_sources(parser: argparse.ArgumentParser) -> None:
    """The block, the transcript sources, a JSON config, logging."""
    add = parser.add_argument
    add("--blocked", action="store_true", default=None, help="the account is blocked (403 3023)")
    add(
        "--manifest",
        metavar="PATH",
        action="append",
        dest="manifests",
        help="CSV with sha256,text (repeatable)",
    )
    add(
        "--no-samples",
        action="store_false",
        dest="load_samples",
        default=None,
        help="do not load the package's sample transcripts",
    )
    add("--config-json", metavar="JSON", help="JSON object of EmulatorConfig fields (flags win)")
    add("-v", "--verbose", action="store_true", help="log every request to stderr")
    add("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)


def _config(args: argparse.Namespace) -> EmulatorConfig:
    data: dict[str, Any] = {}
    if args.config_json:
        loaded = json.loads(args.config_json)
        if not isinstance(loaded, dict):
            raise ValueError("--config-json must be a JSON object")
        data.update(loaded)
    for name in _FLAG_FIELDS:
        value = getattr(args, name)
        if value is not None:
            data[name] = value
    return EmulatorConfig.from_dict(data)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the emulator command.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.
        prog: Program name shown in help and errors.

    Returns:
        0 after a clean stop (SIGINT/SIGTERM), 2 for bad settings, 1 when the
        server cannot start (e.g. the port is taken).
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    name = parser.prog
    try:
        config = _config(args)
    except (ValueError, TypeError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        asyncio.run(_serve(config, args.host, args.port, watch_stdin=args.exit_on_stdin_eof))
    except KeyboardInterrupt:
        pass
    except (ValueError, OSError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: EmulatorConfig, host: str, port: int, *, watch_stdin: bool) -> None:
    from cf_transcribe_pandas.emulator.serving import Serving

    serving = Serving(config, host, port)
    await serving.start()
    try:
        base = f"{serving.root_url}/client/v4"
        print(f"{base} account_id={config.account_id} token={config.token}")
        print(
            f"export CLOUDFLARE_BASE_URL={base} CLOUDFLARE_ACCOUNT_ID={config.account_id} "
            f"CLOUDFLARE_API_TOKEN={config.token}"
        )
        print("serving; press Ctrl-C to stop", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if watch_stdin:
            threading.Thread(
                target=_wait_stdin_eof, args=(loop, stop), name="stdin-eof", daemon=True
            ).start()
        with _stop_on_signals(loop, stop):
            await stop.wait()
    finally:
        await serving.stop()


@contextlib.contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT and SIGTERM while inside."""
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # Windows or not the main thread: Ctrl-C still raises KeyboardInterrupt
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _wait_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin closes: the parent of a ``process=True`` emulator went away."""
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(65536):
            pass
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(stop.set)


if __name__ == "__main__":
    sys.exit(main())
