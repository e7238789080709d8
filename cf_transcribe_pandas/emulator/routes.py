"""Which service route a path names: the API's two forms and the AI Gateway URLs.

- ``/client/v4/accounts/{account}/ai/run``: the unified form;
  ``.../ai/run/{model}``: the per-model form (model URL-encoded or with
  literal slashes).
- ``/v1/{account}/{gateway_id}/workers-ai/{model}``: the per-model form through
  the AI Gateway; ``.../workers-ai``, ``.../workers-ai/run`` and
  ``.../workers-ai/ai/run``: the unified form.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import unquote

from aiohttp import web

__all__ = ["Route", "gateway_from_url", "parse_path"]

_API_PREFIX = "/client/v4/accounts/"
_GATEWAY_PREFIX = "/v1/"


class Route(NamedTuple):
    """A service path, split.

    Attributes:
        form: ``"unified"`` or ``"per_model"``.
        account: The account id in the path.
        model: The model in the path (per-model form), else None.
        gateway: The AI Gateway id in the path, else None.
    """

    form: str
    account: str
    model: str | None
    gateway: str | None


def parse_path(path: str) -> Route | None:
    """Split a service path (without the query) into a :class:`Route`; None if it is none."""
    if path.startswith(_API_PREFIX):
        return _api_route(path[len(_API_PREFIX) :])
    if path.startswith(_GATEWAY_PREFIX):
        return _gateway_route(path[len(_GATEWAY_PREFIX) :])
    return None


def _api_route(rest: str) -> Route | None:
    account, _, tail = rest.partition("/")
    if not account:
        return None
    if tail in ("ai/run", "ai/run/"):
        return Route("unified", unquote(account), None, None)
    if tail.startswith("ai/run/"):
        return Route("per_model", unquote(account), unquote(tail[7:].rstrip("/")), None)
    return None


def _gateway_route(rest: str) -> Route | None:
    parts = rest.split("/", 3)
    if len(parts) < 3 or parts[2] != "workers-ai" or not parts[0] or not parts[1]:
        return None
    tail = parts[3].rstrip("/") if len(parts) == 4 else ""
    account, gateway = unquote(parts[0]), unquote(parts[1])
    if tail in ("", "run", "ai/run"):
        return Route("unified", account, None, gateway)
    return Route("per_model", account, unquote(tail), gateway)


def gateway_from_url(gateway_id: str, request: web.Request) -> dict[str, Any]:
    """The gateway of an AI Gateway URL, with its ``cf-aig-*`` cache headers, for the log."""
    out: dict[str, Any] = {"id": gateway_id, "via": "url"}
    ttl = request.headers.get("cf-aig-cache-ttl")
    if ttl is not None:
        out["cacheTtl"] = int(ttl) if ttl.strip().isdigit() else ttl
    skip = request.headers.get("cf-aig-skip-cache")
    if skip is not None:
        out["skipCache"] = skip.strip().lower() == "true"
    return out
