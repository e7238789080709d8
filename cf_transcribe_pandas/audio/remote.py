"""Audio that is not on the local disk: downloading http(s) URLs (with urllib) and
reading object stores through fsspec (s3://, gs://, memory://, ...), and what a
storage's failure means: one row's error, or (credentials refused, no such
bucket, endpoint unreachable) a :class:`StorageAccessError` that stops the run."""

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
from ..errors import AudioError, StorageAccessError, redact
from .paths import path_error, url_scheme
from .storage import StorageOptions

_FETCH_TIMEOUT_S = 60.0

_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "InvalidClientTokenId",
        "NoSuchBucket",
    }
)
"""Error codes that concern the credentials or the bucket, not one object."""

_NO_CREDENTIALS = frozenset({"NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"})
_UNREACHABLE = frozenset(
    {
        "ConnectionError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "NameResolutionError",
        "gaierror",
    }
)

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


def fetch_url(url: str, label: str, headers: dict[str, str] | None = None) -> bytes:
    """Download an http(s) URL (with ``headers``, e.g. ``storage_options["headers"]``).

    Raises:
        AudioError: ``file_not_found`` (HTTP 404 or 410) or ``fetch_failed``.
    """
    request = urllib.request.Request(
        url, headers={"User-Agent": f"cf-transcribe-pandas/{__version__}", **(headers or {})}
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
def open_fsspec(url: str, label: str, storage: StorageOptions | None = None) -> Iterator[Any]:
    """Open an fsspec URL for reading, in place (seekable, read on demand).

    Any failure of the storage, opening or reading inside the ``with`` block,
    becomes the row's :class:`AudioError` (``file_not_found``,
    ``permission_denied``, ``unsupported_input`` for a backend package missing,
    or ``fetch_failed``), or a :class:`StorageAccessError` when the storage
    refused the credentials or cannot be reached (see :func:`storage_failure`).
    """
    scheme = url_scheme(url) or ""
    fsspec = _import_fsspec(scheme)
    try:
        opened = fsspec.open(url, "rb", **(storage.kwargs() if storage else {}))
        # fsspec keeps a filesystem (and its listings) per thread: one this thread cached
        # in an earlier run may hold an object's old version (ETag), which the storage
        # then refuses to read. The run's plan has just listed it afresh; so must we.
        opened.fs.invalidate_cache(opened.path)
        with opened as f:
            yield f
    except AudioError:
        raise
    except Exception as exc:  # storages raise anything: botocore, aiohttp, ...
        raise storage_failure(exc, label, storage) from None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _error_code(exc: BaseException) -> str | None:
    """The storage's error code (botocore's ``Error.Code``) behind ``exc``, if any."""
    for e in _causes(exc):
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
    return None


def _names(exc: BaseException) -> set[str]:
    return {c.__name__ for e in _causes(exc) for c in type(e).__mro__}


def storage_failure(
    exc: Exception, label: str, storage: StorageOptions | None, *, first: bool = False
) -> AudioError | StorageAccessError:
    """What a storage's exception means for the run.

    Args:
        exc: What fsspec (s3fs, gcsfs, ...) raised for one object.
        label: The object's URL as messages show it.
        storage: The run's ``storage_options`` (their secrets are kept out).
        first: Nothing was read from this bucket yet: a bare "access denied"
            then means the credentials, not this one object.

    Returns:
        A :class:`StorageAccessError` (stop the run) for refused credentials, a
        missing bucket or an unreachable endpoint; else the row's :class:`AudioError`.
    """
    secrets = storage.secrets() if storage else ()
    code = _error_code(exc)
    names = _names(exc)
    what = redact(f"{type(exc).__name__}: {exc}", *secrets)[:300]
    if names & _UNREACHABLE:
        return StorageAccessError(
            f"{label}: the storage cannot be reached ({what}); check storage_options' "
            "endpoint_url and the network",
            code="storage_unreachable",
        )
    if (
        code in _CREDENTIAL_CODES
        or names & _NO_CREDENTIALS
        or (first and isinstance(exc, PermissionError))
    ):
        hint = (
            "no such bucket at this endpoint (R2 jurisdiction buckets need the .eu. or .fedramp. "
            "endpoint)"
            if code == "NoSuchBucket"
            else "check storage_options (key/secret, profile, endpoint_url) or the environment's "
            "credentials"
        )
        return StorageAccessError(
            f"{label}: the storage refused access ({what}); {hint}", code="storage_access_denied"
        )
    if isinstance(exc, FileNotFoundError):
        return AudioError(f"{label}: no such object in the storage", code="file_not_found")
    if isinstance(exc, OSError) and type(exc) is not OSError:  # s3fs: OSError(EIO) for others
        return path_error(exc, label)
    if isinstance(exc, ImportError):
        return AudioError(
            f"{label}: this storage needs a package ({exc}); "
            f"{install_hint(url_scheme(label) or '')}",
            code="unsupported_input",
        )
    return AudioError(f"{label}: read failed ({what})", code="fetch_failed")
