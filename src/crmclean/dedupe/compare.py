"""Comparisons of ordered levels per field, computed for all candidate pairs at once.

Each comparison yields an int8 level per pair; -1 means a value is missing on one side (its own
level — never counted as a mismatch). String similarity comes from rapidfuzz ``cpdist`` (pairwise,
vectorised, both cores), never a Python loop per pair.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import process
from rapidfuzz.distance import OSA, JaroWinkler, Levenshtein
from rapidfuzz.fuzz import token_set_ratio, token_sort_ratio

from crmclean.dedupe.arrays import factorize_text
from crmclean.dedupe.features import coded
from crmclean.dedupe.nicknames import known_names, related, related_many

# level names, per comparison, from highest to lowest (the report and evidence use them)
LEVELS: dict[str, dict[int, str]] = {
    "first_name": {4: "exact", 3: "nickname", 2: "similar", 1: "initial", 0: "different", -1: "missing"},
    "last_name": {3: "exact", 2: "similar", 1: "close", 0: "different", -1: "missing"},
    "email": {3: "exact", 2: "near", 1: "shared", 0: "different", -1: "missing"},
    "phone": {3: "exact", 2: "last7", 1: "shared", 0: "different", -1: "missing"},
    "address": {3: "same", 2: "similar", 1: "zip", 0: "different", -1: "missing"},
    "company": {3: "exact", 2: "similar", 0: "different", -1: "missing"},
}


@dataclass
class Comparison:
    """Levels per comparison plus guard facts, aligned with the pair arrays."""

    levels: dict[str, np.ndarray]
    swapped: np.ndarray
    suffix_conflict: np.ndarray
    suffix_one_side: np.ndarray
    email_personal: np.ndarray  # exact email match that is not a shared/role mailbox
    phone_personal: np.ndarray
    shared_premises: np.ndarray  # the same street address, held by several different people (a head office)
    first_related: np.ndarray  # nickname relation strength 0..2 (for the guards)
    known_typo: np.ndarray  # two real names one edit apart (Carl/Carol): different unless the mailbox is shared
    initial_unknown: np.ndarray  # same first letter, at least one spelling not a real name (a garbled name)
    garbled_close: np.ndarray  # such a garbled pair within two edits (Louis/Loias; not Jane/Jhon)
    names_garbled: np.ndarray  # names that fail the levels but, word order aside, are close (Dnielle Bergstrom / Bergstrom Danelle), not two real first names


def gather_comparisons(parts: Iterable[Comparison], n: int) -> Comparison:
    """One comparison from comparisons of consecutive chunks of the pair list (``n`` pairs in
    all), each chunk copied into arrays made once as it arrives, and then let go. Holding the
    chunks and then their concatenation was two copies of every level and guard fact (17 bytes
    a pair: ~330 MB for the 19M pairs of a million records)."""
    arrays = [f.name for f in fields(Comparison) if f.name != "levels"]
    out: Comparison | None = None
    at = 0
    for part in parts:
        if out is None:
            out = Comparison(levels={c: np.empty(n, dtype=lv.dtype) for c, lv in part.levels.items()},
                             **{name: np.empty(n, dtype=getattr(part, name).dtype) for name in arrays})
        put(out, part, at)
        at += len(part.swapped)
    if out is None or at != n:
        raise ValueError(f"the chunks hold {at} pairs, not {n}")
    return out


def shared_comparison(like: Comparison, n: int) -> Comparison:
    """A comparison of ``n`` pairs laid out like ``like``, its arrays in anonymous shared memory:
    processes forked after it write their ranges of pairs straight into it (see :func:`put`), so
    no range is sent back and copied (at a million records the ranges waiting to be copied
    were ~350 MB on top of the arrays). The memory goes with the arrays."""
    def array(model: np.ndarray) -> np.ndarray:
        buffer = mmap.mmap(-1, max(n * model.dtype.itemsize, 1))
        return np.frombuffer(buffer, dtype=model.dtype, count=n)

    arrays = [f.name for f in fields(Comparison) if f.name != "levels"]
    return Comparison(levels={c: array(lv) for c, lv in like.levels.items()}, **{name: array(getattr(like, name)) for name in arrays})


def put(out: Comparison, part: Comparison, at: int) -> None:
    """Write ``part`` into ``out`` from pair ``at`` on."""
    size = len(part.swapped)
    for c, lv in part.levels.items():
        out.levels[c][at:at + size] = lv
    for f in fields(Comparison):
        if f.name != "levels":
            getattr(out, f.name)[at:at + size] = getattr(part, f.name)


def cut(cmp: Comparison, start: int, stop: int) -> Comparison:
    """The comparison of pairs ``start`` to ``stop`` (views, not copies)."""
    arrays = [f.name for f in fields(Comparison) if f.name != "levels"]
    return Comparison(levels={c: lv[start:stop] for c, lv in cmp.levels.items()}, **{name: getattr(cmp, name)[start:stop] for name in arrays})


def take(cmp: Comparison, at: np.ndarray) -> Comparison:
    """The comparison of the pairs at ``at`` (positions in the pair list)."""
    arrays = [f.name for f in fields(Comparison) if f.name != "levels"]
    return Comparison(levels={c: lv[at] for c, lv in cmp.levels.items()}, **{name: getattr(cmp, name)[at] for name in arrays})


GARBLED_NAME_MIN = 65  # token-sort ratio of two full names for a garbled spelling of one name

_RAPIDFUZZ_WORKERS = [-1]  # every core; 1 inside a worker process of a parallel comparison


def use_rapidfuzz_workers(n: int) -> None:
    _RAPIDFUZZ_WORKERS[0] = n


def _cpdist(a: np.ndarray, b: np.ndarray, scorer: Any) -> np.ndarray:
    """``scorer`` on aligned pairs, vectorised (rapidfuzz, both cores)."""
    if len(a) == 0:
        return np.zeros(0)
    return np.asarray(process.cpdist(list(a), list(b), scorer=scorer, processor=None, workers=_RAPIDFUZZ_WORKERS[0]))


def _per_value(a: np.ndarray, fn: Any, dtype: Any) -> np.ndarray:
    """``fn`` once per distinct value of ``a`` (names repeat a lot across pairs)."""
    codes, uniques = pd.factorize(a, use_na_sentinel=False)
    values = np.array([fn(u) for u in uniques], dtype=dtype)
    return values[codes] if len(codes) else np.zeros(0, dtype=dtype)


def _lengths(a: np.ndarray) -> np.ndarray:
    return _per_value(a, len, np.int64)


def _initials(a: np.ndarray) -> np.ndarray:
    return _per_value(a, lambda s: s[:1], object)


class _Vocab:
    """One vocabulary for some feature columns: per-record integer codes, so pair work is integer
    work and a string function runs once per distinct value pair, not once per candidate pair."""

    def __init__(self, f: pd.DataFrame, columns: tuple[str, ...]) -> None:
        # the features' own codes: the columns of one vocabulary are one code group
        parts = [coded(f, c) for c in columns]
        if all(p.values is parts[0].values for p in parts):
            self.values = parts[0].values
            self.codes = {c: p.codes for c, p in zip(columns, parts, strict=True)}
        else:  # columns coded apart: counted together here
            n = len(f)
            values = np.concatenate([f[c].to_numpy(dtype=object) for c in columns]) if n else np.zeros(0, dtype=object)
            codes, self.values = factorize_text(values)
            self.codes = {c: codes[i * n:(i + 1) * n] for i, c in enumerate(columns)}
        self.blank = self.values == ""

    def derived(self, fn: Any) -> np.ndarray:
        """Integer codes of ``fn(value)`` per vocabulary entry (equal codes ⇔ equal results)."""
        codes, _ = factorize_text(np.array([fn(v) for v in self.values], dtype=object))
        return codes


def on_pairs(ca: np.ndarray, cb: np.ndarray, fn: Any) -> np.ndarray:
    """``fn(codes_a, codes_b)`` (vectorised) evaluated once per distinct code pair, scattered back."""
    if len(ca) == 0:
        return np.asarray(fn(ca, cb))
    size = int(max(ca.max(), cb.max())) + 1
    inverse, uniq = pd.factorize(ca.astype(np.int64) * size + cb)
    return np.asarray(fn(uniq // size, uniq % size))[inverse]


@dataclass
class Vocabularies:
    """Everything a comparison needs from the features that does not depend on the pairs: built
    once per features frame and shared by every chunk of pairs (and every forked worker)."""

    names: _Vocab
    known: np.ndarray  # per name vocabulary entry: a real first name
    initials: np.ndarray
    emails: _Vocab
    phones: _Vocab
    phone_tails: np.ndarray
    places: _Vocab
    companies: _Vocab
    suffixes: _Vocab
    flags: dict[str, np.ndarray]


def vocabularies(f: pd.DataFrame) -> Vocabularies:
    names = _Vocab(f, ("fn_first", "ln", "fn"))
    phones = _Vocab(f, ("phone", "mobile"))
    return Vocabularies(names=names, known=pd.Series(names.values).isin(known_names()).to_numpy(), initials=names.derived(lambda s: s[:1]),
                        emails=_Vocab(f, ("email", "email_local")), phones=phones, phone_tails=phones.derived(lambda s: s[-7:]),
                        places=_Vocab(f, ("street_key", "street", "zip5", "city")), companies=_Vocab(f, ("company",)),
                        suffixes=_Vocab(f, ("suffix",)),
                        flags={c: f[c].to_numpy(dtype=bool) for c in ("email_shared", "phone_shared", "mobile_shared", "place_shared")})


def compare(f: pd.DataFrame, left: np.ndarray, right: np.ndarray, crossed: bool = True, vocab: Vocabularies | None = None) -> Comparison:
    """Levels for the pairs (``left[i]``, ``right[i]``) of ``f``'s rows; ``vocab`` is
    :func:`vocabularies` of ``f``, built here when not given."""
    n = len(left)
    vocab = vocabularies(f) if vocab is None else vocab
    names = vocab.names
    nv, nblank = names.values, names.blank
    known_v = vocab.known
    no_known = np.zeros(len(nv), dtype=bool)

    def ncol(c: str) -> tuple[np.ndarray, np.ndarray]:
        codes = names.codes[c]
        return codes[left], codes[right]

    def first_on(ca: np.ndarray, cb: np.ndarray, ka: bool, kb: bool) -> np.ndarray:
        kva, kvb = known_v if ka else no_known, known_v if kb else no_known
        return on_pairs(ca, cb, lambda x, y: first_level(nv[x], nv[y], kva[x], kvb[y]))

    def last_on(ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
        return on_pairs(ca, cb, lambda x, y: last_level(nv[x], nv[y]))

    fl, fr = ncol("fn_first")
    ll, lr = ncol("ln")
    # the whole first-name field: where names are swapped, it holds a (perhaps multi-word) surname
    ffl, ffr = ncol("fn")
    missing_fn = nblank[fl] | nblank[fr]
    missing_ln = nblank[ll] | nblank[lr]
    kl, kr = known_v[fl], known_v[fr]

    # names: straight, and crossed (first/last entered the wrong way round, perhaps with a typo too)
    first = first_on(fl, fr, True, True)
    last = last_on(ll, lr)
    # either record may be the swapped one: B's last field holds a first name, or A's does
    # (computed only where the straight comparison fails)
    swapped = np.zeros(n, dtype=bool)
    cross_first = np.zeros(n, dtype=np.int8)
    cross_last = np.zeros(n, dtype=np.int8)
    cand = np.flatnonzero(~missing_fn & ~missing_ln & (fl != ll) & ((first < 2) | (last < 1))) if crossed else np.zeros(0, dtype=np.int64)
    if len(cand):
        b_first, b_last = first_on(fl[cand], lr[cand], True, False), last_on(ll[cand], ffr[cand])
        a_first, a_last = first_on(ll[cand], fr[cand], False, True), last_on(ffl[cand], lr[cand])
        use_b = (b_first >= 2) & (b_last >= 2)
        cross_first[cand] = np.where(use_b, b_first, a_first)
        cross_last[cand] = np.where(use_b, b_last, a_last)
        swapped[cand] = (cross_first[cand] >= 2) & (cross_last[cand] >= 2)
    first = np.where(swapped, cross_first, first).astype(np.int8)
    last = np.where(swapped, cross_last, last).astype(np.int8)
    rel = on_pairs(fl, fr, lambda x, y: related_many(nv[x], nv[y]))
    known_typo = np.zeros(n, dtype=bool)
    kk = np.flatnonzero((first == 0) & kl & kr)
    if len(kk):
        known_typo[kk] = first_on(fl[kk], fr[kk], False, False) == 2
    initial_v = vocab.initials
    initial_unknown = (first == 0) & ~(kl & kr) & (initial_v[fl] == initial_v[fr])
    first[missing_fn] = -1
    last[missing_ln] = -1
    initial_unknown &= ~missing_fn
    garbled_close = np.zeros(n, dtype=bool)
    gi = np.flatnonzero(initial_unknown)
    if len(gi):
        garbled_close[gi] = on_pairs(fl[gi], fr[gi], lambda x, y: _cpdist(nv[x], nv[y], OSA.distance) <= 2)

    def flag(c: str) -> tuple[np.ndarray, np.ndarray]:
        v = vocab.flags[c]
        return v[left], v[right]

    # email
    emails = vocab.emails
    ev, eblank = emails.values, emails.blank
    el, er = emails.codes["email"][left], emails.codes["email"][right]
    locl, locr = emails.codes["email_local"][left], emails.codes["email_local"][right]
    esl, esr = flag("email_shared")
    missing_e = eblank[el] | eblank[er]
    exact_e = ~missing_e & (el == er)
    shared_e = exact_e & (esl | esr)
    near_e = ~missing_e & ~exact_e & (locl == locr) & ~eblank[locl]
    other = np.flatnonzero(~missing_e & ~exact_e & ~near_e)
    if len(other):
        near_e[other] = on_pairs(el[other], er[other], lambda x, y: _cpdist(ev[x], ev[y], Levenshtein.distance) <= 1)
    email = np.where(exact_e, np.where(shared_e, 1, 3), np.where(near_e, 2, 0)).astype(np.int8)
    email[missing_e] = -1

    # phone: any of phone/mobile on either side
    phones = vocab.phones
    pblank = phones.blank
    tail_v = vocab.phone_tails
    pl, pr = phones.codes["phone"][left], phones.codes["phone"][right]
    ml, mr = phones.codes["mobile"][left], phones.codes["mobile"][right]
    psl, psr = flag("phone_shared")
    msl, msr = flag("mobile_shared")
    best = np.zeros(n, dtype=np.int8)
    personal = np.zeros(n, dtype=bool)
    any_l = ~pblank[pl] | ~pblank[ml]
    any_r = ~pblank[pr] | ~pblank[mr]
    for a, b, sa, sb in ((pl, pr, psl, psr), (pl, mr, psl, msr), (ml, pr, msl, psr), (ml, mr, msl, msr)):
        both = ~pblank[a] & ~pblank[b]
        eq = both & (a == b)
        shared = eq & (sa | sb)
        personal |= eq & ~shared
        tail = both & ~eq & (tail_v[a] == tail_v[b])
        best = np.maximum(best, np.where(eq & ~shared, 3, np.where(tail, 2, np.where(shared, 1, 0))).astype(np.int8))
    phone = best
    phone[~(any_l & any_r)] = -1

    # address
    places = vocab.places
    pv, plank = places.values, places.blank

    def pcol(c: str) -> tuple[np.ndarray, np.ndarray]:
        codes = places.codes[c]
        return codes[left], codes[right]

    skl, skr = pcol("street_key")
    sl, sr = pcol("street")
    zl, zr = pcol("zip5")
    cl, cr = pcol("city")
    missing_a = (plank[sl] | plank[sr]) & (plank[zl] | plank[zr])
    same_zip = (zl == zr) & ~plank[zl]
    same_place = same_zip | ((cl == cr) & ~plank[cl])
    street_same = (skl == skr) & ~plank[skl]
    street_sim = np.zeros(n, dtype=bool)
    cand = np.flatnonzero(~street_same & ~plank[sl] & ~plank[sr] & same_place)
    if len(cand):
        street_sim[cand] = on_pairs(sl[cand], sr[cand], lambda x, y: _cpdist(pv[x], pv[y], token_set_ratio) >= 90)
    address = np.where(street_same & same_place, 3, np.where(street_sim, 2, np.where(same_zip, 1, 0))).astype(np.int8)
    address[missing_a] = -1
    pls, prs = flag("place_shared")
    shared_premises = (address == 3) & (pls | prs)

    # company
    companies = vocab.companies
    cv, cblank = companies.values, companies.blank
    col_l, col_r = companies.codes["company"][left], companies.codes["company"][right]
    missing_c = cblank[col_l] | cblank[col_r]
    exact_c = ~missing_c & (col_l == col_r)
    comp = np.where(exact_c, 3, 0).astype(np.int8)
    cand = np.flatnonzero(~missing_c & ~exact_c)
    if len(cand):
        comp[cand] = np.where(on_pairs(col_l[cand], col_r[cand], lambda x, y: _cpdist(cv[x], cv[y], token_set_ratio)) >= 90, 2, 0)
    comp[missing_c] = -1

    suffixes = vocab.suffixes
    sfl, sfr = suffixes.codes["suffix"][left], suffixes.codes["suffix"][right]
    suffix_conflict = ~suffixes.blank[sfl] & ~suffixes.blank[sfr] & (sfl != sfr)
    suffix_one = suffixes.blank[sfl] != suffixes.blank[sfr]
    # a garbled full name: names that fail the levels (a typo on top of a swap or a nickname) but
    # whose words, sorted, are still close — looked at only where the two records also have the
    # same personal mailbox and the same personal phone. Two real, different first names
    # (Jane / John Smith on a family mailbox) are two people, however close.
    names_garbled = np.zeros(n, dtype=bool)
    gi = np.flatnonzero(((first == 0) | (last == 0)) & ~(kl & kr & (first == 0)) & exact_e & ~shared_e & personal)
    if len(gi):
        full_l = nv[ffl[gi]] + " " + nv[ll[gi]]
        full_r = nv[ffr[gi]] + " " + nv[lr[gi]]
        names_garbled[gi] = _cpdist(full_l, full_r, token_sort_ratio) >= GARBLED_NAME_MIN
    return Comparison(
        levels={"first_name": first, "last_name": last, "email": email, "phone": phone, "address": address, "company": comp},
        swapped=swapped, suffix_conflict=suffix_conflict, suffix_one_side=suffix_one,
        email_personal=exact_e & ~shared_e, phone_personal=personal, shared_premises=shared_premises, first_related=rel, known_typo=known_typo, initial_unknown=initial_unknown,
        garbled_close=garbled_close, names_garbled=names_garbled,
    )


def first_level(a: np.ndarray, b: np.ndarray, known_a: np.ndarray, known_b: np.ndarray) -> np.ndarray:
    """4 exact · 3 nickname · 2 typo · 1 initial · 0 different (blank handled by the caller).

    A typo is a small edit (Jaro-Winkler ≥ 0.92, or one edit, or two in a long name) — unless
    both spellings are real names: Carl and Carol are two people, not a typo.
    """
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    rel = related_many(a, b)
    jw = _cpdist(a, b, JaroWinkler.normalized_similarity)
    osa = _cpdist(a, b, OSA.distance)
    la, lb = _lengths(a), _lengths(b)
    short = np.minimum(la, lb)
    typo = ((jw >= 0.92) & (short >= 4)) | ((osa <= 1) & (short >= 4)) | ((osa <= 2) & (short >= 8))
    typo &= ~(known_a & known_b)
    initial = ((la == 1) | (lb == 1)) & (_initials(a) == _initials(b))
    return np.where(a == b, 4, np.where(rel > 0, 3, np.where(typo, 2, np.where(initial, 1, 0)))).astype(np.int8)


def last_level(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3 exact · 2 close (JW ≥ 0.92 or one edit) · 1 similar (JW ≥ 0.85) · 0 different."""
    if len(a) == 0:
        return np.zeros(0, dtype=np.int8)
    jw = _cpdist(a, b, JaroWinkler.normalized_similarity)
    osa = _cpdist(a, b, OSA.distance)
    short = np.minimum(_lengths(a), _lengths(b))
    return np.where(a == b, 3, np.where((jw >= 0.92) | ((osa <= 1) & (short >= 4)), 2, np.where(jw >= 0.85, 1, 0))).astype(np.int8)


def first_level_one(a: str, b: str, known_a: bool, known_b: bool) -> int:
    """Scalar twin of :func:`first_level` (same rules; the tests prove they agree)."""
    if a == b:
        return 4
    if related(a, b):
        return 3
    short = min(len(a), len(b))
    jw = JaroWinkler.normalized_similarity(a, b)
    osa = OSA.distance(a, b)
    typo = (jw >= 0.92 and short >= 4) or (osa <= 1 and short >= 4) or (osa <= 2 and short >= 8)
    if typo and not (known_a and known_b):
        return 2
    if (len(a) == 1 or len(b) == 1) and a[:1] == b[:1]:
        return 1
    return 0


def last_level_one(a: str, b: str) -> int:
    """Scalar twin of :func:`last_level`."""
    if a == b:
        return 3
    jw = JaroWinkler.normalized_similarity(a, b)
    if jw >= 0.92 or (OSA.distance(a, b) <= 1 and min(len(a), len(b)) >= 4):
        return 2
    return 1 if jw >= 0.85 else 0


def names_conflict(fa: str, la: str, ka: bool, fb: str, lb: str, kb: bool, full_a: str = "", full_b: str = "") -> bool:
    """Two records whose first names say they are *clearly* different people.

    Looser than the pair guard on purpose: two typo variants of one name (Btety, Beuty) do
    not conflict; two real names (Carl, Carol) or plainly different names do. ``full_a`` /
    ``full_b`` are the whole first-name fields (a swapped record holds a surname such as
    "de la Cruz" there); the first word is used when they are not given.
    """
    if not fa or not fb:
        return False
    straight = first_level_one(fa, fb, ka, kb)
    if straight >= 1:
        return False
    if la and lb and (
        (first_level_one(fa, lb, ka, False) >= 2 and last_level_one(la, full_b or fb) >= 2)  # B is swapped
        or (first_level_one(la, fb, False, kb) >= 2 and last_level_one(full_a or fa, lb) >= 2)  # A is swapped
    ):
        return False
    if ka and kb:
        return True
    if fa[:1] == fb[:1]:  # a garbled spelling of a name with the same initial is not evidence of two people
        return False
    if la and lb and token_sort_ratio(f"{full_a or fa} {la}", f"{full_b or fb} {lb}") >= GARBLED_NAME_MIN:
        return False  # nor is a garbled full name, its words in either order (Dnielle Bergstrom / Bergstrom Danelle)
    return JaroWinkler.normalized_similarity(fa, fb) < 0.80
