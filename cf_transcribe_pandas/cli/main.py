"""The ``cf-transcribe`` parser, assembled from each subcommand's ``add_parser``, and ``main``.

``main`` parses the arguments, routes the library's log to stderr, turns SIGTERM
into a cancelled run (like Ctrl-C) while ``run`` works, and maps
:class:`~cf_transcribe_pandas.cli.exits.CliError`, interruptions and a closed
stdout to their exit codes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from cf_transcribe_pandas import __version__
from cf_transcribe_pandas.cli import cache, demo, emulator, estimate, run
from cf_transcribe_pandas.cli.exits import (
    EXIT_BROKEN_PIPE,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Terminated,
    interrupted_code,
    say,
)
from cf_transcribe_pandas.cli.logs import library_log

EPILOG = f"""examples:
  cf-transcribe run calls.csv --column audio -o calls.parquet
  cf-transcribe run recordings/ -o transcripts.jsonl --language en
  cf-transcribe estimate calls.parquet --column audio
  cf-transcribe cache stats
  cf-transcribe cache export all.parquet
  cf-transcribe demo
  cf-transcribe emulator --port 8787 --rpm-limit 600

exit codes: 0 all rows done, 1 some rows failed, 2 usage/input/credentials/quota,
130 interrupted (finished rows are cached).

{run.TOKEN_NOTE}
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cf-transcribe``."""
    parser = _Parser(
        prog="cf-transcribe",
        description="Transcribe audio with Cloudflare Workers AI (openai/gpt-4o-transcribe).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (run, estimate, cache, demo, emulator):
        command.add_parser(subparsers)
    return parser


def _on_sigterm(signum: int, frame: types.FrameType | None) -> None:
    raise Terminated


@contextmanager
def _sigterm_cancels(enabled: bool) -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` (in the main thread only)."""
    previous: Callable[[int, types.FrameType | None], object] | int | None = None
    installed = False
    if enabled:
        try:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
            installed = True
        except ValueError:  # not the main thread (embedded use)
            pass
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cf-transcribe``.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 all done, 1 some rows failed, 2 usage, input,
        credentials or account errors, 130 Ctrl-C, 143 SIGTERM, 141 closed stdout.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        return emulator.run(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if not exc.code else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with (
            _sigterm_cancels(args.command == "run"),
            library_log(
                json_lines=getattr(args, "log_json", False),
                verbose=getattr(args, "verbose", False),
            ),
        ):
            return handler(args)
    except CliError as exc:
        say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        say("interrupted; finished rows are cached")
        return interrupted_code(exc)
    except BrokenPipeError:  # `cf-transcribe cache stats | head -1`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
