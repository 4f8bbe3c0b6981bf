"""The raw example, as read from any source before tokenization."""

from __future__ import annotations

from typing import NamedTuple


class Example(NamedTuple):
    text_a: str
    text_b: str | None
    label: str | None  # as written in the source (label string, or a score for regression); None on test sets
