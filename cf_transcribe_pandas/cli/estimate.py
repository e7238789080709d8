"""``cf-transcribe estimate``: rows, audio minutes, requests, cost and time of a run.

Reads INPUT like ``run`` and hands it to :func:`cf_transcribe_pandas.estimate.estimate`,
which probes every row and sends nothing; prints the numbers (or JSON) and,
with ``-o``, writes the input with one ``estimate_*`` plan column set per row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from cf_transcribe_pandas.cache import Cache, default_cache_dir
from cf_transcribe_pandas.cli.exits import EXIT_OK, CliError
from cf_transcribe_pandas.cli.options import (
    add_input,
    add_request_options,
    as_list,
    audio_column,
    given_options,
    per_row_option,
    show_progress,
)
from cf_transcribe_pandas.cli.tables import (
    TABLE_FORMATS,
    column_values,
    load_input,
    output_format,
    write_table,
)
from cf_transcribe_pandas.errors import ConfigurationError
from cf_transcribe_pandas.estimate import ModelComparison, estimate

EPILOG = """Probes every row (headers only), hashes it, drops duplicates and rows already
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
  cf-transcribe estimate calls.csv --model openai/gpt-4o-transcribe \
      --model @cf/openai/whisper-large-v3-turbo      # both models' cost side by side
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``estimate`` subcommand to the ``cf-transcribe`` parser."""
    p = subparsers.add_parser(
        "estimate",
        help="rows, audio minutes, requests, cost and time of a run; sends nothing",
        description="Estimate what `cf-transcribe run` would send, cost and take.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input(p)
    add_request_options(p)
    p.add_argument(
        "--price-per-minute",
        type=float,
        metavar="USD",
        help="US dollars per audio minute (default: the model's published price, "
        "$0.006 for openai/gpt-4o-transcribe)",
    )
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.add_argument("-o", "--output", help="also write one row per input row (status, parts...)")
    p.add_argument(
        "--output-format", choices=TABLE_FORMATS, help="format of OUTPUT (default: its extension)"
    )
    p.add_argument(
        "--workers", type=_positive_int, help="threads probing files (default: CPUs + 4)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``cf-transcribe estimate``; returns the exit code."""
    out_path: Path | None = None
    out_fmt = ""
    if args.output is not None:
        out_path = Path(args.output).expanduser()
        out_fmt = output_format(out_path, args.output_format)
    df, file_list = load_input(args.input, args.format)
    values = column_values(df, audio_column(args, file_list), "audio")
    language = per_row_option(df, args.language, args.language_column, "language")
    prompt = per_row_option(df, args.prompt, args.prompt_column, "prompt")
    cache = None
    if not args.no_cache:
        cache = Cache(args.cache_dir if args.cache_dir is not None else default_cache_dir())
    try:
        result = estimate(
            values.tolist(),
            languages=as_list(language),
            prompts=as_list(prompt),
            cache=cache if cache is not None else False,
            price_per_minute=args.price_per_minute,
            progress=show_progress(args),
            workers=args.workers,
            index=df.index,
            compare_models=args.model if args.model is not None and len(args.model) > 1 else False,
            **given_options(args),
        )
    except ConfigurationError as exc:
        raise CliError(exc.message) from None
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(result)
    if out_path is not None:
        if isinstance(result, ModelComparison):
            raise CliError("-o writes one model's plan: give one --model with -o")
        per_row = result.to_frame().add_prefix("estimate_")
        write_table(pd.concat([df, per_row], axis=1), out_path, out_fmt)
        if not args.json:
            print(f"wrote the per-row plan to {out_path}")
    return EXIT_OK
