"""Header mapping: detect which CRM (and object) an export came from; build the canonical frame."""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

from crmclean.errors import Problem, UsageError
from crmclean.io.table import RawTable
from crmclean.model import (
    CANONICAL_FIELDS,
    EXTRA_PREFIX,
    OBJECT_TYPE,
    SOURCE_FILE,
    SOURCE_LINE,
    STR,
)
from crmclean.rules.packs import Pack, builtin_packs, load_pack

_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


def header_key(header: str) -> str:
    """Match key for a header: NFKC, case-folded, punctuation and spaces removed."""
    return _NON_ALNUM.sub("", unicodedata.normalize("NFKC", header).casefold())


@dataclass
class SourceMapping:
    pack: Pack
    columns: dict[str, list[str]]  # canonical field -> matching headers in the file (pack order)
    unmapped: list[str]
    signature_hits: int
    forced: bool = False
    candidates: list[tuple[str, int, int]] = field(default_factory=list)  # (pack, signature hits, mapped)

    @property
    def mapped_headers(self) -> int:
        return sum(len(v) for v in self.columns.values())

    @property
    def object_type(self) -> str:
        return str(self.pack.data.get("object", "contact"))

    def describe(self) -> str:
        total = self.mapped_headers + len(self.unmapped)
        how = "chosen with --source" if self.forced else f"detected ({self.signature_hits} signature header(s))"
        return f"{self.pack.name} [{self.object_type}] {how}; {self.mapped_headers} of {total} headers mapped"


@lru_cache(maxsize=1)
def source_packs() -> tuple[Pack, ...]:
    names = [n for n in builtin_packs() if n.startswith("sources/")]
    return tuple(load_pack(n, expect="source") for n in sorted(names))


def _match(pack: Pack, headers: list[str]) -> tuple[dict[str, list[str]], int]:
    by_key: dict[str, str] = {}
    for h in headers:
        by_key.setdefault(header_key(h), h)
    columns: dict[str, list[str]] = {}
    used: set[str] = set()
    for canonical, spellings in pack.data.get("columns", {}).items():
        for spelling in spellings:
            header = by_key.get(header_key(spelling))
            if header is not None and header not in used:
                columns.setdefault(canonical, []).append(header)
                used.add(header)
    detect = pack.data.get("detect", {})
    signature = {header_key(s) for s in detect.get("signature", [])}
    hits = len({header_key(h) for h in headers} & signature)
    prefix = detect.get("prefix")
    if prefix:
        hits += sum(1 for h in headers if h.startswith(prefix)) // 2
    return columns, hits


def map_headers(headers: list[str], source: str | None = None) -> SourceMapping:
    """Choose the source pack (``source`` forces one) and map the headers to canonical fields."""
    if source:
        pack = load_pack(source, expect="source")
        columns, hits = _match(pack, headers)
        mapping = _finish(pack, headers, columns, hits, forced=True)
        _require(mapping, headers)
        return mapping
    scored: list[tuple[tuple[int, int, int], Pack, dict[str, list[str]], int]] = []
    for pack in source_packs():
        columns, hits = _match(pack, headers)
        min_hits = int(pack.data.get("detect", {}).get("min_hits", 2))
        if hits >= min_hits:
            mapped = sum(len(v) for v in columns.values())
            scored.append(((hits, int(pack.data.get("priority", 50)), mapped), pack, columns, hits))
    if not scored:
        raise UsageError("E-SOURCE-UNKNOWN", "no rule pack recognises these headers (no name, email or company column found)",
                         hint="pass --source NAME (see 'crmclean rules list') or rename the columns")
    scored.sort(key=lambda s: (s[0][0] * 10 + s[0][1] // 10, s[0][2], s[1].name), reverse=True)
    _, pack, columns, hits = scored[0]
    mapping = _finish(pack, headers, columns, hits)
    mapping.candidates = [(p.name, h, sum(len(v) for v in c.values())) for _, p, c, h in scored[:5]]
    _require(mapping, headers)
    return mapping


def header_score(headers: list[str]) -> int:
    """How well a header row maps to a known (non-generic) source; 0 when none."""
    best = 0
    for pack in source_packs():
        _, hits = _match(pack, headers)
        if hits >= int(pack.data.get("detect", {}).get("min_hits", 2)):
            best = max(best, hits if pack.data.get("crm") != "generic" else 1)
    return best


def _finish(pack: Pack, headers: list[str], columns: dict[str, list[str]], hits: int, forced: bool = False) -> SourceMapping:
    mapped = {h for hs in columns.values() for h in hs}
    unmapped = [h for h in headers if h not in mapped]
    return SourceMapping(pack=pack, columns=columns, unmapped=unmapped, signature_hits=hits, forced=forced)


def _require(mapping: SourceMapping, headers: list[str]) -> None:
    problems = []
    for canonical in mapping.pack.data.get("required", []):
        if canonical in mapping.columns:
            continue
        spellings = mapping.pack.data.get("columns", {}).get(canonical, [canonical])
        close = difflib.get_close_matches(spellings[0], headers, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? rename it to '{spellings[0]}'" if close else f"add a '{spellings[0]}' column or choose another --source"
        problems.append(Problem("E-HDR-MISSING", "", f"source pack '{mapping.pack.name}' needs a '{spellings[0]}' column ({canonical})", hint))
    if problems:
        p = problems[0]
        raise UsageError(p.code, p.message, hint=p.hint)


def to_canonical(table: RawTable, mapping: SourceMapping) -> pd.DataFrame:
    """Build the canonical frame for one table: canonical fields, identity, extras untouched.

    When several headers map to one canonical field (``email_work``, ``email_other``) the first
    non-blank value wins, and every header but the first is also carried as an extra column, so
    nothing in the export is lost.
    """
    raw = table.frame
    n = len(raw)
    data: dict[str, pd.Series] = {}
    blank = pd.Series("", index=pd.RangeIndex(n), dtype=STR)  # one array for every field the export lacks (~12 MB each at 1M)
    for canonical in CANONICAL_FIELDS:
        headers = mapping.columns.get(canonical)
        if not headers:
            data[canonical] = blank
            continue
        value = raw[headers[0]].astype(STR)
        for other in headers[1:]:
            value = value.where(value.str.strip() != "", raw[other].astype(STR))
        data[canonical] = value.reset_index(drop=True)
    frame = pd.DataFrame(data)
    frame.insert(0, "_source_id", frame["record_id"].array)
    frame.insert(0, OBJECT_TYPE, mapping.object_type)
    frame.insert(0, SOURCE_LINE, table.lines)
    frame.insert(0, SOURCE_FILE, table.display)
    extras = [h for h in table.headers if h in mapping.unmapped or h in sum((hs[1:] for hs in mapping.columns.values()), [])]
    for h in extras:
        frame[EXTRA_PREFIX + h] = raw[h].astype(STR).array
    return frame
