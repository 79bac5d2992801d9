"""Emails: noise removed, lower-cased, syntax-checked without DNS, typo domains corrected."""

from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd
from email_validator import EmailNotValidError, validate_email

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


def normalize_emails(values: pd.Series, typo_domains: dict[str, str], role_locals: frozenset[str]) -> tuple[pd.Series, pd.Series]:
    """Vectorised over unique values: (normalized, reasons)."""
    uniq = pd.unique(values.to_numpy(dtype=object))
    table = {v: normalize_email(v, typo_domains, role_locals) for v in uniq}
    out = values.map(lambda v: table[v][0])
    reasons = values.map(lambda v: table[v][1])
    return out.astype(object), reasons.astype(object)
