"""Contact lifecycle: stale, deceased, left the company, out of business, hostile, unresponsive,
disqualified — each rule a declarative condition in the pack, each decision with a rule id and a
reason code. Nothing is lost: archived records go to ``archive.csv`` with their original values,
deletes are only ever *proposed* (and only with an explicit flag).

Precedence: the strongest action wins — delete > archive > deactivate > tag — and among rules
with that action the first in pack order gives the primary reason; every rule that fired is
listed. A condition that cannot be decided (a missing or unparseable date) never archives,
deactivates or deletes: the record goes to review with a reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmclean.errors import InputError, UsageError
from crmclean.model import (
    CHANGE_COLUMNS,
    FINDING_COLUMNS,
    RECORD_ID,
    changes_frame,
    concat,
    findings_frame,
    member,
)
from crmclean.rules.packs import Pack
from crmclean.rules.regexsafe import compile_safe

ACTION_RANK = {"tag": 1, "deactivate": 2, "archive": 3, "delete": 4}
STATE_OF_ACTION = {"tag": "exported", "deactivate": "deactivated", "archive": "archived", "delete": "deleted"}
STICKY_TRUE = ("email_opt_out", "do_not_call")
MAX_NOTE_CHARS = 20_000  # signals are searched in the first 20k characters of a note


@dataclass
class Suppression:
    kind: str
    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()  # "first last" folded
    source: str = ""


@dataclass
class LifecycleContext:
    as_of: dt.date
    suppressions: list[Suppression] = field(default_factory=list)
    allow_delete: bool = False


@dataclass
class LifecycleResult:
    frame: pd.DataFrame  # with _state, _reasons, _rule_ids, _signals, _review
    changes: pd.DataFrame
    findings: pd.DataFrame
    counts: dict[str, int]


# --- signals from notes ---------------------------------------------------------------------


def compile_signals(pack: Pack) -> dict[str, tuple[list[Any], list[Any]]]:
    signals = pack.get("lifecycle", "signals", default={}) or {}
    return {name: ([compile_safe(p) for p in spec.get("phrases", [])], [compile_safe(p) for p in spec.get("exclude", [])])
            for name, spec in signals.items()}


def find_signals(text: str, compiled: dict[str, tuple[list[Any], list[Any]]]) -> tuple[str, ...]:
    """Signals whose phrase matches somewhere no exclude pattern covers.

    >>> sig = {"deceased": ([compile_safe(r"\\bdeceased\\b")], [compile_safe(r"\\bdeceased\\s+estates?\\b")])}
    >>> find_signals("Deceased per family 2023", sig), find_signals("handles deceased estates", sig)
    (('deceased',), ())
    """
    if not text:
        return ()
    text = text[:MAX_NOTE_CHARS]
    return tuple(name for name, (phrases, excludes) in compiled.items() if _signal_hit(text, phrases, excludes))


def _signal_hit(text: str, phrases: list[Any], excludes: list[Any]) -> bool:
    spans: list[tuple[int, int]] | None = None  # exclude spans, found only once a phrase matches
    for phrase in phrases:
        for m in phrase.finditer(text):
            if spans is None:
                spans = [(x.start(), x.end()) for ex in excludes for x in ex.finditer(text)]
            if not any(s < m.end() and m.start() < e for s, e in spans):
                return True
    return False


def signal_table(texts: Sequence[str], compiled: dict[str, tuple[list[Any], list[Any]]]) -> list[tuple[str, ...]]:
    """``find_signals`` for many texts: per signal, one linear-time search with all its phrases in one
    alternation settles most texts — run over all texts at once in Arrow's RE2 — and only a text it
    matches is examined phrase by phrase against the excludes."""
    screens = [(name, compile_safe("|".join(f"(?:{p.pattern})" for p in phrases)), phrases, excludes)
               for name, (phrases, excludes) in compiled.items() if phrases]
    hits = _screen_all(texts, [screen.pattern for _, screen, _, _ in screens])
    # a text no exclude pattern touches holds the signal as soon as a phrase matches: only texts
    # with both are searched phrase by phrase for a match the excludes do not cover
    excluded = np.zeros_like(hits)
    with_excludes = [k for k, (_, _, _, excludes) in enumerate(screens) if excludes]
    if with_excludes:
        excluded[:, with_excludes] = _screen_all(texts, ["|".join(f"(?:{p.pattern})" for p in screens[k][3]) for k in with_excludes])
    holds = hits & ~excluded
    for k in with_excludes:
        # the texts with both: which of the signal's phrases and excludes each holds is screened
        # in Arrow too, so the search below runs only the patterns that match (those that do
        # not match add no phrase match and no excluded span)
        rows = np.flatnonzero(hits[:, k] & excluded[:, k])
        if not len(rows):
            continue
        _, _, phrases, excludes = screens[k]
        some = [texts[i] for i in rows.tolist()]
        has_phrase = _screen_all(some, [p.pattern for p in phrases])
        has_exclude = _screen_all(some, [x.pattern for x in excludes])
        for r, i in enumerate(rows.tolist()):
            holds[i, k] = _signal_hit(texts[i][:MAX_NOTE_CHARS], [phrases[j] for j in np.flatnonzero(has_phrase[r]).tolist()],
                                      [excludes[j] for j in np.flatnonzero(has_exclude[r]).tolist()])
    names = [name for name, _, _, _ in screens]
    out: list[tuple[str, ...]] = [()] * len(texts)
    for i in np.flatnonzero(holds.any(axis=1)).tolist():
        out[i] = tuple(names[k] for k in np.flatnonzero(holds[i]).tolist())
    return out


def _screen_all(texts: Sequence[str], patterns: list[str]) -> np.ndarray:
    """(text, pattern) → the pattern matches in the text's first MAX_NOTE_CHARS characters,
    case-insensitively (as :func:`compile_safe`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.utf8_slice_codeunits(pa.array(texts, type=pa.large_string()), 0, MAX_NOTE_CHARS)
    hits = np.zeros((len(texts), len(patterns)), dtype=bool)
    for k, pattern in enumerate(patterns):
        hits[:, k] = pc.match_substring_regex(arr, pattern, ignore_case=True).to_numpy(zero_copy_only=False)
    return hits


# --- suppression lists ----------------------------------------------------------------------


def load_suppression(spec: str, default_region: str = "US") -> Suppression:
    """``KIND=PATH`` or ``PATH`` (kind from the file name): a CSV of emails, phones and/or names."""
    from crmclean.dedupe.features import _fold
    from crmclean.io.csvread import read_csv
    from crmclean.normalize.email import normalize_email
    from crmclean.normalize.phone import normalize_phone

    kind, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
    p = Path(path)
    kind = kind or p.stem.casefold().replace("-", "_").replace(" ", "_")
    table = read_csv(p)
    cols = {c.casefold().replace(" ", "_"): c for c in table.headers}
    email_col = next((cols[c] for c in ("email", "email_address", "e-mail", "emailaddress") if c in cols), None)
    phone_col = next((cols[c] for c in ("phone", "phone_number", "mobile", "telephone") if c in cols), None)
    first_col = next((cols[c] for c in ("first_name", "firstname", "first") if c in cols), None)
    last_col = next((cols[c] for c in ("last_name", "lastname", "last", "surname") if c in cols), None)
    if not (email_col or phone_col or (first_col and last_col)):
        raise InputError("E-SUPPRESS-COLUMNS", "suppression list needs an email, phone, or first and last name column",
                         location=table.display, hint="name the columns email / phone / first_name, last_name")
    emails = frozenset(e for e in (normalize_email(v, {}, frozenset())[0] for v in table.frame[email_col]) if "@" in e) if email_col else frozenset()
    phones = frozenset(x for x in (normalize_phone(v, default_region)[0] for v in table.frame[phone_col]) if x.startswith("+")) if phone_col else frozenset()
    names = frozenset(f"{_fold(a)} {_fold(b)}" for a, b in zip(table.frame[first_col], table.frame[last_col], strict=True) if a.strip() and b.strip()) if first_col and last_col else frozenset()
    return Suppression(kind=kind, emails=emails, phones=phones, names=names, source=table.display)


def _suppressed(frame: pd.DataFrame, lists: list[Suppression]) -> dict[str, np.ndarray]:
    from crmclean.dedupe.features import _fold

    out: dict[str, np.ndarray] = {}
    if not lists:
        return out
    email = frame["email"].astype(str).str.casefold()
    phones = [frame[c].astype(str).str.split(";").str[0] for c in ("phone", "mobile")]
    name = frame["first_name"].astype(str).map(_fold) + " " + frame["last_name"].astype(str).map(_fold)
    for s in lists:
        hit = member(email, s.emails) | member(phones[0], s.phones) | member(phones[1], s.phones)
        hit |= member(name, s.names)
        out[s.kind] = out.get(s.kind, np.zeros(len(frame), dtype=bool)) | hit
    return out


# --- conditions (three-valued: true / false / unknown) ----------------------------------------


@dataclass
class _Eval:
    frame: pd.DataFrame
    as_of: dt.date
    signals: pd.Series
    account_states: dict[str, np.ndarray]
    suppressed: dict[str, np.ndarray]
    known_suppress_kinds: set[str]

    def age_days(self, field_name: str) -> tuple[np.ndarray, np.ndarray]:
        values = self.frame[field_name].astype(str).str[:10]
        parsed = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
        known = parsed.notna().to_numpy()
        days = (pd.Timestamp(self.as_of) - parsed).dt.days.to_numpy(dtype=float, na_value=np.nan)
        return np.nan_to_num(days, nan=0.0), known

    def cond(self, c: dict[str, Any]) -> tuple[Any, Any]:
        """(true, unknown) boolean arrays."""
        (key, arg), = c.items()
        n = len(self.frame)
        false = np.zeros(n, dtype=bool)
        if key in ("older_than", "not_older_than"):
            days, known = self.age_days(arg["field"])
            for fallback in arg.get("fallback", []):  # e.g. no activity date: use last modified
                d2, k2 = self.age_days(fallback)
                days = np.where(known, days, d2)
                known = known | k2
            value = days > arg["days"] if key == "older_than" else days <= arg["days"]
            return value & known, ~known
        if key == "missing":
            return (self.frame[arg].astype(str).str.strip() == "").to_numpy(), false
        if key == "present":
            return (self.frame[arg].astype(str).str.strip() != "").to_numpy(), false
        if key == "flag":
            return (self.frame[arg].astype(str) == "true").to_numpy(), false
        if key == "field_in":
            wanted = {v.casefold() for v in arg["values"]}
            return self.frame[arg["field"]].astype(str).str.strip().str.casefold().isin(wanted).to_numpy(), false
        if key == "signal":
            return self.signals.map(lambda s: arg in s).to_numpy(dtype=bool), false
        if key == "account_state":
            return self.account_states.get(arg, false), false
        if key == "suppressed":
            return self.suppressed.get(arg, false), false
        if key == "object":
            return (self.frame["_object"].astype(str) == arg).to_numpy(), false
        if key in ("all", "any"):
            parts = [self.cond(x) for x in arg]
            trues = np.array([p[0] for p in parts])
            unknowns = np.array([p[1] for p in parts])
            if key == "all":
                falses = ~trues & ~unknowns
                true = trues.all(axis=0)
                return true, ~true & ~falses.any(axis=0) & unknowns.any(axis=0)
            true = trues.any(axis=0)
            return true, ~true & unknowns.any(axis=0)
        if key == "not":
            t, u = self.cond(arg)
            return ~t & ~u, u
        raise UsageError("E-RULE-UNKNOWN-OP", f"unknown condition '{key}'", hint="validated at load; please report")


def _suppress_kinds(pack: Pack) -> set[str]:
    kinds: set[str] = set()

    def walk(c: Any) -> None:
        if isinstance(c, dict):
            for k, v in c.items():
                if k == "suppressed":
                    kinds.add(v)
                else:
                    walk(v)
        elif isinstance(c, list):
            for x in c:
                walk(x)

    walk(pack.get("lifecycle", "rules", default=[]))
    return kinds


def lifecycle(frame: pd.DataFrame, pack: Pack, ctx: LifecycleContext) -> LifecycleResult:
    f = frame.copy(deep=False)  # copy-on-write: columns set below never reach the caller's frame
    n = len(f)
    compiled = compile_signals(pack)
    codes, uniques = pd.factorize(f["notes"].astype(str), use_na_sentinel=False)
    found = signal_table(np.asarray(uniques, dtype=object).tolist(), compiled)
    signals = pd.Series([found[c] for c in codes], index=f.index, dtype=object) if n else pd.Series([], dtype=object)
    kinds = _suppress_kinds(pack)
    unknown_kinds = {s.kind for s in ctx.suppressions} - kinds
    if unknown_kinds:
        raise UsageError("E-SUPPRESS-KIND", f"no lifecycle rule acts on suppression list kind(s) {', '.join(sorted(unknown_kinds))}",
                         hint="name the list KIND=PATH with one of: " + ", ".join(sorted(kinds)))
    suppressed = _suppressed(f, ctx.suppressions)
    ev = _Eval(f, ctx.as_of, signals, {}, suppressed, kinds)

    # account-level states, propagated to the contacts that belong to the account
    for state, cond in (pack.get("lifecycle", "account_states", default={}) or {}).items():
        own, _unknown = ev.cond(cond)
        is_acc = (f["_object"] == "account").to_numpy()
        acc = own & is_acc
        keys = set(f.loc[acc, "_source_id"].astype(str)) | set(f.loc[acc, RECORD_ID].astype(str))
        keys.discard("")
        names = set(f.loc[acc, "_company_key"].astype(str)) if "_company_key" in f else set()
        names.discard("")
        linked = member(f["account_ref"].astype(str), keys)
        if "_company_key" in f:
            linked |= member(f["_company_key"].astype(str), names)
        ev.account_states[state] = own | (linked & ~is_acc)

    rank = np.zeros(n, dtype=np.int8)
    primary = np.full(n, "", dtype=object)
    primary_rule = np.full(n, "", dtype=object)
    reasons: list[list[str]] = [[] for _ in range(n)]
    review: list[list[str]] = [[] for _ in range(n)]
    changes = []
    findings = []
    for rule in pack.get("lifecycle", "rules", default=[]) or []:
        true, unknown = ev.cond(rule["when"])
        action = rule["action"]
        if action == "delete" and not ctx.allow_delete:
            action = "archive"
        r = ACTION_RANK[action]
        idx = np.flatnonzero(true)
        for i in idx.tolist():
            reasons[i].append(rule["reason"])
        stronger = true & (r > rank)
        rank[stronger] = r
        primary[stronger] = rule["reason"]
        primary_rule[stronger] = rule["id"]
        if r >= 2:
            for i in np.flatnonzero(unknown & ~true).tolist():
                review[i].append(f"{rule['reason']}:UNKNOWN_DATE")
        for fld, value in (rule.get("set") or {}).items():
            if fld in STICKY_TRUE and str(value).casefold() != "true":
                continue  # opt-out flags are sticky: a rule may set them, never clear them
            before = f[fld].astype(str)
            mask = true & (before != value).to_numpy()
            if mask.any():
                changes.append(changes_frame(f.loc[mask, RECORD_ID], stage="lifecycle", rule_id=f"lifecycle.{rule['id']}",
                                             field_name=fld, before=before[mask], after=pd.Series([value] * int(mask.sum())), reason=rule["reason"]))
                f.loc[mask, fld] = value
    state = np.array([("exported", "exported", "deactivated", "archived", "deleted")[k] for k in rank], dtype=object) if n else np.empty(0, dtype=object)
    f["_state"] = state
    f["_reason"] = primary
    f["_rule_id"] = primary_rule
    f["_reasons"] = [";".join(dict.fromkeys(x)) for x in reasons]
    f["_signals"] = [";".join(s) for s in signals] if n else []
    f["_review"] = [";".join(x) for x in review]
    rev = f["_review"] != ""
    if rev.any():
        findings.append(findings_frame(f.loc[rev, RECORD_ID], stage="lifecycle", check_id="lifecycle.review",
                                       field_name="last_activity_at", severity="info", reason=f.loc[rev, "_review"]))
    counts: dict[str, int] = {}
    for rs in f["_reasons"]:
        for x in rs.split(";") if rs else []:
            counts[x] = counts.get(x, 0) + 1
    return LifecycleResult(frame=f, changes=concat(changes, CHANGE_COLUMNS), findings=concat(findings, FINDING_COLUMNS),
                           counts=dict(sorted(counts.items())))
