"""The task of one partition: the pandas engine on its rows, paced by the cluster.

:func:`transcribe_partition` is what ``map_partitions`` runs on a worker. It
leaves the pandas side (per-row parameters, the engine, the result columns) to
:func:`run_pandas`, and handles the cluster side: the shared limiter, a stop
that reaches every partition, and the counts for the run's summary.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import uuid
from collections.abc import Hashable, Mapping
from typing import Any

import pandas as pd

from cf_transcribe_pandas.cache import Cache
from cf_transcribe_pandas.client import Credentials
from cf_transcribe_pandas.dask.limiter import ClusterLimiter, RunStopped
from cf_transcribe_pandas.dask.summary import partition_counts, publish
from cf_transcribe_pandas.engine import Limiter, RunContext, RunResult
from cf_transcribe_pandas.errors import TranscribeError
from cf_transcribe_pandas.frames import FrameJob
from cf_transcribe_pandas.options import TranscribeOptions

__all__ = ["Job", "cluster_error", "new_run_id", "run_pandas", "transcribe_partition"]


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything a partition task needs besides its rows (pickled into the graph).

    Attributes:
        column: The audio column.
        output: The text column.
        options: The checked options (``language``/``prompt``: a string or a column
            name); without credentials, with ``cache=False`` and ``progress=False``.
        credentials: Resolved on the client (the token is never shown).
        cache_path: The shared cache directory, or None.
        npartitions: Partitions of the DataFrame (the run ends when all finished).
    """

    column: Hashable
    output: str
    options: TranscribeOptions
    credentials: Credentials
    cache_path: str | None
    npartitions: int


def new_run_id() -> str:
    """A fresh id for one compute (the graph's ``cfai-run-id`` task)."""
    return uuid.uuid4().hex


def run_pandas(pdf: pd.DataFrame, job: Job, limiter: Limiter) -> tuple[pd.DataFrame, RunResult]:
    """The pandas side of one partition: per-row parameters, the engine, the columns.

    Returns:
        The partition with the text (and error/provenance) columns, and the run's result.

    Raises:
        TranscribeError: as the engine raises it (``.run_result`` has the finished rows).
    """
    frame_job = FrameJob.build(pdf, job.column, job.options, credentials=job.credentials)
    cache = None if job.cache_path is None else Cache(job.cache_path)
    result = asyncio.run(frame_job.results(RunContext(job.credentials, cache, limiter)))
    out = frame_job.assemble(result)
    return out, result


def transcribe_partition(
    pdf: pd.DataFrame,
    service: Any,
    run_id: str,
    job: Job,
    partition_info: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The task of one partition (see the module docstring).

    Args:
        pdf: The partition's rows.
        service: The token service's Actor handle.
        run_id: The compute's run id.
        job: The checked call.
        partition_info: Given by ``map_partitions`` (the partition's number).

    Raises:
        TranscribeError: the run's first stop error, whichever partition met it.
    """
    number = int(partition_info["number"]) if partition_info else 0
    limiter = ClusterLimiter(service, run_id)
    result: RunResult | None = None
    error: TranscribeError | None = None
    out: pd.DataFrame | None = None
    try:
        if limiter.stopped is not None:
            raise RunStopped(limiter.stopped)
        out, result = run_pandas(pdf, job, limiter)
    except RunStopped as exc:  # stopped by another partition
        error = exc.error
    except TranscribeError as exc:  # the first stop of the run wins: every partition raises it
        if isinstance(exc.run_result, RunResult):
            result = exc.run_result
        error = limiter.stop(cluster_error(exc, cached=job.cache_path is not None))
    finally:
        limiter.close()
    summary = limiter.finish(number, job.npartitions, partition_counts(len(pdf), result))
    if summary is not None:
        publish(summary)
    if error is not None:
        raise error
    assert out is not None
    return out


ENGINE_STOP_NOTE = " The run stopped: "
CLUSTER_STOP_NOTE = " The run stopped on every worker before its next request; "


def cluster_error(error: TranscribeError, *, cached: bool) -> TranscribeError:
    """The error a stopped cluster run raises: the service's words, then what to do here.

    The engine words its stop errors for one pandas call (rows done, ``.partial``);
    on the cluster the count would be one partition's, so it is replaced by what
    the cache kept. The copy has no ``.partial`` or ``.run_result`` (cheap to ship).

    Args:
        error: The error that stopped a partition.
        cached: Whether the run keeps finished rows in a cache.
    """
    if not error.stops_run or CLUSTER_STOP_NOTE in error.message:
        clone = copy.copy(error)
        clone.partial = clone.run_result = None
        clone.__traceback__ = None
        return clone
    head = error.message.split(ENGINE_STOP_NOTE, 1)[0]
    kept = (
        "every finished row is in the cache, so computing again pays only for the rest"
        if cached
        else "with cache=False the finished rows are not kept"
    )
    message = f"{head}{CLUSTER_STOP_NOTE}{kept}. Fix the cause, then compute again."
    return type(error)(message, code=error.code, status=error.status, retry_after=error.retry_after)
