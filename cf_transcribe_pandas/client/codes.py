"""The rule table: which exception (and message) a Workers AI answer becomes.

One :class:`Rule` a group of codes. A rule matches an answer by its Cloudflare
code (read from ``errors[].code`` or from the message alone; see
:mod:`~cf_transcribe_pandas.client.responses`) and, when the code is unknown,
by its HTTP status. The first rule that matches wins; the table of what each
code does is drawn in :mod:`cf_transcribe_pandas.errors`.

Messages are :meth:`str.format` templates; their fields are filled by
:func:`~cf_transcribe_pandas.client.responses.error_for`: ``where`` (status
and the service's own words), ``wait``, ``location``, ``verb``, ``account_id``,
``model``, ``known_models``, ``version``, ``env_account``, ``env_token``,
``env_base_url``, ``default_base_url``.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from cf_transcribe_pandas.errors import (
    AccountError,
    AuthenticationError,
    InvalidRequestError,
    ModelAccessError,
    ModelError,
    ModelNotFoundError,
    OutdatedClientError,
    QuotaExceededError,
    RateLimitError,
    RequestTooLargeError,
    ServiceError,
    ServiceTimeoutError,
    TranscribeError,
)

__all__ = ["RATE_LIMIT_CODES", "RULES", "Rule", "match"]


@dataclass(frozen=True)
class Rule:
    """Answers with one of ``codes`` (only with a status in ``when``, if given),
    or, when no rule knows the code, a status in ``statuses``.

    Attributes:
        error: The exception class.
        message: The message template (see the module docstring).
        codes: The Cloudflare codes this rule is for.
        statuses: The statuses it takes when the code is unknown (or absent).
        when: The statuses ``codes`` need (empty: any status).
    """

    error: type[TranscribeError]
    message: str
    codes: frozenset[int] = frozenset()
    statuses: Container[int] = ()
    when: Container[int] = ()


_QUOTA = (
    "The account's daily Workers AI allocation is used up ({where}). Retrying will not help "
    "until it resets at 00:00 UTC, or move the account to the Workers Paid plan."
)

RULES: tuple[Rule, ...] = (
    Rule(QuotaExceededError, _QUOTA, frozenset({3036, 4006})),
    Rule(
        AuthenticationError,
        "Cloudflare refused account {account_id} ({where}): the account is blocked from "
        "Workers AI. Check the account's status in the Cloudflare dashboard.",
        frozenset({3023}),
    ),
    # 7000 "No route for that URI", 7003 "Could not route to ...": our path is fixed, so the
    # account id or base_url is wrong and every request would fail the same way.
    Rule(
        AuthenticationError,
        "Cloudflare found no Workers AI route for account {account_id} ({where}). Check "
        "{env_account} (the 32-character account id from the dashboard) and base_url / "
        "{env_base_url} (normally {default_base_url}).",
        frozenset({7000, 7003}),
    ),
    Rule(
        ModelNotFoundError,
        "Workers AI does not know the model {model!r} ({where}). Check model= (the model "
        "name); this library is made for {known_models}.",
        frozenset({5007, 3042}),
    ),
    Rule(
        ModelAccessError,
        "Account {account_id} has not accepted the terms of the model {model!r} ({where}). "
        "Accept the model's terms for this account (the model's page in the Cloudflare "
        "dashboard, Workers AI).",
        frozenset({5016}),
    ),
    Rule(
        ModelAccessError,
        "Account {account_id} may not use the model {model!r} ({where}): it is a private model "
        "this account has no access to. Choose another model (model=) or ask its owner for "
        "access.",
        frozenset({5018, 3041}),
    ),
    Rule(
        ModelAccessError,
        "The model {model!r} is not available on account {account_id}'s plan ({where}). Move "
        "the account to the Workers Paid plan or choose another model (model=).",
        frozenset({5035}),
    ),
    Rule(
        ModelError,
        "Workers AI cannot run the fine-tune of {model!r}: it is missing required files "
        "({where}). Upload model.safetensors and config.json to the fine-tune, or choose "
        "another model (model=).",
        frozenset({3039}),
    ),
    Rule(
        ModelError,
        "Workers AI refused a LoRA run of the model {model!r} ({where}). This library sends no "
        "LoRA adapter: check model=, base_url and the AI Gateway settings.",
        frozenset({5005}),
    ),
    Rule(
        ModelError,
        "Workers AI says the request's shape does not fit the model {model!r} ({where}); every "
        "row would get the same answer. Check model=; if it is right, upgrade "
        "cf-transcribe-pandas (you run {version}): pip install -U cf-transcribe-pandas.",
        frozenset({5006}),
    ),
    Rule(
        OutdatedClientError,
        "Workers AI refuses this client as a deprecated version ({where}). Upgrade "
        "cf-transcribe-pandas (you run {version}): pip install -U cf-transcribe-pandas.",
        frozenset({5019}),
    ),
    Rule(
        RateLimitError,
        "Workers AI is out of capacity for the model or is rate limiting this account "
        "({where}){wait}. It is safe to try again.",
        frozenset({3040}),
    ),
    Rule(
        RequestTooLargeError,
        "The request is larger than Workers AI accepts ({where}), and the audio is too short "
        "for the library to split further. Send smaller audio (under 25 MB a request; "
        'encode="opus" is the most compact), or fetch_urls=True for a URL.',
        frozenset({3006}),
        (413,),
    ),
    Rule(
        ServiceTimeoutError,
        "Workers AI {verb} the request ({where}). It is safe to try again.",
        frozenset({3007, 3008}),
        (408,),
    ),
    Rule(
        InvalidRequestError,
        "Workers AI could not use this request ({where}). Check that the audio is readable "
        "and in a supported format (flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, webm), and "
        "that the parameters are valid.",
        frozenset({5004, 3003}),
    ),
    Rule(
        ServiceError,
        "Workers AI's upstream service is unavailable ({where}){wait}. This is usually "
        "temporary; it is safe to try again.",
        frozenset({7009}),
    ),
    # The token: 10000/9109 on a 401/403, or a 401/403 without any code.
    Rule(
        AuthenticationError,
        "Cloudflare rejected the API token ({where}). Check {env_token}: it needs the Workers "
        "AI Read/Edit permission for account {account_id}, and {env_account} must be that "
        "account's id.",
        frozenset({10000, 9109}),
        when=(401, 403),
    ),
    Rule(
        AccountError,
        "Cloudflare refused account {account_id} access to Workers AI ({where}); every request "
        "would get the same answer. Check the account's Workers AI access and the token's "
        "permissions.",
        statuses=(403,),
    ),
    Rule(
        AccountError,
        "The proxy asked for credentials it did not get ({where}). Check the user and "
        "password in proxy= or HTTPS_PROXY / HTTP_PROXY.",
        statuses=(407,),
    ),
    Rule(
        ServiceError,
        "Workers AI refused the request with a code this library does not know ({where})"
        "{wait}. It is tried again a few times (max_retries=) before the row fails.",
        statuses=(429,),
    ),
    Rule(
        InvalidRequestError,
        "Workers AI could not use this request ({where}). Check that the audio is readable "
        "and in a supported format (flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, webm), and "
        "that the parameters are valid.",
        statuses=range(400, 500),
    ),
    Rule(
        ServiceError,
        "Workers AI answered with a redirect ({where}){location}. Check base_url: it should "
        "be {default_base_url} or an emulator's URL.",
        statuses=range(300, 400),
    ),
)
"""The rules, first match wins."""

RATE_LIMIT_CODES = frozenset({3040})
"""Codes of a 429 that is the pacer's business (a 429 without any code is too)."""

_TOKEN = next(rule for rule in RULES if 10000 in rule.codes)
_RATE = next(rule for rule in RULES if rule.codes == RATE_LIMIT_CODES)
_OTHER = Rule(
    ServiceError,
    "Workers AI answered with an error ({where}){wait}. This is usually temporary; "
    "try again later.",
)


def match(codes: list[int], status: int) -> tuple[Rule, int | None]:
    """The rule for an answer with these ``codes`` (in order) and ``status``.

    Args:
        codes: The Cloudflare codes found in the answer, in order.
        status: The HTTP status.

    Returns:
        The rule and the code to report with it (the first code when no rule knows any).
    """
    for code in codes:
        for rule in RULES:
            if code in rule.codes and (not rule.when or status in rule.when):
                return rule, code
    first = codes[0] if codes else None
    if status == 401 or (status == 403 and first is None):
        return _TOKEN, first  # a 403 with an unknown code is the AccountError rule
    if status == 429 and first is None:
        return _RATE, None
    for rule in RULES:
        if status in rule.statuses:
            return rule, first
    return _OTHER, first
