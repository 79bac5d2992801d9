"""Postal addresses: US streets parsed (usaddress) and rewritten to USPS Publication 28 forms;
states to two-letter codes; ZIP / ZIP+4 and common foreign postal codes checked and formatted.

Tables (suffixes, unit designators, directionals, states) are data in ``rules/data``. An address
that does not parse, or parses ambiguously, is kept as written (whitespace tidied) and flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import usaddress

from crmclean.normalize.text import letters_cased, name_case, tidy


@dataclass(frozen=True)
class Pub28:
    suffixes: dict[str, str]
    units: dict[str, str]
    directionals: dict[str, str]
    us_states: dict[str, str]
    ca_provinces: dict[str, str]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Pub28:
        return cls(data["street_suffixes"], data["unit_designators"], data["directionals"], data["us_states"], data["ca_provinces"])

    @property
    def state_codes(self) -> frozenset[str]:
        return frozenset(self.us_states.values())

    def __hash__(self) -> int:  # tables are fixed per run; identity is enough for caching
        return id(self)


_ORDINAL = re.compile(r"^(\d+)(ST|ND|RD|TH)$", re.I)
_KEEP_LABELS = {"AddressNumberPrefix", "AddressNumber", "AddressNumberSuffix"}
_REVIEW_LABELS = {"Recipient", "NotAddress", "LandmarkName", "CornerOf", "IntersectionSeparator", "BuildingName", "SubaddressType", "SubaddressIdentifier"}
_PLACE_LABELS = {"PlaceName", "StateName", "ZipCode", "CountryName"}


def _abbr(word: str, style: str) -> str:
    return word.upper() if style == "upper" else word[:1].upper() + word[1:].lower()


def _words(text: str, style: str, fix: bool) -> str:
    if style == "upper":
        return text.upper()
    if not fix:
        return text
    out = []
    for w in text.split(" "):
        m = _ORDINAL.match(w)
        out.append(m.group(1) + m.group(2).lower() if m else name_case(w.lower()) if w else w)
    return " ".join(out)


def _format_us(tags: dict[str, str], pub: Pub28, style: str, fix: bool) -> str:
    parts: list[str] = []
    unit_type = ""
    for label, raw in tags.items():
        value = raw.strip().strip(",")
        key = value.upper().replace(".", "").strip()
        if label in _KEEP_LABELS:
            parts.append(value.upper())
        elif label in ("StreetNamePreDirectional", "StreetNamePostDirectional"):
            parts.append(pub.directionals.get(key, _words(value, style, fix)))
        elif label == "StreetNamePostType":
            std = pub.suffixes.get(key)
            parts.append(_abbr(std, style) if std else _words(value, style, fix))
        elif label == "OccupancyType":
            std = pub.units.get(key)
            unit_type = std or ""
            parts.append(_abbr(std, style) if std and std != "#" else "#" if std == "#" else _words(value, style, fix))
        elif label == "OccupancyIdentifier":
            ident = value.lstrip("#").strip().upper() if (unit_type or value.startswith("#")) else value.upper()
            if not unit_type and value.startswith("#"):
                parts.append("#")
            parts.append(ident)
        elif label == "USPSBoxType":
            parts.append("PO BOX" if style == "upper" else "PO Box")
        elif label in ("USPSBoxID", "USPSBoxGroupID"):
            parts.append(value.upper())
        elif label == "USPSBoxGroupType":
            parts.append(_words(value, style, True))
        else:  # StreetName, StreetNamePreModifier, StreetNamePreType, ...
            parts.append(_words(value, style, fix))
    return " ".join(p for p in parts if p)


def _splice(tags: dict[str, str], key: str, items: list[tuple[str, str]], drop: tuple[str, ...] = ()) -> dict[str, str]:
    """``tags`` with ``key`` replaced in place by ``items`` (order kept) and ``drop`` removed."""
    out: dict[str, str] = {}
    for k, v in tags.items():
        if k == key:
            out.update(items)
        elif k not in drop:
            out[k] = v
    return out


def _repair_tags(tags: dict[str, str], pub: Pub28) -> dict[str, str]:
    """Known slips of the CRF tagger on street-only input, corrected by the Pub 28 tables.

    * a trailing unit ("... Street Apartment 4A") read as city and state;
    * a street type left inside the name ("E 3rd Road" → name "3rd Road", no type).
    """
    place, state = tags.get("PlaceName", ""), tags.get("StateName", "")
    if place and place.strip(",. ").upper() in pub.units and "OccupancyType" not in tags and "ZipCode" not in tags:
        ident = state or tags.get("OccupancyIdentifier", "")
        tags = _splice(tags, "PlaceName", [("OccupancyType", place), *([("OccupancyIdentifier", ident)] if ident else [])],
                       drop=("StateName", "OccupancyIdentifier"))
    if "StreetName" not in tags and "StreetNamePreType" in tags:  # "E 3rd Road" read as a pre-type
        tags = _splice(tags, "StreetNamePreType", [("StreetName", tags["StreetNamePreType"])])
    ident = tags.get("OccupancyIdentifier", "")
    first_word = ident.split(" ", 1)[0].rstrip(".").upper() if ident else ""
    if "OccupancyType" not in tags and " " in ident and first_word in pub.units and first_word != "#":
        unit, _, rest = ident.partition(" ")
        tags = _splice(tags, "OccupancyIdentifier", [("OccupancyType", unit), ("OccupancyIdentifier", rest.strip())])
    words = tags.get("StreetName", "").split()
    if "StreetNamePostType" not in tags and len(words) > 1 and words[-1].rstrip(".").upper() in pub.suffixes:
        tags = _splice(tags, "StreetName", [("StreetName", " ".join(words[:-1])), ("StreetNamePostType", words[-1])])
    return tags


def _parse_us_street(text: str, pub: Pub28, style: str) -> tuple[str, dict[str, str], str | None]:
    try:
        tagged, kind = usaddress.tag(text)
    except usaddress.RepeatedLabelError:
        return text, {}, "ADDRESS_AMBIGUOUS"
    except Exception:  # the CRF tagger on odd unicode: keep the value, flag it
        return text, {}, "ADDRESS_UNPARSED"
    if kind != "Street Address" and kind != "PO Box":
        return text, {}, "ADDRESS_AMBIGUOUS" if kind == "Ambiguous" else "ADDRESS_UNPARSED"
    tagged = _repair_tags(dict(tagged), pub)
    labels = set(tagged)
    if labels & _REVIEW_LABELS or "AddressNumber" not in labels and kind == "Street Address":
        return text, {}, "ADDRESS_UNPARSED"
    place = {k: v for k, v in tagged.items() if k in _PLACE_LABELS}
    street = {k: v for k, v in tagged.items() if k not in _PLACE_LABELS}
    fix = letters_cased(text) in ("upper", "lower")
    return _format_us(street, pub, style, fix), place, None


@lru_cache(maxsize=262_144)
def normalize_us_street(street: str, pub: Pub28, style: str = "title") -> tuple[str, tuple[tuple[str, str], ...], str | None]:
    """Return (street, place parts found inside the street, reason).

    Ensures idempotence: a result that would change again is not used (kept and flagged).

    >>> normalize_us_street("123 north main street suite 200", _test_pub())[0]
    '123 N Main St Ste 200'
    """
    text = tidy(street.replace("\n", ", ").replace("\r", " "))
    if not text:
        return street, (), None
    lead = _HOUSE_NUMBER.fullmatch(text)
    if lead is not None:
        number, rest = lead.groups()
        stand_in = _stand_in(number)
        if stand_in != number and not _numbers_in_tables(pub):
            out, place, reason = _us_street_text(stand_in + " " + rest, pub, style)
            if reason:
                return text, (), reason
            if not place and out.startswith(stand_in + " "):
                return number + out[len(stand_in):], (), None
    return _us_street_text(text, pub, style)


# A house number and the rest of the street: the tagger sees a number only as its length and its
# trailing zeros (usaddress's tokenFeatures: a token of digits has no "word" feature), so every
# number of one length and one run of trailing zeros is tagged alike in the same street, and
# the digits pass through the formatting unchanged (no Pub 28 table holds a number). A street
# is therefore parsed once per (shape of number, rest): many houses share a street.
_HOUSE_NUMBER = re.compile(r"([0-9]{1,6}) (.+)", re.DOTALL)  # on tidied text: one space after the number


def _stand_in(number: str) -> str:
    """The number of the same length and trailing zeros that stands for ``number``: 4250 → 1110."""
    zeros = len(number) - len(number.rstrip("0"))
    return "1" * (len(number) - zeros) + "0" * zeros


@lru_cache(maxsize=8)
def _numbers_in_tables(pub: Pub28) -> bool:
    """Whether a pack's tables give a number a meaning (then a street is parsed as it is)."""
    tables = (pub.suffixes, pub.units, pub.directionals, pub.us_states, pub.ca_provinces)
    return any(any(ch.isdigit() for ch in key) for table in tables for key in table)


@lru_cache(maxsize=131_072)
def _us_street_text(text: str, pub: Pub28, style: str) -> tuple[str, tuple[tuple[str, str], ...], str | None]:
    """:func:`normalize_us_street` of a tidied, non-blank street: the reference, by the tagger."""
    if re.match(r"^\d{7,}\s+\d", text):
        return text, (), "ADDRESS_LEGACY_PREFIX"
    out, place, reason = _parse_us_street(text, pub, style)
    if reason:
        return text, (), reason
    again, _, reason2 = _parse_us_street(out, pub, style)
    if reason2 or again != out:
        return text, (), "ADDRESS_UNSTABLE"
    return out, tuple(sorted(place.items())), None


# --- fast path: "NUMBER [DIR] NAME [NAME] SUFFIX [DIR] [UNIT ID | # ID]" ---------------------------

_DIR_WORDS = ("N", "S", "E", "W", "NE", "NW", "SE", "SW", "NORTH", "SOUTH", "EAST", "WEST")


@lru_cache(maxsize=8)
def _fast_pattern(pub: Pub28) -> re.Pattern[str]:
    units = sorted((u for u in pub.units if u != "#"), key=len, reverse=True)
    dirs = "|".join(sorted(_DIR_WORDS, key=len, reverse=True))
    name = r"(?:\d{1,3}(?:ST|ND|RD|TH)|[A-Z][A-Z']{1,20})"
    # the suffix is any word here; fast_us_street checks it against the Pub 28 table
    return re.compile(
        rf"^(?P<num>\d{{1,6}})\s+(?:(?P<pre>{dirs})\.?\s+)?(?P<name>{name}(?:\s+{name})??)\s+(?P<suf>[A-Z]{{1,12}})\.?"
        rf"(?:\s+(?P<post>{dirs})\.?)?(?:\s+(?P<unit>{'|'.join(map(re.escape, units))})\.?\s+(?P<uid>[A-Z0-9]{{1,6}})|\s+#\s?(?P<hid>[A-Z0-9]{{1,6}}))?$",
        re.IGNORECASE,
    )


def fast_us_street(street: str, pub: Pub28, style: str = "title") -> tuple[str, tuple[tuple[str, str], ...], None] | None:
    """The common street shapes without the CRF tagger; None when the reference path must decide.

    Accepted only when every name word is plainly a name (not itself a suffix, unit or
    direction word, which the tagger may read differently); the tests prove the result equals
    :func:`normalize_us_street` on every value this accepts.
    """
    text = tidy(street)
    lead = _HOUSE_NUMBER.fullmatch(text)
    if lead is None:
        return None
    # The house number only passes through (digits, no case), so the rest of the street is
    # formatted once per distinct rest: many houses share a street.
    rest = _fast_rest(lead.group(2), pub, style)
    return None if rest is None else (lead.group(1) + " " + rest, (), None)


@lru_cache(maxsize=65_536)
def _fast_rest(rest: str, pub: Pub28, style: str) -> str | None:
    """The fast path for "1 <rest>", without the "1 ": the house number never changes the rest."""
    text = "1 " + rest
    m = _fast_pattern(pub).match(text)
    if not m:
        return None
    if m.group("suf").upper() not in pub.suffixes:
        return None
    words = m.group("name").upper().split()
    if any(w in pub.units or w in _DIR_WORDS for w in words) or (len(words) > 1 and words[0] in pub.suffixes):
        return None
    if m.group("pre") and any(w in pub.suffixes for w in words):  # "E Court Rd": the tagger may read "Court" as the type
        return None
    tags: dict[str, str] = {"AddressNumber": m.group("num")}
    if m.group("pre"):
        tags["StreetNamePreDirectional"] = m.group("pre")
    tags["StreetName"] = m.group("name")
    tags["StreetNamePostType"] = m.group("suf")
    if m.group("post"):
        tags["StreetNamePostDirectional"] = m.group("post")
    if m.group("unit"):
        tags["OccupancyType"] = m.group("unit")
        tags["OccupancyIdentifier"] = m.group("uid")
    elif m.group("hid"):
        tags["OccupancyIdentifier"] = "#" + m.group("hid")
    out = _format_us(tags, pub, style, letters_cased(text) in ("upper", "lower"))
    return out[2:]  # "1 " + the formatted rest


def _test_pub() -> Pub28:
    from crmclean.rules.packs import load_table_path

    return Pub28.from_data(load_table_path("data/usps_pub28.yaml"))


def normalize_foreign_street(street: str) -> str:
    text = tidy(street.replace("\n", ", "))
    return _words(text, "title", letters_cased(text) in ("upper", "lower"))


def normalize_city(city: str) -> str:
    text = tidy(city)
    return _words(text, "title", letters_cased(text) in ("upper", "lower"))


_ZIP = re.compile(r"^(\d{5})(?:[\s-]?(\d{4}))?$")
_POSTAL: dict[str, tuple[re.Pattern[str], str]] = {
    "CA": (re.compile(r"^([A-Z]\d[A-Z])[\s-]?(\d[A-Z]\d)$"), r"\1 \2"),
    "GB": (re.compile(r"^([A-Z]{1,2}\d[A-Z\d]?)\s*(\d[A-Z]{2})$"), r"\1 \2"),
    "DE": (re.compile(r"^(\d{5})$"), r"\1"),
    "FR": (re.compile(r"^(\d{5})$"), r"\1"),
    "ES": (re.compile(r"^(\d{5})$"), r"\1"),
    "IT": (re.compile(r"^(\d{5})$"), r"\1"),
    "AU": (re.compile(r"^(\d{4})$"), r"\1"),
    "AT": (re.compile(r"^(\d{4})$"), r"\1"),
    "BE": (re.compile(r"^(\d{4})$"), r"\1"),
    "CH": (re.compile(r"^(\d{4})$"), r"\1"),
    "DK": (re.compile(r"^(\d{4})$"), r"\1"),
    "NO": (re.compile(r"^(\d{4})$"), r"\1"),
    "NZ": (re.compile(r"^(\d{4})$"), r"\1"),
    "ZA": (re.compile(r"^(\d{4})$"), r"\1"),
    "NL": (re.compile(r"^(\d{4})\s*([A-Z]{2})$"), r"\1 \2"),
    "SE": (re.compile(r"^(\d{3})\s*(\d{2})$"), r"\1 \2"),
    "JP": (re.compile(r"^(\d{3})-?(\d{4})$"), r"\1-\2"),
    "BR": (re.compile(r"^(\d{5})-?(\d{3})$"), r"\1-\2"),
    "IN": (re.compile(r"^(\d{6})$"), r"\1"),
    "MX": (re.compile(r"^(\d{5})$"), r"\1"),
    "IE": (re.compile(r"^([AC-FHKNPRTV-Y]\d{2}|D6W)\s*([0-9AC-FHKNPRTV-Y]{4})$"), r"\1 \2"),
}


def normalize_postal(value: str, country: str) -> tuple[str, str | None]:
    """US: 12345 or 12345-6789 (3–4 digits are re-padded: Excel dropped the zeros). Others: per country."""
    text = tidy(value)
    if not text:
        return value, None
    if country in ("US", "PR", "VI", "GU", "AS", "MP"):
        m = _ZIP.match(text)
        if m:
            return (f"{m.group(1)}-{m.group(2)}" if m.group(2) else m.group(1)), None
        if text.isdigit() and 3 <= len(text) <= 4:
            return text.zfill(5), "ZIP_ZERO_PADDED"
        if re.fullmatch(r"\d{5}\.0", text):
            return text[:5], "ZIP_FROM_NUMBER"
        return text, "ZIP_INVALID"
    rule = _POSTAL.get(country)
    if rule is None:
        return text, None
    pattern, repl = rule
    upper = text.upper()
    if pattern.match(upper):
        return pattern.sub(repl, upper), None
    return text, "POSTAL_INVALID"


def normalize_state(value: str, country: str, pub: Pub28) -> tuple[str, str | None]:
    text = tidy(value)
    if not text:
        return value, None
    key = text.upper().replace(".", "").strip() if len(text.replace(".", "")) <= 3 else text.upper()
    for code_country, names in (("US", pub.us_states), ("CA", pub.ca_provinces)):
        if country not in (code_country, ""):
            continue
        if key in set(names.values()):
            return key, None
        code = names.get(text.upper())
        if code:
            return code, None
        if country == code_country:
            return text, "STATE_INVALID"
    return normalize_city(text), None
