"""Excel (.xlsx) loading: calamine for speed, defusedxml checks for what calamine hides.

Refused with a located error: password-protected or legacy workbooks, truncated or corrupt
zips, zip bombs, XML entity tricks, merged cells in the data, and formulas without a cached
value (the value the user sees would silently read as blank). Every cell becomes text; the
workbook's 1900/1904 date system is recorded so date serials convert correctly later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import posixpath
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring, iterparse

from crmclean.errors import InputError, Problem
from crmclean.io.csvread import _unique_headers
from crmclean.io.table import RawTable, Reject

MAX_ENTRIES = 10_000
MAX_TOTAL_UNCOMPRESSED = 2 * 1024**3
MAX_RATIO = 1000
_NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "rel": "http://schemas.openxmlformats.org/package/2006/relationships",
}


def _col_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep="T") if (value.hour or value.minute or value.second or value.microsecond) else value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return str(value)


def _check_zip(zf: zipfile.ZipFile, display: str) -> None:
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise InputError("E-XLSX-BOMB", f"workbook has {len(infos):,} zip entries", location=display, hint="this is not a normal workbook; export CSV instead")
    total = 0
    for info in infos:
        total += info.file_size
        if info.compress_size and info.file_size / max(info.compress_size, 1) > MAX_RATIO and info.file_size > 10 * 1024 * 1024:
            raise InputError("E-XLSX-BOMB", f"'{info.filename}' expands {info.file_size // max(info.compress_size, 1):,}:1 to {info.file_size:,} bytes", location=display, hint="refused as a zip bomb; export CSV instead")
    if total > MAX_TOTAL_UNCOMPRESSED:
        raise InputError("E-XLSX-BOMB", f"workbook expands to {total:,} bytes", location=display, hint="refused as a zip bomb; split the export or use CSV")


def _xml(zf: zipfile.ZipFile, name: str, display: str) -> Any:
    try:
        return fromstring(zf.read(name))
    except DefusedXmlException:
        raise InputError("E-XLSX-XML", f"'{name}' declares XML entities or a DTD", location=display, hint="refused for safety; re-save the workbook in Excel") from None
    except KeyError:
        raise InputError("E-XLSX-CORRUPT", f"workbook part '{name}' is missing", location=display, hint="re-save the workbook in Excel") from None
    except Exception:
        raise InputError("E-XLSX-CORRUPT", f"workbook part '{name}' is not valid XML", location=display, hint="re-save the workbook in Excel") from None


def _sheet_parts(zf: zipfile.ZipFile, display: str) -> tuple[dict[str, str], bool]:
    wb = _xml(zf, "xl/workbook.xml", display)
    pr = wb.find("m:workbookPr", _NS)
    date1904 = pr is not None and pr.get("date1904", "0").lower() in ("1", "true")
    rels = _xml(zf, "xl/_rels/workbook.xml.rels", display)
    targets = {r.get("Id"): r.get("Target", "") for r in rels.findall("rel:Relationship", _NS)}
    parts: dict[str, str] = {}
    for sheet in wb.findall("m:sheets/m:sheet", _NS):
        rid = sheet.get(f"{{{_NS['r']}}}id")
        target = targets.get(rid, "")
        if target:
            part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
            parts[sheet.get("name", "")] = part
    return parts, date1904


MAX_SHEET_CELLS = 100_000_000  # the reader holds the values' whole bounding box: 100M cells is ~3 GB
_CELL_REF = re.compile(r"([A-Z]+)([0-9]+)", re.IGNORECASE)  # any length: the size check decides


def _ref_position(ref: str | None) -> tuple[int, int] | None:
    """'XFD1048576' → (1048575, 16383), zero-based (row, column); None if not a cell reference."""
    m = _CELL_REF.fullmatch(ref or "")
    if m is None or int(m.group(2)) == 0:
        return None
    col = 0
    for ch in m.group(1).upper():
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)) - 1, col - 1


def _scan_sheet(zf: zipfile.ZipFile, part: str, sheet: str, display: str) -> None:
    """Before the reader sees a sheet: refuse formulas without cached values, and values spread
    so far apart that their bounding box would not fit in memory (the reader allocates it whole
    and aborts the process when it cannot: a stray value at XFD1048576 asks for 550 GB). The
    XML parser refuses entities."""
    main = f"{{{_NS['m']}}}"
    row = col = -1
    top = left = 1 << 40
    bottom = right = -1
    try:
        with zf.open(part) as fh:
            for event, elem in iterparse(fh, events=("start", "end")):
                if event == "start":
                    if elem.tag == main + "row":
                        r = elem.get("r", "")
                        row = int(r) - 1 if r.isascii() and r.isdigit() and int(r) > 0 else row + 1
                        col = -1
                    continue
                if elem.tag == main + "c":
                    at = _ref_position(elem.get("r"))
                    row, col = at if at is not None else (row, col + 1)
                    v = elem.find(main + "v")
                    if elem.find(main + "f") is not None and (v is None or v.text is None):
                        raise InputError("E-XLSX-FORMULA-NOCACHE", "formula has no computed value", location=f"{display}:{sheet}!{elem.get('r', '?')}",
                                         hint="open and save the workbook in Excel so values are computed, or export CSV")
                    if v is not None or elem.find(main + "is") is not None:
                        top, bottom, left, right = min(top, row), max(bottom, row), min(left, col), max(right, col)
                    elem.clear()
                elif elem.tag == main + "row":
                    elem.clear()
    except InputError:
        raise
    except DefusedXmlException:
        raise InputError("E-XLSX-XML", f"sheet '{sheet}' declares XML entities or a DTD", location=display, hint="refused for safety; re-save the workbook in Excel") from None
    except KeyError:
        raise InputError("E-XLSX-CORRUPT", f"sheet '{sheet}' is missing from the workbook", location=display, hint="re-save the workbook in Excel") from None
    except (zipfile.BadZipFile, EOFError, OSError, Exception) as exc:
        raise InputError("E-XLSX-CORRUPT", f"sheet '{sheet}' cannot be read ({type(exc).__name__})", location=display, hint="the file may be truncated; export it again") from None
    if bottom >= 0 and (bottom - top + 1) * (right - left + 1) > MAX_SHEET_CELLS:
        area = (bottom - top + 1) * (right - left + 1)
        raise InputError("E-XLSX-RANGE", f"values spread over {area:,} cells (more than {MAX_SHEET_CELLS:,}): a stray value far from the table",
                         location=f"{display}:{sheet}!{_col_letters(right)}{bottom + 1}",
                         hint="delete the cells outside the table in Excel and save again, or export CSV")


def read_xlsx(path: str | Path, sheet: str | None = None, display: str | None = None,
              header_scorer: Callable[[list[str]], int] | None = None) -> RawTable:
    """Read one sheet of an .xlsx workbook as text.

    ``header_scorer`` rates a sheet's header (how well it maps to a known CRM source); without
    ``sheet`` the first sheet with a positive score is read, else the first sheet.
    """
    from python_calamine import CalamineWorkbook

    path = Path(path)
    display = display or path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError("E-INPUT-READ", f"cannot read file ({exc.strerror})", location=display, hint="check the path and permissions") from None
    sha = hashlib.sha256(data).hexdigest()
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError("E-XLSX-ENCRYPTED", "workbook is password-protected or in the legacy .xls format", location=display,
                         hint="save an unprotected .xlsx copy, or export CSV")
    if not data.startswith(b"PK"):
        raise InputError("E-XLSX-CORRUPT", "not an .xlsx workbook (no zip signature)", location=display, hint="check the file, or read it as CSV by renaming it")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError, EOFError):
        # NotImplementedError: a damaged "version needed to extract" field (found by the fuzz target)
        raise InputError("E-XLSX-CORRUPT", "workbook is truncated or corrupt", location=display, hint="export or download it again") from None
    with zf:
        _check_zip(zf, display)
        try:
            bad = zf.testzip()
        except Exception:
            bad = "?"
        if bad is not None:
            raise InputError("E-XLSX-CORRUPT", "workbook is truncated or corrupt (CRC check failed)", location=display, hint="export or download it again")
        parts, date1904 = _sheet_parts(zf, display)
        try:
            wb = CalamineWorkbook.from_path(str(path))
        except Exception:
            raise InputError("E-XLSX-CORRUPT", "workbook cannot be opened", location=display, hint="re-save it in Excel or export CSV") from None
        visible = [m.name for m in wb.sheets_metadata if str(m.visible).endswith("Visible") and "Hidden" not in str(m.visible)]
        names = visible or list(wb.sheet_names)
        warnings: list[Problem] = []
        scanned: set[str] = set()

        def scan(name: str) -> None:  # each sheet once, before the reader sees it
            if name in parts and name not in scanned:
                _scan_sheet(zf, parts[name], name, display)
                scanned.add(name)

        if sheet is not None:
            if sheet not in wb.sheet_names:
                raise InputError("E-XLSX-SHEET", f"no sheet named '{sheet}'", location=display, hint="sheets: " + ", ".join(wb.sheet_names))
            chosen = sheet
        else:
            chosen = names[0] if names else ""
            if header_scorer is not None and len(names) > 1:
                for name in names:
                    scan(name)
                    rows = _rows(wb, name, display, limit=1)
                    if rows and header_scorer([_cell_text(v) for v in rows[0]]) > 0:
                        chosen = name
                        break
            others = [n for n in wb.sheet_names if n != chosen]
            if others:
                warnings.append(Problem("W-XLSX-SHEETS", display, f"read sheet '{chosen}'; left out: {', '.join(others)}", "choose another with --sheet"))
        scan(chosen)
        rows = _rows(wb, chosen, display)
        ws = wb.get_sheet_by_name(chosen)
        merged = ws.merged_cell_ranges or []
        start_row, start_col = ws.start or (0, 0)
    if merged:
        (r1, c1), (r2, c2) = merged[0]
        ref = f"{_col_letters(c1)}{r1 + 1}:{_col_letters(c2)}{r2 + 1}"
        raise InputError("E-XLSX-MERGED", f"merged cells in the data ({len(merged)} range(s))", location=f"{display}:{chosen}!{ref}",
                         hint="unmerge the cells in Excel (fill the values in) and save again")
    if not rows:
        raise InputError("E-XLSX-EMPTY", f"sheet '{chosen}' is empty", location=display, hint="choose the sheet with the data using --sheet")
    header = [_cell_text(v) for v in rows[0]]
    while header and not header[-1]:
        header.pop()
    width = len(header)
    headers, hdr_warn = _unique_headers(header, f"{display}:{chosen}")
    warnings.extend(hdr_warn)
    body: list[list[str]] = []
    lines: list[int] = []
    rejects: list[Reject] = []
    blank = 0
    for offset, row in enumerate(rows[1:], start=1):
        cells = [_cell_text(v) for v in row]
        sheet_row = start_row + offset + 1
        if not any(c.strip() for c in cells):
            blank += 1
            continue
        if any(c.strip() for c in cells[width:]):
            last = max(i for i, c in enumerate(cells) if c.strip())
            rejects.append(Reject(sheet_row, "E-XLSX-RAGGED", f"value in column {_col_letters(start_col + last)} beyond the {width} headed columns", "\t".join(cells)))
            continue
        cells = (cells + [""] * width)[:width]
        body.append(cells)
        lines.append(sheet_row)
    if blank:
        warnings.append(Problem("W-XLSX-BLANK-ROWS", display, f"{blank} blank row(s) skipped (not records)", ""))
    columns = list(zip(*body, strict=True)) if body else [() for _ in headers]
    frame = pd.DataFrame({h: pd.Series(c, dtype=object) for h, c in zip(headers, columns, strict=True)})
    return RawTable(path=str(path), display=display, sha256=sha, headers=headers, frame=frame,
                    lines=np.asarray(lines, dtype=np.int64), rejects=rejects, warnings=warnings,
                    encoding="xlsx", sheet=chosen, date1904=date1904, blank_lines=blank)


def _rows(wb: Any, name: str, display: str, limit: int | None = None) -> list[list[Any]]:
    try:
        ws = wb.get_sheet_by_name(name)
        if limit is not None:
            out = []
            for row in ws.iter_rows():
                out.append(list(row))
                if len(out) >= limit:
                    break
            return out
        return list(ws.to_python(skip_empty_area=True))
    except Exception as exc:
        raise InputError("E-XLSX-CORRUPT", f"sheet '{name}' cannot be read ({type(exc).__name__})", location=display, hint="the file may be damaged; export it again") from None
