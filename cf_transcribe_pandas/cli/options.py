"""The flags ``run`` and ``estimate`` share, and how they become the library's arguments.

INPUT, ``--format`` and ``--column``; the request flags (language, prompt,
model, encoding, splitting, rate limit, proxy, cache, storage options); per-row
values read from a column of the input (``--language-column``, ``--prompt-column``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import pandas as pd

from cf_transcribe_pandas.audio import EncodeMode
from cf_transcribe_pandas.cli.tables import TABLE_FORMATS, column_values
from cf_transcribe_pandas.options import TranscribeOptions, option_names

DEFAULTS = TranscribeOptions()
"""The options' defaults, shown in ``--help`` (a flag not given is not passed on)."""

_OWN = frozenset({"output", "language", "prompt", "cache", "progress", "on_event", "api_token"})
"""Options the commands set from flags of their own (``-o`` is the output *file*)."""


def add_input(p: argparse.ArgumentParser) -> None:
    """Add INPUT, ``--format`` and ``-c/--column`` to ``p``."""
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


def add_request_options(p: argparse.ArgumentParser) -> None:
    """Add what decides the requests (language, prompt, model, encoding, rate, cache) to ``p``."""
    lang = p.add_mutually_exclusive_group()
    lang.add_argument("--language", help="ISO-639-1 code for every row, e.g. en")
    lang.add_argument("--language-column", metavar="COLUMN", help="per-row language codes")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", help="text guiding the model, for every row")
    prompt.add_argument("--prompt-column", metavar="COLUMN", help="per-row prompts")
    p.add_argument("--temperature", type=float, help="sampling temperature, 0..1")
    p.add_argument(
        "--model",
        action="append",
        help=f"Workers AI model (default: {DEFAULTS.model}; or "
        "@cf/openai/whisper-large-v3-turbo); estimate takes it more than once to compare",
    )
    p.add_argument("--task", choices=("transcribe", "translate"), help="whisper: translate to en")
    p.add_argument(
        "--timestamps",
        nargs="?",
        const="segment",
        choices=("segment", "word"),
        help="add COLUMN_text_segments (start, end, text; 'word': and words); whisper",
    )
    p.add_argument(
        "--vad-filter", action="store_true", default=None, help="whisper: drop non-speech"
    )
    p.add_argument("--prefix", help="whisper: text the transcript starts with")
    p.add_argument(
        "--encode",
        choices=get_args(EncodeMode),
        help=f"how audio is prepared (default: {DEFAULTS.encode}: accepted formats go as they are)",
    )
    p.add_argument(
        "--max-part-seconds",
        type=float,
        metavar="S",
        help=f"longer audio is split into parts (default: {DEFAULTS.max_part_seconds:g})",
    )
    p.add_argument(
        "--rate-limit",
        type=float,
        metavar="RPM",
        help=f"requests per minute, the account's limit (default: {DEFAULTS.rate_limit:g})",
    )
    p.add_argument(
        "--fetch-urls", action="store_true", help="download https URLs instead of passing them on"
    )
    p.add_argument(
        "--proxy", metavar="URL", help="proxy for requests (default: HTTPS_PROXY / HTTP_PROXY)"
    )
    add_storage_options(p)
    cache = p.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-dir", type=Path, metavar="DIR", help="cache directory (default: the user cache)"
    )
    cache.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary line")


class _Merge(argparse.Action):
    """Merge each value (a dict) into one ``storage_options`` dict."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        merged = dict(getattr(namespace, self.dest, None) or {})
        merged.update(values)  # type: ignore[arg-type]
        setattr(namespace, self.dest, merged)


def _json_object(text: str) -> dict[str, Any]:
    """``--storage-options``: a JSON object, or ``@file`` holding one."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text[1:]!r}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a JSON object (the value is not shown)") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object such as '{\"anon\": true}'")
    return value


def _key_value(text: str) -> dict[str, Any]:
    """``-S KEY=VALUE``: VALUE is JSON when it parses (true, 3, {...}), else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError("must be KEY=VALUE, e.g. endpoint_url=https://...")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return {key.strip(): value}


def add_storage_options(p: argparse.ArgumentParser) -> None:
    """Add ``--storage-options JSON`` and ``-S KEY=VALUE`` (merged into ``storage_options``)."""
    p.add_argument(
        "--storage-options",
        type=_json_object,
        action=_Merge,
        metavar="JSON",
        help="fsspec options for s3://, gs://, ... audio, as pandas takes them, e.g. "
        '\'{"endpoint_url": "https://<account_id>.r2.cloudflarestorage.com"}\' or @file.json; '
        "keep key/secret in the environment (AWS_ACCESS_KEY_ID, ...) or a file, not here",
    )
    p.add_argument(
        "-S",
        "--storage-option",
        dest="storage_options",
        type=_key_value,
        action=_Merge,
        metavar="KEY=VALUE",
        help="one storage option (repeat it), e.g. -S anon=true; VALUE is JSON when it parses",
    )


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (a flag left out keeps the library's default).

    Every flag named like an option (``--rate-limit`` is ``rate_limit``) goes on as it is;
    the options the commands set themselves (language, prompt, cache, progress, ...) are
    left to them.
    """
    given = {name: getattr(args, name, None) for name in option_names() if name not in _OWN}
    models = given.get("model")
    if isinstance(models, list):  # --model more than once: the estimate compares them
        given["model"] = models[0]
    return {
        name: value for name, value in given.items() if value is not None and value is not False
    }


def audio_column(args: argparse.Namespace, file_list: bool) -> str:
    """``--column``, else ``path`` for audio files and ``audio`` for a table."""
    column: str = args.column or ("path" if file_list else "audio")
    return column


def cache_option(args: argparse.Namespace) -> bool | str:
    """``--no-cache`` / ``--cache-dir`` as the accessor's ``cache`` argument."""
    if args.no_cache:
        return False
    return str(args.cache_dir) if args.cache_dir is not None else True


def show_progress(args: argparse.Namespace) -> bool:
    """A progress bar unless ``--quiet``, ``--log-json`` or stderr is not a terminal."""
    return not (args.quiet or getattr(args, "log_json", False)) and sys.stderr.isatty()


def per_row_option(
    df: pd.DataFrame, scalar: str | None, column: str | None, what: str
) -> str | pd.Series | None:
    """``--x VALUE`` or ``--x-column NAME`` as the accessor takes it (str or Series)."""
    if column is not None:
        return column_values(df, column, what)
    if scalar is not None and scalar in df.columns:  # never read a value as a column name
        return pd.Series([scalar] * len(df), index=df.index, dtype=object)
    return scalar


def as_list(value: str | pd.Series | None) -> list[str | None] | str | None:
    """A per-row option as :func:`estimate.estimate` takes it (str or list)."""
    if not isinstance(value, pd.Series):
        return value
    return [None if _isna(v) else str(v) for v in value.tolist()]


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
