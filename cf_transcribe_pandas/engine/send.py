"""Sending one job's audio: a passed-through URL, or its parts one by one, each
request through the one retry layer; what comes back is the row's outcome."""

from __future__ import annotations

import functools
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from cf_transcribe_pandas.audio import Part, split_part
from cf_transcribe_pandas.client import Client, Segment, Transcript
from cf_transcribe_pandas.engine.context import RunContext
from cf_transcribe_pandas.engine.control import RunControl, Stopped
from cf_transcribe_pandas.engine.outcome import Outcome, unexpected, with_label
from cf_transcribe_pandas.engine.pacing import Limiter
from cf_transcribe_pandas.engine.parts import transcribe_parts
from cf_transcribe_pandas.engine.plan import Job
from cf_transcribe_pandas.engine.progress import Recorder
from cf_transcribe_pandas.engine.retry import RetryPolicy, send_with_retries
from cf_transcribe_pandas.engine.threads import Offloader
from cf_transcribe_pandas.errors import TranscribeError

if TYPE_CHECKING:
    from cf_transcribe_pandas.options import TranscribeOptions

__all__ = ["Sender", "kept_segments"]


def kept_segments(segments: list[Segment] | None, level: str | None) -> list[Segment] | None:
    """What a row keeps of its segments for ``timestamps=`` ``level``: nothing (None),
    ``"segment"`` (start, end, text) or ``"word"`` (and each segment's words)."""
    if level is None or segments is None:
        return None
    if level == "word":
        return [{**s, "words": list(s.get("words") or [])} for s in segments]
    return [{"start": s["start"], "end": s["end"], "text": s["text"]} for s in segments]


class Sender:
    """Sends jobs for one run.

    Args:
        client: The run's client.
        options: The run's options.
        context: The run's credentials, cache and pacing.
        limiter: Paces every request.
        control: The run's control (stops).
        recorder: Told about retries; its result counts the requests.
        threads: The run's thread pool (splitting parts that look cut).
    """

    def __init__(
        self,
        client: Client,
        options: TranscribeOptions,
        context: RunContext,
        *,
        limiter: Limiter,
        control: RunControl,
        recorder: Recorder,
        threads: Offloader,
    ) -> None:
        self.client = client
        self.opts = options
        self.secret = context.credentials.api_token
        self.limiter = limiter
        self.control = control
        self.recorder = recorder
        self.threads = threads
        self.policy = RetryPolicy(
            options.max_retries, options.row_deadline, context.backoff_base, context.backoff_cap
        )

    async def url(self, job: Job, language: str | None, prompt: str | None) -> Outcome:
        """A passed-through https URL: one request, the URL as the file."""
        assert job.source.url is not None
        return await self._outcome(job, self._url(job, job.source.url, language, prompt))

    async def parts(
        self, job: Job, parts: list[Part], language: str | None, prompt: str | None
    ) -> Outcome:
        """Prepared audio: every part (see :func:`transcribe_parts`)."""
        label = job.source.label
        joined = transcribe_parts(
            parts,
            send=functools.partial(self._send_part, job, language),
            split=lambda part: self.threads.run(functools.partial(split_part, label=label), part),
            prompt=prompt,
            label=label,
        )
        return await self._outcome(job, joined)

    async def _url(
        self, job: Job, url: str, language: str | None, prompt: str | None
    ) -> Transcript:
        return await self._send(job, language, url, prompt, self.opts.prefix)

    async def _send_part(
        self, job: Job, language: str | None, part: Part, prompt: str | None
    ) -> Transcript:
        """One part: the ``prefix`` goes only with the part the recording starts with."""
        prefix = self.opts.prefix if part.start_s == 0 else None
        return await self._send(job, language, part.data_uri, prompt, prefix)

    async def _outcome(self, job: Job, sending: Coroutine[Any, Any, Transcript]) -> Outcome:
        """Await ``sending``: the row's outcome (its errors caught, a bug costing one row)."""
        label = job.source.label
        try:
            said = await sending
        except Stopped:
            raise
        except TranscribeError as exc:
            return Outcome(None, with_label(exc, label))
        except Exception as exc:  # a bug must cost one row, not the run
            return Outcome(None, unexpected(exc, label, self.secret))
        level = self.opts.timestamps
        segments = kept_segments(said.segments, level if isinstance(level, str) else None)
        return Outcome(said.text, None, said.duration, self.opts.model, said.language, segments)

    async def _send(
        self, job: Job, language: str | None, file: str, prompt: str | None, prefix: str | None
    ) -> Transcript:
        """One request of ``job`` (a whole file or one part), through the retry layer."""
        opts = self.opts

        async def once() -> Transcript:
            self.recorder.result.requests += 1
            return await self.client.transcription(
                file,
                model=opts.model,
                language=language,
                prompt=prompt,
                temperature=opts.temperature,
                task=opts.task,
                vad_filter=opts.vad_filter,
                prefix=prefix,
            )

        def retrying(attempt: int, delay: float, exc: TranscribeError) -> None:
            self.recorder.retrying(job.row, job.source.label, attempt, delay, exc)

        return await send_with_retries(
            once, limiter=self.limiter, policy=self.policy, control=self.control, on_retry=retrying
        )
