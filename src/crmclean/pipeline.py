"""Composes the stages and keeps the ledger: one final state per input record."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from crmclean.engine import Engine
from crmclean.errors import InvariantError, UsageError
from crmclean.export.publish import Staging
from crmclean.io import LoadOptions, RawTable, load_table
from crmclean.io.mapping import SourceMapping, map_headers, to_canonical
from crmclean.model import (
    CANONICAL_FIELDS,
    CHANGE_COLUMNS,
    EXTRA_PREFIX,
    FINDING_COLUMNS,
    RECORD_ID,
    ROW,
    SOURCE_FILE,
    SOURCE_LINE,
    STR,
    PackedFrame,
    concat,
    frame_pieces,
    member,
)
from crmclean.normalize import SourceInfo
from crmclean.rules.packs import load_pack


@dataclass
class LoadedInput:
    table: RawTable
    mapping: SourceMapping
    info: SourceInfo


@dataclass
class Loaded:
    """All inputs of a run, mapped to one canonical frame (rows in input order)."""

    inputs: list[LoadedInput]
    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def sources(self) -> dict[str, SourceInfo]:
        return {i.table.display: i.info for i in self.inputs}

    @property
    def rows_read(self) -> int:
        return sum(i.table.rows_read for i in self.inputs)


# the normalized columns a run keeps once dedupe has taken the frame over: the ledger's source
# lines and legacy ids, and the fill counts of the contact fields
KEPT_AFTER_DEDUPE = (SOURCE_FILE, SOURCE_LINE, "_source_id", "email", "phone", "mobile")


def _display_names(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def load_inputs(paths: list[Path] | list[str] | list[str | Path], options: LoadOptions | None = None, source: str | None = None) -> Loaded:
    """Read, detect and map every input; assign each record a run-unique ``record_id``.

    ``record_id`` is the CRM's own id when it is present and unique within the run, else
    ``<file>:<line>`` — so every output can name every record unambiguously.
    """
    if not paths:
        raise UsageError("E-USAGE-NO-INPUT", "no input file given", hint="name at least one export file")
    resolved = [Path(p) for p in paths]
    if len({p.resolve() for p in resolved}) != len(resolved):
        raise UsageError("E-USAGE-DUP-INPUT", "the same input file is named twice", hint="name each file once")
    inputs: list[LoadedInput] = []
    frames: list[pd.DataFrame] = []
    for path, display in zip(resolved, _display_names(resolved), strict=True):
        table = load_table(path, options)
        table.display = display
        mapping = map_headers(table.headers, source)
        info = SourceInfo.from_pack(mapping.pack, excel=table.encoding == "xlsx", date1904=table.date1904)
        inputs.append(LoadedInput(table, mapping, info))
        frames.append(to_canonical(table, mapping))
    frame = pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()
    extra_cols = [c for c in frame.columns if c.startswith("extra.")]
    frame[extra_cols] = frame[extra_cols].fillna("")
    frame.insert(0, ROW, np.arange(len(frame), dtype=np.int64))
    frame[RECORD_ID] = assign_record_ids(frame)
    pa.default_memory_pool().release_unused()  # Arrow's pool keeps what loading freed unless told
    return Loaded(inputs=inputs, frame=frame)


def assign_record_ids(frame: pd.DataFrame) -> pd.Series:
    source_ids = frame["_source_id"].astype(str).str.strip()
    counts = source_ids.map(source_ids.value_counts())
    fallback = frame[SOURCE_FILE].astype(str) + ":" + frame[SOURCE_LINE].astype(str)
    usable = (source_ids != "") & (counts == 1) & ~member(source_ids, set(fallback.to_numpy(dtype=object)))
    return source_ids.where(usable, fallback).astype(STR)


# --- the whole run ---------------------------------------------------------------------------

FAMILIES: dict[str, dict[str, str]] = {
    "salesforce": {"contact": "salesforce-contact", "lead": "salesforce-lead", "account": "salesforce-account"},
    "hubspot": {"contact": "hubspot-contact", "lead": "hubspot-contact", "account": "hubspot-company"},
    "dynamics": {"contact": "dynamics-contact", "lead": "dynamics-contact", "account": "dynamics-account"},
    "zoho": {"contact": "zoho-contact", "lead": "zoho-lead", "account": "zoho-account"},
    "pipedrive": {"contact": "pipedrive-person", "lead": "pipedrive-person", "account": "pipedrive-organization"},
    "generic": {"contact": "generic-contact", "lead": "generic-contact", "account": "generic-account"},
}


def targets_for(name: str, objects: list[str]) -> dict[str, Any]:
    """The target pack for each object type: ``--target salesforce`` (a CRM) or one pack
    (``salesforce-contact``), whose CRM supplies the packs for the other objects."""
    if name in FAMILIES:
        family = FAMILIES[name]
        return {o: load_pack(family[o], expect="target") for o in objects}
    pack = load_pack(name, expect="target")
    family = FAMILIES.get(str(pack.data.get("crm", "")), {})
    out = {}
    for o in objects:
        out[o] = pack if pack.data.get("object") == o or o not in family else load_pack(family[o], expect="target")
    return out


LEDGER_COLUMNS = ("source_file", "source_line", "record_id", "legacy_id", "state", "survivor_id", "cluster_id", "reason", "row_sha256")
SCHEMA_VERSION = 1


@dataclass
class RunOptions:
    inputs: list[Path]
    outdir: Path | None
    pack: str = "default"
    target: str | None = None
    source: str | None = None
    as_of: dt.date | None = None
    load: LoadOptions | None = None
    suppress: list[str] = field(default_factory=list)
    owners: str | None = None
    decisions: str | None = None
    allow_delete: bool = False
    xlsx: bool = False
    stages: tuple[str, ...] = ("normalize", "validate", "dedupe", "lifecycle")
    publish: bool = True
    engine: str = "local"  # local | dask (same outputs, byte for byte)
    scheduler: str | None = None  # a Dask scheduler address; without it a local cluster is started


@dataclass
class RunResult:
    summary: dict[str, Any]
    files: dict[str, bytes]  # the outputs by name, in memory; empty when they went to a staging directory
    gates: list[Any]
    timings: dict[str, float]
    names: list[str] = field(default_factory=list)  # every output the run made, in the order made

    @property
    def gates_passed(self) -> bool:
        return all(g.passed for g in self.gates)


class _Outputs:
    """Where the run's files go: each straight into ``staging`` as soon as it is made (a file is
    not held once written: at a million records they add up to ~1.4 GB), or kept in memory.

    A file bound for staging is written by one writer thread while the run makes the next: the
    CSV assembly (Arrow), hashing, writing and fsync of one file let go of the GIL, so they run
    on the second core beside the next file's preparation (at a million records, ~20 s of the
    export). One file at a time is handed over: making file k+1 waits for file k to be written,
    so no more than one finished file's makings are alive beside the next one's; a file with
    small makings may be written on a second thread beside them all (:meth:`beside`). The files'
    bytes are those of a write in line; a write's failure is raised in the run at the next file
    or at :meth:`finish`, and a failing run stops the writers at their next piece (:meth:`abort`)."""

    def __init__(self, staging: Staging | None) -> None:
        self.staging = staging
        self.files: dict[str, bytes] = {}
        self.names: list[str] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._side: ThreadPoolExecutor | None = None
        self._beside: list[Future[None]] = []
        self._stop = threading.Event()

    def __setitem__(self, name: str, data: bytes | Iterable[bytes]) -> None:
        """Take a file, whole or as pieces (written as they are made, never joined)."""
        if self.staging is None:
            self.files[name] = data if isinstance(data, bytes) else b"".join(data)
        else:
            self._wait()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmclean-writer")
            self._pending = self._pool.submit(self.staging.write_bytes, name, self._until_stopped(data))
        self.names.append(name)

    def beside(self, name: str, data: Iterable[bytes]) -> None:
        """Take a file whose makings are small next to its writing — the change log, made from
        its packed parts — and write it on a thread of its own, beside the files taken after it,
        which neither wait for it nor are waited for by it (at a million records its ~550 MB
        took ~12 s, which the run spent waiting), until :meth:`wait_beside`: the run calls it
        before making a file whose makings are large, so the two never share memory."""
        if self.staging is None:
            self[name] = data
            return
        if self._side is None:
            self._side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmclean-writer-beside")
        self._beside.append(self._side.submit(self.staging.write_bytes, name, self._until_stopped(data)))
        self.names.append(name)

    def _until_stopped(self, data: bytes | Iterable[bytes]) -> Iterator[bytes]:
        for piece in [data] if isinstance(data, bytes) else data:
            if self._stop.is_set():
                raise _Stopped
            yield piece

    def wait_beside(self) -> None:
        """Wait for the files written beside the others; raise what a write raised."""
        waited, self._beside = self._beside, []
        for future in waited:
            future.result()

    def _wait(self) -> None:
        """Wait for the file being written; raise what its write raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def finish(self) -> None:
        """Wait for the last files; raise what a write raised (the writers are waited for either way)."""
        try:
            self._wait()
            self.wait_beside()
        finally:
            self._shutdown()

    def abort(self) -> None:
        """The run failed: stop the files being written at their next piece (staging is discarded)."""
        self._stop.set()
        try:
            for wait in (self._wait, self.wait_beside):
                try:
                    wait()
                except BaseException:  # the run's own failure is the one to report, not a write's
                    pass
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        for pool in (self._pool, self._side):
            if pool is not None:
                pool.shutdown(wait=True)
        self._pool = self._side = None


class _Stopped(Exception):
    """A write cut short because the run failed."""


def _row_hashes(table: RawTable) -> list[str]:
    """sha256 of each row's cells joined by U+001F, in UTF-8 (a table is text, as read). Rows are
    joined in Arrow and hashed straight from its buffer: no Python string per cell or row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from crmclean.export.safe import CSV_CHUNK_ROWS, arrow_column, string_slices

    if not table.headers:
        return []
    out: list[str] = []
    sep = pa.scalar("\x1f", pa.large_string())
    for start in range(0, len(table.frame), CSV_CHUNK_ROWS):  # the joined rows of one chunk at a time
        chunk = table.frame.iloc[start: start + CSV_CHUNK_ROWS]
        data, offsets = string_slices(pc.binary_join_element_wise(*[arrow_column(chunk[h]) for h in table.headers], sep))
        out.extend(hashlib.sha256(data[a:b]).hexdigest() for a, b in zip(offsets[:-1], offsets[1:], strict=True))
    return out


def originals(loaded: Loaded, rows: np.ndarray) -> pd.DataFrame:
    """The records' values exactly as read (every source header), for the given global rows."""
    headers: list[str] = []
    for inp in loaded.inputs:
        for h in inp.table.headers:
            if h not in headers:
                headers.append(h)
    parts = []
    offset = 0
    for inp in loaded.inputs:
        n = len(inp.table.frame)
        sel = rows[(rows >= offset) & (rows < offset + n)] - offset
        if len(sel):
            # text stays in Arrow: a Python string per cell would cost ~1 GB for 500k merged records
            part = inp.table.frame.iloc[sel].reindex(columns=headers).astype(STR).fillna("")
            part.insert(0, "_row", sel + offset)
            parts.append(part)
        offset += n
    if not parts:
        empty = pd.DataFrame({h: pd.Series([], dtype=object) for h in headers})
        empty.insert(0, "_row", pd.Series([], dtype=np.int64))
        return empty
    return pd.concat(parts, ignore_index=True).sort_values("_row", kind="mergesort").reset_index(drop=True)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from crmclean import __version__

    out = {"crmclean": __version__}
    for pkg in ("pandas", "phonenumbers", "usaddress", "rapidfuzz", "email-validator", "nicknames", "python-calamine"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def metrics(summary: dict[str, Any]) -> dict[str, float]:
    m: dict[str, float] = {}
    rows = max(summary["rows_read"], 1)
    for state, n in summary["states"].items():
        m[f"count.{state}"] = n
        m[f"share.{state}"] = n / rows
    f = summary["findings_by_reason"]
    filled = summary["filled"]
    m["share.email_invalid"] = f.get("EMAIL_INVALID", 0) / max(filled.get("email", 0), 1)
    m["share.phone_invalid"] = (f.get("PHONE_INVALID", 0) + f.get("PHONE_UNPARSEABLE", 0)) / max(filled.get("phone", 0) + filled.get("mobile", 0), 1)
    m["share.duplicates"] = summary["states"].get("merged", 0) / rows
    m["count.validation_errors"] = summary["findings_by_severity"].get("error", 0)
    m["count.formula_cells"] = summary["formula_cells"]
    m["count.unmapped_owners"] = len(summary["unmapped_owners"])
    m["count.review_pairs"] = summary["dedupe"]["review_pairs"]
    m["count.target_picklist"] = f.get("TARGET_PICKLIST_VALUE", 0)
    for fld, rate in summary["fill_rate_after"].items():
        m[f"fill.{fld}"] = rate
    return m


def run(opts: RunOptions, progress: Callable[[str], None] | None = None, staging: Staging | None = None) -> RunResult:
    """load → map → normalize → validate → dedupe & merge → lifecycle → export. Pure until
    publish: the files go to ``staging`` as they are made (the caller publishes or discards it),
    or without it into ``RunResult.files``."""
    from crmclean.engine import make_engine

    with make_engine(opts.engine, opts.scheduler) as engine:
        return _run(opts, engine, progress, staging)


def _run(opts: RunOptions, engine: Engine, progress: Callable[[str], None] | None = None, staging: Staging | None = None) -> RunResult:
    import time

    from crmclean.dedupe import DedupeResult, Handoff, dedupe, read_decisions
    from crmclean.export.report import EXAMPLE_MERGES
    from crmclean.export.safe import (
        escape_frame,
        formula_cells,
        frame_csv_bytes,
        frame_csv_pieces,
        frames_csv_pieces,
    )
    from crmclean.export.targets import load_owners, to_target
    from crmclean.gates import evaluate
    from crmclean.lifecycle import LifecycleContext, lifecycle, load_suppression
    from crmclean.normalize import NormalizeContext
    from crmclean.procs import release_memory
    from crmclean.validate import validate

    say = progress or (lambda _s: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        release_memory()  # what the stage freed goes back before the next one counts on top of it
        now = time.perf_counter()
        timings[stage] = round(now - clock, 3)
        clock = now

    pack = load_pack(opts.pack, expect="rules")
    as_of = opts.as_of or dt.datetime.now(dt.UTC).date()
    say("load")
    loaded = load_inputs(opts.inputs, opts.load, opts.source)
    objects = list(dict.fromkeys(i.mapping.object_type for i in loaded.inputs)) or ["contact"]
    target_name = opts.target or pack.get("defaults", "target", default="generic-contact")
    targets = targets_for(target_name, objects)
    target = targets[objects[0]] if objects else load_pack(target_name, expect="target")
    owners = load_owners(opts.owners) if opts.owners else None
    suppressions = [load_suppression(s, pack.get("defaults", "region", default="US")) for s in opts.suppress]
    decisions = read_decisions(opts.decisions) if opts.decisions else None
    lap("load")

    frame = loaded.frame
    changes: list[pd.DataFrame | PackedFrame] = []
    findings: list[pd.DataFrame] = []
    if "normalize" in opts.stages:
        say("normalize")
        res = engine.normalize(frame, pack, NormalizeContext(loaded.sources))
        # the change log waits for the export: packed, it is a quarter of its size through
        # dedupe, where a run peaks (~340 MB against ~80 MB at a million records)
        frame, changes, findings = res.frame, [PackedFrame(res.changes)], [res.findings]
        del res  # the frame and logs are held above, and let go there
    else:
        frame = frame.copy()
        frame["_company_key"] = frame["company_name"].str.casefold()
    lap("normalize")
    if "validate" in opts.stages:
        say("validate")
        for obj, tpack in targets.items():
            findings.append(validate(frame[frame["_object"] == obj], pack, tpack, as_of))
    lap("validate")

    n = len(frame)
    dd: DedupeResult | None = None
    working = frame
    if "dedupe" in opts.stages and pack.get("dedupe", "enabled", default=True) and n:
        say("dedupe")
        # dedupe takes the normalized frame over and lets its columns go as the survivors replace
        # them (~900 MB at 1M); the run keeps what the ledger, the originals' source lines and
        # the fill counts need
        handoff = Handoff(frame)
        frame = working = frame[list(KEPT_AFTER_DEDUPE)]  # neither holds it now
        dd = dedupe(handoff, loaded.frame, pack, decisions, engine)
        changes.append(dd.changes)
        working = dd.frame
        # the record ids in input order, as the clusters list them: made here, not held through dedupe
        ids = dd.clusters[RECORD_ID].to_numpy(dtype=object)
        cluster_ids = dd.clusters["cluster_id"].to_numpy(dtype=object)
        survivor = ids.copy()
        if len(dd.merge_map):
            survivor[pd.Index(ids).get_indexer(dd.merge_map["loser_id"].to_numpy(dtype=object))] = dd.merge_map["survivor_id"].to_numpy(dtype=object)
        # the export reads the result's merge map and review queue, not its frames: at 1M the
        # losers' rows and the clusters are ~450 MB (the report shows a few losers' names)
        shown = member(dd.losers[RECORD_ID], frozenset(dd.merge_map["loser_id"].head(EXAMPLE_MERGES).tolist()))
        dd = replace(dd, losers=dd.losers[shown], clusters=dd.clusters.iloc[:0], frame=dd.frame.iloc[:0])
    else:
        from crmclean.dedupe.cluster import cluster_id

        ids = frame[RECORD_ID].astype(str).to_numpy(dtype=object)
        survivor = ids.copy()
        cluster_ids = np.array([cluster_id(x) for x in ids], dtype=object)
    lap("dedupe")

    if "lifecycle" in opts.stages and pack.get("lifecycle", "enabled", default=True):
        say("lifecycle")
        lc = lifecycle(working, pack, LifecycleContext(as_of=as_of, suppressions=suppressions, allow_delete=opts.allow_delete))
        working = lc.frame
        changes.append(lc.changes)
        findings.append(lc.findings)
        reason_counts = lc.counts
        del lc  # its frame is working's, which the export lets go of part by part
    else:
        working = working.copy()
        for c in ("_state", "_reason", "_rule_id", "_reasons", "_signals", "_review"):
            working[c] = "exported" if c == "_state" else ""
        reason_counts = {}
    lap("lifecycle")

    # --- ledger: one final state per input record --------------------------------------------
    say("export")
    state = np.full(n, "merged", dtype=object)
    reason = np.full(n, "", dtype=object)
    wrow = working[ROW].to_numpy()
    state[wrow] = working["_state"].to_numpy(dtype=object)
    reason[wrow] = working["_reason"].to_numpy(dtype=object)
    legacy = frame["_source_id"].astype(str).to_numpy(dtype=object)
    hashes: list[str] = []
    for inp in loaded.inputs:
        hashes.extend(_row_hashes(inp.table))
    ledger = pd.DataFrame({
        "source_file": frame[SOURCE_FILE].to_numpy(dtype=object), "source_line": frame[SOURCE_LINE].astype(str).to_numpy(dtype=object),
        "record_id": ids, "legacy_id": legacy, "state": state, "survivor_id": np.where(state == "merged", survivor, ""),
        "cluster_id": cluster_ids, "reason": reason, "row_sha256": np.asarray(hashes, dtype=object),
    })
    rej_rows = []
    for inp in loaded.inputs:
        for r in inp.table.rejects:
            rej_rows.append({"source_file": inp.table.display, "source_line": str(r.line), "record_id": f"{inp.table.display}:{r.line}",
                             "legacy_id": "", "state": "rejected", "survivor_id": "", "cluster_id": "", "reason": r.code,
                             "row_sha256": hashlib.sha256(r.raw.encode("utf-8", "surrogatepass")).hexdigest()})
    if rej_rows:
        ledger = pd.concat([ledger, pd.DataFrame(rej_rows)], ignore_index=True)

    # conservation, per input file, before anything is published
    per_file: dict[str, dict[str, int]] = {}
    for inp in loaded.inputs:
        sub = ledger[ledger["source_file"] == inp.table.display]
        counts = {s: int((sub["state"] == s).sum()) for s in ("exported", "merged", "archived", "deactivated", "deleted", "rejected")}
        per_file[inp.table.display] = {"rows_read": inp.table.rows_read, **counts}
        if sum(counts.values()) != inp.table.rows_read or len(sub) != inp.table.rows_read:
            raise InvariantError("E-CONSERVATION", f"{inp.table.display}: {inp.table.rows_read} rows read but {sum(counts.values())} accounted for",
                                 hint="nothing was published; please report this")
    if ledger["record_id"].duplicated().any():
        raise InvariantError("E-CONSERVATION", "a record appears twice in the ledger", hint="nothing was published; please report this")
    ledger_state = ledger["state"].to_numpy(dtype=object)
    ledger_ids = ledger["record_id"].to_numpy(dtype=object)
    kept_ids = set(ledger_ids[member(ledger_state, ("exported", "deactivated", "archived", "deleted"))])
    bad_survivor = ledger["survivor_id"].to_numpy(dtype=object)[ledger_state == "merged"]
    if len(bad_survivor) and not member(bad_survivor, kept_ids).all():
        raise InvariantError("E-CONSERVATION", "a merged record points at a survivor that is not in the outputs", hint="nothing was published; please report this")
    states = {s: int((ledger_state == s).sum()) for s in ("exported", "deactivated", "merged", "archived", "deleted", "rejected")}

    # --- files ---------------------------------------------------------------------------------
    # Each file goes to staging as it is made, the largest first, and what made it is let go:
    # at a million records the ledger (row hashes included) and the stages' change log are each
    # several hundred MB that the later files need not share memory with.
    files = _Outputs(staging)
    try:
        files["ledger.csv"] = frame_csv_pieces(ledger[list(LEDGER_COLUMNS)])
        del ledger, hashes, ledger_state, ledger_ids, kept_ids, bad_survivor
        # only the columns the import files are made of (not the stages' working columns), in input order
        wanted = {*CANONICAL_FIELDS, ROW, RECORD_ID, "_object", "_state", "_source_id"}
        wanted |= {c for t in (*targets.values(), target) for c in (t.data.get("columns") or {})}
        exportable = working.loc[working["_state"].isin(["exported", "deactivated"]).to_numpy(),
                                 [c for c in working.columns if c in wanted or c.startswith(EXTRA_PREFIX)]]
        if not exportable[ROW].is_monotonic_increasing:
            exportable = exportable.sort_values(ROW, kind="mergesort")
        # archive.csv and the delete manifest need four columns of their rows, and the report the names
        # of the first merges' survivors: the rest of the survivors' frame (~700 MB at 1M) goes now
        set_aside = {st: working.loc[(working["_state"] == st).to_numpy(), [ROW, "_reason", "_rule_id", "_reasons"]] for st in ("archived", "deleted")}
        shown_survivors = frozenset(dd.merge_map["survivor_id"].head(EXAMPLE_MERGES).tolist()) if dd is not None else frozenset()
        working = working.loc[member(working[RECORD_ID], shown_survivors), [RECORD_ID, "first_name", "last_name"]]
        release_memory()
        formula_hits: list[tuple[int, str]] = []
        unmapped_owners: list[str] = []
        # one import file per object type: the first input's object is clean.csv, others clean_<object>.csv
        order = list(dict.fromkeys(i.mapping.object_type for i in loaded.inputs)) or ["contact"]
        for k, obj in enumerate(order):
            part = exportable[exportable["_object"] == obj]
            tgt = to_target(part, targets.get(obj, target), owners)
            findings.append(tgt.findings)
            unmapped_owners.extend(tgt.unmapped_owners)
            clean = tgt.frame
            tpack = targets.get(obj, target)
            clean_ids = part[RECORD_ID].astype(str).to_numpy(dtype=object)
            hits_here = formula_cells(clean)
            formula_hits.extend(hits_here)
            if hits_here:
                findings.append(pd.DataFrame({"record_id": [clean_ids[i] for i, _ in hits_here], "stage": "export", "check_id": "export.formula_cell",
                                              "field": [c for _, c in hits_here], "severity": "warning", "reason": "FORMULA_LIKE_CELL"}))
            if tpack.data.get("formula_guard", "neutralize") == "neutralize":
                escaped, hits = escape_frame(clean)
                if hits:
                    changes.append(pd.DataFrame({"record_id": [clean_ids[i] for i, _ in hits], "stage": "export", "rule_id": "export.formula_guard",
                                                 "field": [c for _, c in hits], "before": [clean[c].iloc[i] for i, c in hits],
                                                 "after": [escaped[c].iloc[i] for i, c in hits], "reason": "FORMULA_NEUTRALIZED"}))
                clean = escaped
            enc = tpack.data.get("encoding", "utf-8")
            eol = "\r\n" if tpack.data.get("line_ending") == "crlf" else "\n"
            files["clean.csv" if k == 0 else f"clean_{obj}.csv"] = frame_csv_pieces(clean, encoding=enc, line_ending=eol)
            del clean, tgt, part
        fill_after = {c: round(float((exportable[c].astype(str).str.strip() != "").mean()), 4) if len(exportable) else 0.0 for c in CANONICAL_FIELDS if c != RECORD_ID}
        del exportable
        release_memory()
        # changes.csv is written from the stages' parts, never concatenated (~700 MB at a million
        # records); the summary's counts and the report's examples (the first changes of each rule,
        # in log order) are taken part by part
        changes = [log for log in changes if len(log)]
        changes_by_rule: Counter[str] = Counter()
        part_examples: list[pd.DataFrame] = []
        for log in changes:  # a packed part is read a piece at a time
            heads = []
            for piece in frame_pieces(log):  # a categorical column counts its unused categories too: those are left out
                changes_by_rule.update({str(k): int(v) for k, v in piece["rule_id"].value_counts().items() if v})
                heads.append(piece.groupby("rule_id", sort=False, observed=True).head(2))
            part_examples.append(heads[0] if len(heads) == 1 else concat(heads, CHANGE_COLUMNS).groupby("rule_id", sort=False).head(2))
        change_count = sum(len(log) for log in changes)
        change_examples = concat(part_examples, CHANGE_COLUMNS)
        files.beside("changes.csv", frames_csv_pieces(changes, CHANGE_COLUMNS, escape_cells=True))
        changes.clear()
        release_memory()

        def with_originals(sel_rows: np.ndarray, extra: dict[str, np.ndarray]) -> pd.DataFrame:
            orig = originals(loaded, np.sort(sel_rows))
            at = orig["_row"].to_numpy(dtype=np.int64)
            out = pd.DataFrame({"record_id": ids[at], "source_file": frame[SOURCE_FILE].to_numpy(dtype=object)[at],
                                "source_line": frame[SOURCE_LINE].astype(str).to_numpy(dtype=object)[at]})
            order = np.argsort(sel_rows, kind="mergesort")
            for k, v in extra.items():
                out[k] = np.asarray(v, dtype=object)[order]
            return pd.concat([out, orig.drop(columns="_row")], axis=1)

        def safe(df: pd.DataFrame) -> Iterable[bytes]:
            return frame_csv_pieces(escape_frame(df)[0])

        arch = set_aside["archived"]
        files["archive.csv"] = safe(with_originals(arch[ROW].to_numpy(), {"reason": arch["_reason"].to_numpy(), "rule_id": arch["_rule_id"].to_numpy(), "reasons": arch["_reasons"].to_numpy()}))
        dele = set_aside["deleted"]
        if len(dele):
            files["delete_manifest.csv"] = safe(with_originals(dele[ROW].to_numpy(), {"reason": dele["_reason"].to_numpy(), "rule_id": dele["_rule_id"].to_numpy(), "reasons": dele["_reasons"].to_numpy()}))
        del arch, dele, set_aside
        rej = pd.DataFrame(rej_rows)
        raw_rej = [{"source_file": inp.table.display, "source_line": str(r.line), "code": r.code, "reason": r.reason, "raw": r.raw} for inp in loaded.inputs for r in inp.table.rejects]
        files["rejects.csv"] = safe(pd.DataFrame(raw_rej, columns=["source_file", "source_line", "code", "reason", "raw"]))
        del rej

        files["clusters.csv"] = frame_csv_pieces(pd.DataFrame({"record_id": ids, "cluster_id": cluster_ids}))
        all_findings = concat(findings, FINDING_COLUMNS)
        findings.clear()
        files["findings.csv"] = safe(all_findings)
        # each survivor's merged records, in input order, by array work (Python dicts over a million
        # ids took ~5 s); a survivor that is not one of the ids (none is) would get no entry
        surv_at = pd.Index(ids).get_indexer(survivor)
        merged_from = np.full(n, "", dtype=object)
        merged_at = np.flatnonzero((state == "merged") & (surv_at >= 0))
        if len(merged_at):
            by_owner = np.argsort(surv_at[merged_at], kind="stable")
            owner, losers = surv_at[merged_at][by_owner], ids[merged_at][by_owner].tolist()
            starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            bounds = np.r_[starts, len(owner)].tolist()
            merged_from[owner[starts]] = [";".join(losers[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        files["crosswalk.csv"] = frame_csv_pieces(pd.DataFrame({
            "legacy_id": legacy, "record_id": ids, "survivor_id": survivor, "survivor_legacy_id": np.where(surv_at >= 0, legacy[np.maximum(surv_at, 0)], ""),
            "merged_from": merged_from, "state": state,
        }))

        # the merged records' originals (~500 MB at a million records) are made once the change log
        # is written: the files above, small in the making, went beside it
        files.wait_beside()
        release_memory()  # what the change log's writer freed (its own malloc arena) goes back first
        # merged.csv: every member of a merged cluster, original values (survivors too, so unmerge is exact)
        if dd is not None and len(dd.merge_map):
            loser_set = set(dd.merge_map["loser_id"].to_numpy(dtype=object))
            surv_set = set(dd.merge_map["survivor_id"].to_numpy(dtype=object))
            members = np.flatnonzero(member(ids, loser_set | surv_set))
            role = np.where(member(ids[members], loser_set), "merged", "survivor")
            files["merged.csv"] = safe(with_originals(members, {"merge_role": role, "survivor_id": np.where(role == "merged", survivor[members], ids[members]),
                                                                "cluster_id": cluster_ids[members]}))
            files["merge_map.csv"] = safe(dd.merge_map)
            files["review.csv"] = safe(dd.review)
        else:
            empty = np.zeros(0, dtype=object)
            files["merged.csv"] = safe(with_originals(np.zeros(0, dtype=np.int64), {"merge_role": empty, "survivor_id": empty, "cluster_id": empty}))
            files["merge_map.csv"] = frame_csv_bytes(pd.DataFrame(columns=["loser_id", "survivor_id", "cluster_id", "score", "match_weight", "evidence"]))
            files["review.csv"] = frame_csv_bytes(dd.review if dd is not None else pd.DataFrame(columns=["left_id", "right_id", "score", "match_weight", "evidence", "guard", "decision"]))

        # --- summary --------------------------------------------------------------------------------
        fill_before = {c: round(float((loaded.frame[c].astype(str).str.strip() != "").mean()), 4) if n else 0.0 for c in CANONICAL_FIELDS if c != RECORD_ID}
        filled = {c: int((frame[c].astype(str).str.strip() != "").sum()) for c in ("email", "phone", "mobile")}
        sizes = pd.Series(cluster_ids).value_counts().value_counts().sort_index() if n else pd.Series(dtype=int)
        pack_hashes = {"rules": pack.sha256, **{f"target:{t.name}": t.sha256 for t in targets.values()}, **{f"source:{i.mapping.pack.name}": i.mapping.pack.sha256 for i in loaded.inputs}}
        run_id = hashlib.sha256(json.dumps({"inputs": [i.table.sha256 for i in loaded.inputs], "packs": pack_hashes, "as_of": as_of.isoformat()}, sort_keys=True).encode()).hexdigest()[:16]
        summary: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "as_of": as_of.isoformat(),
            "status": "ok",
            "versions": _versions(),
            "pack": {"name": pack.name, "sha256": pack.sha256},
            "target": {"name": target_name if target_name in FAMILIES else target.name, "sha256": target.sha256, "per_object": {o: t.name for o, t in targets.items()}},
            "inputs": [{"file": i.table.display, "sha256": i.table.sha256, "encoding": i.table.encoding, "delimiter": i.table.delimiter, "sheet": i.table.sheet,
                        "source": i.mapping.pack.name, "object": i.mapping.object_type, "headers": i.table.headers, "headers_mapped": i.mapping.mapped_headers,
                        "warnings": [w.line() for w in i.table.warnings], **per_file[i.table.display]} for i in loaded.inputs],
            "rows_read": loaded.rows_read,
            "states": states,
            "lifecycle_reasons": reason_counts,
            "findings_by_reason": {str(k): int(v) for k, v in all_findings["reason"].value_counts().sort_index().items()} if len(all_findings) else {},
            "findings_by_severity": {str(k): int(v) for k, v in all_findings["severity"].value_counts().sort_index().items()} if len(all_findings) else {},
            "changes_by_rule": dict(sorted(changes_by_rule.items())),
            "changes": change_count,
            "formula_cells": len(formula_hits),
            "unmapped_owners": sorted(set(unmapped_owners)) if owners is not None else [],
            "filled": filled,
            "fill_rate_before": fill_before,
            "fill_rate_after": fill_after,
            "dedupe": {
                "candidate_pairs": dd.candidate_pairs if dd else 0,
                "max_block_size": dd.max_block if dd else 0,
                "auto_merge_pairs": dd.auto_pairs if dd else 0,
                "review_pairs": len(dd.review) if dd else 0,
                "blocking": [{"rule": r.rule_id, "pairs": r.pairs, "oversized_blocks": r.oversized_blocks, "records_in_oversized_blocks": r.records_in_oversized,
                              "split_pairs": r.split_pairs} for r in dd.rules] if dd else [],
                "cluster_sizes": {str(k): int(v) for k, v in sizes.items()},
            },
        }
        gate_results = evaluate(list(pack.get("gates", default=[]) or []), metrics(summary))
        summary["gates"] = [g.as_dict() for g in gate_results]
        summary["gates_passed"] = all(g.passed for g in gate_results)
        if not summary["gates_passed"]:
            summary["status"] = "gate_failed"
        files["summary.json"] = (json.dumps(summary, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode()
        from crmclean.export.report import render_report

        files["report.html"] = render_report(summary, change_examples, dd, working).encode("utf-8")
    except BaseException:
        files.abort()
        raise
    files.finish()
    lap("export")
    return RunResult(summary=summary, files=files.files, gates=gate_results, timings=timings, names=files.names)
