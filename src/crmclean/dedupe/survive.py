"""Survivorship: which record survives a cluster, and the value of each field on the golden record.

The pack orders the survivor strategies (most recent activity, most complete, oldest created,
source priority); the record id is always the final tie-break, so the choice is a total order.
Per-field rules: fill_blanks (default), survivor_only, most_recent, longest, union, any_true —
opt-out and do-not-call use any_true: any opted out ⇒ opted out. Every value the golden record
takes from another member is recorded with the member it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmclean.model import (
    CANONICAL_FIELDS,
    CHANGE_COLUMNS,
    RECORD_ID,
    SOURCE_FILE,
    changes_frame,
    concat,
)

NOT_MERGED = ("record_id",)


@dataclass(frozen=True)
class Ranked:
    """The members of multi-record clusters, survivor-first within each cluster: positions into
    ``frame`` (whose rows are not copied: the members' rows, taken in this order, were ~500 MB
    at a million records, and survivorship reads one column at a time) and each one's cluster
    label. The clusters' members are consecutive."""

    frame: pd.DataFrame
    order: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.order)

    def column(self, name: str) -> pd.Series:
        return self.frame[name].iloc[self.order]

    def text(self, name: str) -> pa.Array | pa.ChunkedArray | None:
        """The members' values of a text column as Arrow strings, in member order; None when the
        column is not Arrow text without nulls."""
        series = self.frame[name]
        if not (isinstance(series.dtype, pd.StringDtype) and hasattr(series.array, "__arrow_array__")):
            return None
        values = pa.array(series.array)
        if values.null_count or not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            return None
        return values.take(pa.array(self.order))

    def starts(self) -> np.ndarray:
        """Where each cluster's run of members begins (its survivor)."""
        lab = self.labels
        return np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]]) if len(lab) else np.zeros(0, dtype=np.int64)


def rank_members(frame: pd.DataFrame, labels: np.ndarray, strategies: list[str], source_priority: list[str]) -> Ranked:
    """Members of multi-record clusters, sorted survivor-first within each cluster. The order is
    found on the sort keys alone."""
    counts = np.bincount(labels, minlength=len(frame))
    at = np.flatnonzero(counts[labels] > 1)

    def column(name: str) -> pd.Series:
        return frame[name].iloc[at].reset_index(drop=True)

    sort = pd.DataFrame({"_label": labels[at]})
    keys: list[str] = ["_label"]
    asc: list[bool] = [True]
    for s in strategies:
        if s == "most_recent_activity":
            activity = column("last_activity_at")
            sort["_k_act"] = activity.where(activity != "", column("modified_at")).replace("", "0000")
            keys.append("_k_act")
            asc.append(False)
        elif s == "most_complete":
            sort["_k_full"] = sum((column(c).astype(str) != "").astype(int) for c in CANONICAL_FIELDS)
            keys.append("_k_full")
            asc.append(False)
        elif s in ("oldest_created", "newest_created"):
            sort["_k_created"] = column("created_at").replace("", "9999" if s == "oldest_created" else "0000")
            keys.append("_k_created")
            asc.append(s == "oldest_created")
        elif s == "source_priority":
            rank = {name: i for i, name in enumerate(source_priority)}
            sort["_k_src"] = column(SOURCE_FILE).map(lambda v, r=rank: r.get(v, len(r)))
            keys.append("_k_src")
            asc.append(True)
    sort[RECORD_ID] = column(RECORD_ID)
    keys.append(RECORD_ID)
    asc.append(True)
    order = at[sort.sort_values(keys, ascending=asc, kind="mergesort").index.to_numpy()]
    return Ranked(frame, order, labels[order])


def golden_records(ranked: Ranked, rules: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(golden survivor rows indexed like the frame, provenance changes).

    ``ranked`` holds each cluster's members together, survivor first (as :func:`rank_members`
    returns them), so every rule but ``union`` is a numpy reduction over the cluster runs: the
    position of the member whose value the golden record takes, per cluster.
    """
    if not len(ranked):
        return ranked.frame.iloc[:0], concat([], CHANGE_COLUMNS)
    n = len(ranked)
    starts = ranked.starts()
    boundary = np.zeros(n, dtype=bool)
    boundary[starts] = True
    group = np.cumsum(boundary) - 1  # each member's cluster, 0..len(starts)-1
    rows = np.arange(n)
    ids = ranked.column(RECORD_ID).to_numpy(dtype=object)
    survivors = ranked.frame.iloc[ranked.order[starts]]
    golden = survivors.copy()
    changes = []

    def first_where(hit: np.ndarray) -> np.ndarray:
        """Per cluster, the first member where ``hit`` holds (``n`` when none does)."""
        return np.asarray(np.minimum.reduceat(np.where(hit, rows, n), starts))

    def at(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
        out = np.full(len(pos), "", dtype=object)
        found = pos < n
        out[found] = values[pos[found]]
        return out

    for field in CANONICAL_FIELDS:
        if field in NOT_MERGED:
            continue
        rule = rules.get(field, "fill_blanks")
        if rule == "survivor_only":
            continue
        taken = ranked.text(field) if rule == "fill_blanks" else None
        if taken is not None:
            # the golden value is the first filled member's: it differs from the survivor's
            # exactly where the survivor is blank and another member is not, so only those
            # values leave Arrow (each column as Python strings was ~0.1 s at a million records)
            pos = first_where(pc.not_equal(taken, "").to_numpy(zero_copy_only=False))
            fill = (pos < n) & (pos != starts)
            if fill.any():
                donors = pos[fill]
                new_values = taken.take(pa.array(donors)).to_numpy(zero_copy_only=False)
                old_values = taken.take(pa.array(starts[fill])).to_numpy(zero_copy_only=False)
                golden.loc[survivors.index[fill], field] = new_values
                changes.append(changes_frame(pd.Series(ids[starts][fill]), stage="dedupe", rule_id=f"survivorship.{rule}", field_name=field,
                                             before=pd.Series(old_values), after=pd.Series(new_values), reason=pd.Series("from:" + ids[donors])))
            continue
        col = ranked.column(field).astype(str).to_numpy(dtype=object)
        filled = col != ""
        if rule == "fill_blanks":
            new = at(col, first_where(filled))
        elif rule == "most_recent":  # the greatest non-blank value (ISO timestamps order as text)
            codes, _uniq = pd.factorize(np.where(filled, col, ""), sort=True)
            top = np.maximum.reduceat(np.where(filled, codes, -1), starts)
            new = at(col, first_where(filled & (codes == top[group])))
        elif rule == "longest":
            lengths = np.fromiter((len(v) for v in col), dtype=np.int64, count=n)
            new = at(col, first_where(lengths == np.maximum.reduceat(lengths, starts)[group]))
        elif rule == "any_true":
            new = at(col, first_where(filled))
            new[np.logical_or.reduceat(col == "true", starts)] = "true"
        elif rule == "union":
            new = _union(col, filled, group, len(starts))
        else:  # validated by the pack schema; unreachable
            continue
        old = col[starts]
        diff = new != old
        if not diff.any():
            continue
        where = survivors.index[diff]
        golden.loc[where, field] = new[diff]
        if rule == "union":  # every member whose value is one of the joined ones
            bounds = np.r_[starts, n]
            donor = np.array(["from:" + ",".join(str(ids[r]) for r in range(bounds[k], bounds[k + 1]) if col[r] and col[r] in parts)
                              for k, parts in ((k, set(new[k].split(" | "))) for k in np.flatnonzero(diff).tolist())], dtype=object)
        else:  # the first member holding the golden value
            donor = "from:" + at(ids, first_where(col == new[group]))[diff]
        changes.append(changes_frame(pd.Series(ids[starts][diff]), stage="dedupe", rule_id=f"survivorship.{rule}", field_name=field,
                                     before=pd.Series(old[diff]), after=pd.Series(new[diff]), reason=pd.Series(donor)))
    return golden, concat(changes, CHANGE_COLUMNS)


def _union(col: np.ndarray, filled: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """Per cluster, its distinct non-blank values in member order joined by ' | ' ('' when none)."""
    new = np.full(groups, "", dtype=object)
    at = np.flatnonzero(filled)
    if not len(at):
        return new
    codes, _uniq = pd.factorize(col[at])
    key = group[at].astype(np.int64) * (int(codes.max()) + 1) + codes
    order = np.argsort(key, kind="stable")
    first = np.r_[True, key[order][1:] != key[order][:-1]]
    distinct = np.sort(at[order[first]])  # each value's first holder in its cluster, in member order
    g = group[distinct]
    single = np.bincount(g, minlength=groups)[g] == 1
    new[g[single]] = col[distinct[single]]
    joined: dict[int, list[str]] = {}
    for k, v in zip(g[~single].tolist(), col[distinct[~single]].tolist(), strict=True):
        joined.setdefault(k, []).append(v)
    for k, values in joined.items():
        new[k] = " | ".join(values)
    return new
