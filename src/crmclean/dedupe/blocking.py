"""Blocking: candidate pairs from several rules, unioned — near-linear, with a budget.

For each rule the records are sorted by key; pairs are (i, i+k) within a run of equal keys for
k = 1 … max_block_size-1, each step a vectorised comparison, so the work is O(n · max_block).
A block larger than ``max_block_size`` (a switchboard number, a very common surname) yields no
pairs for that rule — its records still meet through the other rules — and is reported.

A rule may also name a ``split`` key (hierarchical blocking): an oversized block is then cut by
that key (a switchboard's records by their name initials) and each piece within the limit yields
its pairs — colleagues on one line with a misspelt or swapped name still meet, at a few pairs per
piece instead of the block's square. The budget counts those pairs with the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crmclean.dedupe.arrays import run_pairs, sorted_unique
from crmclean.dedupe.features import blocking_keys


@dataclass
class RuleEstimate:
    rule_id: str
    keys: int
    pairs: int  # the pieces' pairs included
    oversized_blocks: int
    records_in_oversized: int
    split_pairs: int = 0  # pairs from the pieces of oversized blocks cut by the rule's split key


@dataclass
class BlockingResult:
    left: np.ndarray  # record positions, left < right
    right: np.ndarray
    rules: list[RuleEstimate] = field(default_factory=list)
    max_block: int = 0  # the block-size limit used (the pack's, or tightened to fit the budget)
    # per rule, the (record positions, block keys) of the blocks — and pieces — over the limit:
    # merges may bring one under it, and its records then meet for the first time in a later pass
    oversized: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return len(self.left)


@dataclass
class BlockSizes:
    """One rule's block-size histogram, which every estimate is made from: records per block and,
    for a rule with a split key, per piece of a block (its records, and its block's)."""

    sizes: np.ndarray
    piece_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    piece_parents: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def pairs(self, limit: int) -> tuple[int, int]:
        """(pairs of the blocks within ``limit``, pairs of the pieces within it of blocks over it)."""
        ok = self.sizes[self.sizes <= limit]
        pieces = self.piece_sizes[(self.piece_sizes <= limit) & (self.piece_parents > limit)]
        return int((ok * (ok - 1) // 2).sum()), int((pieces * (pieces - 1) // 2).sum())


def _pieces(block_codes: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Dense codes of (block, split key) for entries that have a split key (``split >= 0``)."""
    width = int(split.max(initial=0)) + 1
    codes: np.ndarray = pd.factorize(block_codes.astype(np.int64) * width + split)[0].astype(np.int64)
    return codes


def block_sizes(keys: np.ndarray, split: np.ndarray | None = None) -> BlockSizes:
    """The histogram of a rule's block keys; with ``split`` (a split-key code per entry, -1 for
    none), of its pieces too. A piece as large as its block is left out: it fits only when the
    block does, and then the block's pairs are made."""
    if not len(keys):
        return BlockSizes(np.zeros(0, dtype=np.int64))
    codes = pd.factorize(keys)[0]
    counts = np.bincount(codes)
    out = BlockSizes(counts)
    if split is not None and (split >= 0).any():
        has = split >= 0
        block = codes[has]
        piece = _pieces(block, split[has])
        piece_sizes = np.bincount(piece)
        parents = np.zeros(len(piece_sizes), dtype=np.int64)
        parents[piece] = counts[block]
        small = (piece_sizes >= 2) & (piece_sizes < parents)
        out.piece_sizes, out.piece_parents = piece_sizes[small], parents[small]
    return out


def estimate_rule(rule_id: str, sizes: BlockSizes, max_block: int) -> RuleEstimate:
    big = sizes.sizes[sizes.sizes > max_block]
    whole, split = sizes.pairs(max_block)
    return RuleEstimate(rule_id, len(sizes.sizes), whole + split, len(big), int(big.sum()), split)


# per rule: (rule id, record positions, block keys, the split key's code per entry or None)
Keyed = list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]


def keyed_rules(features: pd.DataFrame, rules: list[dict[str, Any]]) -> Keyed:
    """(rule id, record positions, block keys, split codes) per rule."""
    cache: dict[str, np.ndarray] = {}
    out: Keyed = []
    for rule in rules:
        positions, keys = blocking_keys(features, list(rule["on"]), cache)
        split = None
        if rule.get("split"):
            by = "split:" + str(rule["split"])
            if by not in cache:  # a key with one value per record: its code per record, -1 for none
                at, codes = blocking_keys(features, [str(rule["split"])], cache)
                whole = np.full(len(features), -1, dtype=np.int64)
                whole[at] = codes
                cache[by] = whole
            split = cache[by][positions]
        out.append((str(rule["id"]), positions, keys, split))
    return out


def _within_limit(pos: np.ndarray, codes: np.ndarray, max_block: int, focus: np.ndarray | None,
                  opened: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of the blocks within the limit (``pos`` sorted by ``codes``), the block sizes and
    which entries lie in a block over the limit."""
    sizes = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    big = sizes[codes] > max_block
    open_blocks = np.zeros(len(sizes), dtype=bool)
    if focus is not None and len(codes):
        hot_blocks = np.zeros(len(sizes), dtype=bool)
        hot_blocks[codes[focus[pos]]] = True
        if opened is not None:
            open_blocks[codes[opened[pos]]] = True
        sel = (hot_blocks | open_blocks)[codes] & ~big
    else:
        sel = ~big
    left, right = run_pairs(pos[sel], codes[sel], max_block, focus, open_blocks)
    return left, right, sizes, big


RulePairs = tuple[np.ndarray, np.ndarray, tuple[int, int, int, int, int], tuple[np.ndarray, np.ndarray]]
PIECE_KEY = 1 << 32  # a piece's key in the oversized list: -(1 + block key · PIECE_KEY + split code)


def rule_pairs(positions: np.ndarray, keys: np.ndarray, max_block: int, focus: np.ndarray | None = None,
               opened: np.ndarray | None = None, split: np.ndarray | None = None) -> RulePairs:
    """Pairs within each block of one rule and, with ``split`` (a split-key code per entry, -1
    for none), within each piece of a block over the limit; the counts (keys, pairs, oversized
    blocks, records in them, the pieces' pairs); and the (positions, keys) of the records in
    blocks over the limit and in pieces over it (a piece's key negative, see ``PIECE_KEY``).

    With ``focus`` (a mask of records), only the pairs that touch a focus record, plus every
    pair of a block or piece holding an ``opened`` record (one newly come under the limit).
    Exact for any subset of the rows that holds whole blocks — so a distributed engine can run it
    on each partition after shuffling by block key and add the counts up.
    """
    codes = pd.factorize(keys)[0]
    order = np.lexsort((positions, codes))
    pos, codes, sorted_keys = positions[order], codes[order], keys[order]
    left, right, sizes, big = _within_limit(pos, codes, max_block, focus, opened)
    too_big = sizes > max_block
    over_p, over_k = [pos[big]], [sorted_keys[big]]
    split_pairs = 0
    if split is not None and big.any():
        sp = split[order]
        cut = big & (sp >= 0)
        piece = _pieces(codes[cut], sp[cut])
        p_order = np.flatnonzero(cut)[np.lexsort((pos[cut], piece))]  # the cut entries, sorted by piece
        p_left, p_right, _sizes, p_big = _within_limit(pos[p_order], np.sort(piece), max_block, focus, opened)
        split_pairs = len(p_left)
        left, right = np.concatenate([left, p_left]), np.concatenate([right, p_right])
        at = p_order[p_big]
        over_p.append(pos[at])
        over_k.append(-(1 + sorted_keys[at] * PIECE_KEY + sp[at]))
    counts = (int((sizes > 0).sum()), len(left), int(too_big.sum()), int(sizes[too_big].sum()), split_pairs)
    return left, right, counts, (np.concatenate(over_p), np.concatenate(over_k))


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
        out.append(sorted_unique(positions[fits[codes] & stays]))  # a record may be in a block and a piece
    return out


def union_pairs(lefts: list[np.ndarray], rights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (left < right) pairs over all rules, sorted — the same order whoever made them.

    The lists are emptied as each rule's pairs are made one key array: with the caller holding
    no other reference, a rule's pairs go as they are keyed (at a million records the rules'
    pairs, their concatenation and its sorted copy were ~1.2 GB at once)."""
    width = max((int(r.max()) for r in rights if len(r)), default=0) + 1
    keys = []
    while lefts:
        a, b = lefts.pop(0).astype(np.int64, copy=False), rights.pop(0).astype(np.int64, copy=False)
        keys.append((a * width + b)[a != b])
        del a, b
    every = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    keys.clear()
    every.sort()
    if len(every) > 1:
        distinct = np.empty(len(every), dtype=bool)
        distinct[0] = True
        np.not_equal(every[1:], every[:-1], out=distinct[1:])
        every = every[distinct]
    left, right = np.divmod(every, width)
    return left, right


Budget = Callable[[list[BlockSizes], int], int]  # (block sizes per rule, block-size limit) -> the limit to use (or raise)


def check_budget(keyed: Keyed, max_block: int, budget: Budget | None) -> int:
    return budget([block_sizes(keys, split) for _r, _p, keys, split in keyed], max_block) if budget is not None else max_block


def planned_pairs(sizes: list[BlockSizes], max_block: int) -> int:
    return sum(sum(s.pairs(max_block)) for s in sizes)


def fit_block_size(sizes: list[BlockSizes], max_block: int, max_pairs: int) -> int:
    """The largest block-size limit ≤ ``max_block`` whose planned pairs fit ``max_pairs`` (0: none).

    Planned pairs grow with the limit: a block of s records gives s(s-1)/2 pairs when s ≤ limit,
    and a piece of t records of a block of s gives t(t-1)/2 when t ≤ limit < s — that is, all
    pieces within the limit less those whose block is within it too. So the limit is found from
    cumulative sums over the histograms, without generating a pair.
    """
    def cumulative(by: np.ndarray, pairs_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(by, kind="stable")
        return by[order], np.concatenate([[0], np.cumsum(pairs_of[order] * (pairs_of[order] - 1) // 2)])

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(s, name) for s in sizes] or [np.zeros(0, dtype=np.int64)]).astype(np.int64)

    blocks, pieces, parents = joined("sizes"), joined("piece_sizes"), joined("piece_parents")
    tables = [(cumulative(blocks, blocks), 1), (cumulative(pieces, pieces), 1), (cumulative(parents, pieces), -1)]
    for limit in range(max_block, 1, -1):
        planned = sum(sign * int(cum[np.searchsorted(by, limit, side="right")]) for (by, cum), sign in tables)
        if planned <= max_pairs:
            return limit
    return 0


def candidate_pairs(features: pd.DataFrame, rules: list[dict[str, Any]], max_block: int,
                    budget: Budget | None = None, focus: np.ndarray | None = None,
                    opened: list[np.ndarray | None] | None = None) -> BlockingResult:
    """Union of every rule's pairs. ``budget(keyed, max_block)`` is asked before any pair is made
    and returns the block-size limit to use; with ``focus`` (a mask of records) only pairs
    touching a focus record, and those of the blocks and pieces holding a record ``opened`` (per
    rule, a mask) — see :func:`rule_pairs`."""
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    estimates = []
    keyed = keyed_rules(features, rules)
    max_block = check_budget(keyed, max_block, budget)
    oversized = []
    for r, (rule_id, positions, keys, split) in enumerate(keyed):
        pairs = rule_pairs(positions, keys, max_block, focus, opened[r] if opened else None, split)
        lefts.append(pairs[0])
        rights.append(pairs[1])
        estimates.append(RuleEstimate(rule_id, *pairs[2]))
        oversized.append(pairs[3])
        del pairs
    del keyed
    left, right = union_pairs(lefts, rights)
    return BlockingResult(left, right, estimates, max_block, oversized)
