"""Griffe extension for the API pages: a numpy-style docstring (``Parameters`` over a line of
dashes) that ends with the project's ``Example:`` block gets that block as a numpy ``Examples``
section, so the whole docstring is parsed as numpy (parameter tables, doctest rendered as code)
instead of falling back to plain text. Only the rendering changes; the source keeps ``Example:``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_NUMPY_SECTION = re.compile(r"^[A-Z][A-Za-z ]+\n-{3,}$", re.M)


def numpy_examples(text: str) -> str:
    """``text`` with a Google-style ``Example:`` block turned into a numpy ``Examples`` section."""
    lines = text.split("\n")
    try:
        start = next(
            i for i, line in enumerate(lines) if line.strip() in ("Example:", "Examples:") and not line[0].isspace()
        )
    except StopIteration:
        return text
    body, end = [], start + 1
    indented = end < len(lines) and lines[end].startswith(" ")
    while end < len(lines):
        line = lines[end]
        if indented and line.strip() and not line.startswith(" "):
            break  # the indented block ended
        if not indented and end + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[end + 1]):
            break  # the next numpy section
        body.append(line[4:] if indented and line.startswith("    ") else line)
        end += 1
    return "\n".join([*lines[:start], "Examples", "--------", *body, *lines[end:]])


class NumpyExamples(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None and _NUMPY_SECTION.search(docstring.value):
            docstring.value = numpy_examples(docstring.value)
