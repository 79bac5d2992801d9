"""Small builders for canonical frames in tests."""

from __future__ import annotations

import pandas as pd

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
