"""Reading a job's audio: read, hash, key, cache lookup, preparation into parts.

Blocking work runs in the run's threads, except for small local files (see
:data:`INLINE_READ_BYTES`), which cost less to read on the event loop than
to hand to a thread and back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cf_transcribe_pandas.audio import Inspection, Part, Source, plain_wav, prepare
from cf_transcribe_pandas.engine.outcome import Hit
from cf_transcribe_pandas.engine.plan import Job, keys_for
from cf_transcribe_pandas.engine.store import RunStore
from cf_transcribe_pandas.engine.threads import Offloader
from cf_transcribe_pandas.errors import TranscribeError

if TYPE_CHECKING:
    from cf_transcribe_pandas.options import TranscribeOptions

__all__ = ["INLINE_READ_BYTES", "Loaded", "Loader", "prepare_source"]

INLINE_READ_BYTES = 64 * 1024
"""A local file up to this size is read, hashed and looked up on the event loop: tens
of microseconds, where handing it to a thread and back costs about 0.2 ms, most of a
row's CPU when answers come at once (a rerun whose memo is gone re-hashes every file;
``compare.py``'s cpu-bound floor). Its preparation stays on the loop only when it is a
plain WAV (a header check); larger files, other inputs and every decode go to threads."""

Loaded = tuple[Hit | None, list[Part] | TranscribeError | None]
"""A cache hit, or else the parts to send (or why the audio cannot be sent)."""


def prepare_source(
    source: Source,
    data: bytes | None,
    opts: TranscribeOptions,
    inspection: Inspection | None = None,
) -> list[Part]:
    """Read the audio (unless given) and make its parts (blocking, unless ``inspection``
    says it is a plain WAV: see :func:`~cf_transcribe_pandas.audio.plain_wav`)."""
    if data is None:
        data = source.read()
    return prepare(
        data,
        label=source.label,
        encode=opts.encode,
        max_part_seconds=opts.max_part_seconds,
        inspection=inspection,
    )


class Loader:
    """Loads the jobs whose key is known only once their audio is read.

    Args:
        opts: The run's options.
        languages: One language (or None) per row.
        prompts: One prompt (or None) per row.
        store: The run's cache, or None.
        threads: The run's threads.
    """

    def __init__(
        self,
        opts: TranscribeOptions,
        languages: Sequence[str | None],
        prompts: Sequence[str | None],
        store: RunStore | None,
        threads: Offloader,
    ) -> None:
        self.opts, self.languages, self.prompts = opts, languages, prompts
        self.store, self.threads = store, threads
        self.keys = keys_for(opts)

    async def load(self, job: Job) -> Loaded:
        """Read and hash ``job``'s audio (setting ``job.sha256`` and ``job.key``), look
        its key up; prepare it when it is not cached.

        Raises:
            TranscribeError: The audio cannot be read (the row's error).
        """
        if job.source.kind != "path" or job.size is None or job.size > INLINE_READ_BYTES:
            return await self.threads.run(self._load, job)
        hit, data = self._read_key(job)
        if hit is not None:
            return hit, None
        plain = plain_wav(data)
        if plain is not None:
            return None, self._prepared(job, data, plain)
        return None, await self.threads.run(self._prepared, job, data)

    def _load(self, job: Job) -> Loaded:
        hit, data = self._read_key(job)
        return (hit, None) if hit is not None else (None, self._prepared(job, data))

    def _read_key(self, job: Job) -> tuple[Hit | None, bytes]:
        data = job.source.read()
        job.sha256 = hashlib.sha256(data).hexdigest()
        job.key = self.keys.key(job.sha256, self.languages[job.row], self.prompts[job.row])
        hit = self.store.lookup(job.key) if self.store is not None else None
        return hit, data

    def _prepared(
        self, job: Job, data: bytes, inspection: Inspection | None = None
    ) -> list[Part] | TranscribeError:
        try:
            return prepare_source(job.source, data, self.opts, inspection)
        except TranscribeError as exc:
            return exc
