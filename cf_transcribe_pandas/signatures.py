"""Showing the options on the methods that take them: their signature and their docs.

The accessors, the async form and ``cf_transcribe_pandas.dask`` take ``**options``;
:func:`takes_options` gives them the signature and the Args documentation of
:class:`~cf_transcribe_pandas.options.TranscribeOptions`, written once there.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from cf_transcribe_pandas.options import TranscribeOptions, option_names

__all__ = ["takes_options"]

F = TypeVar("F", bound=Callable[..., Any])


def takes_options(*, without: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Give a method that takes ``**options`` the options' signature and documentation.

    The method keeps its own leading parameters; ``help()``, Jupyter's Shift-Tab
    and IDEs that read ``__signature__`` show every option as a keyword-only
    parameter, and the docstring's ``{options}`` placeholder (inside its Args
    section) becomes the options' documentation, written once on
    :class:`TranscribeOptions`.

    Args:
        without: Options the method does not take (e.g. ``provenance`` for a Series).
    """

    def decorate(method: F) -> F:
        own = inspect.signature(method)
        leading = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
        fields = [
            f
            for f in dataclasses.fields(TranscribeOptions)
            if f.name not in own.parameters and f.name not in without
        ]
        keywords = [
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type
            )
            for f in fields
        ]
        method.__signature__ = own.replace(parameters=[*leading, *keywords])  # type: ignore[attr-defined]
        documented = [n for n in option_names() if n not in without]  # `output` too
        method.__doc__ = _fill_options(method.__doc__ or "", documented)
        return method

    return decorate


def _fill_options(doc: str, names: list[str]) -> str:
    """``doc`` with its ``{options}`` line replaced by the entries of ``names``."""
    entries = _attribute_docs()
    lines = []
    for line in doc.splitlines():
        if line.strip() != "{options}":
            lines.append(line)
            continue
        pad = line[: len(line) - len(line.lstrip())]
        for name in names:
            first, *rest = entries[name]
            lines.append(pad + first)
            lines.extend(pad + "    " + more for more in rest)
    return "\n".join(lines)


def _attribute_docs() -> dict[str, list[str]]:
    """Each option's entry in the class docstring's Attributes section, line by line."""
    body = (TranscribeOptions.__doc__ or "").split("Attributes:", 1)[1]
    entries: dict[str, list[str]] = {}
    name = ""
    for line in body.splitlines():
        stripped = line.strip()
        head = stripped.split(":", 1)[0]
        if stripped and not line.startswith(" " * 12) and head.isidentifier():
            name = head
            entries[name] = [stripped]
        elif stripped and name:
            entries[name].append(stripped)
    return entries
