"""Rule packs: where they live, how ``extends:`` composes them, and their schemas.

Three kinds of pack, all YAML:

* ``kind: source`` — how to read one CRM's export of one object (header vocabulary, date
  order, boolean vocabulary); detected from the header.
* ``kind: target`` — how to write the import file for one CRM object (headers, formats,
  picklists, required fields, length limits).
* ``kind: rules`` — what to do: normalization options, validation, dedupe, lifecycle, gates.

Built-in packs are addressed by name (``default``, ``salesforce-contact``); anything else is a
path to a YAML file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from crmclean.errors import Problem, RulePackError
from crmclean.model import CANONICAL_FIELDS
from crmclean.rules.schema import (
    Bool,
    Ctx,
    DictOf,
    Enum,
    ListOf,
    Map,
    Node,
    Num,
    OneOf,
    Regex,
    Str,
    validate,
)
from crmclean.rules.yamlsafe import MarkedDict, load_yaml_file

KINDS = ("source", "target", "rules")
OBJECTS = ("contact", "lead", "account")
FIELDS = Enum(*CANONICAL_FIELDS)
NAME = Str(r"[a-z0-9][a-z0-9_.-]{0,63}")
# blocking keys a rule may be made of; the split keys have one value per record
SPLIT_KEYS = ("name_initials", "first_initial", "last_name", "last_name_phonetic", "city", "zip5", "street_key", "company_key",
              "email", "email_local", "mobile", "full_name_sorted")
BLOCKING_KEYS = (*SPLIT_KEYS, "phone_any", "first_name_canonical")
STRS = ListOf(Str())


def rules_dir() -> Path:
    """The shipped packs: package data in a wheel, the repository's ``rules/`` in a checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_rules", here.parent.parent / "rules"):
        if candidate.is_dir():
            return candidate
    raise RulePackError([Problem("E-ENV-RULES", str(here), "shipped rule packs not found", "reinstall crmclean")])


# --- schemas -----------------------------------------------------------------------------

_common = {
    "kind": Enum(*KINDS),
    "name": NAME,
    "description": Str(),
    "extends": Str(),
    "version": Num(1, 1, integer=True),
}

_bool_vocab = Map({"true": STRS, "false": STRS})

SOURCE_SCHEMA = Map(
    {
        **_common,
        "crm": Str(),
        "object": Enum(*OBJECTS),
        "priority": Num(0, 100, integer=True),
        "detect": Map(
            {"signature": ListOf(Str(), 1), "min_hits": Num(1, 50, integer=True), "prefix": Str()},
            required=("signature",),
        ),
        "columns": DictOf(ListOf(Str(), 1), keys=FIELDS),
        "dates": Map({"order": Enum("mdy", "dmy", "ymd", "auto"), "timezone": Str()}),
        "booleans": _bool_vocab,
        "required": ListOf(FIELDS),
        "picklists": DictOf(DictOf(Str()), keys=FIELDS),
    },
    required=("kind", "object", "columns"),
)

TARGET_SCHEMA = Map(
    {
        **_common,
        "crm": Str(),
        "object": Enum(*OBJECTS),
        "documentation": ListOf(Str()),
        "columns": DictOf(Str(), keys=FIELDS),
        "extra_columns": Enum("keep", "drop"),
        "external_id": Str(),
        "dates": Map({"date": Str(), "datetime": Str()}),
        "booleans": Map({"true": Str(), "false": Str()}),
        "phone_extension": Enum("keep", "column"),
        "picklists": DictOf(
            Map({"allowed": ListOf(Str()), "map": DictOf(Str()), "case_insensitive": Bool()}),
            keys=FIELDS,
        ),
        "required": ListOf(FIELDS),
        "max_length": DictOf(Num(1, 1_000_000, integer=True), keys=FIELDS),
        "inactive": Map({"column": Str(), "value": Str()}, required=("column", "value")),
        "active": Map({"column": Str(), "value": Str()}, required=("column", "value")),
        "formula_guard": Enum("neutralize", "keep"),
        "encoding": Enum("utf-8", "utf-8-sig"),
        "line_ending": Enum("lf", "crlf"),
    },
    required=("kind", "object", "columns"),
)

_is_map = (lambda v: isinstance(v, dict), Node())
_CONDITION_KEYS = (
    "older_than",
    "not_older_than",
    "missing",
    "present",
    "field_in",
    "flag",
    "signal",
    "account_state",
    "suppressed",
    "object",
    "all",
    "any",
    "not",
)


class Condition(Node):
    """A lifecycle condition: exactly one key from a closed vocabulary; combinators recurse."""

    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        if not isinstance(value, dict) or len(value) != 1:
            ctx.add("E-RULE-COND", pos, where, "a condition is a mapping with exactly one key",
                    "valid: " + ", ".join(_CONDITION_KEYS))
            return
        (key, arg), = value.items()
        kpos = value.key_marks.get(key, pos) if isinstance(value, MarkedDict) else pos
        vpos = value.value_marks.get(key, pos) if isinstance(value, MarkedDict) else pos
        sub = f"{where}.{key}"
        if key in ("older_than", "not_older_than"):
            Map({"field": FIELDS, "days": Num(0, 100_000, integer=True), "fallback": ListOf(FIELDS)}, required=("field", "days")).check(arg, sub, vpos, ctx)
        elif key in ("missing", "present", "flag"):
            FIELDS.check(arg, sub, vpos, ctx)
        elif key == "field_in":
            Map({"field": FIELDS, "values": ListOf(Str(), 1)}, required=("field", "values")).check(arg, sub, vpos, ctx)
        elif key in ("signal", "account_state", "suppressed"):
            Str(r"[a-z0-9_]+").check(arg, sub, vpos, ctx)
        elif key == "object":
            Enum(*OBJECTS).check(arg, sub, vpos, ctx)
        elif key in ("all", "any"):
            ListOf(self, 1).check(arg, sub, vpos, ctx)
        elif key == "not":
            self.check(arg, sub, vpos, ctx)
        else:
            ctx.add("E-RULE-UNKNOWN-OP", kpos, sub, f"unknown condition '{key}'", "valid: " + ", ".join(_CONDITION_KEYS))


_level = Map({"jaro_winkler": Num(0, 1)})
RULES_SCHEMA = Map(
    {
        **_common,
        "defaults": Map({"region": Str(r"[A-Z]{2}"), "target": Str(), "source": Str()}),
        "normalize": Map(
            {
                "phone": Map({"enabled": Bool(), "format": Enum("e164", "international", "national"), "default_region": Str(r"[A-Z]{2}")}),
                "email": Map({"enabled": Bool(), "typo_domains": DictOf(Str()), "role_locals": STRS}),
                "name": Map({"enabled": Bool(), "fix_case": Bool(), "particles": STRS, "mac_names": STRS, "suffixes": STRS, "salutations": STRS, "company_words": STRS}),
                "company": Map({"enabled": Bool(), "legal_suffixes": STRS, "keep_upper": STRS}),
                "address": Map({"enabled": Bool(), "style": Enum("title", "upper"), "pub28": Str()}),
                "country": Map({"enabled": Bool(), "table": Str()}),
                "dates": Map({"enabled": Bool()}),
                "booleans": Map({"enabled": Bool()}),
            }
        ),
        "validate": Map(
            {
                "future_days": Num(0, 36500, integer=True),
                "free_email_domains": STRS,
                "checks": ListOf(
                    Map(
                        {"id": NAME, "field": FIELDS, "check": Enum("required", "max_length", "matches", "one_of"),
                         "value": OneOf((lambda v: isinstance(v, list), STRS), (lambda v: isinstance(v, int) and not isinstance(v, bool), Num(1, 1_000_000, integer=True)), (lambda v: True, Regex())),
                         "severity": Enum("error", "warning", "info"), "objects": ListOf(Enum(*OBJECTS))},
                        required=("id", "field", "check"),
                    )
                ),
            }
        ),
        "dedupe": Map(
            {
                "enabled": Bool(),
                "max_block_size": Num(2, 100_000, integer=True),
                "max_pairs": Num(1, 10**11, integer=True),
                "budget_action": Enum("tighten", "refuse", "warn"),
                "blocking": ListOf(Map({"id": NAME, "on": ListOf(Enum(*BLOCKING_KEYS), 1), "split": Enum(*SPLIT_KEYS)},
                                       required=("id", "on")), 1),
                "thresholds": Map({"auto_merge": Num(0, 1), "review": Num(0, 1)}),
                "shared_contact_min_names": Num(2, 1000, integer=True),
                "survivorship": Map(
                    {
                        "survivor": ListOf(Enum("most_recent_activity", "most_complete", "oldest_created", "newest_created", "source_priority"), 1),
                        "source_priority": STRS,
                        "fields": DictOf(Enum("fill_blanks", "survivor_only", "most_recent", "longest", "union", "any_true"), keys=FIELDS),
                    }
                ),
            }
        ),
        "lifecycle": Map(
            {
                "enabled": Bool(),
                "signals": DictOf(Map({"phrases": ListOf(Regex(), 1), "exclude": ListOf(Regex())}, required=("phrases",)), keys=Str(r"[a-z0-9_]+")),
                "rules": ListOf(
                    Map(
                        {"id": NAME, "when": Condition(), "action": Enum("tag", "deactivate", "archive", "delete"),
                         "reason": Str(r"[A-Z0-9_]+"), "set": DictOf(Str(), keys=FIELDS), "description": Str()},
                        required=("id", "when", "action", "reason"),
                    )
                ),
                "account_states": DictOf(Condition(), keys=Str(r"[a-z0-9_]+")),
            }
        ),
        "gates": ListOf(
            Map(
                {"id": NAME, "metric": Str(r"[a-z0-9_.]+"), "max": Num(), "min": Num(), "description": Str()},
                required=("id", "metric"),
            )
        ),
    },
    required=("kind",),
)

SCHEMAS: dict[str, Map] = {"source": SOURCE_SCHEMA, "target": TARGET_SCHEMA, "rules": RULES_SCHEMA}


# --- loading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pack:
    """A validated, fully resolved pack (``extends:`` applied)."""

    name: str
    kind: str
    path: str
    data: dict[str, Any]
    sha256: str

    def get(self, *keys: str, default: Any = None) -> Any:
        node: Any = self.data
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def _deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


_FOLDER = {"rules": "", "source": "sources", "target": "targets"}


def builtin_packs() -> dict[str, Path]:
    """Every shipped pack by qualified name: ``default``, ``sources/salesforce-contact``,
    ``targets/salesforce-contact`` ..."""
    root = rules_dir()
    found: dict[str, Path] = {}
    for folder in ("", "sources", "targets"):
        base = root / folder if folder else root
        for path in sorted(base.glob("*.yaml")):
            found[f"{folder}/{path.stem}" if folder else path.stem] = path
    return found


def resolve_path(ref: str, relative_to: Path | None = None, expect: str | None = None) -> Path:
    packs = builtin_packs()
    candidates: list[str] = []
    if expect is not None:
        folder = _FOLDER[expect]
        candidates.append(f"{folder}/{ref}" if folder else ref)
    candidates.append(ref)
    for name in candidates:
        if name in packs:
            return packs[name]
    by_stem = [k for k in packs if k.rsplit("/", 1)[-1] == ref]
    if len(by_stem) == 1:
        return packs[by_stem[0]]
    candidate = Path(ref)
    if not candidate.is_absolute() and relative_to is not None and (relative_to / candidate).is_file():
        candidate = relative_to / candidate
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    if len(by_stem) > 1:
        raise RulePackError([Problem("E-RULE-AMBIGUOUS", ref, "several shipped packs have this name", "use one of: " + ", ".join(by_stem))])
    import difflib

    stems = sorted({k.rsplit("/", 1)[-1] for k in packs})
    close = difflib.get_close_matches(ref, stems, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "run 'crmclean rules list' for the shipped packs"
    raise RulePackError([Problem("E-RULE-NOT-FOUND", ref, "no such rule pack", hint)])


def load_pack(ref: str | os.PathLike[str], *, expect: str | None = None) -> Pack:
    """Load, validate and resolve a pack by shipped name or file path."""
    return _load(str(ref), expect, ())


@lru_cache(maxsize=256)
def _load_cached(path: str, mtime_ns: int, expect: str | None, chain: tuple[str, ...]) -> Pack:
    return _load_uncached(path, expect, chain)


def _load(ref: str, expect: str | None, chain: tuple[str, ...], relative_to: Path | None = None) -> Pack:
    path = resolve_path(ref, relative_to, expect).resolve()
    return _load_cached(str(path), path.stat().st_mtime_ns, expect, chain)


def _load_uncached(path_str: str, expect: str | None, chain: tuple[str, ...]) -> Pack:
    path = Path(path_str)
    display = path.name if path.is_relative_to(rules_dir().resolve()) else str(path)
    if path_str in chain:
        raise RulePackError([Problem("E-RULE-EXTENDS", display, "'extends:' forms a cycle", "remove the cycle")])
    raw = load_yaml_file(path_str)
    if not isinstance(raw, dict):
        raise RulePackError([Problem("E-RULE-TYPE", f"{display}:1:1", "a rule pack is a YAML mapping", "start with 'kind: rules'")])
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        pos = raw.key_marks.get("kind", (1, 1)) if isinstance(raw, MarkedDict) else (1, 1)
        raise RulePackError([Problem("E-RULE-KIND", f"{display}:{pos[0]}:{pos[1]}", f"'kind' must be one of {', '.join(KINDS)}", "add e.g. 'kind: rules'")])
    problems = validate(raw, SCHEMAS[kind], display)
    if expect and kind != expect:
        problems.insert(0, Problem("E-RULE-KIND", display, f"this is a '{kind}' pack, a '{expect}' pack is needed here", "pass the right pack"))
    problems += _table_path_problems(raw, path, display)
    data = _plain(raw)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if problems:
        raise RulePackError(problems)
    parent_ref = data.pop("extends", None)
    if parent_ref:
        parent = _load(parent_ref, kind, chain + (path_str,), path.parent)
        data = _deep_merge(parent.data, data)
        digest = hashlib.sha256((parent.sha256 + digest).encode()).hexdigest()
    name = data.get("name") or path.stem
    return Pack(name=name, kind=kind, path=path_str, data=data, sha256=digest)


TABLE_REFS = (("normalize", "address", "pub28"), ("normalize", "country", "table"))


_TABLE_HINT = "use a relative path without '..', e.g. data/usps_pub28.yaml"


def table_path(pack_path: str, ref: str) -> Path | None:
    """Where a table named by a pack lives: beside the pack, else among the shipped rules —
    never outside both (no absolute path, no ``..``, no symlink leading out). None if refused."""
    rel = Path(ref)
    if not ref or rel.is_absolute() or ".." in rel.parts:
        return None
    for root in (Path(pack_path).parent.resolve(), rules_dir().resolve()):
        candidate = (root / rel).resolve()
        if candidate.is_file():
            return candidate if candidate.is_relative_to(root) else None
    return None


def _table_path_problems(raw: dict[str, Any], path: Path, display: str) -> list[Problem]:
    problems = []
    for keys in TABLE_REFS:
        node: Any = raw
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        ref = node.get(keys[-1]) if isinstance(node, dict) else None
        if isinstance(ref, str) and table_path(str(path), ref) is None:
            line, col = node.value_marks.get(keys[-1], (1, 1)) if isinstance(node, MarkedDict) else (1, 1)
            problems.append(Problem("E-RULE-PATH", f"{display}:{line}:{col}",
                                    f"{'.'.join(keys)} must name an existing file inside the pack's folder or the shipped rules", _TABLE_HINT))
    return problems


def load_table(pack_path: str, ref: str) -> Any:
    """Load a data table (e.g. ``data/usps_pub28.yaml``) named by a pack, relative to it."""
    path = table_path(pack_path, ref)
    if path is None:
        raise RulePackError([Problem("E-RULE-PATH", ref, "a table must be a file inside the pack's folder or the shipped rules", _TABLE_HINT)])
    return _plain(load_yaml_file(str(path)))


def load_table_path(ref: str) -> Any:
    """Load a shipped data table by its path relative to the rules folder."""
    return _plain(load_yaml_file(str(rules_dir() / ref)))
