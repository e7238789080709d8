"""Scale-out on Dask distributed: one shared rate limit, one shared cache, the same columns.

::

    import cf_transcribe_pandas.dask                  # registers ddf.cfai
    out = ddf.cfai.transcribe("audio", cache="/shared/cf-cache")   # lazy
    df = out.compute()

How a run is laid out::

    client   transcribe() (api): checks every option and the credentials, resolves
             the cache directory, finds the Client or starts a LocalCluster for
             the session (cluster), gets the account's token service (tokens)
             and builds the graph:

                 cfai-run-id (1 task per compute) --+
                 token service (a distributed Actor) +--> cfai-transcribe, partition i
                 partition i of the input -----------+       (one task per partition)

    worker   each partition task (partition) runs the pandas engine on its rows,
             with a ClusterLimiter (limiter) as the engine's rate limiter and its
             own Cache on the shared directory. The limiter leases tokens from the
             token service; 429/3040 answers lower the service's rate (AIMD) for
             every worker; an account stop (3036, 401, 403, 3023), or with
             errors="raise" a row error, is recorded in the service and every
             other partition of the compute sees it before its next request.

The token service holds the engine's own pacing core
(:class:`cf_transcribe_pandas.engine.TokenBucket`): one bucket, hard window and
AIMD for the whole cluster, so the sum over all workers never exceeds
``rate_limit`` requests in any 60 s window. Each compute is one run: when its
last partition finishes, the summary (:class:`RunSummary`) reaches the client
as a ``distributed`` event, is logged and kept for :func:`last_summary`
(summary).

Modules: :mod:`.api` (``transcribe``, ``ddf.cfai``), :mod:`.cluster` (the
Client), :mod:`.tokens` (the token service), :mod:`.limiter` (its client on a
worker), :mod:`.partition` (one partition's task), :mod:`.summary`.
"""

from __future__ import annotations

INSTALL_HINT = 'pip install "cf-transcribe-pandas[dask]"'

try:
    import dask.dataframe  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - the test runs it in a subprocess
    raise ImportError(
        f"cf_transcribe_pandas.dask needs {exc.name or 'dask'} (dask[dataframe] and "
        f"distributed): {INSTALL_HINT}"
    ) from exc

# After the check above, so that a missing dask is named with the extra to install.
from cf_transcribe_pandas.dask.api import DaskDataFrameAccessor, transcribe  # noqa: E402
from cf_transcribe_pandas.dask.cluster import close_local_cluster  # noqa: E402
from cf_transcribe_pandas.dask.summary import RunSummary, last_summary  # noqa: E402

__all__ = [
    "DaskDataFrameAccessor",
    "RunSummary",
    "close_local_cluster",
    "last_summary",
    "transcribe",
]
