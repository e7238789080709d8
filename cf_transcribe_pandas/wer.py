"""Word and character error rates of transcripts against references (``jiwer``).

:func:`error_rates` (``df.cfai.wer``) normalizes both texts the same way
(:func:`normalize_text`), then scores them with ``jiwer``: the corpus word error
rate (all errors over all reference words, not a mean of rows), the corpus
character error rate, and one WER per row. ``jiwer`` is the ``eval`` extra:
``pip install 'cf-transcribe-pandas[eval]'``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cf_transcribe_pandas.errors import ConfigurationError

__all__ = ["ErrorRates", "error_rates", "normalize_text"]

_INNER_APOSTROPHE = re.compile(r"(?<=\w)['’](?=\w)")


def normalize_text(text: str) -> str:
    """The form both texts are compared in.

    Unicode NFKC; lower case (``casefold``); an apostrophe between letters is kept
    (``don't``), every other punctuation mark or symbol becomes a space; runs of
    whitespace become one space, none at the ends. Numbers are left as written
    (``"7"`` and ``"seven"`` differ).

    Example:
        >>> normalize_text("  Hello, World!  It's 5 o'clock… ")
        "hello world it's 5 o'clock"
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _INNER_APOSTROPHE.sub("\0", text)
    kept = [" " if unicodedata.category(c)[0] in "PS" else c for c in text]
    return " ".join("".join(kept).replace("\0", "'").split())


@dataclass(frozen=True)
class ErrorRates:
    """What :func:`error_rates` measured.

    Attributes:
        wer: Corpus word error rate: (substitutions + deletions + insertions) over
            the reference words of the scored rows.
        cer: Corpus character error rate, the same over characters.
        per_row: Each row's WER (``Float64``, on the frame's index); NA for a row
            not scored.
        rows: Rows scored.
        skipped: Rows not scored: the reference or the transcript is NA, or the
            reference is empty once normalized.
        words: Reference words scored.
        substitutions: Words substituted.
        deletions: Words left out.
        insertions: Words added.
    """

    wer: float
    cer: float
    per_row: pd.Series
    rows: int
    skipped: int
    words: int
    substitutions: int
    deletions: int
    insertions: int

    def __str__(self) -> str:
        return (
            f"WER {self.wer:.1%}, CER {self.cer:.1%} over {self.rows:,} rows "
            f"({self.words:,} reference words; {self.skipped:,} skipped)"
        )

    def as_dict(self) -> dict[str, Any]:
        """The numbers (not ``per_row``), JSON-ready."""
        names = ("wer", "cer", "rows", "skipped", "words", "substitutions")
        out: dict[str, Any] = {n: getattr(self, n) for n in names}
        out.update(deletions=self.deletions, insertions=self.insertions)
        return out


def _texts(df: pd.DataFrame, column: str, what: str) -> list[str | None]:
    if column not in df.columns:
        raise ConfigurationError(
            f"{what}={column!r} is not a column of the frame (it has {list(df.columns)})",
            code="invalid_column",
        )
    values = df[column].tolist()
    return [
        None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else str(v)
        for v in values
    ]


def _jiwer() -> Any:
    try:
        import jiwer
    except ImportError:
        raise ConfigurationError(
            "the word error rate needs jiwer: pip install 'cf-transcribe-pandas[eval]'",
            code="missing_dependency",
        ) from None
    return jiwer


def error_rates(df: pd.DataFrame, reference: str, hypothesis: str) -> ErrorRates:
    """Score the transcripts in ``hypothesis`` against the references in ``reference``.

    Args:
        df: The frame.
        reference: The column of reference (true) texts.
        hypothesis: The column of transcripts, e.g. ``"audio_text"``.

    Returns:
        The corpus WER and CER and each row's WER (see :class:`ErrorRates`).

    Raises:
        ConfigurationError: A column is missing, jiwer is not installed, or no
            row can be scored.
    """
    jiwer = _jiwer()
    refs, hyps = _texts(df, reference, "reference"), _texts(df, hypothesis, "hypothesis")
    scored: list[int] = []
    pairs: list[tuple[str, str]] = []
    for i, (ref, hyp) in enumerate(zip(refs, hyps, strict=True)):
        if ref is None or hyp is None or not normalize_text(ref):
            continue
        scored.append(i)
        pairs.append((normalize_text(ref), normalize_text(hyp)))
    if not pairs:
        raise ConfigurationError(
            f"no row has both a non-empty {reference!r} and a {hypothesis!r} to score",
            code="invalid_column",
        )
    words = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    chars = jiwer.process_characters([r for r, _ in pairs], [h for _, h in pairs])
    per_row: list[float | None] = [None] * len(df)
    for i, (ref, _), alignment in zip(scored, pairs, words.alignments, strict=True):
        per_row[i] = _row_errors(alignment) / len(ref.split())
    return ErrorRates(
        wer=float(words.wer),
        cer=float(chars.cer),
        per_row=pd.Series(pd.array(per_row, dtype="Float64"), index=df.index, name="wer"),
        rows=len(pairs),
        skipped=len(df) - len(pairs),
        words=sum(len(r.split()) for r, _ in pairs),
        substitutions=int(words.substitutions),
        deletions=int(words.deletions),
        insertions=int(words.insertions),
    )


def _row_errors(alignment: list[Any]) -> int:
    """Substitutions, deletions and insertions in one row's alignment."""
    errors = 0
    for chunk in alignment:
        if chunk.type in ("substitute", "delete"):
            errors += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "insert":
            errors += chunk.hyp_end_idx - chunk.hyp_start_idx
    return errors
