"""Blocking: candidate pairs from several rules, unioned — near-linear, with a budget.

For each rule the records are sorted by key; pairs are (i, i+k) within a run of equal keys for
k = 1 … max_block_size-1, each step a vectorised comparison, so the work is O(n · max_block).
A block larger than ``max_block_size`` (a switchboard number, a very common surname) yields no
pairs for that rule — its records still meet through the other rules — and is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crmclean.dedupe.arrays import sorted_unique
from crmclean.dedupe.features import blocking_keys


@dataclass
class RuleEstimate:
    rule_id: str
    keys: int
    pairs: int
    oversized_blocks: int
    records_in_oversized: int


@dataclass
class BlockingResult:
    left: np.ndarray  # record positions, left < right
    right: np.ndarray
    rules: list[RuleEstimate] = field(default_factory=list)
    max_block: int = 0  # the block-size limit used (the pack's, or tightened to fit the budget)
    # per rule, the (record positions, block keys) of the blocks over the limit: merges may bring
    # one under it, and its records then meet for the first time in a later pass
    oversized: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return len(self.left)


def _groups(positions: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes, _ = pd.factorize(keys)
    order = np.lexsort((positions, codes))
    return positions[order], codes[order], keys[order]


def block_sizes(keys: np.ndarray) -> np.ndarray:
    """Records per block key (the block-size histogram every estimate is made from)."""
    return pd.Series(keys).value_counts().to_numpy() if len(keys) else np.zeros(0, dtype=np.int64)


def estimate_rule(rule_id: str, sizes: np.ndarray, max_block: int) -> RuleEstimate:
    ok = sizes[sizes <= max_block]
    big = sizes[sizes > max_block]
    return RuleEstimate(rule_id, len(sizes), int((ok * (ok - 1) // 2).sum()), len(big), int(big.sum()))


def keyed_rules(features: pd.DataFrame, rules: list[dict[str, Any]]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(rule id, record positions, block keys) per rule."""
    cache: dict[str, np.ndarray] = {}
    return [(str(rule["id"]), *blocking_keys(features, list(rule["on"]), cache)) for rule in rules]


RulePairs = tuple[np.ndarray, np.ndarray, tuple[int, int, int, int], tuple[np.ndarray, np.ndarray]]


def rule_pairs(positions: np.ndarray, keys: np.ndarray, max_block: int, focus: np.ndarray | None = None,
               opened: np.ndarray | None = None) -> RulePairs:
    """Pairs within each block of one rule, (keys, pairs, oversized blocks, records in them), and
    the (positions, keys) of the records in oversized blocks.

    With ``focus`` (a mask of records), only the pairs that touch a focus record, plus every
    pair of a block holding an ``opened`` record (a block that has newly come under the limit).
    Exact for any subset of the rows that holds whole blocks — so a distributed engine can run it
    on each partition after shuffling by block key and add the counts up.
    """
    pos, codes, sorted_keys = _groups(positions, keys)
    sizes = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    big = sizes[codes] > max_block if len(codes) else np.zeros(0, dtype=bool)
    oversized = (pos[big], sorted_keys[big])
    open_blocks = np.zeros(len(sizes), dtype=bool)
    if focus is not None and len(codes):
        hot_blocks = np.zeros(len(sizes), dtype=bool)
        hot_blocks[codes[focus[pos]]] = True
        if opened is not None:
            open_blocks[codes[opened[pos]]] = True
        sel = (hot_blocks | open_blocks)[codes]
        pos, codes = pos[sel], codes[sel]
    too_big = sizes > max_block
    keep = ~too_big[codes] if len(codes) else np.zeros(0, dtype=bool)
    pos, codes = pos[keep], codes[keep]
    lefts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    rights: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    for k in range(1, max_block):
        if len(codes) <= k:
            break
        same = codes[k:] == codes[:-k]
        if not same.any():
            break
        a, b = pos[:-k][same], pos[k:][same]
        if focus is not None:  # pairs of two other records in a focus block were compared before
            near = focus[a] | focus[b] | open_blocks[codes[k:][same]]
            a, b = a[near], b[near]
        lefts.append(np.minimum(a, b))
        rights.append(np.maximum(a, b))
    left, right = np.concatenate(lefts).astype(np.int64), np.concatenate(rights).astype(np.int64)
    return left, right, (int((sizes > 0).sum()), len(left), int(too_big.sum()), int(sizes[too_big].sum())), oversized


def reopened(oversized: list[tuple[np.ndarray, np.ndarray]], gone: np.ndarray, max_block: int) -> list[np.ndarray]:
    """Per rule, the positions of the records in blocks over ``max_block`` that fit without the
    records ``gone`` (a mask of positions), given each rule's oversized (positions, keys)."""
    out: list[np.ndarray] = []
    for positions, keys in oversized:
        if not len(keys):
            out.append(np.zeros(0, dtype=np.int64))
            continue
        codes, _ = pd.factorize(keys)
        stays = ~gone[positions]
        kept = np.bincount(codes[stays], minlength=int(codes.max()) + 1)
        fits = (kept <= max_block) & (kept >= 2)
        out.append(np.sort(positions[fits[codes] & stays]))
    return out


def union_pairs(lefts: list[np.ndarray], rights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (left < right) pairs over all rules, sorted — the same order whoever made them."""
    if not lefts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    left = np.concatenate(lefts).astype(np.int64)
    right = np.concatenate(rights).astype(np.int64)
    distinct = left != right
    left, right = left[distinct], right[distinct]
    if not len(left):
        return left, right
    width = int(right.max()) + 1
    combined = sorted_unique(left * width + right)
    return combined // width, combined % width


Keyed = list[tuple[str, np.ndarray, np.ndarray]]
Budget = Callable[[list[np.ndarray], int], int]  # (block sizes per rule, block-size limit) -> the limit to use (or raise)


def check_budget(keyed: Keyed, max_block: int, budget: Budget | None) -> int:
    return budget([block_sizes(keys) for _r, _p, keys in keyed], max_block) if budget is not None else max_block


def planned_pairs(sizes: list[np.ndarray], max_block: int) -> int:
    return sum(estimate_rule("", s, max_block).pairs for s in sizes)


def fit_block_size(sizes: list[np.ndarray], max_block: int, max_pairs: int) -> int:
    """The largest block-size limit ≤ ``max_block`` whose planned pairs fit ``max_pairs`` (0: none).

    Planned pairs grow with the limit (a block of s records gives s(s-1)/2 pairs when s ≤ limit),
    so the limit is found from the block-size histogram without generating a pair.
    """
    sizes_all = np.sort(np.concatenate(sizes or [np.zeros(0, dtype=np.int64)]))
    cum = np.concatenate([[0], np.cumsum(sizes_all * (sizes_all - 1) // 2)])
    for limit in range(max_block, 1, -1):
        if int(cum[np.searchsorted(sizes_all, limit, side="right")]) <= max_pairs:
            return limit
    return 0


def candidate_pairs(features: pd.DataFrame, rules: list[dict[str, Any]], max_block: int,
                    budget: Budget | None = None, focus: np.ndarray | None = None,
                    opened: list[np.ndarray | None] | None = None) -> BlockingResult:
    """Union of every rule's pairs. ``budget(keyed, max_block)`` is asked before any pair is made
    and returns the block-size limit to use; with ``focus`` (a mask of records) only pairs
    touching a focus record, and those of the blocks holding a record ``opened`` (per rule, a
    mask) — see :func:`rule_pairs`."""
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    estimates = []
    keyed = keyed_rules(features, rules)
    max_block = check_budget(keyed, max_block, budget)
    oversized = []
    for r, (rule_id, positions, keys) in enumerate(keyed):
        left, right, counts, big = rule_pairs(positions, keys, max_block, focus, opened[r] if opened else None)
        lefts.append(left)
        rights.append(right)
        estimates.append(RuleEstimate(rule_id, *counts))
        oversized.append(big)
    left, right = union_pairs(lefts, rights)
    return BlockingResult(left, right, estimates, max_block, oversized)
