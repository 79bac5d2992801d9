"""Company names: a tidy display form, and a separate match key without legal suffixes."""

from __future__ import annotations

import re
import unicodedata

from anyascii import anyascii

from crmclean.normalize.text import letters_cased, name_case, tidy

DEFAULT_LEGAL = (
    "inc", "incorporated", "llc", "lllp", "llp", "lp", "ltd", "limited", "plc", "corp", "corporation",
    "co", "company", "gmbh", "ag", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "oy", "ab", "as",
    "pty", "pvt", "pte", "kk", "kg", "ohg", "se", "ulc", "lda", "sl", "nl",
)
_APOS_DOTS = re.compile(r"[.'\u2019]")
_PUNCT = re.compile(r"[^a-z0-9]+")
_DISPLAY_SUFFIX = {"llc": "LLC", "inc": "Inc", "ltd": "Ltd", "plc": "PLC", "gmbh": "GmbH", "llp": "LLP", "lp": "LP", "corp": "Corp", "co": "Co", "ag": "AG", "sa": "SA", "bv": "BV", "nv": "NV"}


def company_display(value: str, keep_upper: frozenset[str] = frozenset()) -> str:
    """Whitespace tidied; casing repaired only when the name is all-upper (several words) or all-lower.

    >>> company_display("ACME WIDGETS LLC")
    'Acme Widgets LLC'
    >>> company_display("IBM")
    'IBM'
    """
    text = tidy(value)
    case = letters_cased(text)
    words = text.split(" ")
    if case == "upper" and (len(words) < 2 or sum(len(w) > 3 for w in words) == 0):
        return text
    if case not in ("upper", "lower"):
        return text
    out = []
    for word in words:
        bare = _APOS_DOTS.sub("", word).lower()
        if bare in _DISPLAY_SUFFIX and word.rstrip(".,").lower() == bare:
            out.append(_DISPLAY_SUFFIX[bare] + word[len(word.rstrip(".,")):])
        elif word.upper() in keep_upper or (case == "upper" and len(word) <= 3 and not re.search(r"[AEIOUY]", word)):
            out.append(word.upper())
        else:
            out.append(name_case(word.lower()))
    return " ".join(out)


def company_key(value: str, legal: frozenset[str] = frozenset(DEFAULT_LEGAL)) -> str:
    """Match key: ASCII, case-folded, '&' = 'and', punctuation and legal suffixes removed.

    >>> company_key("The Acme Co., Inc.") == company_key("ACME & Co")
    False
    >>> company_key("Acme, L.L.C.") == company_key("acme inc") == "acme"
    True
    """
    if not value:
        return ""
    text = anyascii(unicodedata.normalize("NFKC", value)).casefold().replace("&", " and ").replace("+", " and ")
    text = _APOS_DOTS.sub("", text)
    tokens = _PUNCT.sub(" ", text).split()
    if tokens and tokens[0] == "the":
        tokens = tokens[1:]
    while len(tokens) > 1 and tokens[-1] in legal:
        tokens.pop()
    return " ".join(tokens)
