"""Local paths: telling a path from a URL in a str cell, naming it as pathlib would,
the (resolved path, size, mtime) key of the path -> sha256 memo, and the errors
a path can give."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ..errors import AudioError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def url_scheme(text: str) -> str | None:
    """The lowercased scheme of ``text`` when it is a ``scheme://...`` URL, else None."""
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def local_path(value: object) -> str | None:
    """The ``fspath`` :func:`to_source` gives a str cell naming a local file, else None.

    None for everything else (data URIs, URLs, ``file://``, empty strings,
    other types): call :func:`to_source` for those. Lets a caller that only
    needs the path skip building a :class:`Source`.

    Args:
        value: One cell of the audio column.

    Returns:
        The path as :func:`normal_path` names it, or None.
    """
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    if not stripped or stripped[:5].lower() == "data:" or url_scheme(stripped) is not None:
        return None
    return normal_path(value)


def normal_path(value: str, *, expand: bool = True) -> str:
    """``str(Path(value).expanduser())`` (without ``expanduser`` if not ``expand``).

    A path already in that form (the usual case) is returned as it is: building
    a Path costs about 9 s per million rows, most of a cached rerun's time.
    """
    if expand and value.startswith("~"):
        value = os.path.expanduser(value)
    odd = (
        os.sep != "/"
        or os.altsep
        or "//" in value
        or "/./" in value
        or value.endswith(("/", "/."))
        or value.startswith("./")
        or value == "."
    )
    return str(Path(value)) if odd else value


def path_stat_key(fspath: str, real_dirs: dict[str, str] | None = None) -> tuple[str, int, int]:
    """The key of the path -> sha256 memo for a local file: (resolved path, size, mtime_ns).

    Args:
        fspath: The file, as a :class:`Source`'s ``fspath``.
        real_dirs: Resolved directories by absolute directory, shared by the
            calls of one run: a file's directory is then resolved once per run,
            not once per file (``realpath`` costs one ``lstat`` per path
            component: 45 s per million files, against 4 s with the dict). The
            file itself is always checked: a symlink is resolved in full.

    Returns:
        The key.

    Raises:
        AudioError: ``file_not_found`` or ``permission_denied``.
    """
    try:
        if real_dirs is None or ".." in fspath:  # realpath follows links before ".."
            resolved = os.path.realpath(fspath, strict=True)
            st = os.stat(resolved)
        else:
            resolved, st = _resolve_in(real_dirs, os.path.abspath(fspath))
    except OSError as exc:
        raise path_error(exc, fspath) from None
    return (resolved, st.st_size, st.st_mtime_ns)


def _resolve_in(real_dirs: dict[str, str], path: str) -> tuple[str, os.stat_result]:
    """Resolve an absolute, normal ``path`` whose directory may be in ``real_dirs``."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        resolved = os.path.realpath(path, strict=True)
        return resolved, os.stat(resolved)
    head, tail = os.path.split(path)
    real = real_dirs.get(head)
    if real is None:
        real = real_dirs[head] = os.path.realpath(head)
    return os.path.join(real, tail), st


def path_error(exc: OSError, label: str) -> AudioError:
    """The row's :class:`AudioError` for an OSError met reading the file ``label``."""
    if isinstance(exc, FileNotFoundError):
        return AudioError(f"{label}: file not found", code="file_not_found")
    if isinstance(exc, PermissionError):
        return AudioError(f"{label}: permission denied", code="permission_denied")
    if isinstance(exc, IsADirectoryError):
        return AudioError(f"{label}: is a directory, not an audio file", code="unsupported_input")
    return AudioError(f"{label}: cannot be read ({exc.strerror or exc})", code="file_not_found")
