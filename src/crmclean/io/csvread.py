"""CSV loading that never loses or pads a row.

Every cell is text. The encoding is found BOM → strict UTF-8 → charset detection → cp1252;
the delimiter by a consistency test over ``,`` ``;`` tab ``|``. A plain UTF-8 file (one record a
line, simple quoting) is parsed by Arrow's CSV reader; any other is read with the stdlib ``csv``
module (which keeps physical line numbers); a row with the wrong number of fields goes to the
rejects with its line and reason. NUL bytes, unclosed quotes and oversize
fields are reported with their location.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from crmclean.errors import InputError, Problem
from crmclean.io.table import RawTable, Reject
from crmclean.model import STR

CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
DEFAULT_MAX_FIELD = 1024 * 1024
CHUNK_ROWS = 10_000  # rows held as Python lists before they move into Arrow columns
BLOCK_CHARS = 1 << 23  # characters of text per StringIO
FAST_BLOCK_BYTES = 1 << 23  # bytes per block of Arrow's CSV reader (and chunk of the columns it makes)


def _lines(text: str) -> Iterator[str]:
    """The text's lines with their endings, as ``io.StringIO(text, newline="")`` yields them,
    read a block at a time: one StringIO over the whole text would copy it at four bytes a
    character. Blocks end just after a ``\n``, so no line (nor ``\r\n``) is ever cut."""
    start, n = 0, len(text)
    while start < n:
        end = n if start + BLOCK_CHARS >= n else text.rfind("\n", start, start + BLOCK_CHARS) + 1
        if end <= start:  # one line longer than a block
            end = text.find("\n", start + BLOCK_CHARS) + 1 or n
        yield from io.StringIO(text[start:end], newline="")
        start = end


class _Columns:
    """Rows gathered into Arrow string columns a chunk at a time.

    A million-row export held as Python lists and ``str`` objects takes five times its size
    in memory; as Arrow strings it takes about its size. Only one chunk of rows is ever held
    as Python objects."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.chunks: list[list[pa.Array]] = []

    def append(self, row: list[str]) -> None:
        self.rows.append(row)
        if len(self.rows) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.chunks.append([pa.array(col, type=pa.string()) for col in zip(*self.rows, strict=True)])
            self.rows = []

    def columns(self, width: int) -> list[pa.ChunkedArray]:
        self.flush()
        return [pa.chunked_array([c[i] for c in self.chunks], type=pa.string()) for i in range(width)]


@dataclass
class _Parsed:
    """The records of a file: its header row, one Arrow text column per header, each record's
    physical start line, and what was not read as a record."""

    header: list[str] | None
    columns: list[pa.ChunkedArray]
    starts: np.ndarray
    blank: int = 0
    header_line: int = 1
    rejects: list[Reject] = field(default_factory=list)
    trailing_empty: int = 0


def _simple_field(delimiter: str) -> str:
    """RE2 for one field of a line every CSV parser reads alike: quoted (``""`` inside, no CR or
    LF), or unquoted without any quote, delimiter, CR or LF."""
    d = re.escape(delimiter)
    return f'(?:"(?:[^"\\r\\n]|"")*"|[^"{d}\\r\\n]*)'


def _fast_rows(data: memoryview, delimiter: str, max_field: int) -> _Parsed | None:
    """The records of UTF-8 text parsed by Arrow's CSV reader, when that gives exactly what the
    ``csv`` module path gives: every line (``\\n``-ended, an optional ``\\r``
    before it) is blank or a run of simple fields (:func:`_simple_field`), none a lone ``""``,
    none longer than the field limit, no NUL, and every record has the header's width. Then a
    record is one line, so its start line is its line's number. None for any other text: the
    ``csv`` module reads it, with its rejects and errors. The reader runs on the calling thread:
    on Arrow's pool, the columns were allocated in its threads' malloc arenas, whose freed pages
    the run could not give back (the 1M run peaked at 3,906 MiB so, 3,795 MiB without)."""
    size = len(data)
    raw = np.frombuffer(data, dtype=np.uint8)
    if not size or (raw == 0).any():
        return None
    ends = np.flatnonzero(raw == 10) + 1
    if not len(ends) or ends[-1] != size:
        ends = np.append(ends, size)
    bounds = np.concatenate(([0], ends)).astype(np.int64)
    if int(np.diff(bounds).max()) > max_field:
        return None
    buffer = pa.py_buffer(data)
    lines = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(bounds), buffer)
    cell = _simple_field(delimiter)
    if not pc.all(pc.match_substring_regex(lines, f"^(?:{cell}{re.escape(delimiter)})*{cell}\\r?\\n?$")).as_py():
        return None
    if pc.any(pc.match_substring_regex(lines, r'^""\r?\n?$')).as_py():  # read as a blank line by csv
        return None
    blank = pc.match_substring_regex(lines, r"^\r?\n?$").to_numpy(zero_copy_only=False)
    numbers = np.flatnonzero(~blank) + 1
    if not len(numbers):
        return None
    header = next(csv.reader([lines[int(numbers[0]) - 1].as_py()], delimiter=delimiter))
    names = [f"c{i}" for i in range(len(header))]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(buffer),
            read_options=pacsv.ReadOptions(column_names=names, block_size=FAST_BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"', double_quote=True, escape_char=False,
                                             newlines_in_values=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False, check_utf8=False))
    except pa.ArrowInvalid:  # a record of another width: the csv path rejects it with its line
        return None
    if table.num_rows != len(numbers):
        return None
    columns = [table.column(i).slice(1) for i in range(len(names))]
    return _Parsed(header, columns, numbers[1:].astype(np.int64), int(blank.sum()), int(numbers[0]))


# UTF-16 is trusted only with a BOM: detectors "find" it in short single-byte files.
_ACCEPTED_DETECTED = {"cp1252", "latin_1", "iso8859_15", "mac_roman", "iso8859_1", "windows_1252"}
_MAGIC = {
    b"PK\x03\x04": ("E-INPUT-FORMAT", "this is a zip/Excel workbook, not CSV", "rename it to .xlsx, or export CSV"),
    b"\xd0\xcf\x11\xe0": ("E-INPUT-FORMAT", "this is a legacy .xls or password-protected Office file, not CSV", "save it as CSV or unprotected .xlsx"),
    b"%PDF": ("E-INPUT-BINARY", "this is a PDF file, not CSV", "export the CRM data as CSV"),
    b"\x1f\x8b": ("E-INPUT-BINARY", "this is a gzip file, not CSV", "decompress it first"),
}


@dataclass(frozen=True)
class CsvOptions:
    encoding: str | None = None
    delimiter: str | None = None
    max_field_size: int = DEFAULT_MAX_FIELD


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


def detect_encoding(data: bytes, display: str, forced: str | None) -> tuple[str, list[Problem]]:
    """Return the codec name to decode ``data`` with, and warnings about the choice."""
    if forced:
        try:
            codecs.lookup(forced)
        except LookupError:
            raise InputError("E-ENCODING-UNKNOWN", f"unknown encoding '{forced}'", location=display,
                             hint="use a Python codec name such as utf-8, cp1252, latin-1") from None
        return forced, []
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", []
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", []
    try:
        data.decode("utf-8")
        return "utf-8", []
    except UnicodeDecodeError as exc:
        bad_line, bad_col = _line_col(data, exc.start)
    guess: str | None = None
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[: 4 * 1024 * 1024]).best()
        if best is not None and best.encoding.replace("-", "_").lower() in _ACCEPTED_DETECTED:
            guess = best.encoding
    except Exception:  # detection is advisory; cp1252 below is the documented fallback
        guess = None
    for candidate in ([guess] if guess else []) + ["cp1252", "latin-1"]:
        try:
            data.decode(candidate)
        except UnicodeDecodeError:
            continue
        warn = Problem(
            "W-ENCODING",
            display,
            f"not valid UTF-8 (first bad byte at line {bad_line}, col {bad_col}); decoded as {codecs.lookup(candidate).name}",
            "pass --encoding to choose another",
        )
        return candidate, [warn]
    raise InputError(
        "E-ENCODING",
        f"byte at line {bad_line}, col {bad_col} is not valid UTF-8 and the file is not cp1252 either",
        location=display,
        hint="rerun with --encoding (e.g. --encoding latin-1)",
    )


def _sniff_delimiter(sample: str) -> str:
    best: tuple[float, int, int] = (-1.0, 0, 0)
    chosen = ","
    for rank, delim in enumerate(CANDIDATE_DELIMITERS):
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delim)
        counts: list[int] = []
        try:
            for row in reader:
                if row:
                    counts.append(len(row))
                if len(counts) >= 200:
                    break
        except csv.Error:
            pass
        if not counts or counts[0] < 2:
            continue
        body = counts[1:-1] or counts[1:] or [counts[0]]  # the sample's last row may be cut off
        consistency = sum(1 for c in body if c == counts[0]) / len(body)
        score = (consistency, counts[0], -rank)
        if score > best:
            best, chosen = score, delim
    return chosen


def _unique_headers(raw: list[str], display: str) -> tuple[list[str], list[Problem]]:
    warnings: list[Problem] = []
    headers: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(raw, start=1):
        clean = name.strip()
        if not clean:
            clean = f"column_{i}"
            warnings.append(Problem("W-HDR-BLANK", f"{display}:1", f"column {i} has no header; named '{clean}'", "add a header name"))
        key = clean.casefold()
        if key in seen:
            n = 2
            while f"{key} ({n})" in seen:
                n += 1
            first = seen[key]
            newname = f"{clean} ({n})"
            warnings.append(Problem("W-HDR-DUP", f"{display}:1", f"columns {first} and {i} are both named '{clean}'; column {i} is read as '{newname}' and not mapped", "rename one of the columns"))
            clean = newname
            key = clean.casefold()
        seen[key] = i
        headers.append(clean)
    return headers, warnings


def read_csv(path: str | Path, options: CsvOptions | None = None, display: str | None = None) -> RawTable:
    """Read a CSV export as text. Raises InputError for file-level problems."""
    options = options or CsvOptions()
    path = Path(path)
    display = display or path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError("E-INPUT-READ", f"cannot read file ({exc.strerror})", location=display, hint="check the path and permissions") from None
    sha = hashlib.sha256(data).hexdigest()
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf"):
        raise InputError("E-CSV-EMPTY", "file is empty", location=display, hint="export the data again; a CSV needs a header row")
    for magic, (code, what, hint) in _MAGIC.items():
        if data.startswith(magic):
            raise InputError(code, what, location=display, hint=hint)
    encoding, warnings = detect_encoding(data, display, options.encoding)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line, col = _line_col(data, exc.start)
        raise InputError("E-ENCODING", f"byte at line {line}, col {col} is not valid {encoding}", location=display, hint="rerun with the right --encoding") from None
    except LookupError:
        raise InputError("E-ENCODING-UNKNOWN", f"unknown encoding '{encoding}'", location=display, hint="use e.g. utf-8 or cp1252") from None
    # UTF-8 bytes go to Arrow's reader as they are (less any BOM); other text is read from the str
    body = (memoryview(data)[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else memoryview(data)) if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig") else None
    del data  # the text (and the view) hold it now; the hash is taken
    if text.startswith("\ufeff"):
        text = text[1:]
    sample_head = text[:200_000]
    control = sum(1 for ch in sample_head[:65536] if ord(ch) < 32 and ch not in "\t\r\n")
    if control > max(8, len(sample_head[:65536]) // 50):
        raise InputError("E-INPUT-BINARY", "file holds binary data, not delimited text", location=display, hint="check that this is the CSV export (or pass --encoding for UTF-16 files)")
    delimiter = options.delimiter or _sniff_delimiter(sample_head.rsplit("\n", 1)[0] if len(text) > 200_000 else sample_head)
    if options.delimiter and len(options.delimiter) != 1:
        raise InputError("E-USAGE-DELIMITER", "--delimiter must be one character", location=display, hint="e.g. --delimiter ';'")

    csv.field_size_limit(max(options.max_field_size, 1024))
    parsed = _fast_rows(body, delimiter, max(options.max_field_size, 1024)) if body is not None else None
    del body
    if parsed is None:
        parsed = _csv_rows(text, delimiter, display, options.max_field_size)
    del text
    header, rejects, blank, header_line = parsed.header, parsed.rejects, parsed.blank, parsed.header_line
    if header is None:
        raise InputError("E-CSV-EMPTY", "file has no header row", location=display, hint="export the data again with column headers")
    headers, hdr_warnings = _unique_headers(header, display)
    warnings.extend(hdr_warnings)
    if len(headers) == 1 and delimiter == "," and not options.delimiter:
        warnings.append(Problem("W-CSV-ONE-COLUMN", display, "only one column found", "pass --delimiter if the file uses another separator"))
    if parsed.trailing_empty:
        warnings.append(Problem("W-CSV-TRAILING", display, f"{parsed.trailing_empty} row(s) end with extra empty fields; the empty fields were ignored", ""))
    if blank:
        warnings.append(Problem("W-CSV-BLANK-LINES", display, f"{blank} blank line(s) skipped (not records)", ""))
    if rejects:
        warnings.append(Problem("W-CSV-REJECTS", display, f"{len(rejects)} row(s) rejected (see rejects.csv)", "fix the rows in the export and rerun"))
    if not len(parsed.starts):
        warnings.append(Problem("W-CSV-NO-ROWS", display, "the file has a header but no data rows", ""))
    if header_line != 1:
        warnings.append(Problem("W-CSV-HEADER-LINE", display, f"header found on line {header_line}", ""))

    frame = pd.DataFrame({h: pd.Series(pd.array(column, dtype=STR), copy=False) for h, column in zip(headers, parsed.columns, strict=True)})
    return RawTable(
        path=str(path),
        display=display,
        sha256=sha,
        headers=headers,
        frame=frame,
        lines=parsed.starts,
        rejects=rejects,
        warnings=warnings,
        encoding=codecs.lookup(encoding).name,
        delimiter=delimiter,
        blank_lines=blank,
    )


def _csv_rows(text: str, delimiter: str, display: str, max_field_size: int) -> _Parsed:
    """The records as the stdlib ``csv`` module reads them (strict): any text, with rows of
    another width, NUL bytes and blank lines kept apart by line; raises InputError for an
    unclosed quote or an oversize field."""
    reader = csv.reader(_lines(text), delimiter=delimiter, strict=True)
    rows = _Columns()
    starts: list[int] = []
    rejects: list[Reject] = []
    blank = 0
    header: list[str] | None = None
    header_line = 1
    prev_end = 0
    trailing_empty = 0
    has_nul = "\x00" in text  # looked for field by field only when the file holds one
    try:
        for row in reader:
            start = prev_end + 1
            prev_end = reader.line_num
            if not row or (len(row) == 1 and row[0] == ""):
                blank += 1
                continue
            if header is None:
                header = row
                header_line = start
                width = len(row)
                continue
            if len(row) != width:
                if len(row) > width and not any(cell.strip() for cell in row[width:]):
                    trailing_empty += 1
                    row = row[:width]
                else:
                    code = "E-CSV-RAGGED" if len(row) > width else "E-CSV-SHORT"
                    rejects.append(Reject(start, code, f"expected {width} fields (header), found {len(row)}", delimiter.join(row)))
                    continue
            nul_at = next((i for i, cell in enumerate(row) if "\x00" in cell), None) if has_nul else None
            if nul_at is not None:
                rejects.append(Reject(start, "E-CSV-NUL", f"NUL byte inside field {nul_at + 1} ('{header[nul_at][:40]}')", delimiter.join(row).replace("\x00", "\\0")))
                continue
            rows.append(row)
            starts.append(start)
    except csv.Error as exc:
        start = prev_end + 1
        msg = str(exc)
        if "field larger than field limit" in msg:
            raise InputError("E-CSV-FIELD-SIZE", f"a field in the record starting at line {start} exceeds {max_field_size:,} characters", location=f"{display}:{start}",
                             hint="usually an unclosed quote on that line; if the field is real, rerun with --max-field-size") from None
        if "unexpected end of data" in msg or "expected after" in msg:
            col = _quote_column(text, start, delimiter)
            raise InputError("E-CSV-QUOTE", "quoted field opened here never closes properly", location=f"{display}:{start}:{col}",
                             hint="fix the quote in the export (a quote inside a quoted field must be doubled)") from None
        raise InputError("E-CSV-PARSE", f"cannot parse the record starting at line {start} ({msg})", location=f"{display}:{start}", hint="check the quoting") from None
    return _Parsed(header, rows.columns(len(header or ())), np.asarray(starts, dtype=np.int64), blank, header_line, rejects, trailing_empty)


def _quote_column(text: str, line_no: int, delimiter: str) -> int:
    """Column (1-based) of the quote that opens the bad field on ``line_no``."""
    lines = text.splitlines()
    if not 1 <= line_no <= len(lines):
        return 1
    line = lines[line_no - 1]
    inside = False
    opened = 0
    for i, ch in enumerate(line):
        if ch == '"':
            if not inside:
                opened = i
            inside = not inside
    return opened + 1
