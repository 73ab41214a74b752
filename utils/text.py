"""Text for files and terminals: file names that are not valid UTF-8, and CSV cells.

On Linux a file name is bytes; Python gives a name that is not valid UTF-8
with each undecodable byte as a surrogate escape (``b"\\xff"`` -> ``"\\udcff"``),
which no UTF-8 file can hold. ``printable`` writes such a byte as the four
characters ``\\xff`` instead, so CSVs and logs stay valid UTF-8 and name the
file as ``ls -b`` would; valid names are unchanged.

``csv_cell`` also keeps a spreadsheet from running a cell as a formula: text
starting with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) gets a
leading ``'``, the usual guard against CSV formula injection. ``percent`` and
``markdown_table`` format the metrics every report prints.
"""
from __future__ import annotations

import math
import os

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def printable(text: str | os.PathLike) -> str:
    """``text`` with each undecodable file-name byte (a surrogate escape) written as ``\\xHH``."""
    text = os.fspath(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate no file name gives (e.g. from JSON): show its code point
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")
    return text


def csv_cell(value):
    """A CSV cell: text made ``printable`` and guarded against formulas; numbers as they are."""
    if not isinstance(value, str):
        return value
    value = printable(value)
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def percent(value) -> str:
    """A score in [0, 1] as a percentage with one decimal; ``n/a`` for a missing (None or NaN) one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}"


def markdown_table(header: list, rows: list[list]) -> str:
    """A Markdown table; cells are written with ``str`` and a ``|`` inside one is escaped."""
    def line(row):
        return "| " + " | ".join(str(value).replace("|", "\\|") for value in row) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header)] + [line(row) for row in rows])
