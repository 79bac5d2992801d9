"""``crmclean profile``: what is in an export — fill rates, distinct values, format problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmclean.io import LoadOptions
from crmclean.model import CANONICAL_FIELDS
from crmclean.normalize import NormalizeContext, normalize
from crmclean.pipeline import load_inputs
from crmclean.rules.packs import Pack

# which normalizer reasons count as a "format problem" per field, for the profile
PROBLEM_REASONS = {
    "email": ("EMAIL_INVALID",),
    "email_2": ("EMAIL_INVALID",),
    "phone": ("PHONE_INVALID", "PHONE_UNPARSEABLE"),
    "mobile": ("PHONE_INVALID", "PHONE_UNPARSEABLE"),
    "postal_code": ("ZIP_INVALID", "POSTAL_INVALID"),
    "created_at": ("DATE_UNPARSEABLE", "DATE_INVALID", "DATE_AMBIGUOUS", "DATE_OUT_OF_RANGE"),
    "modified_at": ("DATE_UNPARSEABLE", "DATE_INVALID", "DATE_AMBIGUOUS", "DATE_OUT_OF_RANGE"),
    "last_activity_at": ("DATE_UNPARSEABLE", "DATE_INVALID", "DATE_AMBIGUOUS", "DATE_OUT_OF_RANGE"),
    "state": ("STATE_INVALID",),
    "country": ("COUNTRY_UNKNOWN",),
}


@dataclass
class FieldProfile:
    field: str
    headers: list[str]
    filled: int
    fill_rate: float
    distinct: int
    problems: dict[str, int]


@dataclass
class FileProfile:
    file: str
    sha256: str
    encoding: str
    delimiter: str
    sheet: str
    rows_read: int
    rows_rejected: int
    source: str
    object_type: str
    detection: str
    headers_total: int
    headers_mapped: int
    unmapped: list[str]
    warnings: list[str]
    fields: list[FieldProfile] = field(default_factory=list)

    @property
    def skipped_most(self) -> list[FieldProfile]:
        return sorted((f for f in self.fields if f.headers), key=lambda f: (f.fill_rate, f.field))[:5]


def profile(paths: list[str | Path], pack: Pack, options: LoadOptions | None = None, source: str | None = None) -> list[FileProfile]:
    loaded = load_inputs(paths, options, source)
    result = normalize(loaded.frame, pack, NormalizeContext(loaded.sources))
    findings = result.findings
    out = []
    for inp in loaded.inputs:
        table, mapping = inp.table, inp.mapping
        rows = loaded.frame["_source_file"] == table.display
        ids = set(loaded.frame.loc[rows, "record_id"])
        fnd = findings[findings["record_id"].isin(ids)] if len(findings) else findings
        n = int(rows.sum())
        fields = []
        for c in CANONICAL_FIELDS:
            if c == "record_id" and c not in mapping.columns:
                continue
            col = loaded.frame.loc[rows, c].astype(str).str.strip()
            filled = int((col != "").sum())
            reasons = PROBLEM_REASONS.get(c, ())
            probs: dict[str, int] = {}
            if reasons and len(fnd):
                sub = fnd[(fnd["field"] == c) & fnd["reason"].isin(reasons)]
                probs = {str(k): int(v) for k, v in sub["reason"].value_counts().sort_index().items()}
            if not mapping.columns.get(c) and not filled:
                continue
            fields.append(FieldProfile(c, mapping.columns.get(c, []), filled, round(filled / n, 4) if n else 0.0,
                                       int(col[col != ""].nunique()), probs))
        out.append(FileProfile(
            file=table.display, sha256=table.sha256, encoding=table.encoding, delimiter=table.delimiter,
            sheet=table.sheet, rows_read=table.rows_read, rows_rejected=len(table.rejects),
            source=mapping.pack.name, object_type=mapping.object_type, detection=mapping.describe(),
            headers_total=len(table.headers), headers_mapped=mapping.mapped_headers, unmapped=mapping.unmapped,
            warnings=[w.line() for w in table.warnings], fields=fields,
        ))
    return out


def as_json(profiles: list[FileProfile]) -> dict[str, Any]:
    from crmclean import __version__

    return {
        "schema_version": 1,
        "tool_version": __version__,
        "files": [
            {
                "file": p.file, "sha256": p.sha256, "encoding": p.encoding, "delimiter": p.delimiter, "sheet": p.sheet,
                "rows_read": p.rows_read, "rows_rejected": p.rows_rejected, "source": p.source, "object": p.object_type,
                "headers_total": p.headers_total, "headers_mapped": p.headers_mapped, "unmapped_headers": p.unmapped,
                "warnings": p.warnings,
                "fields": [
                    {"field": f.field, "headers": f.headers, "filled": f.filled, "fill_rate": f.fill_rate,
                     "distinct": f.distinct, "problems": f.problems}
                    for f in p.fields
                ],
                "skipped_most": [f.field for f in p.skipped_most],
            }
            for p in profiles
        ],
    }
