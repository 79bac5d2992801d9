"""Loading exports (CSV, XLSX) into raw tables; writing outputs safely."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crmclean.errors import InputError
from crmclean.io.csvread import CsvOptions, read_csv
from crmclean.io.mapping import header_score
from crmclean.io.table import RawTable, Reject
from crmclean.io.xlsxread import read_xlsx

__all__ = ["LoadOptions", "RawTable", "Reject", "load_table"]


@dataclass(frozen=True)
class LoadOptions:
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    max_field_size: int = 1024 * 1024


def load_table(path: str | Path, options: LoadOptions | None = None) -> RawTable:
    """Read one export file (format by content and extension) into a RawTable."""
    options = options or LoadOptions()
    path = Path(path)
    if not path.exists():
        raise InputError("E-INPUT-MISSING", "file not found", location=str(path), hint="check the path")
    if path.is_dir():
        raise InputError("E-INPUT-DIR", "is a directory, not a file", location=str(path), hint="name the export file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(path, sheet=options.sheet, header_scorer=header_score)
    if suffix == ".xls":
        raise InputError("E-XLSX-LEGACY", "legacy .xls workbooks are not read", location=path.name, hint="save it as .xlsx or CSV")
    return read_csv(path, CsvOptions(options.encoding, options.delimiter, options.max_field_size))
