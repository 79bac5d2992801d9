"""First-name equivalence from the shipped nickname table (carltonnorthern/nicknames, Apache-2.0).

Used for matching only, never to rewrite a name. Two names are *nicknames* when one is listed as
a nickname of the other (Robert/Bob, Elizabeth/Liz); they *share a canonical* when both are
nicknames of one name (Bob/Rob) and neither is an ambiguous short form (Al → Albert, Alan, ...).
"""

from __future__ import annotations

from functools import lru_cache

AMBIGUOUS_CANONICALS = 5


@lru_cache(maxsize=1)
def _table() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    import nicknames

    canon: dict[str, set[str]] = {}
    nicks: dict[str, set[str]] = {}
    for a, _rel, b in nicknames.name_triplets():
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
