"""The validate stage: checks that report and never repair.

Findings carry record id, field, check id and severity; they feed the report and the gates.
Checks come from the rule pack (a closed vocabulary: required, max_length, matches, one_of),
from the target pack (required fields, length limits, picklists) and built in (impossible and
future dates, an email domain that contradicts the company's).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from crmclean.model import FINDING_COLUMNS, RECORD_ID, concat, findings_frame
from crmclean.rules.packs import Pack
from crmclean.rules.regexsafe import compile_safe

STAGE = "validate"


def _find(frame: pd.DataFrame, mask: np.ndarray | pd.Series, check: str, field: str, severity: str, reason: str) -> pd.DataFrame:
    mask = np.asarray(mask, dtype=bool)
    return findings_frame(frame.loc[mask, RECORD_ID], stage=STAGE, check_id=check, field_name=field, severity=severity, reason=reason)


def picklist_value(value: str, spec: dict[str, Any]) -> tuple[str, bool]:
    """Map a canonical value through a target picklist: (target value, allowed?)."""
    mapping = {str(k).casefold(): str(v) for k, v in dict(spec.get("map", {}) or {}).items()}
    allowed = [str(x) for x in spec.get("allowed", []) or []]
    mapped = mapping.get(value.casefold(), value)
    if not allowed:
        return mapped, True
    if mapped in allowed:
        return mapped, True
    folded = {a.casefold(): a for a in allowed}
    if mapped.casefold() in folded:
        return folded[mapped.casefold()], True
    return mapped, False


def validate(frame: pd.DataFrame, pack: Pack, target: Pack | None, as_of: dt.date) -> pd.DataFrame:
    out = []
    obj = frame["_object"].astype(str) if "_object" in frame else pd.Series("contact", index=frame.index)
    for check in pack.get("validate", "checks", default=[]) or []:
        field = check["field"]
        objects = check.get("objects")
        applies = obj.isin(objects).to_numpy() if objects else np.ones(len(frame), dtype=bool)
        values = frame[field].astype(str)
        kind = check["check"]
        sev = check.get("severity", "error")
        if kind == "required":
            bad = values.str.strip() == ""
            reason = "REQUIRED_MISSING"
        elif kind == "max_length":
            bad = values.str.len() > int(check["value"])
            reason = "TOO_LONG"
        elif kind == "one_of":
            allowed = {str(v).casefold() for v in check["value"]}
            bad = (values != "") & ~values.str.casefold().isin(allowed)
            reason = "NOT_ALLOWED_VALUE"
        else:  # matches
            pattern = compile_safe(str(check["value"]), ignore_case=False)
            bad = (values != "") & ~values.map(lambda v, p=pattern: p.fullmatch(v) is not None)
            reason = "PATTERN_MISMATCH"
        out.append(_find(frame, bad.to_numpy() & applies, f"pack.{check['id']}", field, sev, reason))

    if target is not None:
        tobj = target.data.get("object")
        applies = (obj == tobj).to_numpy() if tobj else np.ones(len(frame), dtype=bool)
        for field in target.data.get("required", []) or []:
            bad = (frame[field].astype(str).str.strip() == "").to_numpy() & applies
            out.append(_find(frame, bad, f"target.{target.name}.required", field, "error", "TARGET_REQUIRED_MISSING"))
        for field, limit in (target.data.get("max_length", {}) or {}).items():
            bad = (frame[field].astype(str).str.len() > int(limit)).to_numpy() & applies
            out.append(_find(frame, bad, f"target.{target.name}.max_length", field, "error", f"TARGET_TOO_LONG_{limit}"))
        for field, spec in (target.data.get("picklists", {}) or {}).items():
            values = frame[field].astype(str)
            uniq = {v: picklist_value(v, spec)[1] for v in pd.unique(values[values != ""])}
            bad = values.map(lambda v, u=uniq: v != "" and not u.get(v, True)).to_numpy(dtype=bool) & applies
            out.append(_find(frame, bad, f"target.{target.name}.picklist", field, "error", "TARGET_PICKLIST_VALUE"))

    # dates: created after the last activity, or in the future
    future_days = int(pack.get("validate", "future_days", default=1))
    limit = (as_of + dt.timedelta(days=future_days)).isoformat()
    for field in ("created_at", "modified_at", "last_activity_at"):
        v = frame[field].astype(str).str[:10]
        ok = v.str.match(r"^\d{4}-\d{2}-\d{2}$")
        out.append(_find(frame, (ok & (v > limit)).to_numpy(), "date.future", field, "warning", "DATE_IN_FUTURE"))
    c = frame["created_at"].astype(str).str[:10]
    a = frame["last_activity_at"].astype(str).str[:10]
    both = c.str.match(r"^\d{4}-\d{2}-\d{2}$") & a.str.match(r"^\d{4}-\d{2}-\d{2}$")
    out.append(_find(frame, (both & (c > a)).to_numpy(), "date.order", "created_at", "warning", "CREATED_AFTER_LAST_ACTIVITY"))

    # a work email whose domain contradicts the company's website domain: only a record with both
    # can (a company domain and an email with "@"), so only those rows are examined
    free = set(pack.get("validate", "free_email_domains", default=[]) or [])
    email, website = frame["email"].astype(str), frame["company_domain"].astype(str)
    rows = np.flatnonzero(((website != "") & email.str.contains("@", regex=False)).to_numpy())
    mismatch = np.zeros(len(frame), dtype=bool)
    if len(rows):
        dom = email.iloc[rows].str.split("@").str[-1].str.casefold()
        site = website.iloc[rows].str.casefold().str.replace(r"^(https?://)?(www\.)?", "", regex=True).str.split("/").str[0]
        suffix_match = np.array([d.endswith("." + w) for d, w in zip(dom, site, strict=True)], dtype=bool)
        mismatch[rows] = ((site != "") & ~dom.isin(free) & (dom != site)).to_numpy() & ~suffix_match
    out.append(_find(frame, mismatch, "email.company_domain", "email", "info", "EMAIL_DOMAIN_NOT_COMPANY"))
    return concat(out, FINDING_COLUMNS)
