"""Composes the stages and keeps the ledger: one final state per input record."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crmclean.errors import UsageError
from crmclean.io import LoadOptions, RawTable, load_table
from crmclean.io.mapping import SourceMapping, map_headers, to_canonical
from crmclean.model import RECORD_ID, ROW, SOURCE_FILE, SOURCE_LINE
from crmclean.normalize import SourceInfo


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


def _display_names(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def load_inputs(paths: list[str | Path], options: LoadOptions | None = None, source: str | None = None) -> Loaded:
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
    return Loaded(inputs=inputs, frame=frame)


def assign_record_ids(frame: pd.DataFrame) -> pd.Series:
    source_ids = frame["_source_id"].astype(str).str.strip()
    counts = source_ids.map(source_ids.value_counts())
    fallback = frame[SOURCE_FILE].astype(str) + ":" + frame[SOURCE_LINE].astype(str)
    usable = (source_ids != "") & (counts == 1) & ~source_ids.isin(set(fallback))
    return source_ids.where(usable, fallback).astype(object)
