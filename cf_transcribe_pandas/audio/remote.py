"""Audio that is not on the local disk: downloading http(s) URLs (with urllib) and
reading object stores through fsspec (s3://, gs://, memory://, ...)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from .._version import __version__
from ..errors import AudioError
from .paths import path_error, url_scheme

_FETCH_TIMEOUT_S = 60.0
# The package fsspec needs for each common storage scheme, and our extra holding it.
_STORAGE_PACKAGES = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
}


def install_hint(scheme: str) -> str:
    """What to ``pip install`` to read ``scheme://`` URLs: our extra if there is one."""
    package, extra = _STORAGE_PACKAGES.get(scheme, ("", ""))
    if not package:
        return "pip install fsspec  (and the fsspec package for your storage)"
    try:
        extras = importlib.metadata.metadata("cf-transcribe-pandas").get_all("Provides-Extra")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout
        extras = None
    if extra in (extras or ()):
        return f'pip install "cf-transcribe-pandas[{extra}]"  (or: pip install fsspec {package})'
    return f"pip install fsspec {package}"


def short_url(url: str) -> str:
    """``url`` without credentials, query or fragment: safe for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0][:200]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    tail = "?..." if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")) + tail


def fetch_url(url: str, label: str) -> bytes:
    """Download an http(s) URL.

    Raises:
        AudioError: ``file_not_found`` (HTTP 404 or 410) or ``fetch_failed``.
    """
    request = urllib.request.Request(
        url, headers={"User-Agent": f"cf-transcribe-pandas/{__version__}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT_S) as response:
            data: bytes = response.read()
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response and its socket
        code = "file_not_found" if exc.code in (404, 410) else "fetch_failed"
        raise AudioError(f"{label}: download failed with HTTP {exc.code}", code=code) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AudioError(f"{label}: download failed ({reason})", code="fetch_failed") from None
    return data


def _import_fsspec(scheme: str) -> ModuleType:
    try:
        import fsspec
    except ImportError:
        raise AudioError(
            f"reading {scheme}:// URLs needs fsspec: {install_hint(scheme)}",
            code="unsupported_input",
        ) from None
    module: ModuleType = fsspec
    return module


def check_fsspec_scheme(url: str, scheme: str) -> None:
    """Check that fsspec, and the package behind ``scheme``, are installed.

    Raises:
        AudioError: ``unsupported_input`` with an install hint, or naming an
            unknown scheme.
    """
    fsspec = _import_fsspec(scheme)
    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as exc:
        raise AudioError(
            f"{short_url(url)}: reading {scheme}:// needs a package ({exc}); "
            f"{install_hint(scheme)}",
            code="unsupported_input",
        ) from None
    except ValueError:
        raise AudioError(
            f"{short_url(url)}: unknown URL scheme {scheme!r} (fsspec has no such protocol)",
            code="unsupported_input",
        ) from None


@contextlib.contextmanager
def open_fsspec(url: str, label: str) -> Iterator[Any]:
    """Open an fsspec URL for reading, in place (seekable, read on demand).

    Any failure of the storage, opening or reading inside the ``with`` block,
    becomes the row's :class:`AudioError`: ``file_not_found``,
    ``permission_denied``, ``unsupported_input`` (a backend package missing)
    or ``fetch_failed``.
    """
    scheme = url_scheme(url) or ""
    fsspec = _import_fsspec(scheme)
    try:
        with fsspec.open(url, "rb") as f:
            yield f
    except AudioError:
        raise
    except Exception as exc:  # storages raise anything: botocore, aiohttp, ...
        raise _fsspec_error(exc, label, scheme) from None


def _fsspec_error(exc: Exception, label: str, scheme: str) -> AudioError:
    if isinstance(exc, OSError):
        return path_error(exc, label)
    if isinstance(exc, ImportError):
        return AudioError(
            f"{label}: this storage needs a package ({exc}); {install_hint(scheme)}",
            code="unsupported_input",
        )
    return AudioError(f"{label}: read failed ({type(exc).__name__}: {exc})", code="fetch_failed")
