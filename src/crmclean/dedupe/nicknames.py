"""First-name equivalence from the shipped nickname table (carltonnorthern/nicknames, Apache-2.0).

Used for matching only, never to rewrite a name. Two names are *nicknames* when one is listed as
a nickname of the other (Robert/Bob, Elizabeth/Liz); they *share a canonical* when both are
nicknames of one name (Bob/Rob) and neither is an ambiguous short form (Al → Albert, Alan, ...).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

AMBIGUOUS_CANONICALS = 5

# common English nicknames the upstream table lacks (each checked absent from it; found when the
# benchmark's Katherine/Katie and Barbara/Barb pairs went unmatched): name, nickname
SUPPLEMENT = (
    ("katherine", "katie"), ("catherine", "katie"), ("catherine", "kate"), ("catherine", "cat"), ("katherine", "kat"),
    ("theresa", "terri"), ("teresa", "terri"), ("barbara", "barb"), ("jacqueline", "jacki"), ("deborah", "debra"),
    ("samantha", "sammie"), ("kimberly", "kimmy"),
)


@lru_cache(maxsize=1)
def _table() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    import nicknames

    canon: dict[str, set[str]] = {}
    nicks: dict[str, set[str]] = {}
    for a, _rel, b in [*nicknames.name_triplets(), *((n, "has_nickname", k) for n, k in SUPPLEMENT)]:
        a, b = a.casefold(), b.casefold()
        nicks.setdefault(a, set()).add(b)
        canon.setdefault(b, set()).add(a)
    return ({k: frozenset(v) for k, v in canon.items()}, {k: frozenset(v) for k, v in nicks.items()})


def canonicals(name: str) -> frozenset[str]:
    """Names that ``name`` is a nickname of."""
    return _table()[0].get(name, frozenset())


@lru_cache(maxsize=1_000_000)
def related(a: str, b: str) -> int:
    """2 when one is a nickname of the other, 1 when they share an unambiguous canonical, else 0."""
    if not a or not b or a == b:
        return 0
    canon, nicks = _table()
    if b in nicks.get(a, ()) or a in nicks.get(b, ()):
        return 2
    ca, cb = canon.get(a, frozenset()), canon.get(b, frozenset())
    if ca & cb and len(ca) <= AMBIGUOUS_CANONICALS and len(cb) <= AMBIGUOUS_CANONICALS:
        return 1
    return 0


def blocking_names(name: str) -> tuple[str, ...]:
    """Keys a first name blocks under: itself and, when unambiguous, its canonical names."""
    if not name:
        return ()
    cs = canonicals(name)
    if len(cs) > AMBIGUOUS_CANONICALS:
        return (name,)
    return tuple(sorted({name, *cs}))


@lru_cache(maxsize=1)
def known_names() -> frozenset[str]:
    """Every name in the table: two *known* names one letter apart (Carl, Carol) are two people."""
    canon, nicks = _table()
    return frozenset(canon) | frozenset(nicks)


def related_many(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`related` for aligned arrays of names, vectorised over the names that occur.

    The relation is built once for the distinct names present (a small vocabulary), as integer
    keys; each pair is then a lookup, not a Python call.
    """
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    codes, vocab = pd.factorize(np.concatenate([np.asarray(a, dtype=object), np.asarray(b, dtype=object)]), use_na_sentinel=False)
    size = len(vocab)
    index = {name: i for i, name in enumerate(vocab.tolist())}
    canon, nicks = _table()
    strong: list[int] = []
    members: dict[str, list[int]] = {}
    for i, name in enumerate(vocab.tolist()):
        if not name:
            continue
        for other in nicks.get(name, ()):
            j = index.get(other)
            if j is not None and j != i:
                strong.extend((i * size + j, j * size + i))
        cs = canon.get(name, frozenset())
        if len(cs) <= AMBIGUOUS_CANONICALS:
            for c in cs:
                members.setdefault(c, []).append(i)
    weak = [x * size + y for group in members.values() if len(group) > 1 for x in group for y in group if x != y]
    key = codes[:n].astype(np.int64) * size + codes[n:]
    out = np.zeros(n, dtype=np.int8)
    if weak:
        out[np.isin(key, np.array(weak, dtype=np.int64))] = 1
    if strong:
        out[np.isin(key, np.array(strong, dtype=np.int64))] = 2
    return out
