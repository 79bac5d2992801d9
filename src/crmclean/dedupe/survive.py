"""Survivorship: which record survives a cluster, and the value of each field on the golden record.

The pack orders the survivor strategies (most recent activity, most complete, oldest created,
source priority); the record id is always the final tie-break, so the choice is a total order.
Per-field rules: fill_blanks (default), survivor_only, most_recent, longest, union, any_true —
opt-out and do-not-call use any_true: any opted out ⇒ opted out. Every value the golden record
takes from another member is recorded with the member it came from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmclean.model import (
    CANONICAL_FIELDS,
    CHANGE_COLUMNS,
    RECORD_ID,
    SOURCE_FILE,
    changes_frame,
    concat,
)

NOT_MERGED = ("record_id",)


def rank_members(frame: pd.DataFrame, labels: np.ndarray, strategies: list[str], source_priority: list[str]) -> pd.DataFrame:
    """Members of multi-record clusters, sorted survivor-first within each cluster."""
    counts = np.bincount(labels, minlength=len(frame))
    multi = counts[labels] > 1
    sub = frame.loc[multi, :].copy()
    sub["_label"] = labels[multi]
    keys: list[str] = ["_label"]
    asc: list[bool] = [True]
    for s in strategies:
        if s == "most_recent_activity":
            sub["_k_act"] = sub["last_activity_at"].where(sub["last_activity_at"] != "", sub["modified_at"]).replace("", "0000")
            keys.append("_k_act")
            asc.append(False)
        elif s == "most_complete":
            sub["_k_full"] = sum((sub[c].astype(str) != "").astype(int) for c in CANONICAL_FIELDS)
            keys.append("_k_full")
            asc.append(False)
        elif s in ("oldest_created", "newest_created"):
            sub["_k_created"] = sub["created_at"].replace("", "9999" if s == "oldest_created" else "0000")
            keys.append("_k_created")
            asc.append(s == "oldest_created")
        elif s == "source_priority":
            rank = {name: i for i, name in enumerate(source_priority)}
            sub["_k_src"] = sub[SOURCE_FILE].map(lambda v, r=rank: r.get(v, len(r)))
            keys.append("_k_src")
            asc.append(True)
    keys.append(RECORD_ID)
    asc.append(True)
    ranked: pd.DataFrame = sub.sort_values(keys, ascending=asc, kind="mergesort")
    return ranked


def golden_records(ranked: pd.DataFrame, rules: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(golden survivor rows indexed like the frame, provenance changes)."""
    if ranked.empty:
        return ranked, concat([], CHANGE_COLUMNS)
    survivors = ranked.groupby("_label", sort=False).head(1)
    golden = survivors.copy()
    changes = []
    for field in CANONICAL_FIELDS:
        if field in NOT_MERGED:
            continue
        rule = rules.get(field, "fill_blanks")
        col = ranked[field].astype(str)
        filled = col.where(col != "")
        if rule == "survivor_only":
            continue
        if rule == "fill_blanks":
            value = filled.groupby(ranked["_label"], sort=False).first()
        elif rule == "most_recent":
            value = filled.groupby(ranked["_label"], sort=False).max()
        elif rule == "longest":
            lengths = col.str.len()
            idx = lengths.groupby(ranked["_label"], sort=False).idxmax()
            value = pd.Series(col.loc[idx.to_numpy()].to_numpy(), index=idx.index).where(lambda s: s != "")
        elif rule == "any_true":
            is_true = (col == "true").groupby(ranked["_label"], sort=False).any()
            first = filled.groupby(ranked["_label"], sort=False).first()
            value = first.where(~is_true, "true")
        elif rule == "union":
            value = filled.dropna().groupby(ranked["_label"][filled.notna()], sort=False).agg(lambda s: " | ".join(dict.fromkeys(s)))
        else:  # validated by the pack schema; unreachable
            continue
        new = survivors["_label"].map(value).astype(object).fillna("").astype(str)
        new.index = survivors.index
        old = survivors[field].astype(str)
        diff = new != old
        if diff.any():
            golden.loc[diff, field] = new[diff]
            donor = _donors(ranked, field, survivors.loc[diff, "_label"], new[diff], rule)
            changes.append(changes_frame(survivors.loc[diff, RECORD_ID], stage="dedupe", rule_id=f"survivorship.{rule}",
                                         field_name=field, before=old[diff], after=new[diff], reason=donor))
    return golden, concat(changes, CHANGE_COLUMNS)


def _donors(ranked: pd.DataFrame, field: str, labels: pd.Series, values: pd.Series, rule: str) -> pd.Series:
    """'from:<record_id>' — the member(s) the golden value came from (vectorised)."""
    cand = pd.DataFrame({"_label": ranked["_label"].to_numpy(), "v": ranked[field].astype(str).to_numpy(), "id": ranked[RECORD_ID].to_numpy()})
    target = pd.DataFrame({"_label": labels.to_numpy(), "t": values.to_numpy()})
    m = cand[cand["_label"].isin(set(target["_label"]))].merge(target, on="_label", how="inner")
    if rule == "union":
        hit = [v != "" and v in t.split(" | ") for v, t in zip(m["v"], m["t"], strict=True)]
        donors = m[hit].groupby("_label", sort=False)["id"].agg(",".join)
    else:
        donors = m[m["v"] == m["t"]].groupby("_label", sort=False)["id"].first()
    found = labels.map(donors).astype(object)  # all missing when no member holds the value: float NaN before the cast
    return ("from:" + found.where(found.notna(), "")).astype(object)
