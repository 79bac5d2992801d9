"""Dates → ISO 8601, using the source pack's day/month order — never guessed cell by cell.

Date-only values become ``YYYY-MM-DD``; values with a time become UTC ``YYYY-MM-DDTHH:MM:SSZ``
(a value without an offset is taken as UTC, or the pack's timezone). With order ``auto`` the
order is decided once per column from the data (a day above 12 shows it); values the data
cannot decide are reported as ambiguous and kept.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from functools import lru_cache
from zoneinfo import ZoneInfo

_ISO = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(Z|[+-]\d{2}:?\d{2}|UTC|GMT)?)?$",
    re.I,
)
_NUMERIC = re.compile(
    r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})(?:[T ,]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?\s*([AaPp]\.?[Mm]\.?)?)?$"
)
_MONTHS = {m: i for i, names in enumerate(
    [(), ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"), ("dec", "december")])
    for m in names}
_TEXT_MDY = re.compile(r"^([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$")
_TEXT_DMY = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})$")
_SERIAL = re.compile(r"^\d{5}(?:\.\d+)?$")
MIN_YEAR, MAX_YEAR = 1700, 4000


def _year(text: str) -> int:
    y = int(text)
    if len(text) == 2:
        y += 2000 if y < 70 else 1900
    return y


def _render(d: dt.date, t: tuple[int, int, int, int] | None, tz: str | None, default_tz: str) -> str:
    if t is None:
        return d.isoformat()
    naive = dt.datetime(d.year, d.month, d.day, *t)
    if tz is None or tz.upper() in ("UTC", "GMT", "Z"):
        zone: dt.tzinfo = ZoneInfo(default_tz) if tz is None and default_tz != "UTC" else dt.UTC
        aware = naive.replace(tzinfo=zone)
    else:
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        aware = naive.replace(tzinfo=dt.timezone(sign * offset))
    utc = aware.astimezone(dt.UTC)
    if utc.microsecond:  # keep sub-second precision rather than lose it
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def numeric_parts(value: str) -> tuple[int, int] | None:
    """For d/m/y-style values, the first two numbers (to decide a column's order)."""
    m = _NUMERIC.match(value.strip())
    if not m or len(m.group(1)) == 4:
        return None
    return int(m.group(1)), int(m.group(2))


def column_order(values: Iterable[str]) -> str | None:
    """'mdy' or 'dmy' when the data shows it, None when nothing decides (or both appear)."""
    first_big = second_big = False
    for v in values:
        parts = numeric_parts(v)
        if parts:
            first_big |= parts[0] > 12
            second_big |= parts[1] > 12
    if first_big and not second_big:
        return "dmy"
    if second_big and not first_big:
        return "mdy"
    return None


def _excel_serial(value: str, date1904: bool) -> dt.date | None:
    serial = float(value)
    if serial < 61 or serial > 2_958_465:
        return None
    base = dt.date(1904, 1, 1) if date1904 else dt.date(1899, 12, 30)
    return base + dt.timedelta(days=int(serial))


@lru_cache(maxsize=262_144)
def normalize_date(value: str, order: str, default_tz: str = "UTC", serials: bool = False, date1904: bool = False) -> tuple[str, str | None]:
    """Return (ISO value, None) or (value unchanged, reason).

    ``order`` is 'mdy', 'dmy', 'ymd' or 'none' (no column order known: d/m values whose two
    numbers are both ≤ 12 and differ are ambiguous).

    >>> normalize_date("03/04/2025", "dmy")
    ('2025-04-03', None)
    >>> normalize_date("2024-08-13T18:04:34.666+00:00", "mdy")
    ('2024-08-13T18:04:34Z', None)
    >>> normalize_date("03/04/2025", "none")
    ('03/04/2025', 'DATE_AMBIGUOUS')
    """
    text = value.strip()
    if not text:
        return value, None
    try:
        m = _ISO.match(text)
        if m:
            d = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            frac = (m.group(7) or "0")[:3].ljust(3, "0")
            t = (int(m.group(4)), int(m.group(5)), int(m.group(6) or 0), int(frac) * 1000) if m.group(4) else None
            return _checked(d, t, m.group(8), default_tz, value)
        m = _NUMERIC.match(text)
        if m:
            a, b, c = m.group(1), m.group(2), m.group(3)
            if len(a) == 4:  # y/m/d
                d = dt.date(int(a), int(b), int(c))
            else:
                x, y = int(a), int(b)
                if order == "dmy":
                    day, month = x, y
                elif order in ("mdy", "ymd"):
                    month, day = x, y
                elif x > 12 >= y:
                    day, month = x, y
                elif y > 12 >= x:
                    month, day = x, y
                elif x == y:
                    day = month = x
                else:
                    return value, "DATE_AMBIGUOUS"
                d = dt.date(_year(c), month, day)
            t = None
            if m.group(4):
                hour = int(m.group(4))
                ampm = (m.group(7) or "").lower().replace(".", "")
                if ampm == "pm" and hour < 12:
                    hour += 12
                elif ampm == "am" and hour == 12:
                    hour = 0
                t = (hour, int(m.group(5)), int(m.group(6) or 0), 0)
            return _checked(d, t, None, default_tz, value)
        m = _TEXT_MDY.match(text) or _TEXT_DMY.match(text)
        if m:
            if m.re is _TEXT_MDY:
                month_name, day_s, year_s = m.group(1), m.group(2), m.group(3)
            else:
                day_s, month_name, year_s = m.group(1), m.group(2), m.group(3)
            found_month = _MONTHS.get(month_name.lower())
            if found_month is None:
                return value, "DATE_UNPARSEABLE"
            return _checked(dt.date(int(year_s), found_month, int(day_s)), None, None, default_tz, value)
        if serials and _SERIAL.match(text):
            d2 = _excel_serial(text, date1904)
            if d2 is not None:
                return d2.isoformat(), None
    except ValueError:
        return value, "DATE_INVALID"
    return value, "DATE_UNPARSEABLE"


def _checked(d: dt.date, t: tuple[int, int, int, int] | None, tz: str | None, default_tz: str, original: str) -> tuple[str, str | None]:
    if not MIN_YEAR <= d.year <= MAX_YEAR:
        return original, "DATE_OUT_OF_RANGE"
    if t is not None and not (0 <= t[0] < 24 and 0 <= t[1] < 60 and 0 <= t[2] < 60):
        return original, "DATE_INVALID"
    return _render(d, t, tz, default_tz), None
