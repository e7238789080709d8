"""The ``cf-transcribe`` command.

Subcommands::

    cf-transcribe run INPUT... -o OUTPUT     transcribe a table's audio column, or audio files
    cf-transcribe estimate INPUT...          rows, minutes, requests, cost and time; sends nothing
    cf-transcribe cache stats|compact|export|clear
    cf-transcribe demo                       transcribe the bundled sample clips
    cf-transcribe emulator --port 8787       serve the local stand-in for the service

Thin on purpose: parse arguments, read and write tables, map outcomes to exit
codes. The work is done by ``df.cfai.transcribe`` (:mod:`accessor`),
:mod:`estimate` and :class:`cache.Cache`.

Exit codes: 0 all rows done; 1 some rows failed; 2 usage, input, credentials,
quota or account errors; 130 interrupted by Ctrl-C (143 by SIGTERM), with every
finished row in the cache.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import glob
import json
import logging
import os
import signal
import sys
import tempfile
import time
import types
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NoReturn

import pandas as pd

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141

TABLE_FORMATS = ("csv", "parquet", "jsonl")
_TABLE_EXTENSIONS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
Compression = Literal["gzip", "bz2", "xz", "zstd"]
_COMPRESSION: dict[str, Compression] = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}

AUDIO_EXTENSIONS = frozenset(
    {
        ".wav", ".wave", ".flac", ".mp3", ".mp4", ".mpeg", ".mpga", ".m4a", ".m4b",
        ".ogg", ".oga", ".opus", ".webm", ".mka", ".aiff", ".aif", ".aifc", ".caf",
        ".wma", ".asf", ".au", ".snd", ".amr", ".aac", ".3gp",
    }
)  # fmt: skip
"""File name extensions picked up when INPUT is a directory (case-insensitive)."""

_TOKEN_NOTE = (
    "Credentials: CLOUDFLARE_API_TOKEN (environment only: there is deliberately no "
    "flag, so the token stays out of shell history and `ps`), CLOUDFLARE_ACCOUNT_ID "
    "(or --account-id) and optionally CLOUDFLARE_BASE_URL (or --base-url)."
)

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

{_TOKEN_NOTE}
"""

RUN_EPILOG = f"""INPUT is one table (.csv, .parquet/.pq, .jsonl/.ndjson, optionally compressed
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

{_TOKEN_NOTE}

examples:
  cf-transcribe run calls.csv --column audio -o calls.parquet
  cf-transcribe run 'clips/**/*.mp3' -o clips.csv --language en --rate-limit 300
  cf-transcribe run meetings.jsonl -o out.jsonl --language-column lang --log-json
"""

ESTIMATE_EPILOG = """Probes every row (headers only), hashes it, drops duplicates and rows already
in the cache, plans re-encoding and splitting as a run would, and prints rows,
audio minutes, upload bytes, requests, cost and time. Sends nothing and needs no
credentials. The default price is OpenAI's published $0.006 per audio minute for
gpt-4o-transcribe (Cloudflare publishes none for it; looked up 2026-11-27): pass
--price-per-minute with your account's rate.

examples:
  cf-transcribe estimate calls.csv --column audio
  cf-transcribe estimate recordings/ --price-per-minute 0.006 --rate-limit 720
  cf-transcribe estimate calls.parquet --json
  cf-transcribe estimate calls.csv -o plan.csv      # one row per input row: status, parts, ...
"""

CACHE_EPILOG = """The cache keeps every finished transcript (Parquet files), keyed by the audio's
sha256 and the request parameters. Default directory: $CF_TRANSCRIBE_CACHE_DIR, else
the per-user cache directory.

examples:
  cf-transcribe cache stats
  cf-transcribe cache stats --json --cache-dir /data/cf-cache
  cf-transcribe cache compact
  cf-transcribe cache export all.parquet
  cf-transcribe cache clear --yes
"""

logger = logging.getLogger("cf_transcribe_pandas")


class CliError(Exception):
    """A problem with the command line or its inputs: one line on stderr, exit 2."""


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the run is cancelled, finished rows are cached)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _say(message: str) -> None:
    print(f"cf-transcribe: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- tables


def _split_compression(path: Path) -> tuple[str, Compression | None]:
    """(extension without compression, compression) of a file name."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = _COMPRESSION.get(suffixes[-1]) if suffixes else None
    if compression is not None:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), compression


def table_format(path: Path, explicit: str | None) -> str | None:
    """The table format of ``path``: ``explicit``, else from its extension, else None."""
    if explicit is not None:
        return explicit
    ext, _ = _split_compression(path)
    return _TABLE_EXTENSIONS.get(ext)


def _unknown_format(path: Path, option: str) -> CliError:
    return CliError(
        f"cannot tell the table format of {str(path)!r}: name it .csv, .parquet, .pq, "
        f".jsonl or .ndjson, or pass {option} csv|parquet|jsonl"
    )


def read_table(path: Path, fmt: str) -> pd.DataFrame:
    """Read a CSV (every column as text), Parquet or JSON Lines file."""
    _, compression = _split_compression(path)
    try:
        if fmt == "csv":
            return pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                compression=compression or "infer",
            )
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_json(
            path,
            lines=True,
            dtype=False,  # no type guessing (and, since pandas 3, no date guessing)
            compression=compression or "infer",
        )
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a {fmt} file") from None
    except PermissionError:
        raise CliError(f"{path}: permission denied") from None
    except Exception as exc:  # parser errors of pandas, pyarrow, json, gzip...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"{path}: cannot be read as {fmt} ({first})") from None


def _check_writable(path: Path) -> None:
    """Fail before any work when ``path`` cannot be written."""
    if path.is_dir():
        raise CliError(f"cannot write {path}: it is a directory")
    if not path.parent.is_dir():
        raise CliError(f"cannot write {path}: directory {str(path.parent)!r} does not exist")


def write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write ``df`` atomically: a temporary file in the same directory, then a rename.

    On any failure (or Ctrl-C) the temporary file is removed and ``path`` is
    left as it was.
    """
    directory = path.parent
    _check_writable(path)
    _, compression = _split_compression(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if fmt == "csv":
            df.to_csv(tmp, index=False, compression=compression)
        elif fmt == "parquet":
            df.to_parquet(tmp)
        else:
            df.to_json(
                tmp,
                orient="records",
                lines=True,
                force_ascii=False,
                date_format="iso",
                compression=compression,
            )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, (OSError, ValueError, TypeError)):  # disk full, pyarrow types...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CliError(f"cannot write {path}: {first}") from None
        raise


# --------------------------------------------------------------------------- inputs


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _scan_dir(directory: Path) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                found.append(os.path.join(root, name))
    return sorted(found)


def _audio_files(specs: Sequence[str]) -> list[str]:
    files: list[str] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            found = _scan_dir(path)
            if not found:
                raise CliError(f"{spec}: no audio files in this directory")
            files.extend(found)
        elif path.exists():
            files.append(str(path))
        elif _is_glob(spec):
            matched = sorted(
                p for p in glob.glob(os.path.expanduser(spec), recursive=True) if os.path.isfile(p)
            )
            if not matched:
                raise CliError(f"{spec}: no files match this pattern")
            files.extend(matched)
        else:
            raise CliError(f"{spec}: no such file or directory")
    return files


def load_input(specs: Sequence[str], fmt: str | None) -> tuple[pd.DataFrame, bool]:
    """Read INPUT: one table, or audio files as a one-column (``path``) table.

    Returns:
        The rows and whether they are a file list (True) rather than a table.
    """
    path = Path(specs[0]).expanduser()
    pattern = _is_glob(specs[0]) and not path.exists()
    if len(specs) == 1 and not path.is_dir() and (fmt is not None or not pattern):
        table = table_format(path, fmt)
        if table is not None:
            return read_table(path, table), False
        ext, _ = _split_compression(path)
        if path.is_file() and ext not in AUDIO_EXTENSIONS:
            raise _unknown_format(path, "--format")
    elif fmt is not None:
        raise CliError("--format is for one table file; got several inputs")
    else:
        tables = [s for s in specs if table_format(Path(s), None) is not None]
        if tables:
            raise CliError(f"give one table file or audio files, not both ({tables[0]!r})")
    return pd.DataFrame({"path": _audio_files(specs)}), True


def _column_values(df: pd.DataFrame, name: str, what: str) -> pd.Series:
    if name not in df.columns:
        raise CliError(f"{what} column {name!r} is not in the input (columns: {_shown(df)})")
    return df[name]


def _shown(df: pd.DataFrame) -> str:
    names = [str(c) for c in df.columns[:12]]
    more = ", ..." if len(df.columns) > 12 else ""
    return ", ".join(names) + more if names else "none"


def _per_row_option(
    df: pd.DataFrame, scalar: str | None, column: str | None, what: str
) -> str | pd.Series | None:
    """``--x VALUE`` or ``--x-column NAME`` as the accessor takes it (str or Series)."""
    if column is not None:
        return _column_values(df, column, what)
    if scalar is not None and scalar in df.columns:  # never read a value as a column name
        return pd.Series([scalar] * len(df), index=df.index, dtype=object)
    return scalar


def _as_list(value: str | pd.Series | None) -> list[str | None] | str | None:
    if not isinstance(value, pd.Series):
        return value
    return [None if _isna(v) else str(v) for v in value.tolist()]


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- logging


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _audio_label(value: object) -> str | None:
    """A short, secret-free name for a row's audio in log lines."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        return None
    if isinstance(value, str):
        if value[:5].lower() == "data:":
            return None
        if "://" in value:
            try:
                parts = urllib.parse.urlsplit(value)
            except ValueError:
                return None
            host = parts.netloc.rsplit("@", 1)[-1]  # no user:password
            return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
        return value
    if isinstance(value, dict):
        path = value.get("path")
        return path if isinstance(path, str) else None
    return None


class _JsonLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        line = {
            "event": "log",
            "time": _now(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        try:
            print(json.dumps(line, ensure_ascii=False), file=sys.stderr, flush=True)
        except Exception:  # pragma: no cover - a closed stderr
            self.handleError(record)


@contextmanager
def _logging(json_lines: bool, verbose: bool) -> Iterator[None]:
    """Send the library's log to stderr: JSON lines, or ``cf-transcribe: message``."""
    handler: logging.Handler
    if json_lines:
        handler = _JsonLogHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("cf-transcribe: %(message)s"))
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


class RowLog:
    """The ``on_event`` hook of a CLI run: counts rows; with ``json_lines``, logs them.

    One JSON line on stderr per finished row (``event: "row"``), retry
    (``"retry"``), rate change (``"rate"``) and message (``"log"``), and a
    last ``"summary"`` line. Without ``json_lines`` it only counts, and
    messages are plain ``cf-transcribe: ...`` lines.
    """

    def __init__(self, *, json_lines: bool) -> None:
        self.values: Sequence[Any] = ()
        self.json_lines = json_lines
        self.counts = {"ok": 0, "cached": 0, "failed": 0, "skipped": 0}
        self.finished: set[int] = set()
        self.started = time.monotonic()

    def _emit(self, line: dict[str, Any]) -> None:
        record = {"event": line.pop("event"), "time": _now(), **line}
        print(json.dumps(record, ensure_ascii=False), file=sys.stderr, flush=True)

    def message(self, text: str, level: str = "WARNING") -> None:
        """Tell the user something: a ``log`` line, or ``cf-transcribe: text``."""
        if self.json_lines:
            self._emit({"event": "log", "level": level, "logger": "cf-transcribe", "message": text})
        else:
            _say(text)

    def __call__(self, event: Any) -> None:
        from cf_transcribe_pandas.engine import RateChange, RetryDetails, RowDone

        if isinstance(event, RowDone):
            self.counts[event.status] += 1
            self.finished.add(event.row)
            if self.json_lines:
                error = event.error
                value = self.values[event.row] if event.row < len(self.values) else None
                self._emit(
                    {
                        "event": "row",
                        "row": event.row,
                        "audio": _audio_label(value),
                        "status": event.status,
                        "error_code": error.error_code if error is not None else None,
                        "error": error.message if error is not None else None,
                    }
                )
        elif not self.json_lines:
            return
        elif isinstance(event, RetryDetails):
            self._emit(
                {
                    "event": "retry",
                    "row": event.row,
                    "attempt": event.attempt,
                    "delay_s": round(event.delay, 3),
                    "http_status": event.error.status,
                    "error_code": event.error.error_code,
                    "error": event.error.message,
                }
            )
        elif isinstance(event, RateChange):
            self._emit({"event": "rate", "old_rpm": event.old, "new_rpm": event.new})

    def finish(self, exit_code: int, output: str | None) -> int:
        """End the run: the ``summary`` line (JSON mode); returns ``exit_code``."""
        if self.json_lines:
            rows = len(self.values)
            self._emit(
                {
                    "event": "summary",
                    "rows": rows,
                    **self.counts,
                    "unfinished": rows - len(self.finished),
                    "output": output,
                    "exit_code": exit_code,
                    "seconds": round(time.monotonic() - self.started, 3),
                }
            )
        return exit_code


# --------------------------------------------------------------------------- run


def _cache_option(args: argparse.Namespace) -> bool | str:
    if args.no_cache:
        return False
    return str(args.cache_dir) if args.cache_dir is not None else True


def _progress(args: argparse.Namespace) -> bool:
    return not (args.quiet or getattr(args, "log_json", False)) and sys.stderr.isatty()


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


def _run(args: argparse.Namespace) -> int:
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
        return hook.finish(
            EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED, None
        )


def _transcribe(args: argparse.Namespace, hook: RowLog) -> int:
    from cf_transcribe_pandas.errors import AccountError, ConfigurationError, TranscribeError

    out_path = Path(args.output).expanduser()
    out_fmt = table_format(out_path, args.output_format)
    if out_fmt is None:
        raise _unknown_format(out_path, "--output-format")
    _check_writable(out_path)
    df, file_list = load_input(args.input, args.format)
    column = args.column or ("path" if file_list else "audio")
    hook.values = _column_values(df, column, "audio").tolist()
    output = args.output_column or f"{column}_text"
    try:
        out = df.cfai.transcribe(
            column,
            output,
            language=_per_row_option(df, args.language, args.language_column, "language"),
            prompt=_per_row_option(df, args.prompt, args.prompt_column, "prompt"),
            temperature=args.temperature,
            model=args.model,
            errors=args.errors,
            cache=_cache_option(args),
            concurrency=args.concurrency,
            rate_limit=args.rate_limit,
            max_retries=args.max_retries,
            timeout=args.timeout,
            progress=_progress(args),
            account_id=args.account_id,
            base_url=args.base_url,
            gateway=args.gateway,
            encode=args.encode,
            max_part_seconds=args.max_part_seconds,
            fetch_urls=args.fetch_urls,
            provenance=args.provenance,
            on_event=hook,
        )
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
    error_col = f"{output}_error"
    failed = int(out[error_col].notna().sum()) if error_col in out.columns else 0
    if not args.log_json and (failed or not args.quiet):
        c = hook.counts
        _say(
            f"wrote {out_path}: {len(out):,} rows, {c['ok'] + c['cached']:,} transcribed "
            f"({c['cached']:,} from the cache), {failed:,} failed"
            + (f", {c['skipped']:,} without audio" if c["skipped"] else "")
            + (
                f"; see the {error_col!r} column and rerun to retry the failed rows"
                if failed
                else ""
            )
        )
    return hook.finish(EXIT_ROWS_FAILED if failed else EXIT_OK, str(out_path))


# --------------------------------------------------------------------------- estimate


def _estimate(args: argparse.Namespace) -> int:
    from cf_transcribe_pandas.cache import Cache, default_cache_dir
    from cf_transcribe_pandas.errors import ConfigurationError
    from cf_transcribe_pandas.estimate import estimate

    out_path: Path | None = None
    out_fmt: str | None = None
    if args.output is not None:
        out_path = Path(args.output).expanduser()
        out_fmt = table_format(out_path, args.output_format)
        if out_fmt is None:
            raise _unknown_format(out_path, "--output-format")
        _check_writable(out_path)
    df, file_list = load_input(args.input, args.format)
    column = args.column or ("path" if file_list else "audio")
    values = _column_values(df, column, "audio")
    language = _per_row_option(df, args.language, args.language_column, "language")
    prompt = _per_row_option(df, args.prompt, args.prompt_column, "prompt")
    cache = None
    if not args.no_cache:
        cache = Cache(args.cache_dir if args.cache_dir is not None else default_cache_dir())
    try:
        result = estimate(
            values.tolist(),
            languages=_as_list(language),
            prompts=_as_list(prompt),
            model=args.model,
            temperature=args.temperature,
            encode=args.encode,
            max_part_seconds=args.max_part_seconds,
            cache=cache,
            rate_limit=args.rate_limit,
            price_per_minute=args.price_per_minute,
            progress=_progress(args),
            fetch_urls=args.fetch_urls,
            workers=args.workers,
            index=df.index,
        )
    except ConfigurationError as exc:
        raise CliError(exc.message) from None
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(result)
    if out_path is not None and out_fmt is not None:
        per_row = result.to_frame().add_prefix("estimate_")
        write_table(pd.concat([df, per_row], axis=1), out_path, out_fmt)
        if not args.json:
            print(f"wrote the per-row plan to {out_path}")
    return EXIT_OK


# --------------------------------------------------------------------------- cache


def _fmt_bytes(n: int) -> str:
    from cf_transcribe_pandas.estimate import _fmt_bytes as fmt

    return fmt(n)


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _cache_dir(args: argparse.Namespace) -> Path:
    from cf_transcribe_pandas.cache import default_cache_dir

    chosen = args.cache_dir or getattr(args, "cache_dir_top", None)
    return Path(chosen).expanduser() if chosen is not None else default_cache_dir()


def _cache(args: argparse.Namespace) -> int:
    from cf_transcribe_pandas.cache import Cache

    cache = Cache(_cache_dir(args))
    action = args.cache_command
    if action == "stats":
        stats = cache.stats()
        if args.json:
            print(json.dumps(stats.as_dict(), indent=2))
            return EXIT_OK
        print(f"cache     {stats.path}")
        print(
            f"rows      {_n(stats.rows, 'transcript')} in {_n(stats.files, 'file')} "
            f"({_fmt_bytes(stats.bytes_on_disk)} on disk)"
        )
        for model, count in stats.models.items():
            print(f"model     {model}: {count:,}")
        if stats.oldest is not None and stats.newest is not None:
            print(f"oldest    {stats.oldest.isoformat(timespec='seconds')}")
            print(f"newest    {stats.newest.isoformat(timespec='seconds')}")
        print(
            f"memo      {_n(stats.memo_entries, 'file hash', 'file hashes')} "
            f"in {_n(stats.memo_files, 'file')}"
        )
        if stats.bad_files or stats.temp_files:
            print(
                f"other     {stats.bad_files:,} unreadable files, "
                f"{stats.temp_files:,} temporary files"
            )
        return EXIT_OK
    if action == "compact":
        result = cache.compact()
        print(
            f"compacted {cache.path}: {result.files_before:,} -> {result.files_after:,} files, "
            f"{result.rows_before:,} -> {result.rows_after:,} rows, "
            f"{_fmt_bytes(result.bytes_before)} -> {_fmt_bytes(result.bytes_after)}"
            + (
                f"; removed {result.temp_files_removed:,} stale temporary files"
                if result.temp_files_removed
                else ""
            )
        )
        return EXIT_OK
    if action == "export":
        out = Path(args.out).expanduser()
        fmt = table_format(out, None)
        if fmt not in (None, "parquet"):
            raise CliError(f"cache export writes Parquet; name the file .parquet, not {out.name!r}")
        if not out.parent.is_dir():
            raise CliError(f"cannot write {out}: directory {str(out.parent)!r} does not exist")
        try:
            rows = cache.export(out)
        except OSError as exc:
            raise CliError(f"cannot write {out}: {exc}") from None
        print(f"exported {rows:,} transcripts from {cache.path} to {out}")
        return EXIT_OK
    # clear
    if not cache.path.exists():
        print(f"nothing to clear: {cache.path} does not exist")
        return EXIT_OK
    rows = cache.stats().rows
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(
                f"refusing to clear {cache.path} ({rows:,} transcripts) without --yes "
                "when stdin is not a terminal"
            )
        answer = input(f"Delete {rows:,} cached transcripts in {cache.path}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return EXIT_OK
    cleared = cache.clear()
    print(
        f"cleared {cache.path}: {cleared.files_removed:,} files, "
        f"{_fmt_bytes(cleared.bytes_removed)}"
        + (f"; kept {len(cleared.kept)} files the cache did not write" if cleared.kept else "")
    )
    return EXIT_OK


# --------------------------------------------------------------------------- demo


def _samples_dir() -> Path:
    return Path(str(resources.files("cf_transcribe_pandas") / "samples"))


def _demo(args: argparse.Namespace) -> int:
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


def _emulator(extra: list[str]) -> int:
    from cf_transcribe_pandas.emulator.__main__ import main as emulator_main

    prog = "cf-transcribe emulator"
    try:
        return emulator_main(extra, prog=prog)
    except SystemExit as exc:  # argparse: bad arguments
        return EXIT_OK if not exc.code else EXIT_USAGE


# --------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "input",
        nargs="+",
        metavar="INPUT",
        help="a table (.csv, .parquet, .jsonl), or audio files, directories and quoted globs",
    )
    p.add_argument(
        "--format", choices=TABLE_FORMATS, help="format of INPUT (default: from its extension)"
    )
    p.add_argument(
        "-c",
        "--column",
        help="the column holding the audio (default: 'audio' for tables, 'path' for files)",
    )


def _add_request_options(p: argparse.ArgumentParser) -> None:
    from cf_transcribe_pandas.audio import DEFAULT_MAX_PART_SECONDS
    from cf_transcribe_pandas.client import DEFAULT_MODEL

    lang = p.add_mutually_exclusive_group()
    lang.add_argument("--language", help="ISO-639-1 code for every row, e.g. en")
    lang.add_argument("--language-column", metavar="COLUMN", help="per-row language codes")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", help="text guiding the model, for every row")
    prompt.add_argument("--prompt-column", metavar="COLUMN", help="per-row prompts")
    p.add_argument("--temperature", type=float, help="sampling temperature, 0..1")
    p.add_argument("--model", default=DEFAULT_MODEL, help="Workers AI model (default: %(default)s)")
    p.add_argument(
        "--encode",
        choices=("auto", "original", "flac", "opus"),
        default="auto",
        help="how audio is prepared (default: auto: accepted formats go as they are)",
    )
    p.add_argument(
        "--max-part-seconds",
        type=float,
        default=DEFAULT_MAX_PART_SECONDS,
        metavar="S",
        help="longer audio is split into parts (default: %(default)g)",
    )
    p.add_argument(
        "--rate-limit",
        type=float,
        default=720.0,
        metavar="RPM",
        help="requests per minute, the account's limit (default: %(default)g)",
    )
    p.add_argument(
        "--fetch-urls", action="store_true", help="download https URLs instead of passing them on"
    )
    cache = p.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-dir", type=Path, metavar="DIR", help="cache directory (default: the user cache)"
    )
    cache.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary line")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cf-transcribe``."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="cf-transcribe",
        description="Transcribe audio with Cloudflare Workers AI (openai/gpt-4o-transcribe).",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    from cf_transcribe_pandas._version import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="transcribe a table's audio column (or audio files) into a new table",
        description="Transcribe every row's audio and write the table with a text column.",
        epilog=RUN_EPILOG,
        formatter_class=fmt,
    )
    _add_input(run)
    run.add_argument(
        "-o", "--output", required=True, help="the table to write (.csv, .parquet, .jsonl)"
    )
    run.add_argument(
        "--output-format", choices=TABLE_FORMATS, help="format of OUTPUT (default: its extension)"
    )
    run.add_argument("--output-column", metavar="NAME", help="text column (default: COLUMN_text)")
    _add_request_options(run)
    run.add_argument(
        "--errors",
        choices=("coerce", "raise"),
        default="coerce",
        help="coerce (default): failed rows get error columns and exit code 1; "
        "raise: stop at the first failed row, write nothing, exit 1",
    )
    run.add_argument("--concurrency", type=int, help="most requests in flight (default: 64)")
    run.add_argument("--max-retries", type=int, default=6, help="retries for 5xx, timeouts, resets")
    run.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one answer")
    run.add_argument("--account-id", help="Cloudflare account id (default: $CLOUDFLARE_ACCOUNT_ID)")
    run.add_argument(
        "--base-url", help="API base URL (default: $CLOUDFLARE_BASE_URL or Cloudflare's)"
    )
    run.add_argument("--gateway", metavar="ID", help="send through this AI Gateway")
    run.add_argument(
        "--provenance", action="store_true", help="add _cached, _model, _duration_s columns"
    )
    run.add_argument(
        "--log-json",
        action="store_true",
        help="one JSON line per finished row (and retry) on stderr, then a summary line",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log retries and slow-downs")

    est = sub.add_parser(
        "estimate",
        help="rows, audio minutes, requests, cost and time of a run; sends nothing",
        description="Estimate what `cf-transcribe run` would send, cost and take.",
        epilog=ESTIMATE_EPILOG,
        formatter_class=fmt,
    )
    _add_input(est)
    _add_request_options(est)
    est.add_argument(
        "--price-per-minute",
        type=float,
        metavar="USD",
        help="US dollars per audio minute (default: the model's published price, "
        "$0.006 for openai/gpt-4o-transcribe)",
    )
    est.add_argument("--json", action="store_true", help="print the numbers as JSON")
    est.add_argument("-o", "--output", help="also write one row per input row (status, parts...)")
    est.add_argument(
        "--output-format", choices=TABLE_FORMATS, help="format of OUTPUT (default: its extension)"
    )
    est.add_argument(
        "--workers", type=_positive_int, help="threads probing files (default: CPUs + 4)"
    )

    cache = sub.add_parser(
        "cache",
        help="stats, compact, export or clear the result cache",
        description="Look after the result cache.",
        epilog=CACHE_EPILOG,
        formatter_class=fmt,
    )
    cache.add_argument("--cache-dir", dest="cache_dir_top", type=Path, help=argparse.SUPPRESS)
    actions = cache.add_subparsers(
        dest="cache_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    common = _Parser(add_help=False)
    common.add_argument(
        "--cache-dir", type=Path, metavar="DIR", help="cache directory (default: the user cache)"
    )
    stats = actions.add_parser(
        "stats",
        parents=[common],
        help="rows, files, bytes, models, oldest and newest",
        epilog="example:\n  cf-transcribe cache stats --json",
        formatter_class=fmt,
    )
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    actions.add_parser(
        "compact",
        parents=[common],
        help="merge the cache's files into one (safe while runs write)",
        epilog="example:\n  cf-transcribe cache compact --cache-dir /data/cf-cache",
        formatter_class=fmt,
    )
    export = actions.add_parser(
        "export",
        parents=[common],
        help="write every cached transcript to one Parquet file",
        epilog="example:\n  cf-transcribe cache export all.parquet",
        formatter_class=fmt,
    )
    export.add_argument("out", metavar="OUT.parquet", help="the Parquet file to write")
    clear = actions.add_parser(
        "clear",
        parents=[common],
        help="delete every cached transcript (asks first)",
        epilog="example:\n  cf-transcribe cache clear --yes",
        formatter_class=fmt,
    )
    clear.add_argument(
        "-y", "--yes", action="store_true", help="do not ask (required when stdin is not a TTY)"
    )

    demo = sub.add_parser(
        "demo",
        help="transcribe the bundled sample clips (emulator if no credentials)",
        epilog="example:\n  cf-transcribe demo --quiet",
        formatter_class=fmt,
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser(
        "emulator",
        help="run the local stand-in for the service (see `cf-transcribe emulator --help`)",
        add_help=False,
    )
    return parser


def _on_sigterm(signum: int, frame: types.FrameType | None) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cf-transcribe``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        return _emulator(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if not exc.code else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _run,
        "estimate": _estimate,
        "cache": _cache,
        "demo": _demo,
    }
    previous: Any = None
    installed = False
    try:
        if args.command == "run":
            try:
                previous = signal.signal(signal.SIGTERM, _on_sigterm)
                installed = True
            except ValueError:  # not the main thread (embedded use)
                pass
        with _logging(
            json_lines=getattr(args, "log_json", False), verbose=getattr(args, "verbose", False)
        ):
            return commands[args.command](args)
    except CliError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        _say("interrupted; finished rows are cached")
        return EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED
    except BrokenPipeError:  # `cf-transcribe cache stats | head -1`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
