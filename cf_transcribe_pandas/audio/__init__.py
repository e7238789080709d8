"""Turn one row's value into request-ready audio.

The path of one row through this subpackage::

    to_source(value)            inputs.py: classify the value, read nothing
      Source.read() -> bytes    sources.py; or sha256_of(source), streaming, for the cache key
    prepare(data, label=...)    prepare.py: validate, re-encode when needed, split long audio
      -> list[Part]             each Part.data_uri is the request's "file" value

Formats are recognised by their content (:func:`sniff`), never by the file
name. Containers the service accepts (flac, mp3/mpeg/mpga, mp4/m4a, ogg, wav,
webm) are sent byte for byte; others (aiff, wma, caf, odd PCM inside WAV, ...)
are decoded with PyAV and re-encoded to 16 kHz mono FLAC. Audio over a request
limit (25 MiB of body, 1,500 s) or over ``max_part_seconds`` is split into parts
at quiet points, each re-encoded on its own. :func:`probe` reads headers only
(for ``estimate``).

Modules: ``limits`` (what the service takes), ``sniff`` (formats by content),
``paths``, ``remote``, ``storage``, ``objects`` and ``arrays`` (the kinds of input), ``sources`` and
``inputs`` (Source, to_source), ``container`` (PyAV), ``validate``, ``probe``,
``decode``, ``quiet``, ``encode``, ``split``, ``prepare``, ``texts`` (joining
the parts' transcripts).

Every function here is synchronous and may be CPU-bound; the engine calls them
from a thread pool. Nothing here ever holds more than one row's audio.
"""

from __future__ import annotations

from .container import Inspection
from .encode import Part
from .inputs import to_source
from .limits import (
    ACCEPTED,
    DEFAULT_MAX_PART_SECONDS,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_SECONDS,
    PLAN_HEADROOM,
    REQUEST_OVERHEAD_BYTES,
    EncodeMode,
    data_uri,
    mime_for,
    request_bytes,
)
from .objects import ObjectStats, stat_objects
from .paths import local_path, path_stat_key
from .prepare import prepare
from .probe import AudioInfo, probe
from .sniff import sniff
from .sources import Source, sha256_of
from .split import split_part
from .storage import StorageOptions, check_storage_options
from .texts import join_prompt, join_texts, looks_cut, tail_words
from .validate import plain_wav

__all__ = [
    "ACCEPTED",
    "DEFAULT_MAX_PART_SECONDS",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_SECONDS",
    "PLAN_HEADROOM",
    "REQUEST_OVERHEAD_BYTES",
    "AudioInfo",
    "EncodeMode",
    "Inspection",
    "ObjectStats",
    "Part",
    "Source",
    "StorageOptions",
    "check_storage_options",
    "data_uri",
    "join_prompt",
    "join_texts",
    "local_path",
    "looks_cut",
    "mime_for",
    "path_stat_key",
    "plain_wav",
    "prepare",
    "probe",
    "request_bytes",
    "sha256_of",
    "sniff",
    "split_part",
    "stat_objects",
    "tail_words",
    "to_source",
]
