"""The command's tables: reading and writing CSV, Parquet and JSON Lines, and INPUT discovery.

INPUT is one table, or audio files given as files, directories (searched
recursively) and quoted globs, read as a one-column (``path``) table. Tables
are written atomically: a temporary file in the same directory, then a rename.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from cf_transcribe_pandas.cli.exits import CliError

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


def unknown_format(path: Path, option: str) -> CliError:
    """The error for a file name that names no table format; ``option`` sets one."""
    return CliError(
        f"cannot tell the table format of {str(path)!r}: name it .csv, .parquet, .pq, "
        f".jsonl or .ndjson, or pass {option} csv|parquet|jsonl"
    )


def output_format(path: Path, explicit: str | None) -> str:
    """The format to write ``path`` in; fails before any work when it cannot be written."""
    fmt = table_format(path, explicit)
    if fmt is None:
        raise unknown_format(path, "--output-format")
    check_writable(path)
    return fmt


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
        raise CliError(f"{path}: cannot be read as {fmt} ({_first_line(exc)})") from None


def check_writable(path: Path) -> None:
    """Fail before any work when ``path`` cannot be written."""
    if path.is_dir():
        raise CliError(f"cannot write {path}: it is a directory")
    if not path.parent.is_dir():
        raise CliError(f"cannot write {path}: directory {str(path.parent)!r} does not exist")


def _write(df: pd.DataFrame, path: Path, fmt: str, compression: Compression | None) -> None:
    if fmt == "csv":
        df.to_csv(path, index=False, compression=compression)
    elif fmt == "parquet":
        df.to_parquet(path)
    else:
        df.to_json(
            path,
            orient="records",
            lines=True,
            force_ascii=False,
            date_format="iso",
            compression=compression,
        )


def write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write ``df`` atomically: a temporary file in the same directory, then a rename.

    On any failure (or Ctrl-C) the temporary file is removed and ``path`` is
    left as it was.
    """
    check_writable(path)
    _, compression = _split_compression(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _write(df, tmp, fmt, compression)
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
            raise CliError(f"cannot write {path}: {_first_line(exc)}") from None
        raise


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

    Args:
        specs: the INPUT arguments: one table file, or audio files, directories and globs.
        fmt: the table format given with ``--format``, or None to go by the extension.

    Returns:
        The rows and whether they are a file list (True) rather than a table.

    Raises:
        CliError: unreadable input, or a mix of a table and audio files.
    """
    path = Path(specs[0]).expanduser()
    pattern = _is_glob(specs[0]) and not path.exists()
    if len(specs) == 1 and not path.is_dir() and (fmt is not None or not pattern):
        table = table_format(path, fmt)
        if table is not None:
            return read_table(path, table), False
        ext, _ = _split_compression(path)
        if path.is_file() and ext not in AUDIO_EXTENSIONS:
            raise unknown_format(path, "--format")
    elif fmt is not None:
        raise CliError("--format is for one table file; got several inputs")
    else:
        tables = [s for s in specs if table_format(Path(s), None) is not None]
        if tables:
            raise CliError(f"give one table file or audio files, not both ({tables[0]!r})")
    return pd.DataFrame({"path": _audio_files(specs)}), True


def column_values(df: pd.DataFrame, name: str, what: str) -> pd.Series:
    """The column ``name`` of ``df``; a one-line error naming the columns there are if absent."""
    if name not in df.columns:
        raise CliError(f"{what} column {name!r} is not in the input (columns: {_shown(df)})")
    return df[name]


def _shown(df: pd.DataFrame) -> str:
    names = [str(c) for c in df.columns[:12]]
    more = ", ..." if len(df.columns) > 12 else ""
    return ", ".join(names) + more if names else "none"
