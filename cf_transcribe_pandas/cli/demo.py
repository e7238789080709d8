"""``cf-transcribe demo``: transcribe the bundled sample clips.

With ``CLOUDFLARE_API_TOKEN`` and ``CLOUDFLARE_ACCOUNT_ID`` set it asks the
service; otherwise it starts the bundled emulator, transcribes the clips, runs
again to show every row coming from the cache, and checks the transcripts
against the samples' manifest.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from cf_transcribe_pandas.cli.exits import EXIT_OK, EXIT_ROWS_FAILED
from cf_transcribe_pandas.emulator import Emulator


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand to the ``cf-transcribe`` parser."""
    p = subparsers.add_parser(
        "demo",
        help="transcribe the bundled sample clips (emulator if no credentials)",
        epilog="example:\n  cf-transcribe demo --quiet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _samples_dir() -> Path:
    return Path(str(resources.files("cf_transcribe_pandas") / "samples"))


def _through_emulator(df: pd.DataFrame, progress: bool) -> pd.DataFrame:
    """Transcribe ``df`` with the emulator, then again to show the cache answering."""
    with Emulator(port=0) as emu, tempfile.TemporaryDirectory() as cache_dir:
        options: dict[str, Any] = {
            "language": "language",
            "account_id": emu.account_id,
            "api_token": emu.token,
            "base_url": emu.base_url,
            "cache": cache_dir,
            "progress": progress,
        }
        out: pd.DataFrame = df.cfai.transcribe("audio", **options)
        again = df.cfai.transcribe("audio", **{**options, "progress": False})
        requests_first = len(emu.requests())
        print(
            f"first run: {requests_first} requests; rerun: "
            f"{len(emu.requests()) - requests_first} requests (every row from the cache)"
        )
        assert again["audio_text"].equals(out["audio_text"])
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``cf-transcribe demo``; returns the exit code."""
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
        out = _through_emulator(df, progress=not args.quiet)
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
