"""The entry points: ``cf_transcribe_pandas.dask.transcribe(ddf, ...)`` and ``ddf.cfai``.

Both check every option with :class:`~cf_transcribe_pandas.options.TranscribeOptions`
(the pandas accessor's options, plus ``client``) before any work, then build the
lazy graph (see :mod:`cf_transcribe_pandas.dask`).
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import dask
import dask.dataframe as dd
import distributed
from dask.dataframe import extensions

from cf_transcribe_pandas.dask.cluster import connect
from cf_transcribe_pandas.dask.partition import Job, new_run_id, transcribe_partition
from cf_transcribe_pandas.dask.summary import EVENT_TOPIC, receive
from cf_transcribe_pandas.dask.tokens import service_for
from cf_transcribe_pandas.engine import RunResult, assemble
from cf_transcribe_pandas.errors import ConfigurationError
from cf_transcribe_pandas.frames import FrameJob
from cf_transcribe_pandas.options import TranscribeOptions
from cf_transcribe_pandas.signatures import takes_options

__all__ = ["DaskDataFrameAccessor", "transcribe"]

logger = logging.getLogger("cf_transcribe_pandas")

_dask: Any = dask  # partly typed: its calls go through Any
_extensions: Any = extensions

F = TypeVar("F", bound=Callable[..., Any])


def _takes_options_then_client(function: F) -> F:
    """:func:`takes_options`, with ``client`` moved after the options (as documented)."""
    function = takes_options()(function)
    params = list(inspect.signature(function).parameters.values())
    client = [p for p in params if p.name == "client"]
    others = [p for p in params if p.name != "client"]
    signature = inspect.signature(function).replace(parameters=[*others, *client])
    function.__signature__ = signature  # type: ignore[attr-defined]
    return function


def _check_per_row(ddf: dd.DataFrame, name: str, value: object) -> None:
    """``language``/``prompt`` on a dask DataFrame: a string or a column name, no Series."""
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(
            f"{name}= must be a string or a column name on a dask DataFrame, not "
            f"{type(value).__name__}; add per-row values as a column and pass its name",
            code=f"invalid_{name}",
        )


def _job(ddf: dd.DataFrame, column: Hashable, options: TranscribeOptions) -> Job:
    """Check the call against the frame, resolve credentials and the cache directory."""
    _check_per_row(ddf, "language", options.language)
    _check_per_row(ddf, "prompt", options.prompt)
    # The pandas checks (column, output, languages), on the empty meta frame.
    meta = FrameJob.build(ddf._meta, column, options)
    credentials, output = meta.credentials, meta.output
    cache_path = options.cache_path()
    shipped = options.replace(
        cache=False, progress=False, account_id=None, api_token=None, base_url=None
    )
    return Job(column, output, shipped, credentials, cache_path, ddf.npartitions)


@_takes_options_then_client
def transcribe(
    ddf: dd.DataFrame,
    column: Hashable,
    output: str | None = None,
    *,
    client: distributed.Client | None = None,
    **options: Any,
) -> dd.DataFrame:
    """Transcribe a dask DataFrame's audio column on a ``distributed`` cluster (lazily).

    Takes the options of ``df.cfai.transcribe`` and returns a lazy dask
    DataFrame with the same partitions, index and columns as the pandas path
    would give (text as pandas ``string``, error and provenance columns).
    Differences:

    * ``rate_limit`` is for the whole cluster: every worker leases tokens from
      one token service, so the sum never exceeds it in any 60 s window, and a
      429 seen by any worker slows all of them.
    * ``concurrency`` is per running partition.
    * ``cache`` must be a directory every worker can reach (``True`` means
      the default directory as resolved on this machine).
    * ``language`` and ``prompt`` are a string or a column name (no Series).
    * ``progress`` has no effect on workers: watch the dashboard
      (``client.dashboard_link``) or ``distributed.progress``; a summary is
      logged when a compute finishes (see :func:`last_summary`).
    * ``on_event`` is called on the workers (it must pickle).
    * An account stop (or, with ``errors="raise"``, a row error) in one
      partition stops every partition of that compute; ``compute()`` raises
      it. Its ``.partial`` is None: every finished row is in the cache, so
      the next compute gets them without paying.

    Credentials are resolved here (arguments, else this machine's
    environment) and shipped to the workers with the graph.

    Args:
        ddf: The dask DataFrame.
        column: The audio column (paths, bytes, URLs, ... as in pandas).
        output: Name of the text column (default ``f"{column}_text"``).
        {options}
        client: The ``distributed.Client`` to use; default the running one, else a
            LocalCluster started for the session (see :func:`close_local_cluster`).

    Returns:
        A lazy dask DataFrame.

    Raises:
        ConfigurationError: bad arguments or missing credentials (before any work).
    """
    if not isinstance(ddf, dd.DataFrame):
        raise ConfigurationError(
            f"expected a dask DataFrame, not {type(ddf).__name__}; "
            "for pandas use df.cfai.transcribe(...)",
            code="invalid_frame",
        )
    checked = TranscribeOptions.from_kwargs(output=output, **options)
    job = _job(ddf, column, checked)
    meta = assemble(
        ddf._meta,
        RunResult(0),
        output=job.output,
        errors=checked.errors,
        provenance=checked.provenance,
        timestamps=checked.timestamps or None,  # type: ignore[arg-type]
    )
    client = connect(client)
    service = service_for(client, job.credentials, checked.rate_limit)
    client.subscribe_topic(EVENT_TOPIC, receive)
    run_id = _dask.delayed(new_run_id, pure=False)(dask_key_name=f"cfai-run-id-{uuid.uuid4().hex}")
    logger.info("transcribing on the cluster; dashboard: %s", client.dashboard_link)
    frame: Any = ddf
    # The columns keep pandas' dtypes: dask before dask-expr (< 2024.3) would otherwise
    # cast the output's object columns (the audio bytes too) to pyarrow strings.
    with dask.config.set({"dataframe.convert-string": False}):
        out: dd.DataFrame = frame.map_partitions(
            transcribe_partition, service, run_id, job, meta=meta, token="cfai-transcribe"
        )
    return out


class DaskDataFrameAccessor:
    """``ddf.cfai``: transcribe a dask DataFrame's audio column on a cluster.

    Args:
        ddf: The dask DataFrame.
    """

    def __init__(self, ddf: dd.DataFrame) -> None:
        self._ddf = ddf

    @_takes_options_then_client
    def transcribe(
        self,
        column: Hashable,
        output: str | None = None,
        *,
        client: distributed.Client | None = None,
        **options: Any,
    ) -> dd.DataFrame:
        """Same as :func:`cf_transcribe_pandas.dask.transcribe` on this DataFrame.

        Args:
            column: The audio column (paths, bytes, URLs, ... as in pandas).
            output: Name of the text column (default ``f"{column}_text"``).
            {options}
            client: The ``distributed.Client`` to use (default: the running one).

        Returns:
            A lazy dask DataFrame with the text (and error/provenance) columns.
        """
        return transcribe(self._ddf, column, output, client=client, **options)


_extensions.register_dataframe_accessor("cfai")(DaskDataFrameAccessor)
