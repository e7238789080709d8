"""The ``proxy`` option: checking a proxy URL, and what of it must stay hidden.

Requests go through the proxy given as ``proxy=``; without one, the client's
session trusts the environment (``HTTPS_PROXY`` / ``HTTP_PROXY`` /
``NO_PROXY``, read by aiohttp as urllib does). A proxy URL may hold a user and
password: it is never shown, only its host and port.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from cf_transcribe_pandas.errors import ConfigurationError

__all__ = ["check_proxy", "proxy_secrets", "show_proxy"]

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
        shown = show_proxy(text)
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
