"""Accuracy against the generator's ground truth: dedupe pairs, normalized values, signals."""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Any

import pandas as pd


def pairs_of(groups: pd.Series) -> set[tuple[str, str]]:
    """All unordered record pairs that share a group label."""
    out: set[tuple[str, str]] = set()
    for _, members in groups.groupby(groups):
        ids = sorted(members.index)
        out.update(combinations(ids, 2))
    return out


def dedupe_accuracy(clusters: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    pred = clusters.set_index("record_id")["cluster_id"]
    true = truth.set_index("record_id")["entity_id"].reindex(pred.index)
    pred_pairs = pairs_of(pred)
    true_pairs = pairs_of(true)
    tp = len(pred_pairs & true_pairs)
    fp_pairs = pred_pairs - true_pairs
    precision = tp / len(pred_pairs) if pred_pairs else 1.0
    recall = tp / len(true_pairs) if true_pairs else 1.0
    group = truth.set_index("record_id")["group"].fillna("")
    fp_groups = Counter(("hard-negative:" + group[a].split("-")[0]) if group[a] and group[a] == group[b] else "other" for a, b in fp_pairs)
    return {"true_pairs": len(true_pairs), "predicted_pairs": len(pred_pairs), "true_positive": tp,
            "precision": round(precision, 5), "recall": round(recall, 5), "false_merges": len(fp_pairs),
            "false_merge_kinds": dict(fp_groups)}


def normalize_accuracy(frame: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    t = truth.set_index("record_id")
    f = frame.set_index("record_id")
    common = t.index.intersection(f.index)
    out: dict[str, Any] = {}
    exp_phone = t.loc[common, "expected_phone"].fillna("")
    got_phone = f.loc[common, "phone"].astype(str).str.split(";").str[0]
    has = exp_phone != ""
    out["phones_labelled"] = int(has.sum())
    out["phone_exact"] = round(float((got_phone[has] == exp_phone[has]).mean()), 5) if has.any() else 1.0
    exp_email = t.loc[common, "expected_email"].fillna("")
    got_email = f.loc[common, "email"].astype(str)
    has = exp_email != ""
    out["emails_labelled"] = int(has.sum())
    out["email_exact"] = round(float((got_email[has] == exp_email[has]).mean()), 5) if has.any() else 1.0
    return out


def signal_accuracy(predicted: pd.Series, truth: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per signal precision / recall: ``predicted`` maps record_id → ';'-joined signals found."""
    t = truth.set_index("record_id")["signal"].fillna("")
    p = predicted.reindex(t.index).fillna("")
    out = {}
    for sig in sorted({s for s in t if s}):
        got = p.str.split(";").apply(lambda xs, s=sig: s in xs)
        want = t == sig
        tp = int((got & want).sum())
        out[sig] = {"labelled": int(want.sum()), "found": int(got.sum()),
                    "precision": round(tp / max(int(got.sum()), 1), 4), "recall": round(tp / max(int(want.sum()), 1), 4)}
    return out
