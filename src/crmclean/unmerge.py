"""``crmclean unmerge``: rebuild the original records of every merged cluster from a run's
outputs (merged.csv holds each member's values exactly as read), checked against the
ledger's per-row SHA-256 so a restored record is the input record, byte for byte."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

from crmclean.errors import InputError, InvariantError, UsageError
from crmclean.export.publish import Staging, verify
from crmclean.export.safe import csv_bytes, unescape

META = ("record_id", "source_file", "source_line", "merge_role", "survivor_id", "cluster_id")


def _read(path: Path) -> list[list[str]]:
    text = path.read_text("utf-8")
    return [[unescape(c) for c in row] for row in csv.reader(io.StringIO(text, newline=""))]


def unmerge(outdir: Path, dest: Path) -> dict[str, int]:
    if not outdir.is_dir():
        raise InputError("E-OUTDIR-MISSING", "not a directory", location=str(outdir), hint="name a crmclean output directory")
    verify(outdir)
    if dest.resolve() == outdir.resolve():
        raise UsageError("E-PATH-IS-INPUT", "unmerge cannot write into the run's own output directory", location=str(dest), hint="choose another -o")
    summary = json.loads((outdir / "summary.json").read_text("utf-8"))
    rows = _read(outdir / "merged.csv")
    header, body = rows[0], rows[1:]
    union = header[len(META):]
    ledger = {r[2]: r for r in _read(outdir / "ledger.csv")[1:]}  # record_id → row
    restored: dict[str, list[tuple[int, list[str]]]] = {}
    file_headers = {i["file"]: i["headers"] for i in summary["inputs"]}
    for row in body:
        meta = dict(zip(META, row[: len(META)], strict=True))
        values = dict(zip(union, row[len(META):], strict=True))
        headers = file_headers[meta["source_file"]]
        original = [values[h] for h in headers]
        digest = hashlib.sha256("\x1f".join(original).encode("utf-8", "surrogatepass")).hexdigest()
        if ledger.get(meta["record_id"], [""] * 9)[8] != digest:
            raise InvariantError("E-UNMERGE-MISMATCH", f"record {meta['record_id']} does not match its ledger hash", location=str(outdir),
                                 hint="the outputs were changed after the run")
        restored.setdefault(meta["source_file"], []).append((int(meta["source_line"]), original))
    staging = Staging(dest)
    written = {}
    try:
        for name, items in sorted(restored.items()):
            items.sort(key=lambda x: x[0])
            out_name = f"unmerged-{Path(name).stem}.csv"
            staging.write_bytes(out_name, csv_bytes(file_headers[name], [v for _, v in items]))
            written[out_name] = len(items)
        staging.publish({"unmerged_from": str(outdir), "run_id": summary["run_id"]})
    except BaseException:
        staging.discard()
        raise
    return written
