"""The transcripts of a split recording: spotting one cut at the output cap, the
prompt carried into the next part, and joining the parts' texts."""

from __future__ import annotations

import re
from collections.abc import Iterable

# "Text looks cut" thresholds: the model stops at 2,000 output tokens (about
# 1,500 English words). These sit at 90 % of that.
_CUT_WORDS = 1350
_CUT_CHARS = 7000
_CUT_TOKENS = 1800

_PROMPT_MAX_WORDS = 200
_TAIL_CHARS_PER_WORD = 12

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def looks_cut(text: str, duration_s: float | None = None) -> bool:
    """Whether a transcript is near the model's 2,000-output-token cap.

    The model stops at 2,000 tokens (about 1,500 English words), so a text
    that long was probably cut. True at 90 % of the cap: 1,350 words, or
    7,000 characters, or about 1,800 estimated tokens (one per CJK character
    plus 4/3 per other word), whichever comes first.

    Args:
        text: The transcript of one part.
        duration_s: The part's length; not used by the current rule (a cut is
            a property of the text), kept for the engine's call.

    Returns:
        True if the text probably stopped at the cap.
    """
    del duration_s
    if len(text) >= _CUT_CHARS:
        return True
    words = text.split()
    if len(words) >= _CUT_WORDS:
        return True
    cjk = len(_CJK.findall(text))
    if cjk == 0:
        return False
    other_words = len(_CJK.sub(" ", text).split())
    return cjk + other_words * 4 / 3 >= _CUT_TOKENS


def tail_words(text: str, n: int = 30) -> str:
    """The last ``n`` words of ``text``, single-spaced.

    At most ``12 * n`` characters: text without spaces (Chinese, Japanese)
    is cut to its last characters; otherwise the cut falls between words.

    Args:
        text: A transcript.
        n: How many words to keep.

    Returns:
        A suffix of ``" ".join(text.split())`` with at most ``n`` words.
    """
    if n <= 0:
        return ""
    tail = " ".join(text.split()[-n:])
    limit = _TAIL_CHARS_PER_WORD * n
    if len(tail) > limit:
        cut = tail[-limit:]
        if tail[-limit - 1] != " " and " " in cut:  # drop the partial first word
            cut = cut.split(" ", 1)[1]
        tail = cut.lstrip()
    return tail


def join_prompt(
    previous_tail: str | None, user_prompt: str | None, *, max_words: int = _PROMPT_MAX_WORDS
) -> str | None:
    """The prompt for a later part: the user's prompt, then the previous part's tail.

    The user's prompt comes first (vocabulary, spelling) and the previous
    part's last words last, right before the audio they lead into. At most
    ``max_words`` words in all: the user's prompt keeps its first words, the
    tail its last.

    Args:
        previous_tail: From :func:`tail_words` of the previous part's text.
        user_prompt: The user's own prompt, if any.
        max_words: The most words to send.

    Returns:
        The prompt, or None when both are empty.
    """
    user = (user_prompt or "").split()[:max_words]
    room = max_words - len(user)
    tail = (previous_tail or "").split()
    tail = tail[-room:] if room > 0 else []
    joined = " ".join(user + tail)
    return joined or None


def join_texts(texts: Iterable[str | None]) -> str:
    """Join the parts' transcripts in order with single spaces.

    Args:
        texts: One transcript per part, in order; None or blank ones are skipped.

    Returns:
        The whole transcript.
    """
    return " ".join(t.strip() for t in texts if t and t.strip())
