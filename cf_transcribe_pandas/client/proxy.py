"""Proxies: the ``proxy`` option, the environment's proxy, and what must stay hidden.

Requests go through the proxy given as ``proxy=``; without one, through the
environment's proxy for the URL's scheme (``HTTPS_PROXY`` / ``HTTP_PROXY``,
lower case too) unless ``NO_PROXY`` names the host, as urllib reads them
(:func:`proxy_for`, once a host per client). aiohttp's own ``trust_env`` is not
used: it reads the environment and ``~/.netrc`` in a thread on every request,
and a ``.netrc`` entry for the API host would clash with the bearer token. A
proxy URL may hold a user and password: it is never shown, only its host and port.
"""

from __future__ import annotations

import logging
import urllib.request
from urllib.parse import unquote, urlsplit

from cf_transcribe_pandas.errors import ConfigurationError

__all__ = ["Proxies", "check_proxy", "proxy_for", "proxy_secrets", "show_proxy"]

logger = logging.getLogger("cf_transcribe_pandas.client")

_SCHEMES = ("http", "https")


def check_proxy(value: object) -> str | None:
    """The proxy URL, checked; None for none (the environment's proxy, if any).

    Raises:
        ConfigurationError: not an ``http://`` or ``https://`` URL with a host.
    """
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            parts = urlsplit(text)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = None, False
        if parts is not None and parts.scheme in _SCHEMES and parts.hostname and port_ok:
            return text
        shown = show_proxy(text) if "@" in text else repr(text)  # never a password
    else:
        shown = repr(value) if not isinstance(value, str) else "''"
    raise ConfigurationError(
        f"proxy= must be a proxy URL such as 'http://proxy.example.com:3128', not {shown}; "
        "or leave it None to use HTTPS_PROXY / HTTP_PROXY from the environment",
        code="invalid_proxy",
    )


def show_proxy(url: str) -> str:
    """The proxy for a message: scheme, host and port, never a user or password."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "<a proxy URL>"
    if not host:
        return "<a proxy URL>"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def proxy_secrets(url: str | None) -> tuple[str, ...]:
    """What :func:`~cf_transcribe_pandas.errors.redact` must hide of a proxy URL."""
    if not url:
        return ()
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return (url,)
    secrets = [url]
    if password:
        secrets += [password, unquote(password)]
    return tuple(secrets)


def proxy_for(url: str, proxy: str | None) -> str | None:
    """The proxy a request to ``url`` goes through, or None for a direct connection.

    Args:
        url: The request's URL (only its scheme and host are read).
        proxy: The ``proxy`` option; when set it is the answer.

    Returns:
        ``proxy``, else the environment's proxy for ``url``'s scheme
        (``HTTPS_PROXY`` or ``HTTP_PROXY``) unless ``NO_PROXY`` names its host.
    """
    if proxy is not None:
        return proxy
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    found = proxies.get(parts.scheme)
    if not found or urllib.request.proxy_bypass(parts.netloc):
        return None
    return found


class Proxies:
    """One client's proxies: the option, else the environment's, looked up once a host.

    Args:
        proxy: The ``proxy`` option (checked here), or None.

    Raises:
        ConfigurationError: ``proxy`` is not a proxy URL.
    """

    def __init__(self, proxy: str | None) -> None:
        self.proxy = check_proxy(proxy)
        self.secrets: tuple[str, ...] = proxy_secrets(self.proxy)
        """What messages must not show: every proxy URL in use, and its password."""
        self._by_origin: dict[str, str | None] = {}

    def for_url(self, url: str) -> str | None:
        """The proxy a request to ``url`` goes through (see :func:`proxy_for`), or None."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._by_origin:
            proxy = self._by_origin[origin] = proxy_for(origin, self.proxy)
            self.secrets += proxy_secrets(proxy)
            if proxy is not None:
                logger.debug("requests to %s go through the proxy %s", origin, show_proxy(proxy))
        return self._by_origin[origin]
