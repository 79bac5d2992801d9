"""Spreadsheet safety for every file a person may open in Excel.

OWASP CSV-injection mitigation: a cell starting with ``= + - @``, tab or CR is prefixed with a
single quote — except values that are plainly data (a normalized E.164 phone, a number). The
escape is reversible: a value that already starts with a quote before a trigger gets one more
quote, so :func:`unescape` restores every original byte (``crmclean unmerge`` relies on it).
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_DATA = re.compile(r"^(?:\+\d{6,15}(?:;ext=\d{1,10})?|[+-]?\d+(?:[.,]\d+)?)$")


def is_formula_like(value: str) -> bool:
    return bool(value) and value[0] in TRIGGERS and not _PLAIN_DATA.match(value)


def _needs_escape(value: str) -> bool:
    if not value:
        return False
    if value[0] == "'":
        rest = value.lstrip("'")
        return bool(rest) and rest[0] in TRIGGERS and not _PLAIN_DATA.match(rest)
    return is_formula_like(value)


def escape(value: str) -> str:
    """``=SUM(A1)`` → ``'=SUM(A1)``; ``+14155552671`` unchanged (plain data)."""
    return "'" + value if _needs_escape(value) else value


def unescape(value: str) -> str:
    """Exact inverse of :func:`escape`."""
    if value.startswith("'") and _needs_escape(value[1:]):
        return value[1:]
    return value


def escape_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Escape every cell; return the new frame and (row position, column) of each escaped cell."""
    out = frame.copy()
    hits: list[tuple[int, str]] = []
    for pos, col in enumerate(out.columns):
        values = out.iloc[:, pos].astype(str)
        first = values.str[:1]
        cand = first.isin(TRIGGERS + ("'",)).to_numpy()
        if not cand.any():
            continue
        idx = np.flatnonzero(cand)
        vals = values.to_numpy(dtype=object)
        changed = []
        for i in idx.tolist():
            new = escape(vals[i])
            if new != vals[i]:
                vals[i] = new
                changed.append(i)
        if changed:
            out.isetitem(pos, vals)
            hits.extend((i, col) for i in changed)
    return out, hits


def formula_cells(frame: pd.DataFrame) -> list[tuple[int, str]]:
    """Cells a spreadsheet would execute (for findings when a target keeps values exact)."""
    hits: list[tuple[int, str]] = []
    for pos, col in enumerate(frame.columns):
        values = frame.iloc[:, pos].astype(str)
        cand = np.flatnonzero(values.str[:1].isin(TRIGGERS).to_numpy())
        vals = values.to_numpy(dtype=object)
        hits.extend((int(i), col) for i in cand.tolist() if is_formula_like(vals[i]))
    return hits


# Python's csv quotes a field only for the characters of *its* line terminator: with "\n", a bare
# "\r" inside a value would be written unquoted and split the record in every reader. So records
# are written with a terminator holding both (and two characters no CRM value carries), which
# makes any field with \r or \n quoted, and the terminator is then put back to the one asked for.
_SENTINEL = "\r\n\x00\x01"


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]], *, encoding: str = "utf-8", line_ending: str = "\n") -> bytes:
    return _csv(header, lambda: rows, encoding, line_ending)


def frame_csv_bytes(frame: pd.DataFrame, *, encoding: str = "utf-8", line_ending: str = "\n") -> bytes:
    cols = [frame.iloc[:, i].astype(str).to_numpy(dtype=object) for i in range(frame.shape[1])]
    return _csv(list(frame.columns), lambda: zip(*cols, strict=True) if cols else iter(()), encoding, line_ending)


def _csv(header: Sequence[str], rows: Callable[[], Iterable[Sequence[Any]]], encoding: str, line_ending: str) -> bytes:
    """``rows()`` yields the records afresh each call, so nothing is held as a list of tuples."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=_SENTINEL, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    counted = itertools.count()
    writer.writerows(map(itemgetter(0), zip(rows(), counted, strict=False)))  # counts the records, all in C (the counter is endless)
    text = buf.getvalue()
    if text.count(_SENTINEL) == next(counted) + 1:  # the sentinel ends records only
        return text.replace(_SENTINEL, line_ending).encode(encoding)
    # a value holds the sentinel itself: write record by record (slower, exact)
    out = []
    for row in (header, *rows()):
        one = io.StringIO()
        csv.writer(one, lineterminator=_SENTINEL, quoting=csv.QUOTE_MINIMAL).writerow(row)
        out.append(one.getvalue()[: -len(_SENTINEL)] + line_ending)
    return "".join(out).encode(encoding)


def write_xlsx(path: str | os.PathLike[str], frame: pd.DataFrame, sheet: str = "Records") -> None:
    """Every cell as text — never a formula, URL or number (XlsxWriter's conversions are off)."""
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False,
                                               "strings_to_numbers": False, "constant_memory": True})
    try:
        ws = workbook.add_worksheet(sheet)
        text = workbook.add_format({"num_format": "@"})
        for c, name in enumerate(frame.columns):
            ws.write_string(0, c, str(name), text)
        cols = [frame.iloc[:, i].astype(str).to_numpy(dtype=object) for i in range(frame.shape[1])]
        for r, row in enumerate(zip(*cols, strict=True), start=1):
            for c, value in enumerate(row):
                ws.write_string(r, c, value, text)
    finally:
        workbook.close()
