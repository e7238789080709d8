"""The engine: one run of ``df.cfai.transcribe`` from rows to per-row results.

Rows flow one way::

    plan (a thread)   sources; cheap keys (in-memory hashes, the path memo);
                      ONE cache lookup; cached rows done; the rest grouped by key
    workers           read + hash + look up the rows whose key was not cheap;
                      prepare (sniff, re-encode, split) within the byte budget;
                      pacing -> client -> the one retry layer; part by part
    results           rows and their duplicates done; texts to the cache writer
                      -> columns (:func:`assemble`)

Modules: :mod:`.context` (:class:`RunContext`), :mod:`.events` (hook types),
:mod:`.results` (:class:`RunResult`, columns), :mod:`.pacing` (token bucket,
window and AIMD in :class:`TokenBucket`, which Dask's token service holds too;
backoff), :mod:`.retry` (the one retry layer), :mod:`.control` (stopping),
:mod:`.plan`, :mod:`.run`, :mod:`.send` (one job's requests), :mod:`.parts`
(long audio), :mod:`.store` (cache writes and the memo), :mod:`.progress` (bar,
hook), :mod:`.outcome`, :mod:`.budget`, :mod:`.threads`, :mod:`.load`, :mod:`.sync`
(:func:`run_in_thread`). The options come from :mod:`cf_transcribe_pandas.options`.
"""

from cf_transcribe_pandas.engine.context import RunContext
from cf_transcribe_pandas.engine.events import Event, RateChange, RetryDetails, RowDone
from cf_transcribe_pandas.engine.pacing import Limiter, TokenBucket
from cf_transcribe_pandas.engine.results import RunResult, assemble, result_columns
from cf_transcribe_pandas.engine.run import transcribe_rows
from cf_transcribe_pandas.engine.sync import run_in_thread

__all__ = [
    "Event",
    "Limiter",
    "RateChange",
    "RetryDetails",
    "RowDone",
    "RunContext",
    "RunResult",
    "TokenBucket",
    "assemble",
    "result_columns",
    "run_in_thread",
    "transcribe_rows",
]
