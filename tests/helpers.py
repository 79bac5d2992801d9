"""Small builders for canonical frames in tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import xlsxwriter

from crmclean.model import CANONICAL_FIELDS
from crmclean.normalize import NormalizeContext, normalize
from crmclean.rules.packs import load_pack


def canonical(rows: list[dict[str, str]], obj: str = "contact", normalized: bool = True) -> pd.DataFrame:
    """A canonical frame from partial rows (record_id defaults to R1, R2, ...)."""
    data = []
    for i, r in enumerate(rows, start=1):
        row = {c: "" for c in CANONICAL_FIELDS}
        row.update({"record_id": f"R{i}"})
        row.update(r)
        data.append(row)
    frame = pd.DataFrame(data, columns=list(CANONICAL_FIELDS))
    frame.insert(0, "_source_id", frame["record_id"])
    frame.insert(0, "_object", [r.get("_object", obj) for r in rows])
    frame.insert(0, "_source_line", range(2, len(rows) + 2))
    frame.insert(0, "_source_file", "t.csv")
    frame.insert(0, "_row", range(len(rows)))
    if normalized:
        return normalize(frame, load_pack("default"), NormalizeContext()).frame
    return frame


def xlsx_book(path: Path, sheets: dict[str, list[list[str]]], **options: object) -> Path:
    """A workbook whose cells are all written as text; the same bytes on every call (a fixed
    creation time), so a fuzz example that fails replays on the same file."""
    wb = xlsxwriter.Workbook(str(path), options)
    wb.set_properties({"created": dt.datetime(2026, 1, 1)})
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, v in enumerate(row):
                ws.write_string(r, c, v)
    wb.close()
    return path
