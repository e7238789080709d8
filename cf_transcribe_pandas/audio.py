"""Turn one row's value into request-ready audio.

The path of one row through this module::

    to_source(value)            cheap: classify the value, read nothing
      Source.read() -> bytes    or sha256_of(source), streaming, for the cache key
    prepare(data, label=...)    validate, re-encode when needed, split long audio
      -> list[Part]             each Part.data_uri is the request's "file" value

Formats are recognised by their content (:func:`sniff`), never by the file
name. Containers the service accepts (flac, mp3/mpeg/mpga, mp4/m4a, ogg, wav,
webm) are sent byte for byte; others (aiff, wma, caf, odd PCM inside WAV, ...)
are decoded with PyAV and re-encoded to 16 kHz mono FLAC. Audio over a request
limit (25 MiB of body, 1,500 s) or over ``max_part_seconds`` is split into parts
at quiet points, each re-encoded on its own.

Every function here is synchronous and CPU-bound; the engine calls them from a
thread pool. Nothing here ever holds more than one row's audio.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import functools
import hashlib
import importlib
import io
import logging
import math
import os
import re
import stat
import struct
import urllib.error
import urllib.parse
import urllib.request
import wave
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast, get_args

import numpy as np
import numpy.typing as npt

from .errors import AudioError, ConfigurationError

if TYPE_CHECKING:
    import av
else:

    class _LazyModule(ModuleType):
        """A module imported on first use: ``av`` (FFmpeg) costs about 20 MB and
        a quarter second, and WAV files on the fast path never need it."""

        def __getattr__(self, name: str) -> Any:
            module = importlib.import_module(self.__name__)
            globals()[self.__name__] = module  # later lookups skip this proxy
            return getattr(module, name)

    av = _LazyModule("av")

__all__ = [
    "ACCEPTED",
    "DEFAULT_MAX_PART_SECONDS",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_SECONDS",
    "REQUEST_OVERHEAD_BYTES",
    "AudioInfo",
    "EncodeMode",
    "Part",
    "Source",
    "data_uri",
    "join_prompt",
    "join_texts",
    "local_path",
    "looks_cut",
    "mime_for",
    "path_stat_key",
    "prepare",
    "probe",
    "request_bytes",
    "sha256_of",
    "sniff",
    "split_part",
    "tail_words",
    "to_source",
]

logger = logging.getLogger("cf_transcribe_pandas")

#: Containers the service accepts, as named by its docs.
ACCEPTED = frozenset({"flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm"})
#: The service's limit on one request body (the base64 data URI plus JSON).
MAX_REQUEST_BYTES = 25 * 1024 * 1024
#: About the longest audio the service takes in one request.
MAX_REQUEST_SECONDS = 1500.0
#: Longest part by default: about what the 2,000-token output cap can hold.
DEFAULT_MAX_PART_SECONDS = 600.0
#: Room left in a request for the JSON around the data URI (model, prompt, ...).
REQUEST_OVERHEAD_BYTES = 1024

EncodeMode = Literal["auto", "original", "flac", "opus"]
SourceKind = Literal["path", "bytes", "url", "fsspec", "array", "na"]

_RATE = 16_000  # sample rate of everything this module encodes or analyses
_OPUS_BIT_RATE = 32_000
_HEAD_BYTES = 64 * 1024  # how much of a file sniff/probe look at
_HASH_CHUNK = 1024 * 1024
_FETCH_TIMEOUT_S = 60.0
_FSSPEC_HINT = "pip install fsspec s3fs  (or gcsfs, adlfs, ... for your storage)"

# "Text looks cut" thresholds: the model stops at 2,000 output tokens (about
# 1,500 English words). These sit at 90 % of that.
_CUT_WORDS = 1350
_CUT_CHARS = 7000
_CUT_TOKENS = 1800

_PROMPT_MAX_WORDS = 200
_TAIL_CHARS_PER_WORD = 12
_MIN_HALF_SECONDS = 10.0  # split_part never makes a half shorter than this

# Splitting: parts aim at equal lengths under 95 % of the limit; the quiet
# point is searched +-10 % of a part around each target (3 s to 30 s).
PLAN_HEADROOM = 0.95
_SEARCH_FRACTION = 0.10
_SEARCH_MIN_S = 3.0
_SEARCH_MAX_S = 30.0
_HOP = _RATE // 100  # 10 ms
_WINDOW_HOPS = 10  # 100 ms RMS windows

_MIME = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "mpeg": "audio/mpeg",
    "mpga": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "mp4": "audio/mp4",
    "m4a": "audio/mp4",
    "webm": "audio/webm",
    "aiff": "audio/aiff",
    "caf": "audio/x-caf",
    "wma": "audio/x-ms-wma",
    "matroska": "audio/x-matroska",
    "au": "audio/basic",
    "amr": "audio/amr",
    "aac": "audio/aac",
    "3gp": "audio/3gpp",
    "mov": "video/quicktime",
}

# Uncompressed containers: their header says everything, so probing is short.
_PCM_CONTAINERS = frozenset({"wav", "aiff", "caf", "au"})
# Trust the duration in these containers' headers (a truncated file then shows
# as "header says more than is there"). mp3 only with a Xing/Info/VBRI tag.
_HEADER_DURATION_TRUSTED = frozenset(
    {"flac", "mp4", "m4a", "webm", "matroska", "aiff", "caf", "wma", "3gp", "mov"}
)


# --------------------------------------------------------------------------- sniffing

_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")

# MPEG audio bitrates (kbit/s) by (MPEG-1?, layer), index 1..14.
_MPEG_BITRATES = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(h: bytes, i: int) -> int | None:
    """Length in bytes of the MPEG audio frame whose header starts at ``h[i]``."""
    if i + 4 > len(h) or h[i] != 0xFF or (h[i + 1] & 0xE0) != 0xE0:
        return None
    version = (h[i + 1] >> 3) & 3  # 0: MPEG-2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
    layer_bits = (h[i + 1] >> 1) & 3  # 0: reserved, 1: III, 2: II, 3: I
    bitrate_index = h[i + 2] >> 4
    rate_index = (h[i + 2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    padding = (h[i + 2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    if layer == 3 and not mpeg1:
        return 72 * bitrate // rate + padding
    return 144 * bitrate // rate + padding


def _is_mpeg_audio(h: bytes, i: int) -> bool:
    length = _mpeg_frame_length(h, i)
    if length is None:
        return False
    nxt = i + length
    if nxt + 4 <= len(h):  # the next frame is in view: it must be a frame too
        return _mpeg_frame_length(h, nxt) is not None
    return True


def _is_adts(h: bytes, i: int) -> bool:
    return i + 2 <= len(h) and h[i] == 0xFF and (h[i + 1] & 0xF6) == 0xF0


def _ebml_doctype(h: bytes) -> str:
    at = h.find(b"\x42\x82", 4, 64)
    if at < 0 or at + 3 > len(h):
        return "matroska"
    first = h[at + 2]
    width = 1
    while width <= 8 and not first & (0x80 >> (width - 1)):
        width += 1
    if width > 8:
        return "matroska"
    size = first & (0xFF >> width)
    for b in h[at + 3 : at + 2 + width]:
        size = (size << 8) | b
    start = at + 2 + width
    doctype = h[start : start + min(size, 16)].rstrip(b"\0")
    return "webm" if doctype == b"webm" else "matroska"


def _mp4_family(brand: bytes) -> str:
    if brand in (b"M4A ", b"M4B ", b"M4P "):
        return "m4a"
    if brand.startswith(b"3g"):
        return "3gp"
    if brand == b"qt  ":
        return "mov"
    if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
        return "heif"
    return "mp4"


def sniff(head: bytes) -> str | None:
    """Name the container of some audio from its first bytes.

    Args:
        head: The start of the file (a few KB is plenty; more is ignored).

    Returns:
        ``"wav"`` (also RF64), ``"flac"``, ``"mp3"`` (any MPEG audio: layer I,
        II or III, with or without an ID3 tag), ``"ogg"`` (vorbis, opus, ...),
        ``"mp4"`` or ``"m4a"`` (by ftyp brand; also ``"3gp"``, ``"mov"``),
        ``"webm"`` or ``"matroska"`` (by EBML DocType), ``"aiff"``, ``"caf"``,
        ``"wma"`` (any ASF), ``"au"``, ``"amr"``, ``"aac"`` (ADTS), or None
        when the bytes are text or unknown. Never raises.
    """
    h = bytes(head[:_HEAD_BYTES])
    if len(h) < 4:
        return None
    magic = h[:4]
    if magic in (b"RIFF", b"RIFX", b"RF64", b"BW64") and h[8:12] == b"WAVE":
        return "wav"
    if magic == b"fLaC":
        return "flac"
    if magic == b"OggS":
        return "ogg"
    if magic == b"\x1a\x45\xdf\xa3":
        return _ebml_doctype(h)
    if h[4:8] == b"ftyp":
        return _mp4_family(h[8:12])
    if magic == b"FORM" and h[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if magic == b"caff":
        return "caf"
    if h[:16] == _ASF_GUID:
        return "wma"
    if magic == b".snd":
        return "au"
    if h.startswith(b"#!AMR"):
        return "amr"
    if h[:3] == b"ID3" and len(h) >= 10:
        size = (h[6] & 0x7F) << 21 | (h[7] & 0x7F) << 14 | (h[8] & 0x7F) << 7 | (h[9] & 0x7F)
        at = 10 + size + (10 if h[5] & 0x10 else 0)
        while at < len(h) and h[at] == 0:  # padding after the tag
            at += 1
        if h[at : at + 4] == b"fLaC":
            return "flac"
        if _is_adts(h, at) and not _is_mpeg_audio(h, at):
            return "aac"
        return "mp3"
    if _is_mpeg_audio(h, 0):
        return "mp3"
    if _is_adts(h, 0):
        return "aac"
    return None


def mime_for(fmt: str | None) -> str:
    """The MIME type for a container name from :func:`sniff`.

    Args:
        fmt: ``"wav"``, ``"flac"``, ``"mp3"``, ``"ogg"``, ``"mp4"``, ``"m4a"``,
            ``"webm"``, ... (as :func:`sniff` names them).

    Returns:
        ``audio/wav``, ``audio/flac``, ``audio/mpeg``, ``audio/ogg``,
        ``audio/mp4``, ``audio/webm``, ...; ``application/octet-stream``
        for None or an unknown name.
    """
    if fmt is None:
        return "application/octet-stream"
    return _MIME.get(fmt.lower(), "application/octet-stream")


def data_uri(data: bytes, mime: str) -> str:
    """Build ``data:{mime};base64,...`` for ``data``.

    Args:
        data: The audio bytes.
        mime: Their MIME type, e.g. from :func:`mime_for`.

    Returns:
        The data URI, ready for the request's ``file`` field.
    """
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def request_bytes(n_bytes: int, mime: str = "application/octet-stream") -> int:
    """Size of a request carrying ``n_bytes`` of audio as a data URI.

    Base64 grows the audio by 4/3; the JSON around it is counted as
    ``REQUEST_OVERHEAD_BYTES``. Compare the result with ``max_request_bytes``.

    Args:
        n_bytes: Length of the audio in bytes.
        mime: The MIME type written in the data URI.

    Returns:
        An upper bound of the request body in bytes.
    """
    return 4 * math.ceil(n_bytes / 3) + len(f"data:{mime};base64,") + REQUEST_OVERHEAD_BYTES


def _looks_like_text(head: bytes) -> str | None:
    """Say what kind of text ``head`` is, or None if it is not text."""
    sample = head[:4096]
    if not sample or b"\0" in sample:
        return None
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a character cut at the end
            return None
        text = sample[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if not text or printable < 0.95 * len(text):
        return None
    lowered = text.lstrip().lower()
    if lowered.startswith(("<!doctype html", "<html")):
        return "an HTML page"
    if lowered.startswith("<?xml"):
        return "an XML document"
    if lowered.startswith(("{", "[")):
        return "JSON text"
    return "a text file"


# --------------------------------------------------------------------------- sources


def _short_url(url: str) -> str:
    """``url`` without credentials, query or fragment: safe for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0][:200]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    tail = "?..." if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")) + tail


def _import_fsspec() -> ModuleType:
    try:
        import fsspec
    except ImportError:
        raise AudioError(
            f"reading fsspec URLs (s3://, gs://, memory://, ...) needs fsspec: {_FSSPEC_HINT}",
            code="unsupported_input",
        ) from None
    module: ModuleType = fsspec
    return module


def _path_error(exc: OSError, label: str) -> AudioError:
    if isinstance(exc, FileNotFoundError):
        return AudioError(f"{label}: file not found", code="file_not_found")
    if isinstance(exc, PermissionError):
        return AudioError(f"{label}: permission denied", code="permission_denied")
    if isinstance(exc, IsADirectoryError):
        return AudioError(f"{label}: is a directory, not an audio file", code="unsupported_input")
    return AudioError(f"{label}: cannot be read ({exc.strerror or exc})", code="file_not_found")


def _read_file(path: str) -> bytes:
    """The whole file, read with plain system calls (open, fstat, read to the end,
    close): a third of what ``open(path, "rb").read()`` costs for a short clip."""
    fd = os.open(path, _READ_FLAGS)
    try:
        size = os.fstat(fd).st_size
        chunks = [os.read(fd, size + 1 if size > 0 else _READ_CHUNK)]
        while chunks[-1]:  # until EOF: a file may grow, or be a pipe that reports 0 bytes
            chunks.append(os.read(fd, _READ_CHUNK))
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) <= 2 else b"".join(chunks)


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_READ_CHUNK = 1 << 20


def _empty(label: str) -> AudioError:
    return AudioError(f"{label}: the file is empty (0 bytes)", code="empty_file")


@dataclass(frozen=True, eq=False)
class Source:
    """One row's audio input, classified but not read.

    Create with :func:`to_source`. Creating a Source reads nothing; call
    :meth:`read` (or :func:`sha256_of`) when the bytes are needed. Sources
    compare by identity; compare :func:`sha256_of` to find equal audio.

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
    """

    kind: SourceKind
    label: str
    fspath: str | None = None
    url: str | None = None
    fetch: bool = False
    _data: bytes | None = field(default=None, repr=False, compare=False)
    _data_uri: str | None = field(default=None, repr=False, compare=False)
    _array: Any = field(default=None, repr=False, compare=False)
    _sampling_rate: int | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
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
            assert self.fspath is not None
            try:
                data = _read_file(self.fspath)
            except OSError as exc:
                raise _path_error(exc, self.label) from None
        elif self.kind == "bytes":
            data = self._data if self._data is not None else self._decode_data_uri()
        elif self.kind == "url":
            data = self._fetch()
        elif self.kind == "fsspec":
            with self._open_fsspec() as f:
                data = self._fsspec_call(f.read)
        elif self.kind == "array":
            data = _array_to_wav(self._array, self._sampling_rate or 0, self.label)
        else:
            raise ValueError("an NA row has no audio to read")
        if not data:
            raise _empty(self.label)
        return bytes(data)

    def stat_key(self, real_dirs: dict[str, str] | None = None) -> tuple[str, int, int] | None:
        """The key of the path -> sha256 memo: (resolved path, size, mtime_ns).

        Args:
            real_dirs: Resolved directories by absolute directory, shared by
                the calls of one run: a file's directory is then resolved once
                per run, not once per file (``realpath`` costs one ``lstat``
                per path component). The file itself is always checked: a
                symlink is resolved in full.

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
            return 44 + 2 * int(getattr(self._array, "size", 0) or len(self._array))
        return None

    # -- internals

    def _decode_data_uri(self) -> bytes:
        uri = self._data_uri or ""
        header, sep, payload = uri.partition(",")
        if not sep:
            raise AudioError(
                f"{self.label}: malformed data URI (no comma)", code="unsupported_input"
            )
        if header.lower().endswith(";base64"):
            try:
                return base64.b64decode("".join(payload.split()), validate=False)
            except (binascii.Error, ValueError):
                try:
                    return base64.urlsafe_b64decode("".join(payload.split()))
                except (binascii.Error, ValueError):
                    raise AudioError(
                        f"{self.label}: the data URI's base64 is malformed",
                        code="unsupported_input",
                    ) from None
        return urllib.parse.unquote_to_bytes(payload)

    def _fetch(self) -> bytes:
        from ._version import __version__

        assert self.url is not None
        request = urllib.request.Request(
            self.url, headers={"User-Agent": f"cf-transcribe-pandas/{__version__}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=_FETCH_TIMEOUT_S) as response:
                data: bytes = response.read()
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response and its socket
            code = "file_not_found" if exc.code in (404, 410) else "fetch_failed"
            raise AudioError(
                f"{self.label}: download failed with HTTP {exc.code}", code=code
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AudioError(
                f"{self.label}: download failed ({reason})", code="fetch_failed"
            ) from None
        return data

    def _open_fsspec(self) -> Any:
        fsspec = _import_fsspec()
        try:
            return fsspec.open(self.url, "rb").open()
        except Exception as exc:
            raise self._fsspec_error(exc) from None

    def _fsspec_call(self, fn: Any, *args: Any) -> bytes:
        try:
            data: bytes = fn(*args)
        except Exception as exc:
            raise self._fsspec_error(exc) from None
        return data

    def _fsspec_error(self, exc: Exception) -> AudioError:
        if isinstance(exc, OSError):
            return _path_error(exc, self.label)
        if isinstance(exc, ImportError):
            return AudioError(
                f"{self.label}: this storage needs a package ({exc}); {_FSSPEC_HINT}",
                code="unsupported_input",
            )
        return AudioError(
            f"{self.label}: read failed ({type(exc).__name__}: {exc})", code="fetch_failed"
        )


def _na(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False
    return value is pd.NA or value is pd.NaT


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def _hf_label(value: Mapping[Any, Any]) -> str | None:
    path = value.get("path")
    return os.path.basename(str(path)) if path else None


def to_source(value: object, *, fetch_urls: bool = False) -> Source:
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
      through fsspec.
    - Hugging Face ``datasets`` Audio dicts: ``{"bytes": ..., "path": ...}``
      and ``{"array": ..., "sampling_rate": ...}``. Preference: bytes, then
      array (encoded to 16-bit WAV), then path.
    - None, NaN, ``pd.NA``, ``pd.NaT``: kind ``"na"`` (no request, NA text).

    Args:
        value: The cell.
        fetch_urls: Download http(s) URLs instead of passing them through.

    Returns:
        The :class:`Source`.

    Raises:
        AudioError: ``unsupported_input`` naming the type for anything else,
            for an empty string, or for fsspec URLs when fsspec (or the
            storage's backend) is not installed.
    """
    if _na(value):
        return Source("na", "<NA>")
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return Source("bytes", f"<bytes len={len(data)}>", _data=data)
    if isinstance(value, os.PathLike):
        value = os.fsdecode(value)
        if not value:
            raise AudioError("an empty path is not audio", code="unsupported_input")
        return _path_source(value)
    if isinstance(value, str):
        return _source_from_str(value, fetch_urls=fetch_urls)
    if isinstance(value, Mapping):
        return _source_from_mapping(value, fetch_urls=fetch_urls)
    raise AudioError(
        f"cannot use a value of type {type(value).__name__} as audio: expected a path, "
        "bytes, a data URI, a URL or a Hugging Face audio dict",
        code="unsupported_input",
    )


def path_stat_key(fspath: str, real_dirs: dict[str, str] | None = None) -> tuple[str, int, int]:
    """:meth:`Source.stat_key` of the local path ``fspath`` (a Source's ``fspath``).

    Raises:
        AudioError: ``file_not_found`` or ``permission_denied``.
    """
    try:
        if fspath.startswith("/") and "//" not in fspath and "/." not in fspath:
            path = fspath  # absolute and normal already: abspath would return it
        else:
            path = os.path.abspath(fspath)
        if real_dirs is None or ".." in fspath:  # realpath follows links first
            resolved = str(Path(fspath).resolve(strict=True))
            st = os.stat(resolved)
        else:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                resolved = os.path.realpath(path, strict=True)
                st = os.stat(resolved)
            else:
                head, _, tail = path.rpartition("/")
                head = head or "/"
                real = real_dirs.get(head)
                if real is None:
                    real = real_dirs[head] = os.path.realpath(head)
                resolved = real + tail if real.endswith("/") else f"{real}/{tail}"
    except OSError as exc:
        raise _path_error(exc, fspath) from None
    return (resolved, st.st_size, st.st_mtime_ns)


def _path_source(value: str, *, expand: bool = True) -> Source:
    """A local path's Source, named as ``str(Path(value).expanduser())`` would name it.

    Building a Path per row costs more than the rest of a cached row's work,
    so a path already in that normal form (the usual case) is used as it is.
    """
    value = _normal_path(value, expand=expand)
    return Source("path", value, fspath=value)


def local_path(value: object) -> str | None:
    """The ``fspath`` :func:`to_source` gives a str cell naming a local file, else None.

    None for everything else (data URIs, URLs, ``file://``, empty strings,
    other types): call :func:`to_source` for those. Lets a caller that only
    needs the path skip building a :class:`Source`.
    """
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    if not stripped or stripped[:5].lower() == "data:" or _SCHEME.match(stripped) is not None:
        return None
    return _normal_path(str(value))


def _normal_path(value: str, *, expand: bool = True) -> str:
    if expand and value.startswith("~"):
        value = os.path.expanduser(value)
    if (
        os.sep != "/"
        or os.altsep
        or "//" in value
        or "/./" in value
        or value.endswith(("/", "/."))
        or value.startswith("./")
        or value == "."
    ):
        value = str(Path(value))
    return value


def _source_from_str(value: str, *, fetch_urls: bool) -> Source:
    fspath = local_path(value)
    if fspath is not None:  # a path, taken as written (spaces and all)
        return Source("path", fspath, fspath=fspath)
    stripped = value.strip()
    if not stripped:
        raise AudioError("an empty string is not audio", code="unsupported_input")
    if stripped[:5].lower() == "data:":
        return Source("bytes", f"<data URI len={len(stripped)}>", _data_uri=stripped)
    match = _SCHEME.match(stripped)
    assert match is not None  # local_path took every other string
    value = stripped
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return Source("url", _short_url(value), url=value, fetch=fetch_urls)
    if scheme == "file":
        parts = urllib.parse.urlsplit(value)
        if parts.netloc not in ("", "localhost"):
            raise AudioError(
                f"{_short_url(value)}: file:// URLs on another host are not supported",
                code="unsupported_input",
            )
        return _path_source(urllib.request.url2pathname(parts.path), expand=False)
    fsspec = _import_fsspec()
    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as exc:
        raise AudioError(
            f"{_short_url(value)}: reading {scheme}:// needs a package ({exc}); {_FSSPEC_HINT}",
            code="unsupported_input",
        ) from None
    except ValueError:
        raise AudioError(
            f"{_short_url(value)}: unknown URL scheme {scheme!r} (fsspec has no such protocol)",
            code="unsupported_input",
        ) from None
    return Source("fsspec", _short_url(value), url=value)


def _source_from_mapping(value: Mapping[Any, Any], *, fetch_urls: bool) -> Source:
    name = _hf_label(value)
    raw = value.get("bytes")
    if raw is not None:
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise AudioError(
                f"the audio dict's 'bytes' is a {type(raw).__name__}, not bytes",
                code="unsupported_input",
            )
        data = bytes(raw)
        label = f"{name} (bytes)" if name else f"<bytes len={len(data)}>"
        return Source("bytes", label, _data=data)
    array = value.get("array")
    if array is not None:
        rate = value.get("sampling_rate")
        if isinstance(rate, float) and rate.is_integer():
            rate = int(rate)
        if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool) or rate <= 0:
            raise AudioError(
                "the audio dict has an 'array' but no positive integer 'sampling_rate'",
                code="unsupported_input",
            )
        shape = getattr(array, "shape", None)
        ndim = len(shape) if shape is not None else 1
        if ndim not in (1, 2):
            raise AudioError(
                f"the audio dict's 'array' has {ndim} dimensions; expected 1 (mono) or 2",
                code="unsupported_input",
            )
        label = name or f"<array at {int(rate)} Hz>"
        return Source("array", label, _array=array, _sampling_rate=int(rate))
    path = value.get("path")
    if path:
        return to_source(path, fetch_urls=fetch_urls)
    raise AudioError(
        "the audio dict has none of 'bytes', 'array' or 'path'", code="unsupported_input"
    )


def _array_to_wav(array: Any, rate: int, label: str) -> bytes:
    """Encode a float (or int) sample array as 16-bit PCM WAV bytes."""
    try:
        a = np.asarray(array)
    except Exception as exc:
        raise AudioError(
            f"{label}: the array cannot be read ({exc})", code="unsupported_input"
        ) from None
    if a.dtype.kind not in "fiub" or a.ndim not in (1, 2):
        raise AudioError(
            f"{label}: the audio array must be numeric and 1- or 2-D, not {a.dtype} {a.ndim}-D",
            code="unsupported_input",
        )
    if a.ndim == 1:
        a = a[:, None]
    elif a.shape[0] < a.shape[1] and a.shape[0] <= 32:  # (channels, samples)
        a = a.T
    if a.size == 0:
        raise AudioError(f"{label}: the audio array is empty", code="empty_file")
    if a.dtype == np.int16:
        pcm = a
    else:
        if a.dtype.kind in "iu":
            info = np.iinfo(a.dtype)
            f = (a.astype(np.float64) - (info.max + info.min + 1) / 2) / (
                (info.max - info.min + 1) / 2
            )
        else:
            f = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
        pcm = np.round(np.clip(f, -1.0, 1.0) * 32767.0).astype(np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(int(pcm.shape[1]))
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return buf.getvalue()


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
    if source.kind not in ("path", "fsspec"):
        return hashlib.sha256(source.read()).hexdigest()
    digest = hashlib.sha256()
    total = 0
    if source.kind == "path":
        assert source.fspath is not None
        try:
            with open(source.fspath, "rb") as f:
                while chunk := f.read(_HASH_CHUNK):
                    digest.update(chunk)
                    total += len(chunk)
        except OSError as exc:
            raise _path_error(exc, source.label) from None
    else:
        with source._open_fsspec() as f:
            while chunk := source._fsspec_call(f.read, _HASH_CHUNK):
                digest.update(chunk)
                total += len(chunk)
    if total == 0:
        raise _empty(source.label)
    return digest.hexdigest()


# --------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class AudioInfo:
    """What a cheap look at one input's headers tells.

    Attributes:
        format: The container from :func:`sniff` (``"wav"``, ``"mp3"``, ...),
            or the demuxer's guess when the magic bytes are unknown.
        mime: :func:`mime_for` of the format.
        duration_s: Seconds of audio from the headers (for formats without
            one, from the packets), None when unknown (passed-through URLs).
        bytes: Size of the input; 0 for a passed-through URL (nothing of it
            is uploaded) and for NA.
        sample_rate: Of the first audio stream.
        channels: Of the first audio stream.
        accepted: True when ``prepare(encode="auto")`` would send the input as
            it is (the service takes the container and the codec is plain),
            limits aside. Passed-through URLs count as accepted.
        codec: The first audio stream's codec (``"pcm_s16le"``, ``"opus"``,
            ``"vorbis"``, ``"aac"``, ``"mp3float"``, ...).
    """

    format: str | None
    mime: str | None
    duration_s: float | None
    bytes: int
    sample_rate: int | None
    channels: int | None
    accepted: bool
    codec: str | None


@dataclass
class _Inspection:
    fmt: str | None
    codec: str | None
    sample_rate: int | None
    channels: int | None
    header_duration: float | None
    packet_duration: float | None = None
    packets: int = 0


def _open_input(file: Any, label: str, fmt: str | None = None) -> av.container.InputContainer:
    # FFmpeg's stream probing reads ~5 s of a PCM file through Python I/O,
    # which is most of the cost of opening one; its header says all already.
    options = {"probesize": "65536"} if fmt in _PCM_CONTAINERS else None
    try:
        return cast("av.container.InputContainer", av.open(file, mode="r", options=options))
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise AudioError(
            f"{label}: not readable as audio ({_ffmpeg_reason(exc)})", code="unreadable_audio"
        ) from None


def _ffmpeg_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).split(":")[0].strip() or type(exc).__name__


def _audio_stream(container: av.container.InputContainer, label: str) -> av.AudioStream:
    if container.streams.audio:
        for stream in container.streams.audio:
            if stream.codec_context is not None:
                return stream
        raise AudioError(
            f"{label}: its audio is in a codec that cannot be decoded", code="unreadable_audio"
        )
    if container.streams.video:
        raise AudioError(f"{label}: has video but no audio stream", code="no_audio_stream")
    raise AudioError(f"{label}: has no audio stream", code="no_audio_stream")


def _header_info(
    container: av.container.InputContainer, stream: av.AudioStream, fmt: str | None
) -> _Inspection:
    duration: float | None = None
    if container.duration is not None and container.duration > 0:
        duration = container.duration / av.time_base
    elif stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    ctx = stream.codec_context
    return _Inspection(
        fmt=fmt or container.format.name.split(",")[0],
        codec=ctx.name,
        sample_rate=ctx.sample_rate or None,
        channels=ctx.channels or None,
        header_duration=duration,
    )


def _demux_duration(
    container: av.container.InputContainer, stream: av.AudioStream, label: str, *, decode: int
) -> tuple[float | None, int]:
    """Walk every packet (cheap: no decoding) to measure what is present.

    Decodes the first ``decode`` packets to catch garbage behind a valid header.
    Returns (seconds present, packet count).
    """
    first: int | None = None  # in the stream's time base, kept as ints: fast
    end = 0
    summed = 0
    packets = 0
    decoded_samples = 0
    tried = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            duration = packet.duration or 0
            summed += duration
            pts = packet.pts
            if pts is not None:
                if first is None or pts < first:
                    first = pts
                if pts + duration > end:
                    end = pts + duration
            if decoded_samples == 0 and tried < decode:
                tried += 1
                try:
                    decoded_samples += sum(f.samples for f in packet.decode())
                except (av.FFmpegError, ValueError):
                    pass
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        if packets == 0:
            raise AudioError(
                f"{label}: not readable as audio ({_ffmpeg_reason(exc)})", code="unreadable_audio"
            ) from None
    if decode and packets and decoded_samples == 0 and tried >= min(decode, packets):
        try:  # some decoders only give samples at the end of the stream
            decoded_samples += sum(f.samples for f in stream.codec_context.decode(None))
        except (av.FFmpegError, ValueError):
            pass
        if decoded_samples == 0:
            raise AudioError(
                f"{label}: the audio data cannot be decoded (corrupt or not audio)",
                code="unreadable_audio",
            )
    time_base = float(stream.time_base) if stream.time_base else 0.0
    if first is not None and end > first:
        return (end - first) * time_base, packets
    return (summed * time_base or None), packets


def _wav_data_chunk(data: bytes) -> tuple[int, int] | None:
    """(declared size, bytes present) of a RIFF WAVE file's data chunk."""
    if data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return None
    endian = "<" if data[:4] == b"RIFF" else ">"
    at = 12
    while at + 8 <= len(data):
        chunk_id = data[at : at + 4]
        (size,) = struct.unpack(endian + "I", data[at + 4 : at + 8])
        if chunk_id == b"data":
            return size, len(data) - (at + 8)
        at += 8 + size + (size & 1)
    return None


def _has_vbr_tag(data: bytes) -> bool:
    """True when an mp3 carries a Xing/Info/VBRI tag (a trustworthy duration)."""
    at = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        at = 10 + (
            (data[6] & 0x7F) << 21
            | (data[7] & 0x7F) << 14
            | (data[8] & 0x7F) << 7
            | (data[9] & 0x7F)
        )
    window = data[at : at + 8192]
    sync = next((i for i in range(len(window) - 1) if _mpeg_frame_length(window, i)), None)
    if sync is None:
        return False
    frame = window[sync : sync + 200]
    return b"Xing" in frame or b"Info" in frame or b"VBRI" in frame


def _odd_wav_reason(data: bytes, info: _Inspection) -> str | None:
    """Why a WAV file should be re-encoded before sending, or None if it is plain."""
    if data[:4] != b"RIFF":
        return f"{data[:4].decode('latin-1')} header"
    if info.codec != "pcm_s16le":
        return f"{info.codec} samples"
    if info.channels is not None and info.channels > 2:
        return f"{info.channels} channels"
    if info.sample_rate is not None and not 8000 <= info.sample_rate <= 48000:
        return f"{info.sample_rate} Hz"
    chunk = _wav_data_chunk(data)
    if chunk is not None and chunk[0] in (0, 0xFFFFFFFF) and chunk[1] > 0:
        return "an unfinished header (data size not written)"
    return None


def _accepted_as_is(data: bytes, info: _Inspection) -> tuple[bool, str | None]:
    if info.fmt not in ACCEPTED:
        return False, f"the service does not take {info.fmt or 'this format'}"
    if info.fmt == "wav":
        reason = _odd_wav_reason(data, info)
        if reason is not None:
            return False, f"WAV with {reason}"
    return True, None


def _check_wav_chunk(declared: int, stored: int, label: str) -> None:
    """Refuse a WAV whose data chunk holds nothing or less than its header promises."""
    if stored == 0:
        if declared in (0, 0xFFFFFFFF):
            raise AudioError(
                f"{label}: holds no audio (a WAV header with 0 samples)", code="empty_file"
            )
        raise AudioError(
            f"{label}: is truncated (the WAV header promises {declared} bytes of "
            "audio but none are present)",
            code="unreadable_audio",
        )
    if declared not in (0, 0xFFFFFFFF) and stored < declared * 0.98 - 64:
        raise AudioError(
            f"{label}: is truncated (the WAV header promises {declared} bytes of "
            f"audio but only {stored} are present)",
            code="unreadable_audio",
        )


def _plain_wav(data: bytes) -> _Inspection | None:
    """Read a complete 16-bit PCM RIFF WAV (1-2 channels, 8-48 kHz) without FFmpeg.

    Such a file cannot fail to decode (every byte pattern is a valid sample),
    so its header is all the validation it needs; anything else returns None
    and goes through PyAV.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    at, fmt_chunk, data_size, stored = 12, None, None, 0
    while at + 8 <= len(data):
        chunk_id = data[at : at + 4]
        (size,) = struct.unpack("<I", data[at + 4 : at + 8])
        if chunk_id == b"fmt " and size >= 16:
            fmt_chunk = struct.unpack("<HHIIHH", data[at + 8 : at + 24])
        elif chunk_id == b"data":
            data_size, stored = size, len(data) - (at + 8)
            break
        at += 8 + size + (size & 1)
    if fmt_chunk is None or data_size is None:
        return None
    tag, channels, rate, _, block_align, bits = fmt_chunk
    plain = tag == 1 and bits == 16 and channels in (1, 2) and 8000 <= rate <= 48000
    if not plain or block_align != 2 * channels or not 0 < data_size <= stored:
        return None
    seconds = data_size / (rate * block_align)
    return _Inspection("wav", "pcm_s16le", rate, channels, seconds, seconds, 1)


def _inspect(data: bytes, label: str) -> _Inspection:
    """Validate one file's bytes: everything short of decoding it all."""
    plain = _plain_wav(data)
    if plain is not None:
        return plain
    fmt = sniff(data)
    if fmt is None:
        kind = _looks_like_text(data)
        if kind is not None:
            raise AudioError(f"{label}: is {kind}, not audio", code="unreadable_audio")
    if fmt == "wav":
        chunk = _wav_data_chunk(data)
        if chunk is not None:
            _check_wav_chunk(*chunk, label)
    with _open_input(io.BytesIO(data), label, fmt) as container:
        stream = _audio_stream(container, label)
        info = _header_info(container, stream, fmt)
        present, packets = _demux_duration(container, stream, label, decode=8)
    info.packet_duration, info.packets = present, packets
    if packets == 0:
        if info.header_duration:
            raise AudioError(
                f"{label}: is truncated or corrupt (its header promises "
                f"{info.header_duration:.1f} s of audio but none can be read)",
                code="unreadable_audio",
            )
        raise AudioError(f"{label}: holds no audio (0 samples)", code="empty_file")
    trusted = fmt in _HEADER_DURATION_TRUSTED or (fmt == "mp3" and _has_vbr_tag(data))
    promised = info.header_duration
    if (
        trusted
        and promised
        and present is not None
        and promised - present > max(0.5, 0.02 * promised)
    ):
        raise AudioError(
            f"{label}: is truncated (its header promises {promised:.1f} s of audio but only "
            f"{present:.1f} s is present)",
            code="unreadable_audio",
        )
    return info


def _duration(info: _Inspection) -> float | None:
    trusted = info.fmt in _HEADER_DURATION_TRUSTED or info.fmt == "wav"
    if trusted and info.header_duration:
        return info.header_duration
    return info.packet_duration or info.header_duration


def _url_format(url: str) -> str | None:
    ext = Path(urllib.parse.urlsplit(url).path).suffix.lower().lstrip(".")
    if ext in ("oga", "opus"):
        return "ogg"
    return ext if ext in _MIME else None


def probe(x: object) -> AudioInfo:
    """Read what the headers tell about one input, cheaply.

    Local and fsspec files are opened in place (only the header region is
    read); other inputs are read in memory. Nothing is decoded unless the
    container has no duration in its headers. A passed-through URL is not
    downloaded: its format is guessed from the URL's extension.

    Args:
        x: A :class:`Source`, or anything :func:`to_source` accepts.

    Returns:
        The :class:`AudioInfo`; all None / 0 for NA.

    Raises:
        AudioError: as :meth:`Source.read`, plus ``unreadable_audio`` and
            ``no_audio_stream``.
    """
    source = x if isinstance(x, Source) else to_source(x)
    if source.kind == "na":
        return AudioInfo(None, None, None, 0, None, None, False, None)
    if source.passthrough:
        fmt = _url_format(source.url or "")
        return AudioInfo(fmt, mime_for(fmt) if fmt else None, None, 0, None, None, True, None)
    if source.kind == "path":
        assert source.fspath is not None
        try:
            with open(source.fspath, "rb") as f:
                head = f.read(_HEAD_BYTES)
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    raise _empty(source.label)
                return _probe_file(f, head, size, source.label)
        except OSError as exc:
            raise _path_error(exc, source.label) from None
    if source.kind == "fsspec":
        with source._open_fsspec() as f:
            head = source._fsspec_call(f.read, _HEAD_BYTES)
            if not head:
                raise _empty(source.label)
            size = int(getattr(f, "size", 0) or 0) or len(head)
            f.seek(0)
            return _probe_file(f, head, size, source.label)
    data = source.read()
    return _probe_file(io.BytesIO(data), data[:_HEAD_BYTES], len(data), source.label)


def _probe_file(f: BinaryIO, head: bytes, size: int, label: str) -> AudioInfo:
    fmt = sniff(head)
    if fmt is None and (kind := _looks_like_text(head)) is not None:
        raise AudioError(f"{label}: is {kind}, not audio", code="unreadable_audio")
    if fmt == "wav" and (chunk := _wav_data_chunk(head)) is not None:
        declared, stored_in_head = chunk
        data_offset = len(head) - stored_in_head
        _check_wav_chunk(declared, size - data_offset, label)
    f.seek(0)
    with _open_input(f, label, fmt) as container:
        stream = _audio_stream(container, label)
        info = _header_info(container, stream, fmt)
        if info.header_duration is None:
            info.packet_duration, info.packets = _demux_duration(container, stream, label, decode=0)
    accepted, _ = _accepted_as_is(head, info)
    return AudioInfo(
        format=info.fmt,
        mime=mime_for(info.fmt),
        duration_s=_duration(info),
        bytes=size,
        sample_rate=info.sample_rate,
        channels=info.channels,
        accepted=accepted,
        codec=info.codec,
    )


# --------------------------------------------------------------------------- preparing


@dataclass(frozen=True)
class Part:
    """One request's worth of audio.

    Attributes:
        data_uri: ``data:{mime};base64,...`` for the request's ``file`` field.
        duration_s: Seconds of audio in this part (None if unknown).
        start_s: Where this part starts in the original audio, in seconds.
        bytes: Length of the audio bytes (before base64).
        mime: The MIME type inside :attr:`data_uri`.
        reencoded: False when :attr:`data_uri` holds the input's own bytes.
    """

    data_uri: str = field(repr=False)
    duration_s: float | None
    start_s: float
    bytes: int
    mime: str = "application/octet-stream"
    reencoded: bool = False

    def audio(self) -> builtins.bytes:
        """The audio bytes inside :attr:`data_uri`."""
        return base64.b64decode(self.data_uri.partition(",")[2])


_ENCODE_MODES: tuple[str, ...] = get_args(EncodeMode)


def _check_options(encode: str, max_part_seconds: float, max_request_bytes: int) -> None:
    if encode not in _ENCODE_MODES:
        modes = ", ".join(_ENCODE_MODES)
        raise ConfigurationError(f"encode must be one of {modes}, not {encode!r}")
    if not max_part_seconds > 0:
        raise ConfigurationError(f"max_part_seconds must be > 0, not {max_part_seconds!r}")
    if max_request_bytes < 16 * 1024:
        raise ConfigurationError(f"max_request_bytes is too small: {max_request_bytes!r}")


def prepare(
    data: bytes,
    *,
    label: str,
    encode: EncodeMode = "auto",
    max_part_seconds: float = DEFAULT_MAX_PART_SECONDS,
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> list[Part]:
    """Validate one file's audio and turn it into request-ready parts.

    Validation happens before anything is sent, without decoding accepted
    audio in full: the container is opened, every packet is walked (no
    decoding), the first packets are decoded. A file whose header promises
    more audio than is present is rejected as truncated.

    Encoding, by ``encode``:

    - ``"auto"``: accepted containers with plain content go as they are;
      other formats and odd WAV (not 16-bit PCM, over 2 channels, outside
      8-48 kHz, RF64, unfinished header) become 16 kHz mono FLAC.
    - ``"original"``: accepted containers go as they are, odd WAV included;
      formats the service refuses are still converted (to FLAC).
    - ``"flac"`` / ``"opus"``: always 16 kHz mono FLAC / Opus (32 kbit/s, Ogg).

    In every mode, audio over a limit (request body over
    ``max_request_bytes`` once base64-encoded, over 1,500 s, or over
    ``max_part_seconds``) is split into parts under all of them, cut at the
    quietest 100 ms near each boundary, and each part is re-encoded (FLAC;
    Opus if the FLAC is still too big; split again if that is too; with
    ``encode="flac"`` or ``"opus"`` the codec never changes, parts split
    instead).

    Memory: the input bytes, plus at most one part of 16 kHz mono int16
    samples (~19 MB for 600 s) plus the search window, plus the parts'
    data URIs.

    Args:
        data: The whole file's bytes.
        label: A name for the file in error messages.
        encode: ``"auto"``, ``"original"``, ``"flac"`` or ``"opus"``.
        max_part_seconds: The longest part to send.
        max_request_bytes: The largest request body.

    Returns:
        The parts in order; one part for short audio.

    Raises:
        AudioError: ``empty_file``, ``unreadable_audio`` (text, garbage,
            truncated), ``no_audio_stream`` (e.g. a video without sound).
        ConfigurationError: for a bad ``encode`` or limit.
    """
    _check_options(encode, max_part_seconds, max_request_bytes)
    data = bytes(data)
    if not data:
        raise _empty(label)
    info = _inspect(data, label)
    duration = _duration(info)
    limit_s = min(float(max_part_seconds), MAX_REQUEST_SECONDS)
    accepted, why = _accepted_as_is(data, info)
    if encode == "original" and info.fmt in ACCEPTED:
        accepted = True
    if encode in ("auto", "original") and accepted:
        mime = mime_for(info.fmt)
        fits_bytes = request_bytes(len(data), mime) <= max_request_bytes
        fits_time = duration is None or duration <= limit_s
        if fits_bytes and fits_time:
            return [Part(data_uri(data, mime), duration, 0.0, len(data), mime, False)]
        why = "over the request size limit" if not fits_bytes else f"longer than {limit_s:g} s"
    elif encode in ("flac", "opus"):
        why = f"encode={encode!r}"
    codec: Literal["flac", "opus"] = "opus" if encode == "opus" else "flac"
    logger.debug("%s: re-encoding to 16 kHz mono %s (%s)", label, codec, why)
    return _encode_parts(
        data,
        label=label,
        total_s=duration,
        limit_s=limit_s,
        max_request_bytes=max_request_bytes,
        codec=codec,
        strict_codec=encode in ("flac", "opus"),
    )


# -- decoding to 16 kHz mono int16


def _decode_16k(file: Any, label: str, fmt: str | None) -> Iterator[npt.NDArray[np.int16]]:
    """Decode a file's first audio stream to 16 kHz mono int16 chunks."""
    resampler: av.AudioResampler | None = None
    setup: tuple[str, int, int] | None = None
    errors = packets = 0
    produced = 0
    with _open_input(file, label, fmt) as container:
        stream = _audio_stream(container, label)

        def convert(frames: Iterable[av.AudioFrame]) -> Iterator[npt.NDArray[np.int16]]:
            nonlocal resampler, setup
            for frame in frames:
                key = (frame.format.name, frame.layout.nb_channels, frame.sample_rate)
                if key == ("s16", 1, _RATE):  # already what we want: no resampler
                    yield np.frombuffer(
                        memoryview(frame.planes[0]), dtype=np.int16, count=frame.samples
                    )
                    continue
                if resampler is None or key != setup:
                    if resampler is not None:
                        yield from _resampled(resampler, None)
                    resampler = av.AudioResampler(format="s16", layout="mono", rate=_RATE)
                    setup = key
                yield from _resampled(resampler, frame)

        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                packets += 1
                try:
                    frames = packet.decode()
                except (av.FFmpegError, ValueError):
                    errors += 1
                    continue
                for chunk in convert(frames):
                    produced += chunk.size
                    yield chunk
            for chunk in convert(stream.codec_context.decode(None)):
                produced += chunk.size
                yield chunk
        except (av.FFmpegError, OSError, EOFError) as exc:
            if produced == 0:
                raise AudioError(
                    f"{label}: not readable as audio ({_ffmpeg_reason(exc)})",
                    code="unreadable_audio",
                ) from None
            logger.debug("%s: stopped decoding early (%s)", label, exc)
        if resampler is not None:
            yield from _resampled(resampler, None)
    if produced == 0 or errors > max(3, packets // 20):
        raise AudioError(
            f"{label}: the audio data cannot be decoded ({errors} of {packets} packets failed)",
            code="unreadable_audio",
        )


def _resampled(
    resampler: av.AudioResampler, frame: av.AudioFrame | None
) -> Iterator[npt.NDArray[np.int16]]:
    for out in resampler.resample(frame):
        yield np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1)


def _decode_all(data: bytes, label: str) -> npt.NDArray[np.int16]:
    chunks = list(_decode_16k(io.BytesIO(data), label, sniff(data)))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


# -- quiet points


def _quiet_cut(x: npt.NDArray[np.int16], lo: int, target: int, hi: int) -> int:
    """The sample index in ``[lo, hi)`` at the middle of the quietest stretch.

    RMS is measured over 100 ms windows every 10 ms. Windows within a hair of
    the quietest are "quiet"; the cut goes in the middle of the longest run of
    quiet windows (ties: the run nearest ``target``).
    """
    lo = max(0, lo)
    hi = min(len(x), hi)
    hops = (hi - lo) // _HOP
    if hops < _WINDOW_HOPS + 1:
        return min(max(target, 1), len(x) - 1) if len(x) > 1 else target
    seg = x[lo : lo + hops * _HOP].astype(np.float32).reshape(hops, _HOP)
    hop_energy = np.einsum("ij,ij->i", seg, seg, dtype=np.float64)
    window_energy = np.convolve(hop_energy, np.ones(_WINDOW_HOPS), mode="valid")
    rms = np.sqrt(np.maximum(window_energy, 0.0) / (_WINDOW_HOPS * _HOP)) / 32768.0
    floor = float(rms.min())
    quiet = rms <= floor + max(0.1 * floor, 3e-4)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.astype(np.int8), [0]))))
    runs = edges.reshape(-1, 2)  # [start, end) in window indices
    centres = lo + ((runs[:, 0] + runs[:, 1] - 1 + _WINDOW_HOPS) * _HOP) // 2
    lengths = runs[:, 1] - runs[:, 0]
    best = max(range(len(runs)), key=lambda i: (int(lengths[i]), -abs(int(centres[i]) - target)))
    return int(centres[best])


# -- encoding


def _encode_pcm(samples: npt.NDArray[np.int16], codec: Literal["flac", "opus"]) -> bytes:
    """Encode 16 kHz mono int16 samples as FLAC or Ogg Opus, reproducibly."""
    buf = io.BytesIO()
    container_format = "flac" if codec == "flac" else "ogg"
    with av.open(
        buf, mode="w", format=container_format, container_options={"fflags": "+bitexact"}
    ) as out:
        if codec == "flac":
            stream = out.add_stream("flac", rate=_RATE, layout="mono", format="s16")
        else:
            stream = out.add_stream("libopus", rate=_RATE, layout="mono")
            stream.bit_rate = _OPUS_BIT_RATE
        stream.codec_context.flags |= int(av.codec.context.Flags.bitexact)
        step = _RATE * 30
        for i in range(0, len(samples), step):
            chunk = np.ascontiguousarray(samples[i : i + step]).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = _RATE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def _make_parts(
    samples: npt.NDArray[np.int16],
    start: int,
    *,
    label: str,
    max_request_bytes: int,
    codec: Literal["flac", "opus"],
    strict_codec: bool,
) -> list[Part]:
    """Encode one stretch of samples as one part, or more if it will not fit."""
    tries: list[Literal["flac", "opus"]] = [codec]
    if codec == "flac" and not strict_codec:
        tries.append("opus")
    for attempt in tries:
        encoded = _encode_pcm(samples, attempt)
        mime = "audio/flac" if attempt == "flac" else "audio/ogg"
        if request_bytes(len(encoded), mime) <= max_request_bytes:
            return [
                Part(
                    data_uri(encoded, mime),
                    len(samples) / _RATE,
                    start / _RATE,
                    len(encoded),
                    mime,
                    True,
                )
            ]
    if len(samples) < 2 * _RATE:
        raise AudioError(
            f"{label}: cannot fit even 1 s of audio in a request of {max_request_bytes} bytes",
            code="unreadable_audio",
        )
    mid = len(samples) // 2
    cut = _quiet_cut(samples, mid - len(samples) // 4, mid, mid + len(samples) // 4)
    logger.debug("%s: part at %.1f s too big once encoded; splitting it", label, start / _RATE)
    kwargs: dict[str, Any] = {
        "label": label,
        "max_request_bytes": max_request_bytes,
        "codec": codec,
        "strict_codec": strict_codec,
    }
    return _make_parts(samples[:cut], start, **kwargs) + _make_parts(
        samples[cut:], start + cut, **kwargs
    )


def _plan(remaining: int, limit: int) -> tuple[int, int, int] | None:
    """(lo, target, hi) for the next cut, or None if the rest fits in one part.

    Parts aim at equal lengths of at most 95 % of the limit; the cut is
    searched within +-10 % of a part's length (at least 3 s, at most 30 s)
    around the target, never past the limit.
    """
    if remaining <= limit:
        return None
    n = math.ceil(remaining / (limit * PLAN_HEADROOM))
    target = remaining // n
    half = int(min(_SEARCH_MAX_S * _RATE, max(_SEARCH_FRACTION * target, _SEARCH_MIN_S * _RATE)))
    return max(target - half, _RATE // 10), target, min(target + half, limit)


class _Buffer:
    """Decoded samples waiting to become parts, in one preallocated array.

    Holds at most one part plus its search window (about 20 MB for 600 s
    parts): parts are cut off the front as soon as their cut point is known.
    """

    def __init__(self, capacity: int) -> None:
        self.data = np.empty(capacity, dtype=np.int16)
        self.size = 0

    def append(self, chunk: npt.NDArray[np.int16]) -> None:
        end = self.size + len(chunk)
        if end > len(self.data):
            grown = np.empty(max(end, 2 * len(self.data)), dtype=np.int16)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = chunk
        self.size = end

    def view(self) -> npt.NDArray[np.int16]:
        return self.data[: self.size]

    def drop(self, n: int) -> None:
        rest = self.size - n
        self.data[:rest] = self.data[n : self.size]  # numpy copes with the overlap
        self.size = rest


def _encode_parts(
    data: bytes,
    *,
    label: str,
    total_s: float | None,
    limit_s: float,
    max_request_bytes: int,
    codec: Literal["flac", "opus"],
    strict_codec: bool,
) -> list[Part]:
    """Decode, cut at quiet points and encode, streaming part by part."""
    limit = max(int(limit_s * _RATE), _RATE)
    total = int(total_s * _RATE) if total_s else 0
    buf = _Buffer(limit + 2 * _RATE)
    start = 0
    parts: list[Part] = []
    kwargs: dict[str, Any] = {
        "label": label,
        "max_request_bytes": max_request_bytes,
        "codec": codec,
        "strict_codec": strict_codec,
    }

    def cut_ready(at_eof: bool) -> bool:
        nonlocal start
        if at_eof:
            remaining = buf.size
        elif total:
            remaining = max(total - start, buf.size)
        else:  # length unknown: aim at full parts
            remaining = max(buf.size, 10 * limit)
        plan = _plan(remaining, limit)
        if plan is None or (not at_eof and buf.size < plan[2]):
            return False
        lo, target, hi = plan
        cut = _quiet_cut(buf.view(), lo, target, hi)
        parts.extend(_make_parts(buf.view()[:cut], start, **kwargs))
        buf.drop(cut)
        start += cut
        return True

    for chunk in _decode_16k(io.BytesIO(data), label, sniff(data)):
        buf.append(chunk)
        while cut_ready(at_eof=False):
            pass
    while cut_ready(at_eof=True):
        pass
    if buf.size or not parts:
        if buf.size == 0:
            raise AudioError(f"{label}: holds no audio (0 samples)", code="empty_file")
        parts.extend(_make_parts(buf.view(), start, **kwargs))
    return parts


def split_part(
    part: Part,
    *,
    label: str,
    encode: EncodeMode = "auto",
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> list[Part]:
    """Split one part in two at the quietest point near its middle.

    Used when a part's transcript looks cut (:func:`looks_cut`). The halves
    are 16 kHz mono FLAC (Opus with ``encode="opus"``), with ``start_s``
    relative to the original audio.

    Args:
        part: A part from :func:`prepare` (or :func:`split_part`).
        label: A name for the file in error messages.
        encode: As for :func:`prepare`; only ``"opus"`` changes anything.
        max_request_bytes: The largest request body, as for :func:`prepare`.

    Returns:
        Two parts; or ``[part]`` unchanged when it is shorter than 20 s
        (halves under 10 s cannot hold a cut transcript).

    Raises:
        AudioError: ``unreadable_audio`` when the part cannot be decoded.
    """
    if part.duration_s is not None and part.duration_s < 2 * _MIN_HALF_SECONDS:
        return [part]
    samples = _decode_all(part.audio(), label)
    if len(samples) < 2 * _MIN_HALF_SECONDS * _RATE:
        return [part]
    mid = len(samples) // 2
    half = max(int(len(samples) * 0.15), _RATE)
    cut = _quiet_cut(samples, mid - half, mid, mid + half)
    codec: Literal["flac", "opus"] = "opus" if encode == "opus" else "flac"
    base = round(part.start_s * _RATE)
    kwargs: dict[str, Any] = {
        "label": label,
        "max_request_bytes": max_request_bytes,
        "codec": codec,
        "strict_codec": encode in ("flac", "opus"),
    }
    return _make_parts(samples[:cut], base, **kwargs) + _make_parts(
        samples[cut:], base + cut, **kwargs
    )


# --------------------------------------------------------------------------- texts

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def looks_cut(text: str, duration_s: float | None = None) -> bool:
    """Whether a transcript is near the model's 2,000-output-token cap.

    The model stops at 2,000 tokens (about 1,500 English words), so a text
    that long was probably cut. True at 90 % of the cap: 1,350 words, or
    7,000 characters, or about 1,800 estimated tokens (one per CJK character
    plus 4/3 per other word), whichever comes first.

    Args:
        text: The transcript of one part.
        duration_s: The part's length; not used by the current rule (a cut is
            a property of the text), kept for the engine's call.

    Returns:
        True if the text probably stopped at the cap.
    """
    del duration_s
    if len(text) >= _CUT_CHARS:
        return True
    words = text.split()
    if len(words) >= _CUT_WORDS:
        return True
    cjk = len(_CJK.findall(text))
    if cjk == 0:
        return False
    other_words = len(_CJK.sub(" ", text).split())
    return cjk + other_words * 4 / 3 >= _CUT_TOKENS


def tail_words(text: str, n: int = 30) -> str:
    """The last ``n`` words of ``text``, single-spaced.

    At most ``12 * n`` characters: text without spaces (Chinese, Japanese)
    is cut to its last characters; otherwise the cut falls between words.

    Args:
        text: A transcript.
        n: How many words to keep.

    Returns:
        A suffix of ``" ".join(text.split())`` with at most ``n`` words.
    """
    if n <= 0:
        return ""
    tail = " ".join(text.split()[-n:])
    limit = _TAIL_CHARS_PER_WORD * n
    if len(tail) > limit:
        cut = tail[-limit:]
        if tail[-limit - 1] != " " and " " in cut:  # drop the partial first word
            cut = cut.split(" ", 1)[1]
        tail = cut.lstrip()
    return tail


def join_prompt(
    previous_tail: str | None, user_prompt: str | None, *, max_words: int = _PROMPT_MAX_WORDS
) -> str | None:
    """The prompt for a later part: the user's prompt, then the previous part's tail.

    The user's prompt comes first (vocabulary, spelling) and the previous
    part's last words last, right before the audio they lead into. At most
    ``max_words`` words in all: the user's prompt keeps its first words, the
    tail its last.

    Args:
        previous_tail: From :func:`tail_words` of the previous part's text.
        user_prompt: The user's own prompt, if any.
        max_words: The most words to send.

    Returns:
        The prompt, or None when both are empty.
    """
    user = (user_prompt or "").split()[:max_words]
    room = max_words - len(user)
    tail = (previous_tail or "").split()
    tail = tail[-room:] if room > 0 else []
    joined = " ".join(user + tail)
    return joined or None


def join_texts(texts: Iterable[str | None]) -> str:
    """Join the parts' transcripts in order with single spaces.

    Args:
        texts: One transcript per part, in order; None or blank ones are skipped.

    Returns:
        The whole transcript.
    """
    return " ".join(t.strip() for t in texts if t and t.strip())
