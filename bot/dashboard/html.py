"""HTML built from Python strings, escaped by default.

Customers choose their own WhatsApp names, so every value that goes into a page is text to be
escaped unless it is `Safe` (markup this package built). `render` escapes each value it is given;
only `Safe` values pass through as they are. Nothing else in the dashboard writes markup by hand.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any


class Safe(str):
    """Markup that is already escaped (or was written by us): inserted as it is."""

    __slots__ = ()


def escape(value: Any) -> Safe:
    """Text -> markup. None becomes an empty string; quotes are escaped too (for attributes)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def render(template: str, /, **values: Any) -> Safe:
    """`str.format`-style template whose values are escaped unless Safe.

    The template itself is ours (a literal in this package), never data.
    """
    return Safe(template.format(**{name: escape(value) for name, value in values.items()}))


def join(parts: Iterable[Any], separator: str = "") -> Safe:
    return Safe(escape(separator).join(escape(part) for part in parts))


def attributes(**values: Any) -> Safe:
    """` name="value"` pairs; False / None leave the attribute out, True writes it bare.

    A trailing underscore is dropped (`class_`) and other underscores become dashes (`aria_label`).
    """
    parts = []
    for name, value in values.items():
        name = name.rstrip("_").replace("_", "-")
        if value is None or value is False:
            continue
        parts.append(f" {name}" if value is True else f' {name}="{escape(value)}"')
    return Safe("".join(parts))
