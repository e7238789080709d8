"""The Parquet result store: finished transcripts, kept so nothing is bought twice.

Modules: ``keys`` (cache keys, the default directory), ``rows`` (CachedRow,
the schemas), ``parts`` (part files: names, atomic writes, reading),
``index`` (the key index lookups go through), ``merge`` (small files merged
as they are written), ``writer`` (CacheWriter), ``memo`` (path -> sha256),
``maintenance`` (stats, compact, export, clear) and ``store`` (the
:class:`Cache` facade).
"""

from cf_transcribe_pandas.cache.keys import (
    CACHE_DIR_ENV,
    CACHE_SCHEMA_VERSION,
    KeyMaker,
    cache_key,
    default_cache_dir,
)
from cf_transcribe_pandas.cache.maintenance import CacheStats, ClearResult, CompactResult
from cf_transcribe_pandas.cache.parts import STALE_TEMP_SECONDS
from cf_transcribe_pandas.cache.rows import MEMO_SCHEMA, RESULT_SCHEMA, SEGMENTS, CachedRow
from cf_transcribe_pandas.cache.store import Cache, Hit
from cf_transcribe_pandas.cache.writer import CacheWriter

__all__ = [
    "CACHE_DIR_ENV",
    "CACHE_SCHEMA_VERSION",
    "MEMO_SCHEMA",
    "RESULT_SCHEMA",
    "SEGMENTS",
    "STALE_TEMP_SECONDS",
    "Cache",
    "CacheStats",
    "CacheWriter",
    "CachedRow",
    "ClearResult",
    "CompactResult",
    "Hit",
    "KeyMaker",
    "cache_key",
    "default_cache_dir",
]
