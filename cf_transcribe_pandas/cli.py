"""The ``cf-transcribe`` command.

Subcommands::

    cf-transcribe demo                       transcribe the bundled sample clips
    cf-transcribe emulator --port 8787       serve the local stand-in for the service
    cf-transcribe cache stats|compact|export|clear

Exit codes: 0 all rows done; 1 some rows failed; 2 usage, credentials or quota
errors; 130 interrupted (finished rows are cached).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EPILOG = """examples:
  cf-transcribe demo
  cf-transcribe emulator --port 8787 --rpm-limit 600
  cf-transcribe cache stats
  cf-transcribe cache export all.parquet
"""


def _samples_dir() -> Path:
    return Path(str(resources.files("cf_transcribe_pandas") / "samples"))


def _demo(args: argparse.Namespace) -> int:
    import pandas as pd

    import cf_transcribe_pandas  # noqa: F401  (registers df.cfai)
    from cf_transcribe_pandas.emulator import Emulator

    samples = _samples_dir()
    with open(samples / "manifest.csv", newline="", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    df = pd.DataFrame(
        {
            "audio": [str(samples / row["file"]) for row in manifest],
            "language": [row["language"] for row in manifest],
        }
    )
    live = bool(os.environ.get("CLOUDFLARE_API_TOKEN") and os.environ.get("CLOUDFLARE_ACCOUNT_ID"))
    pd.set_option("display.max_colwidth", 70)
    pd.set_option("display.width", 160)
    if live:
        print("Credentials found: transcribing the sample clips with Cloudflare Workers AI.")
        out = df.cfai.transcribe("audio", language="language", progress=not args.quiet)
    else:
        print(
            "No CLOUDFLARE_API_TOKEN/CLOUDFLARE_ACCOUNT_ID set: using the bundled emulator "
            "(a local stand-in for the service)."
        )
        with Emulator(port=0) as emu, tempfile.TemporaryDirectory() as cache_dir:
            options = {
                "language": "language",
                "account_id": emu.account_id,
                "api_token": emu.token,
                "base_url": emu.base_url,
                "cache": cache_dir,
                "progress": not args.quiet,
            }
            out = df.cfai.transcribe("audio", **options)
            again = df.cfai.transcribe("audio", **{**options, "progress": False})
            requests_first = len(emu.requests())
            print(
                f"first run: {requests_first} requests; rerun: "
                f"{len(emu.requests()) - requests_first} requests (every row from the cache)"
            )
            assert again["audio_text"].equals(out["audio_text"])
    shown = out.assign(audio=out["audio"].map(lambda p: Path(p).name))
    print(shown[["audio", "language", "audio_text"]].to_string())
    expected = {row["file"]: row["text"] for row in manifest}
    matches = sum(
        1
        for path, text in zip(out["audio"], out["audio_text"], strict=True)
        if str(text).strip() == expected[Path(path).name]
    )
    print(f"{matches} of {len(out)} transcripts match the sample manifest.")
    return EXIT_OK if live or matches == len(out) else EXIT_ROWS_FAILED


def _emulator(args: argparse.Namespace, extra: list[str]) -> int:
    from cf_transcribe_pandas.emulator.__main__ import main as emulator_main

    return emulator_main(extra)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cf-transcribe``."""
    parser = argparse.ArgumentParser(
        prog="cf-transcribe",
        description="Transcribe audio with Cloudflare Workers AI (openai/gpt-4o-transcribe).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo", help="transcribe the bundled sample clips (emulator if no credentials)"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser(
        "emulator",
        help="run the local stand-in for the service (see `cf-transcribe emulator --help`)",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cf-transcribe``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "emulator":
        return _emulator(argparse.Namespace(), argv[1:])
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "demo":
            return _demo(args)
    except KeyboardInterrupt:
        print("interrupted; finished rows are cached", file=sys.stderr)
        return EXIT_INTERRUPTED
    parser.print_help()
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
