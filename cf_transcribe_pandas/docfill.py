"""Filling a method's ``{options}`` placeholder with the options' documentation.

The options are documented once, in the Attributes section of
:class:`~cf_transcribe_pandas.options.TranscribeOptions`; :func:`fill_options` copies
the entries a method takes into its docstring (see ``options.takes_options``).
"""

from __future__ import annotations

__all__ = ["fill_options"]


def fill_options(doc: str, names: list[str], source: str | None) -> str:
    """``doc`` with its ``{options}`` line replaced by the entries of ``names``.

    Args:
        doc: The method's docstring.
        names: The options it takes, in order.
        source: The docstring whose Attributes section documents the options.
    """
    entries = _attribute_docs(source or "")
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


def _attribute_docs(source: str) -> dict[str, list[str]]:
    """Each option's entry in ``source``'s Attributes section, line by line."""
    body = source.split("Attributes:", 1)[1]
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
