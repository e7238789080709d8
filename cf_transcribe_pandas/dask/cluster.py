"""Which ``distributed`` Client a run uses: the one given, the running one, or a
LocalCluster started for the session (and :func:`close_local_cluster` to end it)."""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

import distributed

from cf_transcribe_pandas.dask.tokens import forget_services

__all__ = ["close_local_cluster", "connect"]

logger = logging.getLogger("cf_transcribe_pandas")

_dist: Any = distributed  # partly typed: its calls go through Any

_session: tuple[Any, Any] | None = None
"""The (LocalCluster, Client) this module started, if any."""
_session_lock = threading.Lock()
_atexit_registered = False


def connect(client: distributed.Client | None) -> Any:
    """The given Client, else the running default one, else a LocalCluster for the session.

    The LocalCluster (``distributed.LocalCluster()`` with its defaults) is
    started once and kept until :func:`close_local_cluster` or the end of the
    process; a warning says so, with the dashboard's link.
    """
    global _session, _atexit_registered
    if client is not None:
        return client
    try:
        return _dist.default_client()
    except ValueError:
        pass
    with _session_lock:
        if _session is not None and _session[1].status == "running":
            return _session[1]
        cluster = _dist.LocalCluster()
        new = _dist.Client(cluster)
        _session = (cluster, new)
        if not _atexit_registered:
            atexit.register(close_local_cluster)
            _atexit_registered = True
    logger.warning(
        "no dask Client was running: started a LocalCluster with %d workers for this "
        "session (dashboard: %s); cf_transcribe_pandas.dask.close_local_cluster() "
        "shuts it down",
        len(cluster.workers),
        new.dashboard_link,
    )
    return new


def close_local_cluster() -> None:
    """Shut down the LocalCluster that :func:`~cf_transcribe_pandas.dask.transcribe` started.

    Clusters and Clients you created yourself are never touched. Calling it
    again, or when no cluster was started, does nothing.
    """
    global _session
    with _session_lock:
        session, _session = _session, None
    if session is None:
        return
    cluster, client = session
    forget_services(client)
    client.close()
    cluster.close()
