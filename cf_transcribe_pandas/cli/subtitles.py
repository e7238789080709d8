"""``cf-transcribe run --subtitles DIR``: one ``.srt`` or ``.vtt`` file a row.

The file is named after the row's audio (its file name without the extension;
``row-<index>`` for audio that has no name), with ``-<index>`` added when two
rows would share a name. Rows without segments (failed, NA) get no file.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from cf_transcribe_pandas.subtitles import to_srt, to_vtt

__all__ = ["add_subtitle_options", "write_subtitles"]

_UNSAFE = re.compile(r"[^\w.-]+")


def add_subtitle_options(p: argparse.ArgumentParser) -> None:
    """Add ``--subtitles DIR`` and ``--subtitle-format`` to ``p``."""
    p.add_argument(
        "--subtitles",
        type=Path,
        metavar="DIR",
        help="also write one subtitle file per row into DIR (implies --timestamps; "
        "needs a model with timestamps, such as @cf/openai/whisper-large-v3-turbo)",
    )
    p.add_argument(
        "--subtitle-format",
        choices=("srt", "vtt"),
        default="srt",
        help="format of the --subtitles files (default: srt)",
    )


def _stem(value: Any, label: Any) -> str:
    if isinstance(value, (str, os.PathLike)):
        name = Path(str(value).split("?", 1)[0].rstrip("/")).stem
        name = _UNSAFE.sub("_", name).strip("._")
        if name:
            return name
    return f"row-{label}"


def write_subtitles(df: pd.DataFrame, column: str, output: str, directory: Path, fmt: str) -> int:
    """Write each row's ``{output}_segments`` as ``DIR/<name>.<fmt>``.

    Args:
        df: The transcribed frame.
        column: The audio column (names the files).
        output: The text column (its segments are ``{output}_segments``).
        directory: Where the files go (created when missing).
        fmt: ``"srt"`` or ``"vtt"``.

    Returns:
        The number of files written.
    """
    render = to_srt if fmt == "srt" else to_vtt
    directory.mkdir(parents=True, exist_ok=True)
    segments = df[f"{output}_segments"]
    seen: set[str] = set()
    written = 0
    for label, value, rows in zip(df.index, df[column], segments, strict=True):
        if rows is None or rows is pd.NA:
            continue
        name = _stem(value, label)
        if name in seen:
            name = f"{name}-{label}"
        seen.add(name)
        (directory / f"{name}.{fmt}").write_text(render(rows), encoding="utf-8")
        written += 1
    return written
