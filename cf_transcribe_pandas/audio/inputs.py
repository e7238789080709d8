"""Classifying one cell of the audio column (:func:`to_source`) without reading it:
paths, bytes, data URIs, URLs, fsspec URLs, Hugging Face audio dicts, NA."""

from __future__ import annotations

import math
import os
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import AudioError
from .arrays import check_array
from .paths import local_path, normal_path, url_scheme
from .remote import check_fsspec_scheme, short_url
from .sources import Source
from .storage import StorageOptions, check_storage_options


def to_source(
    value: object, *, fetch_urls: bool = False, storage_options: Mapping[str, Any] | None = None
) -> Source:
    """Classify one cell of the audio column without reading it.

    Accepted values:

    - ``str`` or ``os.PathLike``: a local path (relative, ``~``, unicode,
      spaces, symlinks all fine); ``file://`` URLs are local paths too.
    - ``bytes``, ``bytearray``, ``memoryview``: the audio itself.
    - ``"data:...;base64,..."``: decoded when read; the decoded bytes are
      what is hashed and what the MIME type is sniffed from.
    - ``"http(s)://..."``: handed to the service as the file URL; downloaded
      (with urllib) only when ``fetch_urls`` is True.
    - any other ``scheme://`` (``s3://``, ``gs://``, ``memory://``, ...): read
      through fsspec, with ``storage_options``.
    - Hugging Face ``datasets`` Audio dicts: ``{"bytes": ..., "path": ...}``
      and ``{"array": ..., "sampling_rate": ...}``. Preference: bytes, then
      array (encoded to 16-bit WAV), then path.
    - None, NaN, ``pd.NA``, ``pd.NaT``: kind ``"na"`` (no request, NA text).

    Args:
        value: The cell.
        fetch_urls: Download http(s) URLs instead of passing them through.
        storage_options: What fsspec is given (``endpoint_url``, ``key``, ...), and
            ``headers`` for downloads of http(s) URLs.

    Returns:
        The :class:`Source`.

    Raises:
        AudioError: ``unsupported_input`` naming the type for anything else,
            for an empty string, or for fsspec URLs when fsspec (or the
            storage's backend) is not installed.
    """
    if _is_na(value):
        return Source("na", "<NA>")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Source.from_bytes(bytes(value))
    if isinstance(value, os.PathLike):
        fspath = normal_path(os.fsdecode(value))
        if not fspath:
            raise AudioError("an empty path is not audio", code="unsupported_input")
        return Source.from_path(fspath)
    storage = check_storage_options(storage_options)
    if isinstance(value, str):
        return _from_str(value, fetch_urls=fetch_urls, storage=storage)
    if isinstance(value, Mapping):
        return _from_mapping(value, fetch_urls=fetch_urls, storage=storage)
    raise AudioError(
        f"cannot use a value of type {type(value).__name__} as audio: expected a path, "
        "bytes, a data URI, a URL or a Hugging Face audio dict",
        code="unsupported_input",
    )


def _is_na(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    import pandas as pd  # a dependency, imported by the package already

    return value is pd.NA or value is pd.NaT


def _from_str(value: str, *, fetch_urls: bool, storage: StorageOptions | None) -> Source:
    fspath = local_path(value)
    if fspath is not None:  # a path, taken as written (spaces and all)
        return Source.from_path(fspath)
    text = value.strip()
    if not text:
        raise AudioError("an empty string is not audio", code="unsupported_input")
    if text[:5].lower() == "data:":
        return Source.from_data_uri(text)
    scheme = url_scheme(text) or ""  # local_path took every other string
    if scheme in ("http", "https"):
        return Source("url", short_url(text), url=text, fetch=fetch_urls, storage=storage)
    if scheme == "file":
        return _from_file_url(text)
    check_fsspec_scheme(text, scheme)
    return Source("fsspec", short_url(text), url=text, storage=storage)


def _from_file_url(url: str) -> Source:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise AudioError(
            f"{short_url(url)}: file:// URLs on another host are not supported",
            code="unsupported_input",
        )
    fspath = normal_path(urllib.request.url2pathname(parts.path), expand=False)
    return Source.from_path(fspath)


def _from_mapping(
    value: Mapping[Any, Any], *, fetch_urls: bool, storage: StorageOptions | None
) -> Source:
    path = value.get("path")
    name = os.path.basename(str(path)) if path else None
    raw = value.get("bytes")
    if raw is not None:
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise AudioError(
                f"the audio dict's 'bytes' is a {type(raw).__name__}, not bytes",
                code="unsupported_input",
            )
        return Source.from_bytes(bytes(raw), f"{name} (bytes)" if name else None)
    array = value.get("array")
    if array is not None:
        rate = check_array(array, value.get("sampling_rate"))
        return Source.from_array(array, rate, name or f"<array at {rate} Hz>")
    if path:
        return to_source(path, fetch_urls=fetch_urls, storage_options=storage)
    raise AudioError(
        "the audio dict has none of 'bytes', 'array' or 'path'", code="unsupported_input"
    )
