"""The HTTP client for Workers AI speech-to-text: credentials, the AI Gateway,
one adapter a model, the mapping of answers to errors, and the session.

* :mod:`.credentials`: account id, token and base URL, from arguments or the
  environment.
* :mod:`.gateway`: the optional AI Gateway and its two URL forms.
* :mod:`.models`: one adapter a model (route, options, body, answer).
* :mod:`.responses`: the transcript of a success, the exception of
  :mod:`cf_transcribe_pandas.errors` for every failure, ``Retry-After``;
  :mod:`.codes`: the rule table of Cloudflare codes.
* :mod:`.proxy`: the ``proxy`` option (else the environment's proxy).
* :mod:`.session`: :class:`Client`, one aiohttp session, one POST a call,
  connection failures and timeouts. It never retries (the engine does).

The client knows nothing of pandas, and the API token never leaves it: it is
only put in the ``Authorization`` header, never in a repr, message or log.
"""

from __future__ import annotations

from cf_transcribe_pandas.client.credentials import DEFAULT_BASE_URL, Credentials
from cf_transcribe_pandas.client.gateway import GATEWAY_BASE_URL, Gateway
from cf_transcribe_pandas.client.models import (
    DEFAULT_MODEL,
    MODELS,
    TASKS,
    WHISPER_LARGE_V3_TURBO,
    Segment,
    Transcript,
    adapter_for,
    build_body,
    check_gateway,
    check_timestamps,
    normalize_language,
    validate_params,
)
from cf_transcribe_pandas.client.proxy import check_proxy
from cf_transcribe_pandas.client.responses import parse_retry_after
from cf_transcribe_pandas.client.session import USER_AGENT, Client

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "GATEWAY_BASE_URL",
    "MODELS",
    "TASKS",
    "USER_AGENT",
    "WHISPER_LARGE_V3_TURBO",
    "Client",
    "Credentials",
    "Gateway",
    "Segment",
    "Transcript",
    "adapter_for",
    "build_body",
    "check_gateway",
    "check_proxy",
    "check_timestamps",
    "normalize_language",
    "parse_retry_after",
    "validate_params",
]
