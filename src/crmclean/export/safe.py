"""Spreadsheet safety for every file a person may open in Excel.

OWASP CSV-injection mitigation: a cell starting with ``= + - @``, tab or CR is prefixed with a
single quote — except values that are plainly data (a normalized E.164 phone, a number). The
escape is reversible: a value that already starts with a quote before a trigger gets one more
quote, so :func:`unescape` restores every original byte (``crmclean unmerge`` relies on it).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import infer_dtype

from crmclean.model import PackedFrame, arrow_text, concat, frame_pieces, replace_text

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


def _arrow_text(series: pd.Series) -> pa.Array | None:
    """The column's own Arrow text in one array, when it is Arrow-backed text without nulls."""
    got = arrow_text(series)
    return got.combine_chunks() if isinstance(got, pa.ChunkedArray) else got


_LARGE = pa.large_string()


def _category_text(series: pd.Series) -> pa.Array | None:
    """A categorical column of text decoded in Arrow from its categories and codes, when no value
    is missing: no Python string per row (a change log's stage, rule, field and reason columns
    are categorical — at a million records, 5.6M rows each)."""
    if not isinstance(series.dtype, pd.CategoricalDtype):
        return None
    codes = np.asarray(series.array.codes)
    if len(codes) and codes.min() < 0:
        return None
    categories = series.dtype.categories.to_numpy(dtype=object)
    if infer_dtype(categories, skipna=False) not in ("string", "empty"):
        return None
    return pa.array(categories, type=_LARGE, from_pandas=False).take(pa.array(codes))


def _arrow_view(series: pd.Series) -> pa.Array | None:
    """The column's text in Arrow without a Python string per row: its own Arrow text, or a
    categorical's decoded; None for any other column."""
    own = _arrow_text(series)
    return own if own is not None else _category_text(series)


def arrow_column(series: pd.Series) -> pa.Array:
    """The column's text (as :func:`text_column` gives it) in one Arrow array: its own when it is
    Arrow text already. Raises ``pa.ArrowException`` for a missing (non-text) cell and
    ``UnicodeError`` for a lone surrogate."""
    own = _arrow_view(series)
    return own if own is not None else pa.array(text_column(series), type=_LARGE)


def string_slices(arr: pa.Array) -> tuple[memoryview, list[int]]:
    """An Arrow (large) string array's UTF-8 bytes and its value offsets: value ``i`` is
    ``data[offsets[i]:offsets[i + 1]]`` — each value's bytes without a Python string per value."""
    if pa.types.is_string(arr.type):
        arr = arr.cast(_LARGE)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    return memoryview(data if data is not None else b""), offsets.tolist()


_FIRST_SET = pa.array(sorted(_FIRST), type=_LARGE)


def _screen(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Positions whose first character could make (or hide) a formula, with their values. An
    Arrow-backed (or categorical) column is screened in Arrow: its text never becomes Python strings."""
    arrow = _arrow_view(series)
    if arrow is not None:
        first = pc.utf8_slice_codeunits(arrow, 0, 1)
        idx = np.flatnonzero(pc.is_in(first, value_set=_FIRST_SET).to_numpy(zero_copy_only=False))
        return idx, arrow.take(pa.array(idx, type=pa.int64())).to_pylist()
    vals = text_column(series)
    idx = _first_char_hits(vals)
    return idx, vals[idx].tolist()


def _not_plain_data(values: list[str]) -> list[int]:
    """The positions in ``values`` that :func:`escape` may change: plain data (an E.164 phone, a
    number — most hits in a change log; never quote-led) never is. The test runs in RE2 over the
    whole list (pyarrow), not in a Python loop. RE2's ``\\d`` is ASCII only, so it never calls a
    value plain that Python's pattern would not: it only narrows what :func:`escape` checks."""
    if len(values) < 1000:
        return list(range(len(values)))
    plain = pc.match_substring_regex(pa.array(values, type=_LARGE), _PLAIN_DATA.pattern).to_numpy(zero_copy_only=False)
    return np.flatnonzero(~plain.astype(bool)).tolist()


def escape_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Escape every cell; return the new frame and (row position, column) of each escaped cell.
    The input frame is not changed; columns without an escaped cell are shared with it."""
    out = frame.copy(deep=False)
    hits: list[tuple[int, str]] = []
    for pos, col in enumerate(out.columns):
        idx, values = _screen(out.iloc[:, pos])
        changed: list[int] = []
        new_values: list[str] = []
        for j in _not_plain_data(values):
            new = escape(values[j])
            if new != values[j]:
                changed.append(int(idx[j]))
                new_values.append(new)
        if changed:
            column = out.iloc[:, pos]
            if _arrow_text(column) is not None:
                out.isetitem(pos, replace_text(column, np.asarray(changed, dtype=np.int64), pa.array(new_values, type=_LARGE)))
            else:
                vals = text_column(column).copy()
                vals[changed] = new_values
                out.isetitem(pos, vals)
            hits.extend((i, col) for i in changed)
    return out, hits


def formula_cells(frame: pd.DataFrame) -> list[tuple[int, str]]:
    """Cells a spreadsheet would execute (for findings when a target keeps values exact)."""
    hits: list[tuple[int, str]] = []
    for pos, col in enumerate(frame.columns):
        idx, values = _screen(frame.iloc[:, pos])
        hits.extend((int(idx[j]), col) for j in _not_plain_data(values) if is_formula_like(values[j]))
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


CSV_CHUNK_ROWS = 250_000  # records assembled at a time: a change log of millions never sits in Arrow whole


def frame_csv_bytes(frame: pd.DataFrame, *, encoding: str = "utf-8", line_ending: str = "\n") -> bytes:
    """The frame as CSV, byte for byte what Python's ``csv`` module writes (see :func:`frame_csv_pieces`)."""
    return b"".join(frame_csv_pieces(frame, encoding=encoding, line_ending=line_ending))


def frame_csv_pieces(frame: pd.DataFrame, *, encoding: str = "utf-8", line_ending: str = "\n") -> Iterator[bytes]:
    """The frame as CSV in pieces — the header, then ``CSV_CHUNK_ROWS`` records at a time — byte
    for byte what Python's ``csv`` module writes (QUOTE_MINIMAL, with the bare-CR rule of
    :func:`_csv`), so a file is written without ever being whole in memory. Records are
    assembled in Arrow, column by column, with no Python object per cell. The columns are read
    once first, one at a time (a column of Python strings is taken into Arrow for it, then
    dropped): whether a value holds a CR decides the quoting of the whole file, and a frame
    with a missing (non-text) cell takes the csv module, which writes what it always has for one."""
    if frame.shape[1] and line_ending in ("\n", "\r\n"):
        header = [str(c) for c in frame.columns]
        has_cr = _holds_cr([frame], header)
        if has_cr is not None:
            # another encoding re-encodes each piece (pieces end at record boundaries); one
            # incremental encoder, so a byte-order mark is written once, at the start
            encoder = None if codecs.lookup(encoding).name == "utf-8" else codecs.getincrementalencoder(encoding)()
            for piece in _arrow_csv(frame, header, line_ending, has_cr):
                yield piece if encoder is None else encoder.encode(piece.decode("utf-8"))
            if encoder is not None:
                yield encoder.encode("", final=True)
            return
    columns = [text_column(frame.iloc[:, i]) for i in range(frame.shape[1])]
    yield _csv(list(frame.columns), lambda: zip(*columns, strict=True) if columns else iter(()), len(frame), encoding, line_ending)


def frames_csv_pieces(frames: Sequence[pd.DataFrame | PackedFrame], columns: Sequence[str], escape_cells: bool = False) -> Iterator[bytes]:
    """The frames' ``columns``, one frame after the other, as one UTF-8 CSV: byte for byte what
    :func:`frame_csv_pieces` writes for their concatenation, without making it (a change log of
    5.6M rows at a million records took ~700 MB and 7 s to concatenate). A packed frame is read
    a piece at a time. With ``escape_cells`` every cell is escaped (:func:`escape_frame`) as its
    piece is written. Frames the Arrow path cannot take (a missing cell, a missing column) are
    concatenated and written as before. The frames are taken when it is called; the file is made
    as it is read."""
    return _frames_csv([f for f in frames if len(f)], [str(c) for c in columns], escape_cells)


def _frames_csv(frames: list[pd.DataFrame | PackedFrame], header: list[str], escape_cells: bool) -> Iterator[bytes]:
    whole = all(c in f.columns for f in frames for c in header)

    def selected() -> Iterator[pd.DataFrame]:
        for f in frames:
            for piece in frame_pieces(f):
                yield piece[header]

    # the quoting is decided on the cells as they are: escaping puts a quote before a cell, which
    # never adds or removes a CR
    has_cr = _holds_cr(selected(), header) if frames and header and whole else None
    if has_cr is not None:
        for k, f in enumerate(selected()):
            pieces = _arrow_csv(escape_frame(f)[0] if escape_cells else f, header, "\n", has_cr)
            if k:
                next(pieces)  # the header, written once
            yield from pieces
        return
    parts = [piece for f in frames for piece in frame_pieces(f)]
    yield from frame_csv_pieces(concat([escape_frame(p)[0] for p in parts] if escape_cells else parts, tuple(header)))


def _holds_cr(frames: Iterable[pd.DataFrame], header: list[str]) -> bool | None:
    """Whether the header or any cell of the frames holds a CR — it decides the quoting of the
    whole file (:func:`_arrow_csv`). The columns are read one at a time (a column of Python
    strings is taken into Arrow for it, then dropped). None when a cell is missing or not text:
    such a file takes the csv module."""
    try:
        return any("\r" in h for h in header) or any(
            bool(pc.any(pc.match_substring(arrow_column(f.iloc[:, i]), "\r")).as_py()) for f in frames for i in range(f.shape[1]))
    except (pa.ArrowException, UnicodeError):
        return None


def _arrow_csv(frame: pd.DataFrame, header: list[str], line_ending: str, has_cr: bool) -> Iterator[bytes]:
    """UTF-8 CSV of the frame in pieces, quoting as Python's csv does when the text holds a CR
    (``has_cr``) or not."""
    # the characters that make Python's csv quote a field: the delimiter, the quote, and those of
    # the terminator it writes with — with LF records and a CR anywhere, that is _SENTINEL's four
    special = "[,\"\r\n\x00\x01]" if has_cr and line_ending == "\n" else "[,\"\r\n]"
    lone = len(header) == 1  # a record of one empty field is written as "" (else it would be a blank line)
    pattern = re.compile(special)
    head = ",".join(f'"{h.replace(chr(34), chr(34) * 2)}"' if pattern.search(h) or (lone and not h) else h for h in header) + line_ending
    quote, empty = pa.scalar('"', _LARGE), pa.scalar("", _LARGE)
    yield head.encode("utf-8")
    for start in range(0, len(frame), CSV_CHUNK_ROWS):
        chunk = frame.iloc[start: start + CSV_CHUNK_ROWS]
        cells = []
        for i in range(chunk.shape[1]):
            col = arrow_column(chunk.iloc[:, i])
            need = pc.match_substring_regex(col, special)
            if lone:
                need = pc.or_(need, pc.equal(col, empty))
            if need.true_count:
                col = pc.if_else(need, pc.binary_join_element_wise(quote, pc.replace_substring(col, '"', '""'), quote, empty), col)
            cells.append(col)
        # the terminator rides on the last cell, so the records are joined in one pass
        cells[-1] = pc.binary_join_element_wise(cells[-1], pa.scalar(line_ending, _LARGE), empty)
        lines = pc.binary_join_element_wise(*cells, pa.scalar(",", _LARGE))
        body, offsets = string_slices(lines)
        yield bytes(body[offsets[0]: offsets[-1]])  # the chunk's Arrow arrays go when the loop moves on


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
