"""``cf-transcribe run``: transcribe a table's audio column (or audio files) into a new table.

Reads INPUT, calls ``df.cfai.transcribe`` with ``errors="coerce"`` (or
``"raise"``), writes OUTPUT atomically and maps the outcome to the exit code:
0 all done, 1 some rows failed, 2 usage/credentials/account (OUTPUT then holds
the finished rows), 130/143 interrupted (nothing written, finished rows cached).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from cf_transcribe_pandas.cli.exits import (
    EXIT_OK,
    EXIT_ROWS_FAILED,
    EXIT_USAGE,
    CliError,
    interrupted_code,
    say,
)
from cf_transcribe_pandas.cli.logs import RowLog
from cf_transcribe_pandas.cli.options import (
    DEFAULTS,
    add_input,
    add_request_options,
    audio_column,
    cache_option,
    given_options,
    per_row_option,
    show_progress,
)
from cf_transcribe_pandas.cli.subtitles import add_subtitle_options, write_subtitles
from cf_transcribe_pandas.cli.tables import (
    TABLE_FORMATS,
    column_values,
    load_input,
    output_format,
    write_table,
)
from cf_transcribe_pandas.errors import AccountError, ConfigurationError, TranscribeError

TOKEN_NOTE = (
    "Credentials: CLOUDFLARE_API_TOKEN (environment only: there is deliberately no "
    "flag, so the token stays out of shell history and `ps`), CLOUDFLARE_ACCOUNT_ID "
    "(or --account-id) and optionally CLOUDFLARE_BASE_URL (or --base-url)."
)

EPILOG = f"""INPUT is one table (.csv, .parquet/.pq, .jsonl/.ndjson, optionally compressed
.gz/.bz2/.xz/.zst; or any name with --format), or audio files: files, directories (searched
recursively for audio file names, hidden files skipped) and quoted globs
('clips/**/*.wav'), one row per file in a `path` column. Relative paths in a table
are relative to the current directory.

OUTPUT keeps every input column and adds the text column ({{column}}_text or
--output-column) and, with --errors coerce (the default), {{output}}_error and
{{output}}_error_code. It is written atomically: a temporary file in the same
directory, renamed into place; a failed or interrupted run leaves no partial file.

exit codes:
  0    every row transcribed (rows with no audio are skipped, not failed)
  1    some rows failed (their count is on stderr; rerun to retry them)
  2    usage, unreadable input, missing credentials, or the run was stopped by the
       account (quota used up, bad token): OUTPUT then holds every finished row and
       the rows not sent carry that error, so rerunning later resumes
  130  Ctrl-C (143: SIGTERM): nothing written, finished rows are in the cache, so the
       same command resumes where it stopped

{TOKEN_NOTE}

examples:
  cf-transcribe run calls.csv --column audio -o calls.parquet
  cf-transcribe run 'clips/**/*.mp3' -o clips.csv --language en --rate-limit 300
  cf-transcribe run meetings.jsonl -o out.jsonl --language-column lang --log-json
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` subcommand to the ``cf-transcribe`` parser."""
    p = subparsers.add_parser(
        "run",
        help="transcribe a table's audio column (or audio files) into a new table",
        description="Transcribe every row's audio and write the table with a text column.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input(p)
    p.add_argument(
        "-o", "--output", required=True, help="the table to write (.csv, .parquet, .jsonl)"
    )
    p.add_argument(
        "--output-format", choices=TABLE_FORMATS, help="format of OUTPUT (default: its extension)"
    )
    p.add_argument("--output-column", metavar="NAME", help="text column (default: COLUMN_text)")
    add_request_options(p)
    p.add_argument(
        "--errors",
        choices=("coerce", "raise"),
        default="coerce",
        help="coerce (default): failed rows get error columns and exit code 1; "
        "raise: stop at the first failed row, write nothing, exit 1",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        help=f"most requests in flight (default: {DEFAULTS.requests_in_flight})",
    )
    p.add_argument(
        "--max-retries",
        type=int,
        help=f"retries for 5xx, timeouts, resets (default: {DEFAULTS.max_retries})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        help=f"seconds to wait for one answer (default: {DEFAULTS.timeout:g})",
    )
    p.add_argument("--account-id", help="Cloudflare account id (default: $CLOUDFLARE_ACCOUNT_ID)")
    p.add_argument(
        "--base-url", help="API base URL (default: $CLOUDFLARE_BASE_URL or Cloudflare's)"
    )
    p.add_argument("--gateway", metavar="ID", help="send through this AI Gateway")
    p.add_argument(
        "--provenance", action="store_true", help="add _cached, _model, _duration_s columns"
    )
    p.add_argument(
        "--log-json",
        action="store_true",
        help="one JSON line per finished row (and retry) on stderr, then a summary line",
    )
    add_subtitle_options(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log retries and slow-downs")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``cf-transcribe run``; returns the exit code."""
    hook = RowLog(json_lines=args.log_json)
    try:
        return _transcribe(args, hook)
    except CliError as exc:
        if not args.log_json:
            raise
        hook.message(f"error: {exc}", "ERROR")  # stderr stays JSON lines only
        return hook.finish(EXIT_USAGE, None)
    except KeyboardInterrupt as exc:
        hook.message(
            f"interrupted after {hook.counts['ok']:,} new transcripts; every finished row is "
            "in the cache: run the same command again to resume; nothing was written"
        )
        return hook.finish(interrupted_code(exc), None)


def _mark_unsent(
    out: pd.DataFrame, output: str, finished: set[int], exc: Exception, code: str
) -> pd.DataFrame:
    """Give the rows a stopped run never finished an error saying so."""
    unsent = [i for i in range(len(out)) if i not in finished]
    if not unsent or f"{output}_error" not in out.columns:
        return out
    out = out.copy()
    err = out[f"{output}_error"].copy()
    err_code = out[f"{output}_error_code"].copy()
    err.iloc[unsent] = f"not sent: the run stopped ({exc})"
    err_code.iloc[unsent] = code
    out[f"{output}_error"] = err
    out[f"{output}_error_code"] = err_code
    return out


def _write_result(df: pd.DataFrame, path: Path, fmt: str, *, cached: bool) -> None:
    try:
        write_table(df, path, fmt)
    except CliError as exc:
        if not cached:
            raise
        raise CliError(
            f"{exc}; the transcripts are in the cache, so rerunning with another -o costs nothing"
        ) from None


def _credentials_hint(exc: Exception, args: argparse.Namespace) -> str | None:
    """The command line's own words for missing credentials (no ``api_token=``)."""
    if getattr(exc, "code", None) != "missing_credentials":
        return None
    missing = []
    if not os.environ.get("CLOUDFLARE_API_TOKEN", "").strip():
        missing.append("CLOUDFLARE_API_TOKEN")
    if args.account_id is None and not os.environ.get("CLOUDFLARE_ACCOUNT_ID", "").strip():
        missing.append("CLOUDFLARE_ACCOUNT_ID (or pass --account-id)")
    if not missing:
        return None
    return (
        f"missing Cloudflare credentials: set {' and '.join(missing)} in the environment "
        "(the Workers AI page of the Cloudflare dashboard has both)"
    )


def _call_transcribe(
    df: pd.DataFrame, column: str, output: str, args: argparse.Namespace, hook: RowLog
) -> pd.DataFrame:
    """``df.cfai.transcribe`` with the command line's options."""
    out: pd.DataFrame = df.cfai.transcribe(
        column,
        output,
        language=per_row_option(df, args.language, args.language_column, "language"),
        prompt=per_row_option(df, args.prompt, args.prompt_column, "prompt"),
        cache=cache_option(args),
        progress=show_progress(args),
        on_event=hook,
        **given_options(args),
    )
    return out


def _transcribe(args: argparse.Namespace, hook: RowLog) -> int:
    out_path = Path(args.output).expanduser()
    out_fmt = output_format(out_path, args.output_format)
    df, file_list = load_input(args.input, args.format)
    column = audio_column(args, file_list)
    hook.values = column_values(df, column, "audio").tolist()
    output = args.output_column or f"{column}_text"
    if args.model is not None and len(args.model) > 1:
        raise CliError("run takes one --model (`cf-transcribe estimate` compares several)")
    if args.subtitles is not None and not args.timestamps:
        args.timestamps = "segment"
    try:
        out = _call_transcribe(df, column, output, args, hook)
    except ConfigurationError as exc:
        raise CliError(_credentials_hint(exc, args) or exc.message) from None
    except AccountError as exc:
        hook.message(f"the run stopped: {exc.message}", "ERROR")
        partial = exc.partial
        if not isinstance(partial, pd.DataFrame) or args.errors != "coerce":
            return hook.finish(EXIT_USAGE, None)
        partial = _mark_unsent(partial, output, hook.finished, exc, exc.error_code)
        _write_result(partial, out_path, out_fmt, cached=not args.no_cache)
        hook.message(
            f"wrote {out_path} with the {len(hook.finished):,} finished of {len(df):,} rows; "
            "rerun the same command later to finish the rest"
        )
        return hook.finish(EXIT_USAGE, str(out_path))
    except TranscribeError as exc:  # errors="raise": the first failed row
        hook.message(
            f"a row failed: {exc.message}; nothing was written (finished rows are cached)",
            "ERROR",
        )
        return hook.finish(EXIT_ROWS_FAILED, None)
    _write_result(out, out_path, out_fmt, cached=not args.no_cache)
    if args.subtitles is not None:
        n = write_subtitles(out, column, output, args.subtitles, args.subtitle_format)
        hook.message(f"wrote {n:,} {args.subtitle_format} files to {args.subtitles}")
    failed = _report(out, out_path, output, args, hook)
    return hook.finish(EXIT_ROWS_FAILED if failed else EXIT_OK, str(out_path))


def _report(
    out: pd.DataFrame, out_path: Path, output: str, args: argparse.Namespace, hook: RowLog
) -> int:
    """The summary line on stderr (unless quiet with nothing failed); returns the failed rows."""
    error_col = f"{output}_error"
    failed = int(out[error_col].notna().sum()) if error_col in out.columns else 0
    if not args.log_json and (failed or not args.quiet):
        c = hook.counts
        say(
            f"wrote {out_path}: {len(out):,} rows, {c['ok'] + c['cached']:,} transcribed "
            f"({c['cached']:,} from the cache), {failed:,} failed"
            + (f", {c['skipped']:,} without audio" if c["skipped"] else "")
            + (
                f"; see the {error_col!r} column and rerun to retry the failed rows"
                if failed
                else ""
            )
        )
    return failed
