"""The shape of a model adapter: what one Workers AI speech model takes and
answers.

An adapter owns, for its model: the options it accepts and their checks
(:meth:`ModelAdapter.check`), its route under the API root
(:meth:`ModelAdapter.path`), the request body (:meth:`ModelAdapter.body`, and
:meth:`ModelAdapter.input` for the AI Gateway URL form) and the reading of a
successful answer (:meth:`ModelAdapter.parse`). It does no I/O: the session
sends what it builds, and :mod:`cf_transcribe_pandas.client.responses` maps the
errors, which are the same for every model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from cf_transcribe_pandas.errors import ConfigurationError

if TYPE_CHECKING:
    from cf_transcribe_pandas.client.gateway import Gateway

__all__ = ["ModelAdapter", "Segment", "Transcript"]

Segment = dict[str, Any]
"""One timed stretch of a transcript: ``{"start", "end", "text"}`` in seconds, plus
``"words"`` (a list of ``{"word", "start", "end"}``) when the model gives them."""


@dataclass(frozen=True)
class Transcript:
    """What a model answered for one request.

    Attributes:
        text: The transcript (possibly empty, for silence).
        segments: Timed segments in order, for models that give them, else None.
        language: The language the model detected (or was told), if it says.
        duration: Seconds of audio the model reports, if it says.
        vtt: The model's own WebVTT, if it sends one.
    """

    text: str
    segments: list[Segment] | None = None
    language: str | None = None
    duration: float | None = None
    vtt: str | None = None


class ModelAdapter(ABC):
    """One Workers AI speech model: its options, route, request and answer.

    Args:
        name: The model name as Workers AI knows it.

    Attributes:
        name: The model name.
        options: The names of the options the model takes (``language``,
            ``prompt``, ...); any other option set to a value is refused.
    """

    options: ClassVar[tuple[str, ...]] = ()
    timestamps: ClassVar[bool] = False
    """Whether the model answers with timed segments and words."""
    takes_urls: ClassVar[bool] = True
    """Whether the model takes an https URL as its file (else the audio is sent)."""
    price_per_minute: ClassVar[float | None] = None
    """US dollars per minute of audio, as published (None: unknown)."""
    gateway_in_body: ClassVar[bool] = True
    """Whether an AI Gateway can be named in the body (else only its own URL reaches it)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def check(self, options: Mapping[str, object]) -> dict[str, Any]:
        """Check the options of one request before anything is sent.

        Args:
            options: Option names to values; a None value means "not set".

        Returns:
            The options that are set, as they go on the wire (normalized), in
            the model's order; unset ones are left out, never sent as null.

        Raises:
            ConfigurationError: An option the model does not take is set, or a
                value is invalid; the message says which and why.
        """
        refused = [k for k, v in options.items() if v is not None and k not in self.options]
        if refused:
            taken = ", ".join(self.options) or "no options"
            raise ConfigurationError(
                f"The model {self.name!r} does not take {', '.join(refused)}; it takes {taken}.",
                code="invalid_option",
            )
        checked = self.normalize(options)
        return {key: value for key, value in checked.items() if value is not None}

    @abstractmethod
    def normalize(self, options: Mapping[str, object]) -> dict[str, Any]:
        """Check each option this model takes and return it as sent (None if unset).

        Raises:
            ConfigurationError: A value is invalid.
        """

    @abstractmethod
    def path(self, account_id: str) -> str:
        """The route under the API root, such as ``/accounts/{id}/ai/run``."""

    @abstractmethod
    def input(self, file: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """The model's input object for ``file`` and checked ``options``.

        This is the whole body in the AI Gateway URL form.

        Raises:
            ConfigurationError: ``file`` is not a reference the model takes.
        """

    @abstractmethod
    def body(
        self, file: str, options: Mapping[str, Any], gateway: Gateway | None
    ) -> dict[str, Any]:
        """The JSON body posted to :meth:`path` (the gateway's options included).

        Raises:
            ConfigurationError: ``file`` is not a reference the model takes.
        """

    @abstractmethod
    def parse(self, data: Any) -> Transcript | None:
        """The transcript in a successful answer's parsed JSON, or None if absent."""
