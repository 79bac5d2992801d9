"""Emails: noise removed, lower-cased, syntax-checked without DNS, typo domains corrected."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd
from email_validator import EmailNotValidError, validate_email

from crmclean.model import STR
from crmclean.normalize.text import tidy

_ANGLE = re.compile(r"<\s*([^<>\s]+@[^<>\s]+)\s*>\s*$")
_MAILTO = re.compile(r"^mailto:", re.I)
_EDGE = re.compile(r"^[\s\"'(\[<;,]+|[\s\"')\]>;,.]+$")
# A conservative shape every syntax checker accepts; anything else goes to email-validator.
FAST_EMAIL = re.compile(
    r"^(?=.{6,254}$)(?=[^@]{1,64}@)[a-z0-9](?:[a-z0-9_%+\-]|\.(?!\.))*(?<=[a-z0-9_+\-])@"
    r"(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}$"
)
_SPECIAL_TLDS = ("arpa", "invalid", "local", "localhost", "onion", "test")


def _clean(value: str) -> str:
    text = tidy(value)
    m = _ANGLE.search(text)
    if m:
        text = m.group(1)
    text = _MAILTO.sub("", text)
    return _EDGE.sub("", text)


def fast_valid(lowered: str) -> bool:
    if not FAST_EMAIL.match(lowered) or "--" in lowered.rpartition("@")[2]:  # IDNA reserves '--' in labels
        return False
    return lowered.rsplit(".", 1)[-1] not in _SPECIAL_TLDS


@lru_cache(maxsize=262_144)
def slow_valid(lowered: str) -> str | None:
    """The email-validator verdict: the normalized address, or None when invalid."""
    try:
        result = validate_email(lowered, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    except Exception:  # email-validator on pathological unicode: treat as invalid, never crash
        return None
    return str(result.normalized).lower()


def normalize_email(value: str, typo_domains: dict[str, str], role_locals: frozenset[str]) -> tuple[str, str | None]:
    """Return (email, reason). Invalid addresses are kept as written (trimmed) and flagged.

    >>> normalize_email(' "Bob" <Bob@GMIAL.com> ', {"gmial.com": "gmail.com"}, frozenset())
    ('bob@gmail.com', 'EMAIL_DOMAIN_TYPO')
    """
    if not value.strip():
        return value, None
    text = _clean(value).lower()
    reason: str | None = None
    if "@" in text:
        local, _, domain = text.rpartition("@")
        fixed = typo_domains.get(domain)
        if fixed:
            text, reason = f"{local}@{fixed}", "EMAIL_DOMAIN_TYPO"
    if fast_valid(text):
        normalized: str | None = text
    else:
        normalized = slow_valid(text)
    if normalized is None:
        return tidy(value), "EMAIL_INVALID"
    if reason is None and normalized.split("@", 1)[0] in role_locals:
        reason = "EMAIL_ROLE"
    return normalized, reason


# Plain addresses, ASCII, in a shape inside FAST_EMAIL's (no '%', no '--' anywhere) that RE2 can
# check without FAST_EMAIL's look-arounds; the lengths are checked beside it.
PLAIN_EMAIL = (r"[A-Za-z0-9](?:[A-Za-z0-9_+\-]|\.[A-Za-z0-9_+\-])*@"
               r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}")
_SPECIAL_END = r"\.(?:" + "|".join(_SPECIAL_TLDS) + ")$"


def plain_emails(values: np.ndarray, typo_domains: dict[str, str], role_locals: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
    """(accepted, lower-cased) for the addresses whose result is simply their lower-case form
    with no reason, found in vectorised passes: plain ASCII addresses of a conservative shape,
    6–254 characters with a local part of at most 64, no '--', a top-level domain that is not
    special, a domain not in the typo table and a local part that is not a role. For them
    :func:`normalize_email` has nothing to clean, fix or flag (a property test checks it)."""
    text = pd.Series(values, dtype=STR)
    ok = np.array(text.str.fullmatch(PLAIN_EMAIL).to_numpy(dtype=bool, na_value=False))  # writable
    if not ok.any():
        return ok, values
    lower = text.str.lower()
    length = text.str.len().to_numpy(dtype=np.int64, na_value=0)
    ok &= (length >= 6) & (length <= 254) & (text.str.find("@").to_numpy(dtype=np.int64, na_value=0) <= 64)
    ok &= ~lower.str.contains("--", regex=False).to_numpy(dtype=bool, na_value=True)
    ok &= ~lower.str.contains(_SPECIAL_END).to_numpy(dtype=bool, na_value=True)
    parts = lower.str.partition("@")  # local part, "@", domain
    ok &= ~parts[2].isin(sorted(typo_domains)).to_numpy(dtype=bool, na_value=True)
    ok &= ~parts[0].isin(sorted(role_locals)).to_numpy(dtype=bool, na_value=True)
    return ok, lower.to_numpy(dtype=object)


def normalize_emails(values: pd.Series, typo_domains: dict[str, str], role_locals: frozenset[str]) -> tuple[pd.Series, pd.Series]:
    """Vectorised: plain addresses in a few passes, the rest once per unique value; (normalized, reasons)."""
    arr = values.to_numpy(dtype=object)
    out = arr.copy()
    reasons = np.full(len(arr), None, dtype=object)
    plain, lower = plain_emails(arr, typo_domains, role_locals)
    out[plain] = lower[plain]
    rest = np.flatnonzero(~plain)
    if len(rest):
        codes, uniq = pd.factorize(arr[rest], use_na_sentinel=False)
        table = [normalize_email(v, typo_domains, role_locals) for v in uniq]
        out[rest] = np.array([t[0] for t in table], dtype=object)[codes]
        reasons[rest] = np.array([t[1] for t in table], dtype=object)[codes]
    return pd.Series(out, index=values.index, dtype=object), pd.Series(reasons, index=values.index, dtype=object)
