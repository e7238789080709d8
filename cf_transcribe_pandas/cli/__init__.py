"""The ``cf-transcribe`` command.

Subcommands, one module each::

    cf-transcribe run INPUT... -o OUTPUT     transcribe a table's audio column, or audio files
    cf-transcribe estimate INPUT...          rows, minutes, requests, cost and time; sends nothing
    cf-transcribe cache stats|compact|export|clear
    cf-transcribe demo                       transcribe the bundled sample clips
    cf-transcribe emulator --port 8787       serve the local stand-in for the service

What they share: ``tables`` (reading and writing CSV/Parquet/JSON Lines, INPUT
discovery), ``options`` (the flags of run and estimate), ``logs`` (RowLog and
``--log-json``), ``exits`` (exit codes, :class:`CliError`) and ``main`` (the
parser, signals, exit codes). Thin on purpose: the work is done by
``df.cfai.transcribe``, :mod:`cf_transcribe_pandas.estimate` and
:class:`cf_transcribe_pandas.cache.Cache`.

Exit codes: 0 all rows done; 1 some rows failed; 2 usage, input, credentials,
quota or account errors; 130 interrupted by Ctrl-C (143 by SIGTERM), with every
finished row in the cache.
"""

from __future__ import annotations

from cf_transcribe_pandas.cli.exits import CliError
from cf_transcribe_pandas.cli.main import build_parser, main
from cf_transcribe_pandas.cli.tables import load_input, read_table, table_format, write_table

__all__ = [
    "CliError",
    "build_parser",
    "load_input",
    "main",
    "read_table",
    "table_format",
    "write_table",
]
