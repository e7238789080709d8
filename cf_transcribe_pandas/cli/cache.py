"""``cf-transcribe cache stats|compact|export|clear``: look after the result cache.

Each action is a thin wrapper over :class:`cf_transcribe_pandas.cache.Cache`
that prints one line (or a few) of what it found or did.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cf_transcribe_pandas.cache import Cache, default_cache_dir
from cf_transcribe_pandas.cli.exits import EXIT_OK, CliError
from cf_transcribe_pandas.cli.tables import table_format

EPILOG = """The cache keeps every finished transcript (Parquet files), keyed by the audio's
sha256 and the request parameters. Default directory: $CF_TRANSCRIBE_CACHE_DIR, else
the per-user cache directory.

examples:
  cf-transcribe cache stats
  cf-transcribe cache stats --json --cache-dir /data/cf-cache
  cf-transcribe cache compact
  cf-transcribe cache export all.parquet
  cf-transcribe cache clear --yes
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``cache`` subcommand and its four actions to the ``cf-transcribe`` parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    cache = subparsers.add_parser(
        "cache",
        help="stats, compact, export or clear the result cache",
        description="Look after the result cache.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    cache.add_argument("--cache-dir", dest="cache_dir_top", type=Path, help=argparse.SUPPRESS)
    actions = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
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
    stats.set_defaults(handler=stats_command)
    compact = actions.add_parser(
        "compact",
        parents=[common],
        help="merge the cache's files into one (safe while runs write)",
        epilog="example:\n  cf-transcribe cache compact --cache-dir /data/cf-cache",
        formatter_class=fmt,
    )
    compact.set_defaults(handler=compact_command)
    export = actions.add_parser(
        "export",
        parents=[common],
        help="write every cached transcript to one Parquet file",
        epilog="example:\n  cf-transcribe cache export all.parquet",
        formatter_class=fmt,
    )
    export.add_argument("out", metavar="OUT.parquet", help="the Parquet file to write")
    export.set_defaults(handler=export_command)
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
    clear.set_defaults(handler=clear_command)


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            break
        size /= 1000
    return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _open_cache(args: argparse.Namespace) -> Cache:
    """The cache of ``--cache-dir`` (after ``cache`` or after the action), else the default."""
    chosen = args.cache_dir or args.cache_dir_top
    return Cache(Path(chosen).expanduser() if chosen is not None else default_cache_dir())


def stats_command(args: argparse.Namespace) -> int:
    """``cache stats``: rows, files, bytes, models, oldest and newest (or JSON)."""
    stats = _open_cache(args).stats()
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
            f"other     {stats.bad_files:,} unreadable files, {stats.temp_files:,} temporary files"
        )
    return EXIT_OK


def compact_command(args: argparse.Namespace) -> int:
    """``cache compact``: merge the cache's files into one."""
    cache = _open_cache(args)
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


def export_command(args: argparse.Namespace) -> int:
    """``cache export OUT.parquet``: every cached transcript in one Parquet file."""
    cache = _open_cache(args)
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


def clear_command(args: argparse.Namespace) -> int:
    """``cache clear``: delete every cached transcript, after asking on a terminal."""
    cache = _open_cache(args)
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
