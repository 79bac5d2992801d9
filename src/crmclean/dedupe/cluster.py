"""Clustering: connected components over auto-merge pairs, with a guard against chaining.

A → B and B → C joins A and C even when A and C conflict (different first names, different
generational suffixes, a cannot-link decision). Components whose members do not hold together
are rebuilt greedily — strongest edges first, an edge kept only if it joins no conflicting
members — and the refused edges go to review. Cluster ids come from the smallest member id, so
they are stable across runs of the same data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from crmclean.dedupe.arrays import run_pairs


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label (smallest member position) for every record.

    Vectorised minimum-label propagation with pointer jumping: each round gives both ends of
    every edge the smaller of their labels, then points each label at its label's label. A label
    is always a member of its record's component, and only when every edge's ends agree does
    nothing change — then each component carries one label, and that is its smallest member
    (which never holds a label but its own). Rounds grow with the log of a component's diameter.
    """
    labels = np.arange(n, dtype=np.int64)
    a, b = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    while len(a):
        low = np.minimum(labels[a], labels[b])
        new = labels.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        while True:  # pointer jumping
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def resolve(
    n: int,
    left: np.ndarray,
    right: np.ndarray,
    strength: np.ndarray,
    conflict: Callable[[int, int], bool],
    max_cluster: int = 50,
    conflicts: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels, and a mask of edges refused by the chaining guard.

    ``conflict(i, j)`` says two records may never share a cluster; ``conflicts``, when given, says
    it of aligned position arrays at once (the same answers). Every pair of members of every
    component is checked; only components that fail are rebuilt edge by edge.
    """
    labels = components(n, left, right)
    refused = np.zeros(len(left), dtype=bool)
    if len(left) == 0:
        return labels, refused
    sizes = np.bincount(labels, minlength=n)
    grouped = np.flatnonzero(sizes[labels] > 1)
    grouped = grouped[np.argsort(labels[grouped], kind="stable")]  # members by component, each in position order
    root_of = labels[grouped]
    too_big = sizes[root_of] > max_cluster
    bad_roots = set(root_of[too_big].tolist())
    # each pair of members of the other components, made as blocking makes a block's pairs
    ma, mb = run_pairs(grouped[~too_big], root_of[~too_big], max_cluster)
    if conflicts is not None:
        bad = np.asarray(conflicts(ma, mb), dtype=bool)
    else:
        bad = np.fromiter((conflict(x, y) for x, y in zip(ma.tolist(), mb.tolist(), strict=True)), dtype=bool, count=len(ma))
    bad_roots.update(labels[ma[bad]].tolist())
    if not bad_roots:
        return labels, refused
    in_bad = np.isin(root_of, list(bad_roots))
    members: dict[int, list[int]] = {}
    for root, pos in zip(root_of[in_bad].tolist(), grouped[in_bad].tolist(), strict=True):
        members.setdefault(root, []).append(pos)
    edge_root = labels[left]
    idx = np.flatnonzero(np.isin(edge_root, list(bad_roots)))
    order = idx[np.lexsort((right[idx], left[idx], -strength[idx]))]
    groups: dict[int, set[int]] = {}
    owner: dict[int, int] = {}
    for e in order.tolist():
        a, b = int(left[e]), int(right[e])
        ga, gb = owner.get(a, a), owner.get(b, b)
        if ga == gb:
            continue
        sa, sb = groups.get(ga, {a}), groups.get(gb, {b})
        if len(sa) + len(sb) > max_cluster or any(conflict(x, y) for x in sa for y in sb):
            refused[e] = True
            continue
        merged_set = sa | sb
        keep, drop = (ga, gb) if ga < gb else (gb, ga)
        groups[keep] = merged_set
        groups.pop(drop, None)
        for x in merged_set:
            owner[x] = keep
    for root in bad_roots:
        for member in members[root]:
            labels[member] = member
    for group in groups.values():
        lab = min(group)
        for x in group:
            labels[x] = lab
    return labels, refused


def cluster_id(record_id: str) -> str:
    """A stable cluster id from the cluster's smallest record id."""
    return "C" + hashlib.sha256(record_id.encode("utf-8")).hexdigest()[:12]


def cluster_ids(record_ids: np.ndarray, labels: np.ndarray | pd.Series) -> np.ndarray:
    """Each record's cluster id: :func:`cluster_id` of the smallest record id sharing its label
    (hashed once per cluster, not once per record)."""
    ids = np.asarray(record_ids, dtype=object)
    if not len(ids):
        return np.zeros(0, dtype=object)
    lab = pd.factorize(np.asarray(labels))[0]
    multi = np.bincount(lab)[lab] > 1
    out = np.empty(len(ids), dtype=object)
    single = np.flatnonzero(~multi)  # a record alone is its own smallest id: no sort needed
    out[single] = np.array([cluster_id(x) for x in ids[single].tolist()], dtype=object)
    if multi.any():
        members, member_lab = ids[multi], lab[multi]
        order = _by_label_then_id(member_lab, members)
        sorted_lab = member_lab[order]
        first = np.r_[True, sorted_lab[1:] != sorted_lab[:-1]]  # each cluster's smallest id leads its run
        names = np.array([cluster_id(x) for x in members[order[first]].tolist()], dtype=object)
        out[multi] = names[np.searchsorted(sorted_lab[first], member_lab)]
    return out


def _by_label_then_id(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The order of the records by label, then by id in string order: sorted in Arrow (UTF-8
    byte order is code point order, as Python compares strings); pandas' sort of a million
    object strings took ~2.5 s. Ids Arrow cannot hold (a lone surrogate) sort in Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        table = pa.table({"l": pa.array(labels, type=pa.int64()), "i": pa.array(ids, type=pa.large_string(), from_pandas=False)})
    except (pa.ArrowException, UnicodeError):
        ranks = pd.factorize(ids, sort=True)[0]
        return np.lexsort((ranks, labels))
    order: np.ndarray = pc.sort_indices(table, sort_keys=[("l", "ascending"), ("i", "ascending")]).to_numpy()
    return order
