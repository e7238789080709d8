"""How ``cf-transcribe`` ends: its exit codes, :class:`CliError` and one-line messages.

Exit codes: 0 all rows done; 1 some rows failed; 2 usage, input, credentials,
quota or account errors; 130 interrupted by Ctrl-C (143 by SIGTERM); 141 a
closed stdout (``cf-transcribe cache stats | head -1``).
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141


class CliError(Exception):
    """A problem with the command line or its inputs: one line on stderr, exit 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the run is cancelled, finished rows are cached)."""


def interrupted_code(exc: KeyboardInterrupt) -> int:
    """The exit code of an interruption: 143 for SIGTERM, 130 for Ctrl-C."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def say(message: str) -> None:
    """Print ``cf-transcribe: message`` on stderr."""
    print(f"cf-transcribe: {message}", file=sys.stderr, flush=True)
