"""Phone numbers → E.164 (extension kept as ``;ext=N``), with the number type.

The region comes from the row's country, else the pack's default region. A value that is not a
valid number is kept exactly as it was and flagged — never deleted. ``normalize_phone`` is the
reference (slow) path; ``normalize_phones`` adds a vectorised fast path for North-American
numbers in the common shapes which gives exactly the reference result (proved in the tests).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from crmclean.normalize.text import tidy

_TYPES = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}
_FORMATS = {"e164": PhoneNumberFormat.E164, "international": PhoneNumberFormat.INTERNATIONAL, "national": PhoneNumberFormat.NATIONAL}
_PREFIX_NOISE = re.compile(r"^(?:tel|phone|ph|mobile|mob|cell|fax|work|home|office)\s*[:.]?\s*(?=[+(\d])", re.I)
_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


def region_for(country: str, default_region: str) -> str:
    return country if country in _REGIONS else default_region


@lru_cache(maxsize=262_144)
def normalize_phone(value: str, region: str, fmt: str = "e164") -> tuple[str, str, str | None]:
    """Return (value, number type, reason). Invalid input comes back unchanged with a reason.

    >>> normalize_phone("415.555.2671 x12", "US")
    ('+14155552671;ext=12', 'fixed_line_or_mobile', None)
    >>> normalize_phone("555-1212", "US")[2]
    'PHONE_INVALID'
    """
    text = tidy(value)
    if not text:
        return value, "", None
    text = _PREFIX_NOISE.sub("", text)
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return value, "", "PHONE_UNPARSEABLE"
    if not phonenumbers.is_valid_number(number):
        return value, "", "PHONE_INVALID"
    out = phonenumbers.format_number(number, _FORMATS[fmt])
    if number.extension:
        out += f";ext={number.extension}"
    return out, _TYPES.get(phonenumbers.number_type(number), "unknown"), None


# --- fast path: North-American numbers in the common shapes --------------------------------

_NANP_SHAPE = re.compile(
    r"^\s*(?:\+?1[\s.\-]?)?\(?([2-9]\d{2})\)?[\s.\-]?([2-9]\d{2})[\s.\-]?(\d{4})"
    r"(?: (?:x|ext\.?) ?(\d{1,6}))?\s*$"  # an extension as reps type it: " x12", " ext 9", " ext. 99"
)


@lru_cache(maxsize=1)
def _us_patterns() -> tuple[re.Pattern[str], re.Pattern[str], list[re.Pattern[str]]]:
    md: Any = phonenumbers.PhoneMetadata.metadata_for_region("US")
    general = re.compile(str(md.general_desc.national_number_pattern))
    fixed = re.compile(str(md.fixed_line.national_number_pattern))
    special: list[re.Pattern[str]] = []
    for desc in (md.premium_rate, md.toll_free, md.shared_cost, md.voip, md.personal_number, md.pager, md.uan, md.voicemail):
        if desc is not None and desc.national_number_pattern:
            special.append(re.compile(str(desc.national_number_pattern)))
    if md.mobile.national_number_pattern != md.fixed_line.national_number_pattern:
        general = re.compile(r"(?!)")  # metadata changed shape: disable the fast path rather than guess
    return general, fixed, special


@lru_cache(maxsize=1)
def _any_special() -> re.Pattern[str] | None:
    """One alternation of the special-service patterns: it fullmatches exactly when one of them does."""
    special = _us_patterns()[2]
    return re.compile("|".join(f"(?:{p.pattern})" for p in special)) if special else None


def fast_us(values: pd.Series) -> pd.Series:
    """E.164 for values that are plainly US numbers; NA where the reference path must decide.

    Only regions US and CA reach here (NANP, country code 1). A number counts only when the US
    fixed-line pattern matches and no special-service pattern does: then phonenumbers assigns it
    to region US, valid, type FIXED_LINE_OR_MOBILE — exactly what the reference path returns.
    An extension written " x12", " ext 12" or " ext. 12" is kept as ``;ext=12``, as the
    reference path keeps it (neither validity nor type depends on it).
    """
    general, fixed, _special = _us_patterns()
    special = _any_special()
    shape = _NANP_SHAPE.match
    out: list[str | None] = []
    for value in values.to_numpy(dtype=object):
        m = shape(value) if isinstance(value, str) else None
        if m is None:
            out.append(None)
            continue
        d = m.group(1) + m.group(2) + m.group(3)
        ok = general.fullmatch(d) is not None and fixed.fullmatch(d) is not None and (special is None or special.fullmatch(d) is None)
        ext = m.group(4)
        out.append(("+1" + d + (f";ext={ext}" if ext else "")) if ok else None)
    return pd.Series(out, index=values.index, dtype=object)


def normalize_phones(values: pd.Series, regions: pd.Series, fmt: str = "e164") -> tuple[pd.Series, pd.Series, pd.Series]:
    """Vectorised: (normalized values, number types, reasons) for aligned values/regions."""
    values = values.astype(object)
    out = values.copy()
    types = pd.Series("", index=values.index, dtype=object)
    reasons = pd.Series(None, index=values.index, dtype=object)
    nonblank = values.str.strip() != ""
    todo = nonblank.copy()
    if fmt == "e164":
        nanp = nonblank & regions.isin(("US", "CA"))
        if nanp.any():
            fast = fast_us(values[nanp])
            hit = fast.notna()
            idx = fast.index[hit.to_numpy(dtype=bool)]
            out[idx] = fast[idx]
            types[idx] = "fixed_line_or_mobile"
            todo[idx] = False
    if todo.any():
        keys = pd.DataFrame({"v": values[todo], "r": regions[todo]})
        uniq = keys.drop_duplicates()
        results = [normalize_phone(v, r, fmt) for v, r in zip(uniq["v"], uniq["r"], strict=True)]
        table = pd.DataFrame(results, columns=["o", "t", "x"], index=pd.MultiIndex.from_frame(uniq))
        looked = table.reindex(pd.MultiIndex.from_frame(keys))
        out[todo] = looked["o"].to_numpy(dtype=object)
        types[todo] = looked["t"].to_numpy(dtype=object)
        reasons[todo] = looked["x"].to_numpy(dtype=object)
    return out, types, reasons.where(reasons.notna(), np.nan)
