"""``storage_options``: what fsspec is given for ``s3://``, ``gs://``, ... audio (as pandas
does), kept out of sight: the repr shows only harmless values, and :meth:`secrets`
lists the values every message about a storage is scrubbed of."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ConfigurationError

__all__ = ["StorageOptions", "check_storage_options"]

_SHOWN = frozenset(
    {
        "anon",
        "client_kwargs",
        "config_kwargs",
        "default_block_size",
        "default_cache_type",
        "endpoint_url",
        "profile",
        "project",
        "region_name",
        "requester_pays",
        "use_ssl",
        "version_aware",
        "account_name",
    }
)
"""Keys whose values a repr may show (dicts among them are masked key by key).
Every other value (key, secret, token, headers, credentials, ...) shows as ``***``."""

_MASK = "***"


def _masked(options: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in options.items():
        if isinstance(value, Mapping):
            out[name] = _masked(value)
        elif name in _SHOWN and not isinstance(value, (list, tuple)):
            out[name] = value
        else:
            out[name] = _MASK
    return out


def _secret_values(options: Mapping[str, Any]) -> Iterator[str]:
    for name, value in options.items():
        if isinstance(value, Mapping):
            yield from _secret_values(value)
        elif name not in _SHOWN and isinstance(value, (str, bytes)):
            yield value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class StorageOptions(Mapping[str, Any]):
    """The ``storage_options`` of a run: a read-only dict handed to fsspec.

    Its repr shows ``endpoint_url``, ``region_name``, ``anon`` and other
    harmless values, and ``***`` for everything else (``key``, ``secret``,
    ``token``, ``headers``, ...).

    Args:
        options: What fsspec's filesystem takes (``endpoint_url``, ``key``,
            ``secret``, ``profile``, ``anon``, ``client_kwargs``, ...).
    """

    __slots__ = ("_options",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        self._options = dict(options)

    def __getitem__(self, name: str) -> Any:
        return self._options[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def __repr__(self) -> str:
        return f"StorageOptions({_masked(self._options)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (StorageOptions, (self._options,))

    def secrets(self) -> tuple[str, ...]:
        """Every value a message must not show (the strings :meth:`__repr__` masks)."""
        return tuple(s for s in _secret_values(self._options) if s)

    def kwargs(self) -> dict[str, Any]:
        """A plain dict, for ``fsspec.open(url, **kwargs)``."""
        return dict(self._options)

    def headers(self) -> dict[str, str]:
        """The ``headers`` option (for downloads of http(s) URLs), or an empty dict."""
        headers = self._options.get("headers")
        if not isinstance(headers, Mapping):
            return {}
        return {str(k): str(v) for k, v in headers.items()}


def check_storage_options(value: object) -> StorageOptions | None:
    """The ``storage_options=`` check: None, or a dict with str keys.

    Raises:
        ConfigurationError: not a dict of str keys (the message shows no value).
    """
    if value is None or isinstance(value, StorageOptions):
        return value
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return StorageOptions(value) if value else None
    raise ConfigurationError(
        "storage_options= must be a dict of fsspec options such as "
        '{"endpoint_url": ..., "key": ..., "secret": ...}, not a '
        f"{type(value).__name__}",
        code="invalid_storage_options",
    )
