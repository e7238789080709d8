"""One row's audio input (:class:`Source`): what kind it is, reading its bytes,
opening it as a file, and hashing it for the cache key."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import os
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ..errors import AudioError
from .arrays import array_to_wav, wav_size
from .paths import path_error, path_stat_key
from .remote import fetch_url, open_fsspec
from .storage import StorageOptions

SourceKind = Literal["path", "bytes", "url", "fsspec", "array", "na"]

_HASH_CHUNK = 1024 * 1024


def empty_error(label: str) -> AudioError:
    """The row's :class:`AudioError` for 0 bytes of input."""
    return AudioError(f"{label}: the file is empty (0 bytes)", code="empty_file")


@dataclass(frozen=True, eq=False)
class Source:
    """One row's audio input, classified but not read.

    Create with :func:`to_source`. Creating a Source reads nothing; call
    :meth:`read`, :meth:`open` or :func:`sha256_of` when the bytes are
    needed. Sources compare by identity; compare :func:`sha256_of` to find
    equal audio.

    Attributes:
        kind: ``"path"`` (local file), ``"bytes"`` (bytes or a data URI),
            ``"url"`` (http/https), ``"fsspec"`` (s3://, gs://, memory://, ...),
            ``"array"`` (a Hugging Face decoded array) or ``"na"`` (missing).
        label: A short name for messages: the path, the URL without its query,
            ``<bytes len=N>``, ...
        fspath: The local file (kind ``"path"``) as a str, ``~`` expanded, not
            resolved; :attr:`path` is the same as a :class:`~pathlib.Path`.
        url: The URL (kinds ``"url"`` and ``"fsspec"``).
        fetch: For kind ``"url"``: download it (True) or hand the URL to the
            service as it is (False, the default).
        storage: The run's ``storage_options`` (fsspec URLs; ``headers`` for
            downloads); never shown.
    """

    kind: SourceKind
    label: str
    fspath: str | None = None
    url: str | None = None
    fetch: bool = False
    storage: StorageOptions | None = field(default=None, repr=False)
    _data: bytes | None = field(default=None, repr=False)
    _data_uri: str | None = field(default=None, repr=False)
    _array: Any = field(default=None, repr=False)
    _sampling_rate: int = field(default=0, repr=False)

    @classmethod
    def from_path(cls, fspath: str) -> Source:
        """A kind ``"path"`` source for a local file, named as :func:`to_source` names it."""
        return cls("path", fspath, fspath=fspath)

    @classmethod
    def from_bytes(cls, data: bytes, label: str | None = None) -> Source:
        """A kind ``"bytes"`` source holding ``data`` (labelled ``<bytes len=N>``)."""
        return cls("bytes", label or f"<bytes len={len(data)}>", _data=data)

    @classmethod
    def from_data_uri(cls, uri: str) -> Source:
        """A kind ``"bytes"`` source for a ``data:`` URI, decoded when read."""
        return cls("bytes", f"<data URI len={len(uri)}>", _data_uri=uri)

    @classmethod
    def from_array(cls, array: Any, sampling_rate: int, label: str) -> Source:
        """A kind ``"array"`` source: samples, written as 16-bit WAV when read."""
        return cls("array", label, _array=array, _sampling_rate=sampling_rate)

    @property
    def path(self) -> Path | None:
        """The local file (kind ``"path"``) as a Path, else None."""
        return None if self.fspath is None else Path(self.fspath)

    @property
    def passthrough(self) -> bool:
        """True when the service is given :attr:`url` itself and nothing is read."""
        return self.kind == "url" and not self.fetch

    def read(self) -> bytes:
        """Read the audio bytes.

        Returns:
            The file's bytes (for a data URI: the decoded bytes; for an array:
            a 16-bit WAV encoding of it).

        Raises:
            AudioError: ``file_not_found``, ``permission_denied``,
                ``empty_file``, ``fetch_failed`` (URL or remote storage) or
                ``unsupported_input`` (e.g. a malformed data URI).
            ValueError: for kind ``"na"``, which has no audio.
        """
        if self.kind == "path":
            try:  # unbuffered: one read of the whole file, no buffer to fill and copy
                with open(self.fspath or "", "rb", buffering=0) as f:
                    data = f.read()
            except OSError as exc:
                raise path_error(exc, self.label) from None
        elif self.kind == "fsspec":
            with self.open() as f:
                data = f.read()
        elif self.kind == "url":
            headers = self.storage.headers() if self.storage else None
            data = fetch_url(self.url or "", self.label, headers)
        elif self.kind == "array":
            data = array_to_wav(self._array, self._sampling_rate, self.label)
        elif self.kind == "bytes":
            data = self._data if self._data is not None else self._decoded_data_uri()
        else:
            raise ValueError("an NA row has no audio to read")
        if not data:
            raise empty_error(self.label)
        return bytes(data)

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """Open the audio as a binary file, for reading in place.

        Local and fsspec files are opened where they are (read on demand);
        other kinds are read whole (:meth:`read`) into memory. Errors while
        opening or reading inside the ``with`` block are the row's
        :class:`AudioError`, as for :meth:`read`.

        Yields:
            A readable, seekable binary file.
        """
        if self.kind == "path":
            try:
                with open(self.fspath or "", "rb") as f:
                    yield f
            except OSError as exc:
                raise path_error(exc, self.label) from None
        elif self.kind == "fsspec":
            with open_fsspec(self.url or "", self.label, self.storage) as f:
                yield f
        else:
            yield io.BytesIO(self.read())

    def stat_key(self, real_dirs: dict[str, str] | None = None) -> tuple[str, int, int] | None:
        """The key of the path -> sha256 memo: (resolved path, size, mtime_ns).

        Args:
            real_dirs: Resolved directories shared by the calls of one run
                (see :func:`path_stat_key`).

        Returns:
            The key for kind ``"path"``; None for every other kind.

        Raises:
            AudioError: ``file_not_found`` or ``permission_denied``.
        """
        if self.kind != "path" or self.fspath is None:
            return None
        return path_stat_key(self.fspath, real_dirs)

    def identity(self) -> str | None:
        """A stable string standing for the audio when its bytes are not read.

        Returns:
            ``"url:" + url`` for kind ``"url"`` (hash it for the cache key of
            a passed-through URL); None for every other kind (hash the bytes).
        """
        if self.kind == "url" and self.url is not None:
            return f"url:{self.url}"
        return None

    def size_hint(self) -> int | None:
        """About how many bytes :meth:`read` returns, when known without reading.

        Returns:
            The file size (paths), the length (bytes), about 3/4 of the
            URI's length (data URIs), the WAV size (arrays); None for URLs,
            fsspec files, NA and missing files.
        """
        if self.kind == "path" and self.fspath is not None:
            try:
                return os.stat(self.fspath).st_size
            except OSError:
                return None
        if self._data is not None:
            return len(self._data)
        if self._data_uri is not None:
            return len(self._data_uri) * 3 // 4
        if self.kind == "array":
            return wav_size(self._array)
        return None

    def _decoded_data_uri(self) -> bytes:
        header, sep, payload = (self._data_uri or "").partition(",")
        if not sep:
            raise AudioError(
                f"{self.label}: malformed data URI (no comma)", code="unsupported_input"
            )
        if not header.lower().endswith(";base64"):
            return urllib.parse.unquote_to_bytes(payload)
        payload = "".join(payload.split())
        try:
            return base64.b64decode(payload)
        except (binascii.Error, ValueError):
            pass
        try:
            return base64.urlsafe_b64decode(payload)
        except (binascii.Error, ValueError):
            raise AudioError(
                f"{self.label}: the data URI's base64 is malformed", code="unsupported_input"
            ) from None


def sha256_of(source: Source) -> str:
    """Hex sha256 of a source's audio bytes, streaming where possible.

    Local files and fsspec files are hashed in 1 MiB chunks, never loaded
    whole. A passed-through URL hashes :meth:`Source.identity`. Other kinds
    hash :meth:`Source.read`.

    Args:
        source: From :func:`to_source`.

    Returns:
        64 lowercase hex digits.

    Raises:
        AudioError: as :meth:`Source.read` (``empty_file`` for a 0-byte file).
        ValueError: for kind ``"na"``.
    """
    if source.kind == "na":
        raise ValueError("an NA row has no audio to hash")
    if source.passthrough:
        return hashlib.sha256((source.identity() or "").encode("utf-8")).hexdigest()
    digest = hashlib.sha256()
    total = 0
    with source.open() as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
            total += len(chunk)
    if total == 0:
        raise empty_error(source.label)
    return digest.hexdigest()
