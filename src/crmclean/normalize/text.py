"""Whitespace and casing helpers shared by the value normalizers."""

from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"\s+")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


def tidy(value: str) -> str:
    """NFC, invisible characters removed, whitespace runs collapsed to one space, trimmed.

    >>> tidy("  Robert \\u00a0 Smith ")
    'Robert Smith'
    """
    if not value:
        return value
    value = unicodedata.normalize("NFC", value).translate(_INVISIBLE)
    return _WS.sub(" ", value).strip()


def letters_cased(value: str) -> str:
    """'upper', 'lower' or 'mixed' over the cased letters of ``value`` ('none' without any)."""
    if value.isascii():  # cased letters are A-Z and a-z: str.lower/str.upper find them in C
        has_upper = value.lower() != value
        has_lower = value.upper() != value
    else:
        has_upper, has_lower = _cased_letters(value)
    if has_upper and has_lower:
        return "mixed"
    return "upper" if has_upper else "lower" if has_lower else "none"


def _cased_letters(value: str) -> tuple[bool, bool]:
    """(any upper-case letter, any lower-case letter), letter by letter: the reference."""
    has_upper = has_lower = False
    for ch in value:
        if ch.isupper():
            has_upper = True
        elif ch.islower():
            has_lower = True
    return has_upper, has_lower


_ROMAN = re.compile(r"^(?=[ivxlcdm]+$)m{0,3}(cm|cd|d?c{0,3})(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$", re.I)


def _cap(word: str) -> str:
    if not word:
        return word
    first = word[:1].upper()
    if len(first) != 1:  # 'ß'.upper() == 'SS': keep the letter rather than change the length
        first = word[:1]
    return first + word[1:].lower()


def _case_part(part: str, mac_names: frozenset[str]) -> str:
    low = part.lower()
    if len(part) > 1 and _ROMAN.match(part) and low in {"ii", "iii", "iv", "vi", "vii", "viii"}:
        return part.upper()
    if low.startswith("mc") and len(low) > 3:
        return "Mc" + _cap(part[2:])
    if low.startswith("mac") and len(low) > 4 and low in mac_names:
        return "Mac" + _cap(part[3:])
    if "'" in part or "\u2019" in part:
        apos = "'" if "'" in part else "\u2019"
        head, _, tail = part.partition(apos)
        if len(head) == 1 and tail:  # O'Brien, D'Angelo, L'Oreal
            return head.upper() + apos + _cap(tail)
        return _cap(head) + apos + tail.lower()  # John's
    return _cap(part)


def name_case(value: str, particles: frozenset[str] = frozenset(), mac_names: frozenset[str] = frozenset()) -> str:
    """Proper-case a name written all-upper or all-lower; mixed case is left as written.

    >>> name_case("O'BRIEN-MCDONALD")
    "O'Brien-McDonald"
    >>> name_case("van der berg", frozenset({"van", "der"}))
    'van der Berg'
    """
    if letters_cased(value) not in ("upper", "lower"):
        return value
    words = value.split(" ")
    out = []
    for i, word in enumerate(words):
        if word.lower() in particles and i < len(words) - 1:
            out.append(word.lower())
            continue
        out.append("-".join(_case_part(p, mac_names) for p in word.split("-")))
    return " ".join(out)
