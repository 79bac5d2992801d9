"""Person names: 'SMITH, ROBERT' understood, salutations and suffixes split off, casing repaired."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crmclean.model import STR
from crmclean.normalize.text import name_case, tidy

DEFAULT_PARTICLES = ("van", "von", "der", "den", "de", "la", "le", "da", "di", "du", "del", "della", "dos", "das", "ter", "ten", "bin", "al", "st")
DEFAULT_MAC = ("mackenzie", "macdonald", "macleod", "macgregor", "macarthur", "macmillan", "macintyre", "mackay", "maclean", "macneil", "macpherson", "macaulay", "macdougall", "macfarlane", "mackinnon", "maclachlan", "macrae", "macintosh", "mackintosh", "macallister", "macdermott", "macnamara", "macbride", "macguire")
DEFAULT_SUFFIXES = ("jr", "sr", "ii", "iii", "iv", "v", "md", "phd", "esq", "cpa", "dds", "dvm", "rn", "jd")
DEFAULT_SALUTATIONS = ("mr", "mrs", "ms", "miss", "mx", "dr", "prof", "rev", "sir", "dame", "madam", "mme", "mlle", "herr", "frau", "fr", "hon")
DEFAULT_COMPANY_WORDS = ("inc", "llc", "ltd", "corp", "corporation", "gmbh", "plc", "company", "co", "services", "solutions", "group", "holdings", "associates", "partners", "plumbing", "consulting", "enterprises", "industries", "bank", "university", "hospital", "department", "dept", "warehouse", "accounting", "foundation", "agency", "store", "shop")
GENERATIONAL = frozenset(("jr", "sr", "ii", "iii", "iv", "v"))
_SUFFIX_FORM = {"jr": "Jr.", "sr": "Sr.", "ii": "II", "iii": "III", "iv": "IV", "v": "V", "md": "MD", "phd": "PhD", "esq": "Esq.", "cpa": "CPA", "dds": "DDS", "dvm": "DVM", "rn": "RN", "jd": "JD"}
_TOKEN_KEY = re.compile(r"[.,]")


def _key(token: str) -> str:
    return _TOKEN_KEY.sub("", token).casefold()


@dataclass(frozen=True)
class NameOptions:
    fix_case: bool = True
    particles: frozenset[str] = frozenset(DEFAULT_PARTICLES)
    mac_names: frozenset[str] = frozenset(DEFAULT_MAC)
    suffixes: frozenset[str] = frozenset(DEFAULT_SUFFIXES)
    salutations: frozenset[str] = frozenset(DEFAULT_SALUTATIONS)
    company_words: frozenset[str] = frozenset(DEFAULT_COMPANY_WORDS)


def suffix_form(token: str) -> str:
    return _SUFFIX_FORM.get(_key(token), token)


def _salutation_form(token: str) -> str:
    key = _key(token)
    if key in ("miss", "madam", "sir", "dame", "herr", "frau", "mme", "mlle"):
        return key.capitalize()
    return key.capitalize() + "."


Parts = tuple[str, str, str, str, str]  # salutation, first, middle, last, suffix


def split_full_name(full: str, opts: NameOptions) -> Parts:
    """'Dr. Robert J. Smith Jr.' / 'SMITH, ROBERT' → parts (casing untouched)."""
    sal = suffix = ""
    text = tidy(full)
    if "," in text:
        head, _, tail = text.partition(",")
        tail_tokens = tail.split()
        if tail_tokens and all(_key(t) in opts.suffixes for t in tail_tokens):
            text, suffix = head.strip(), " ".join(suffix_form(t) for t in tail_tokens)
        elif head.strip() and tail.strip():
            # "Last, First Middle"
            rest = tail.split()
            while rest and _key(rest[0]) in opts.salutations:
                sal = _salutation_form(rest.pop(0))
            while rest and _key(rest[-1]) in opts.suffixes and len(rest) > 1:
                suffix = suffix_form(rest.pop())
            first = rest[0] if rest else ""
            middle = " ".join(rest[1:])
            return sal, first, middle, head.strip(), suffix
    tokens = text.split()
    while len(tokens) > 1 and _key(tokens[0]) in opts.salutations:
        sal = _salutation_form(tokens.pop(0))
    while len(tokens) > 2 and _key(tokens[-1]) in opts.suffixes:
        suffix = suffix_form(tokens.pop()) if not suffix else suffix
    if not tokens:
        return sal, "", "", "", suffix
    if len(tokens) == 1:
        return sal, "", "", tokens[0], suffix
    # the last name takes any particles before it: "Ludwig van Beethoven"
    i = len(tokens) - 1
    while i > 1 and tokens[i - 1].casefold() in opts.particles:
        i -= 1
    return sal, tokens[0], " ".join(tokens[1:i]), " ".join(tokens[i:]), suffix


def looks_like_company(text: str, opts: NameOptions) -> bool:
    return any(_key(t) in opts.company_words for t in text.split())


def normalize_person(parts: Parts, full: str, opts: NameOptions) -> tuple[Parts, list[str]]:
    """Normalize (salutation, first, middle, last, suffix), using ``full`` when first/last are blank.

    Returns the new parts and reason codes. Idempotent: the output is a fixed point.

    >>> normalize_person(("", "", "", "SMITH, ROBERT", ""), "", NameOptions())[0]
    ('', 'Robert', '', 'Smith', '')
    """
    sal, first, middle, last, suffix = (tidy(p) for p in parts)
    reasons: list[str] = []
    if not first and not last and full.strip() and looks_like_company(full, opts):
        return (sal, first, middle, last, suffix), ["NAME_LOOKS_LIKE_COMPANY"]
    if not first and not last and full.strip():
        sal2, first, middle2, last, suffix2 = split_full_name(full, opts)
        sal, middle, suffix = sal or sal2, middle or middle2, suffix or suffix2
        reasons.append("NAME_FROM_FULL_NAME")
    if not first and "," in last:
        head, _, tail = last.partition(",")
        if tail.strip() and not all(_key(t) in opts.suffixes for t in tail.split()):
            last, first = head.strip(), tail.strip()
            reasons.append("NAME_LAST_FIRST_SPLIT")
    if first and not sal:
        tokens = first.split()
        if len(tokens) > 1 and _key(tokens[0]) in opts.salutations:
            sal, first = _salutation_form(tokens[0]), " ".join(tokens[1:])
            reasons.append("NAME_SALUTATION_SPLIT")
    if last and not suffix:
        lt = last.replace(",", " ").split()
        if len(lt) > 1 and _key(lt[-1]) in opts.suffixes:
            suffix, last = suffix_form(lt[-1]), " ".join(lt[:-1])
            reasons.append("NAME_SUFFIX_SPLIT")
    if suffix and _key(suffix) in _SUFFIX_FORM:
        suffix = suffix_form(suffix)
    if opts.fix_case:
        first = name_case(first, opts.particles, opts.mac_names)
        middle = name_case(middle, opts.particles, opts.mac_names)
        last = name_case(last, opts.particles, opts.mac_names)
    if looks_like_company(" ".join((first, last)), opts):
        reasons.append("NAME_LOOKS_LIKE_COMPANY")
    return (sal, first, middle, last, suffix), reasons


PLAIN_NAME = r"[A-Z][a-z]+"  # one capitalised ASCII word: the shape most exports hold


def plain_rows(sal: np.ndarray, first: np.ndarray, middle: np.ndarray, last: np.ndarray, suffix: np.ndarray,
               opts: NameOptions) -> np.ndarray:
    """The rows :func:`normalize_person` returns unchanged and without a reason, found in a few
    vectorised passes: first and last name each one capitalised ASCII word that is not a
    company word, and no salutation, middle name or suffix. Then nothing applies — ``tidy`` and
    ``name_case`` keep the words (mixed case), there is nothing to split off and the full name
    is not read — so the rest of the rows are all that need the per-value path (a property
    test checks this against ``normalize_person`` itself).
    """
    ok = np.asarray((sal == "") & (middle == "") & (suffix == ""), dtype=bool)
    words = sorted(opts.company_words)
    for values in (first, last):
        if not ok.any():
            break
        text = pd.Series(values[ok], dtype=STR)
        fine = text.str.fullmatch(PLAIN_NAME).to_numpy(dtype=bool, na_value=False) & ~text.str.lower().isin(words).to_numpy(dtype=bool, na_value=False)
        ok[np.flatnonzero(ok)[~fine]] = False
    return ok
