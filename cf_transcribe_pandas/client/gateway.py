"""The AI Gateway option: which gateway, its cache settings, and the two ways
to reach it.

* Through the usual Workers AI URL, with ``options.gateway`` in the body
  (:meth:`Gateway.options`), the default.
* Through the gateway's own URL (``use_gateway_url=True``), the form Cloudflare
  documents for the ``workers-ai`` provider::

      POST https://gateway.ai.cloudflare.com/v1/{account_id}/{gateway_id}/workers-ai/{model}
      {"file": ..., ...}

  The body is the model's ``input`` object itself (the model is in the path,
  its ``/`` kept as is, as in Cloudflare's examples) and the cache options go
  in the ``cf-aig-*`` headers (:meth:`Gateway.headers`).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cf_transcribe_pandas.client.credentials import ID_PATTERN, check_base_url
from cf_transcribe_pandas.errors import ConfigurationError

__all__ = ["GATEWAY_BASE_URL", "Gateway"]

GATEWAY_BASE_URL = "https://gateway.ai.cloudflare.com/v1"

_GATEWAY_KEYS = {
    "id": "id",
    "cache_ttl": "cache_ttl",
    "cacheTtl": "cache_ttl",
    "skip_cache": "skip_cache",
    "skipCache": "skip_cache",
    "use_gateway_url": "use_gateway_url",
    "base_url": "base_url",
}


def _invalid(message: str) -> ConfigurationError:
    return ConfigurationError(message, code="invalid_gateway")


@dataclass(frozen=True)
class Gateway:
    """An AI Gateway to route requests through (analytics, caching, limits).

    Attributes:
        id: The gateway's name in the dashboard.
        cache_ttl: Seconds AI Gateway may cache an answer (``cacheTtl``).
        skip_cache: True to bypass the gateway cache (``skipCache``).
        use_gateway_url: False (default) sends to the usual Workers AI URL with
            ``options.gateway`` in the body; True posts to the gateway's own URL
            ``{base_url}/{account_id}/{id}/workers-ai/{model}`` with the input
            object as the body and the cache options as ``cf-aig-*`` headers.
        base_url: The AI Gateway root, only used with ``use_gateway_url``;
            change it only for a proxy or a test server.

    Raises:
        ConfigurationError: A value has the wrong type or range.
    """

    id: str
    cache_ttl: int | None = None
    skip_cache: bool | None = None
    use_gateway_url: bool = False
    base_url: str = GATEWAY_BASE_URL

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not ID_PATTERN.match(self.id.strip()):
            raise _invalid(
                f"The AI Gateway id {self.id!r} is not valid: use the gateway's name from the "
                "AI Gateway page of the dashboard (letters, digits, '-' and '_')."
            )
        object.__setattr__(self, "id", self.id.strip())
        ttl: object = self.cache_ttl
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, numbers.Integral) or ttl < 0:
                raise _invalid(
                    f"The AI Gateway cache_ttl must be a whole number of seconds >= 0, not {ttl!r}."
                )
            object.__setattr__(self, "cache_ttl", int(ttl))
        if self.skip_cache is not None and not isinstance(self.skip_cache, bool):
            raise _invalid(
                f"The AI Gateway skip_cache must be True, False or None, not {self.skip_cache!r}."
            )
        if not isinstance(self.use_gateway_url, bool):
            raise _invalid(
                "The AI Gateway use_gateway_url must be True or False, "
                f"not {self.use_gateway_url!r}."
            )
        object.__setattr__(self, "base_url", check_base_url(self.base_url, "Gateway.base_url"))

    @classmethod
    def coerce(cls, value: str | Mapping[str, Any] | Gateway | None) -> Gateway | None:
        """Turn what users pass as ``gateway=`` into a :class:`Gateway`.

        Args:
            value: None, a gateway id, a mapping with ``id`` and optionally
                ``cache_ttl``/``cacheTtl``, ``skip_cache``/``skipCache``,
                ``use_gateway_url`` and ``base_url``, or a :class:`Gateway`.

        Returns:
            The gateway, or None when ``value`` is None.

        Raises:
            ConfigurationError: The value cannot be understood.
        """
        if value is None or isinstance(value, Gateway):
            return value
        if isinstance(value, str):
            return cls(id=value)
        if not isinstance(value, Mapping):
            raise _invalid(
                "gateway= takes a gateway id (str), a dict such as {'id': 'my-gateway', "
                f"'cache_ttl': 3600}}, or a Gateway, not {type(value).__name__}."
            )
        kwargs: dict[str, Any] = {}
        for key, item in value.items():
            name = _GATEWAY_KEYS.get(key)
            if name is None:
                known = ", ".join(sorted(_GATEWAY_KEYS))
                raise _invalid(f"Unknown AI Gateway option {key!r}; known options are {known}.")
            kwargs[name] = item
        if "id" not in kwargs:
            raise _invalid("The AI Gateway mapping needs an 'id' (the gateway's name).")
        return cls(**kwargs)

    def options(self) -> dict[str, Any]:
        """The ``options.gateway`` object for the request body (set keys only).

        Returns:
            ``{"id": ..., "cacheTtl": ..., "skipCache": ...}`` without unset keys.
        """
        out: dict[str, Any] = {"id": self.id}
        if self.cache_ttl is not None:
            out["cacheTtl"] = self.cache_ttl
        if self.skip_cache is not None:
            out["skipCache"] = self.skip_cache
        return out

    def headers(self) -> dict[str, str]:
        """The ``cf-aig-*`` headers used with the gateway URL (set keys only).

        Returns:
            A possibly empty dict of header names to values.
        """
        out: dict[str, str] = {}
        if self.cache_ttl is not None:
            out["cf-aig-cache-ttl"] = str(self.cache_ttl)
        if self.skip_cache is not None:
            out["cf-aig-skip-cache"] = "true" if self.skip_cache else "false"
        return out

    def url_for(self, account_id: str, model: str) -> str:
        """The gateway's own URL for ``model`` (the ``use_gateway_url`` form).

        Args:
            account_id: The Cloudflare account id.
            model: The Workers AI model name, kept with its ``/`` and ``@``.

        Returns:
            ``{base_url}/{account_id}/{id}/workers-ai/{model}``.
        """
        account, gateway = quote(account_id, safe=""), quote(self.id, safe="")
        return f"{self.base_url}/{account}/{gateway}/workers-ai/{quote(model, safe='/@')}"
