"""``cf-transcribe emulator``: serve the local stand-in for the service.

The arguments go as they are to the emulator's own command line
(:func:`cf_transcribe_pandas.emulator.main`), which has its own ``--help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cf_transcribe_pandas.cli.exits import EXIT_OK, EXIT_USAGE
from cf_transcribe_pandas.emulator import main as emulator_main


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """List ``emulator`` in ``cf-transcribe --help`` (:func:`run` parses its arguments)."""
    subparsers.add_parser(
        "emulator",
        help="run the local stand-in for the service (see `cf-transcribe emulator --help`)",
        add_help=False,
    )


def run(argv: Sequence[str]) -> int:
    """Run ``cf-transcribe emulator ARGS...``; returns the exit code."""
    try:
        return emulator_main(list(argv), prog="cf-transcribe emulator")
    except SystemExit as exc:  # argparse: bad arguments
        return EXIT_OK if not exc.code else EXIT_USAGE
