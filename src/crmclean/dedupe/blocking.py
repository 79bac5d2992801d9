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

    @property
    def pairs(self) -> int:
        return len(self.left)


def _groups(positions: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, _ = pd.factorize(keys)
    order = np.lexsort((positions, codes))
    return positions[order], codes[order]


def _estimate_rule(rule_id: str, keys: np.ndarray, max_block: int) -> RuleEstimate:
    sizes = pd.Series(keys).value_counts().to_numpy() if len(keys) else np.zeros(0, dtype=np.int64)
    ok = sizes[sizes <= max_block]
    big = sizes[sizes > max_block]
    return RuleEstimate(rule_id, len(sizes), int((ok * (ok - 1) // 2).sum()), len(big), int(big.sum()))


def estimate(features: pd.DataFrame, rules: list[dict[str, Any]], max_block: int) -> list[RuleEstimate]:
    """Candidate pairs each rule would generate, before generating any."""
    return [_estimate_rule(str(rule["id"]), blocking_keys(features, list(rule["on"]))[1], max_block) for rule in rules]


def candidate_pairs(features: pd.DataFrame, rules: list[dict[str, Any]], max_block: int,
                    budget: Callable[[int], None] | None = None, focus: np.ndarray | None = None) -> BlockingResult:
    """Union of every rule's pairs. ``budget(planned_pairs)`` is called before any pair is made;
    with ``focus`` (a mask of records) only blocks holding a focus record yield pairs."""
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    estimates = []
    keyed = [(rule, *blocking_keys(features, list(rule["on"]))) for rule in rules]
    if budget is not None:
        budget(sum(_estimate_rule(str(rule["id"]), keys, max_block).pairs for rule, _positions, keys in keyed))
    for rule, positions, keys in keyed:
        pos, codes = _groups(positions, keys)
        sizes = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
        if focus is not None and len(codes):
            hot_blocks = np.zeros(len(sizes), dtype=bool)
            hot_blocks[codes[focus[pos]]] = True
            sel = hot_blocks[codes]
            pos, codes = pos[sel], codes[sel]
        too_big = sizes > max_block
        keep = ~too_big[codes] if len(codes) else np.zeros(0, dtype=bool)
        pos, codes = pos[keep], codes[keep]
        n_pairs = 0
        for k in range(1, max_block):
            if len(codes) <= k:
                break
            same = codes[k:] == codes[:-k]
            if not same.any():
                break
            a, b = pos[:-k][same], pos[k:][same]
            lefts.append(np.minimum(a, b))
            rights.append(np.maximum(a, b))
            n_pairs += int(same.sum())
        estimates.append(RuleEstimate(str(rule["id"]), int((sizes > 0).sum()), n_pairs, int(too_big.sum()), int(sizes[too_big].sum())))
    if not lefts:
        return BlockingResult(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), estimates)
    left = np.concatenate(lefts).astype(np.int64)
    right = np.concatenate(rights).astype(np.int64)
    distinct = left != right
    left, right = left[distinct], right[distinct]
    combined = np.unique(left * (int(right.max()) + 1) + right) if len(left) else np.zeros(0, dtype=np.int64)
    width = int(right.max()) + 1 if len(right) else 1
    return BlockingResult(combined // width, combined % width, estimates)
