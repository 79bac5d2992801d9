"""Spreadsheet safety for every file a person may open in Excel.

OWASP CSV-injection mitigation: a cell starting with ``= + - @``, tab or CR is prefixed with a
single quote — except values that are plainly data (a normalized E.164 phone, a number). The
escape is reversible: a value that already starts with a quote before a trigger gets one more
quote, so :func:`unescape` restores every original byte (``crmclean unmerge`` relies on it).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

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


_FIRST = frozenset(TRIGGERS + ("'",))
_FIRST_CODES = np.array(sorted(ord(c) for c in _FIRST), dtype=np.uint32)


def _first_char_hits(vals: np.ndarray) -> np.ndarray:
    """Positions of the strings whose first character could make (or hide) a formula."""
    try:
        first = vals.astype("U1")  # numpy keeps the first code point of each string: one C pass
    except (UnicodeError, ValueError):
        return np.array([i for i, v in enumerate(vals) if v[:1] in _FIRST], dtype=np.int64)
    return np.flatnonzero(np.isin(first.view(np.uint32), _FIRST_CODES))


def _not_plain_data(vals: np.ndarray, idx: list[int]) -> list[int]:
    """The positions in ``idx`` that :func:`escape` may change: plain data (an E.164 phone, a
    number — most hits in a change log; never quote-led) never is. The test runs in RE2 over the
    whole list (pyarrow), not in a Python loop."""
    if len(idx) < 1000:
        return idx
    import pyarrow as pa
    import pyarrow.compute as pc

    at = np.asarray(idx, dtype=np.int64)
    hits = pa.array(vals[at].tolist(), type=pa.large_string())
    plain = pc.match_substring_regex(hits, _PLAIN_DATA.pattern).to_numpy(zero_copy_only=False)
    return [int(i) for i in at[~plain.astype(bool)].tolist()]


def escape_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Escape every cell; return the new frame and (row position, column) of each escaped cell."""
    out = frame.copy()
    hits: list[tuple[int, str]] = []
    for pos, col in enumerate(out.columns):
        vals = text_column(out.iloc[:, pos])
        idx = _first_char_hits(vals).tolist()
        if not idx:
            continue
        vals = vals.copy()
        changed = []
        for i in _not_plain_data(vals, idx):
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
        vals = text_column(frame.iloc[:, pos])
        hits.extend((i, col) for i in _first_char_hits(vals).tolist() if is_formula_like(vals[i]))
    return hits


# Python's csv quotes a field only for the characters of *its* line terminator: with "\n", a bare
# "\r" inside a value would be written unquoted and split the record in every reader. A file with
# no CR at all is written directly; otherwise records are written with a terminator holding both
# (and two characters no CRM value carries), which makes any field with \r or \n quoted, and the
# terminator is then put back to the one asked for.
_SENTINEL = "\r\n\x00\x01"


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]], *, encoding: str = "utf-8", line_ending: str = "\n") -> bytes:
    return _csv(header, lambda: rows, len(rows), encoding, line_ending)


def text_column(series: pd.Series) -> np.ndarray:
    """A column as an object array of ``str`` (converted only when something is not a string)."""
    values = series.to_numpy(dtype=object)
    if infer_dtype(values, skipna=False) in ("string", "empty"):
        return values
    return series.astype(str).to_numpy(dtype=object)


def frame_csv_bytes(frame: pd.DataFrame, *, encoding: str = "utf-8", line_ending: str = "\n") -> bytes:
    cols = [text_column(frame.iloc[:, i]) for i in range(frame.shape[1])]
    return _csv(list(frame.columns), lambda: zip(*cols, strict=True) if cols else iter(()), len(frame), encoding, line_ending)


def _csv(header: Sequence[str], rows: Callable[[], Iterable[Sequence[Any]]], count: int, encoding: str, line_ending: str) -> bytes:
    """``rows()`` yields the ``count`` records afresh each call, so nothing is held as a list of tuples."""
    text = _write(header, rows(), line_ending)
    # a terminator holding both characters already quotes every CR and LF; with another one, a
    # text without any CR holds no bare CR left unquoted
    if ("\r" in line_ending and "\n" in line_ending) or "\r" not in text:
        return text.encode(encoding)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=_SENTINEL, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows())
    text = buf.getvalue()
    if text.count(_SENTINEL) == count + 1:  # the sentinel ends records only
        return text.replace(_SENTINEL, line_ending).encode(encoding)
    # a value holds the sentinel itself: write record by record (slower, exact)
    out = []
    for row in (header, *rows()):
        one = io.StringIO()
        csv.writer(one, lineterminator=_SENTINEL, quoting=csv.QUOTE_MINIMAL).writerow(row)
        out.append(one.getvalue()[: -len(_SENTINEL)] + line_ending)
    return "".join(out).encode(encoding)


def _write(header: Sequence[str], rows: Iterable[Sequence[Any]], line_ending: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=line_ending, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


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
