"""Credentials: the account id, the API token and the base URL, from arguments
or the ``CLOUDFLARE_*`` environment variables, checked before any work.

Also the checks the AI Gateway shares: :func:`check_base_url` and
:data:`ID_PATTERN`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cf_transcribe_pandas.errors import ConfigurationError

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_ACCOUNT_ID",
    "ENV_API_TOKEN",
    "ENV_BASE_URL",
    "ID_PATTERN",
    "Credentials",
    "check_base_url",
]

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
ENV_ACCOUNT_ID = "CLOUDFLARE_ACCOUNT_ID"
ENV_API_TOKEN = "CLOUDFLARE_API_TOKEN"
ENV_BASE_URL = "CLOUDFLARE_BASE_URL"

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""An account id or a gateway id: safe as one URL path segment."""

_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: a valid header value


def _missing_message(missing: list[tuple[str, str, str]]) -> str:
    names = " and ".join(what for what, _, _ in missing)
    how = "; ".join(
        f"pass {arg}=... or set the {env} environment variable" for _, arg, env in missing
    )
    return (
        f"Missing Cloudflare {names}: {how}. "
        "Both are on the Workers AI page of the Cloudflare dashboard "
        "(use the REST API button to create a token with Workers AI permission)."
    )


def _is_blank(value: object) -> bool:
    return not isinstance(value, str) or not value.strip()


@dataclass(frozen=True)
class Credentials:
    """Where to send requests and how to authenticate.

    The token is kept out of ``repr`` and ``str``. Prefer :meth:`resolve`, which
    also reads the ``CLOUDFLARE_*`` environment variables.

    Attributes:
        account_id: The Cloudflare account id.
        api_token: An API token with Workers AI permission (never shown).
        base_url: The API root, ``https://api.cloudflare.com/client/v4`` by
            default; point it at the emulator for tests. A trailing slash is
            removed.

    Raises:
        ConfigurationError: A value is missing, empty or malformed.
    """

    account_id: str
    api_token: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        missing: list[tuple[str, str, str]] = []
        if _is_blank(self.account_id):
            missing.append(("account id", "account_id", ENV_ACCOUNT_ID))
        if _is_blank(self.api_token):
            missing.append(("API token", "api_token", ENV_API_TOKEN))
        if missing:
            raise ConfigurationError(_missing_message(missing), code="missing_credentials")
        account_id = self.account_id.strip()
        api_token = self.api_token.strip()
        if not ID_PATTERN.match(account_id):
            raise ConfigurationError(
                f"The Cloudflare account id {account_id!r} is not valid: it should be the "
                f"32-character hex id from the dashboard. Check {ENV_ACCOUNT_ID} or account_id=.",
                code="invalid_account_id",
            )
        if not _TOKEN_RE.match(api_token):
            raise ConfigurationError(
                "The Cloudflare API token contains spaces or non-printable characters, so it "
                f"cannot be sent in a header. Check {ENV_API_TOKEN} or api_token= "
                "(copy the token again, without quotes or line breaks).",
                code="invalid_api_token",
            )
        object.__setattr__(self, "account_id", account_id)
        object.__setattr__(self, "api_token", api_token)
        object.__setattr__(self, "base_url", check_base_url(self.base_url, ENV_BASE_URL))

    @classmethod
    def resolve(
        cls,
        account_id: str | None = None,
        api_token: str | None = None,
        base_url: str | None = None,
    ) -> Credentials:
        """Build credentials from arguments, else from the environment.

        Each argument that is None is read from ``CLOUDFLARE_ACCOUNT_ID``,
        ``CLOUDFLARE_API_TOKEN`` or ``CLOUDFLARE_BASE_URL``; the base URL falls
        back to :data:`DEFAULT_BASE_URL` (also when the variable is empty).

        Args:
            account_id: The Cloudflare account id.
            api_token: An API token with Workers AI permission.
            base_url: The API root (``http://`` or ``https://``).

        Returns:
            Validated credentials.

        Raises:
            ConfigurationError: Something is missing, empty or malformed; the
                message names what and how to set it. Raised before any request.
        """
        env = os.environ
        if account_id is None:
            account_id = env.get(ENV_ACCOUNT_ID, "")
        if api_token is None:
            api_token = env.get(ENV_API_TOKEN, "")
        if base_url is None:
            base_url = env.get(ENV_BASE_URL, "").strip() or DEFAULT_BASE_URL
        return cls(account_id=account_id, api_token=api_token, base_url=base_url)


def check_base_url(value: object, env_name: str) -> str:
    """Check an API root and return it without surrounding spaces or trailing ``/``.

    Args:
        value: The URL given.
        env_name: Where the user sets it, named in the error message.

    Returns:
        The cleaned ``http://`` or ``https://`` URL.

    Raises:
        ConfigurationError: The URL is empty, has another scheme, holds a user
            name or password, or has a query string or fragment.
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"The base URL is empty. Leave it unset to use {DEFAULT_BASE_URL}, or set "
            f"base_url= / {env_name} to an http(s):// URL.",
            code="invalid_base_url",
        )
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        problem = (
            f"The base URL {url!r} must start with https:// (or http:// for a local "
            f"emulator), for example {DEFAULT_BASE_URL}."
        )
    elif parts.username is not None or parts.password is not None:
        problem = (
            "The base URL must not hold a user name or password (the token goes in "
            f"api_token= / {ENV_API_TOKEN})."
        )
    elif parts.query or parts.fragment:
        problem = f"The base URL {url!r} must not have a query string or fragment."
    else:
        return url
    raise ConfigurationError(f"{problem} Check base_url= or {env_name}.", code="invalid_base_url")
