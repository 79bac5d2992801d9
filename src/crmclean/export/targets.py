"""Canonical records → the target CRM's import layout (headers, formats, picklists, owners)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crmclean.model import EXTRA_PREFIX, FINDING_COLUMNS, RECORD_ID, concat, findings_frame, member
from crmclean.rules.packs import Pack
from crmclean.validate import picklist_value


@dataclass
class TargetOutput:
    frame: pd.DataFrame
    findings: pd.DataFrame
    unmapped_owners: list[str] = field(default_factory=list)


def load_owners(path: str) -> dict[str, str]:
    """An owners table: CSV with old owner → new owner (email or user id)."""
    from crmclean.errors import InputError
    from crmclean.io.csvread import read_csv

    table = read_csv(path)
    cols = [c for c in table.headers]
    if len(cols) < 2:
        raise InputError("E-OWNERS-COLUMNS", "owners table needs two columns: old owner, new owner", location=table.display,
                         hint="e.g. header 'old_owner,new_owner'")
    old, new = table.frame[cols[0]].str.strip(), table.frame[cols[1]].str.strip()
    return {o: n for o, n in zip(old, new, strict=True) if o}


def _format_date(value: str, date_fmt: str, datetime_fmt: str) -> str:
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return dt.date.fromisoformat(value).strftime(date_fmt)
        except ValueError:
            return value
    if len(value) >= 20 and value.endswith("Z") and value[10] == "T":
        try:
            stamp = dt.datetime.fromisoformat(value[:-1])
        except ValueError:
            return value
        return stamp.strftime(datetime_fmt)
    return value


def _umap(series: pd.Series, fn: Any) -> np.ndarray:
    codes, uniques = pd.factorize(series.astype(str), use_na_sentinel=False)
    table: np.ndarray = np.array([fn(u) for u in uniques], dtype=object)
    return table[codes] if len(codes) else np.empty(0, dtype=object)


def to_target(frame: pd.DataFrame, target: Pack, owners: dict[str, str] | None = None) -> TargetOutput:
    """Lay out exported/deactivated records for the target; report what the target would refuse."""
    cols: dict[str, str] = target.data.get("columns", {})
    dates = target.data.get("dates", {})
    date_fmt, datetime_fmt = dates.get("date", "%Y-%m-%d"), dates.get("datetime", "%Y-%m-%dT%H:%M:%SZ")
    bools = target.data.get("booleans", {})
    picklists = target.data.get("picklists", {}) or {}
    out: dict[str, Any] = {}
    findings = []
    unmapped: list[str] = []
    for canonical, header in cols.items():
        values = frame[canonical].astype(str)
        if canonical == RECORD_ID:
            legacy = frame["_source_id"].astype(str) if "_source_id" in frame else values
            values = legacy.where(legacy.str.strip() != "", values)
        elif canonical in ("created_at", "modified_at", "last_activity_at"):
            values = pd.Series(_umap(values, lambda v: _format_date(v, date_fmt, datetime_fmt)), index=frame.index)
        elif canonical in ("email_opt_out", "do_not_call") and bools:
            t, f = str(bools.get("true", "true")), str(bools.get("false", "false"))
            values = values.map(lambda v, t=t, f=f: t if v == "true" else f if v == "false" else v)
        elif canonical in picklists:
            spec = picklists[canonical]
            values = pd.Series(_umap(values, lambda v, s=spec: picklist_value(v, s)[0] if v else v), index=frame.index)
        elif canonical == "owner_ref" and owners is not None:
            known = pd.Series(member(values, owners), index=values.index) | (values.str.strip() == "")
            if (~known).any():
                unmapped = sorted(set(values[~known]))
                findings.append(findings_frame(frame.loc[~known, RECORD_ID], stage="export", check_id="export.owner_unmapped",
                                               field_name="owner_ref", severity="error", reason="OWNER_UNMAPPED"))
            values = values.map(lambda v: owners.get(v, v))
        out[header] = values.array  # Arrow text stays Arrow: a Python string per cell costs ~1.5 GB at 1M records
    states = frame["_state"].astype(str).to_numpy(dtype=object) if "_state" in frame else np.full(len(frame), "exported", dtype=object)
    inactive = target.data.get("inactive")
    active = target.data.get("active")
    status_spec: dict[str, str] | None = inactive or active
    if status_spec:
        column = status_spec["column"]
        current = np.asarray(out.get(column, np.full(len(frame), "", dtype=object)), dtype=object)
        if active:
            current = np.where(states == "exported", active["value"], current)
        if inactive:
            current = np.where(states == "deactivated", inactive["value"], current)
        out[column] = current
    elif (states == "deactivated").any():
        out["crmclean_status"] = np.where(states == "deactivated", "inactive", "active")
    result = pd.DataFrame(out, index=frame.index)
    if target.data.get("extra_columns", "drop") == "keep":
        for c in frame.columns:
            if c.startswith(EXTRA_PREFIX):
                name = c[len(EXTRA_PREFIX):]
                while name in result.columns:
                    name += " (source)"
                result[name] = frame[c].astype(str).array
    return TargetOutput(frame=result.reset_index(drop=True), findings=concat(findings, FINDING_COLUMNS), unmapped_owners=unmapped)
