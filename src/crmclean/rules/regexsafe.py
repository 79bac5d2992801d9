"""Regular expressions from rule packs: compiled by RE2 (linear time), nested repetition refused.

RE2 already runs every pattern in linear time, but a pattern such as ``(a+)+$`` is a
catastrophic-backtracking bug in any other engine a pack may be reused with, and almost always a
mistake; refusing it keeps packs portable and the intent plain.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # the stdlib's own parser, used read-only
from functools import lru_cache
from typing import Any

import re2

_REPEATS = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT}
_UNBOUNDED = sre_parse.MAXREPEAT


def _has_unbounded_repeat(items: Any) -> bool:
    for op, arg in items:
        if op in _REPEATS:
            _lo, hi, sub = arg
            if hi == _UNBOUNDED or hi > 100 or _has_unbounded_repeat(sub):
                return True
        elif op == sre_parse.SUBPATTERN:
            if _has_unbounded_repeat(arg[-1]):
                return True
        elif op == sre_parse.BRANCH:
            if any(_has_unbounded_repeat(branch) for branch in arg[1]):
                return True
    return False


def _literal(items: Any) -> str | None:
    out = []
    for op, arg in items:
        if op != sre_parse.LITERAL:
            return None
        out.append(chr(arg))
    return "".join(out)


def _overlapping_branches(items: Any) -> bool:
    """(a|aa)+ : alternatives where one can match a prefix of another, under repetition."""
    for op, arg in items:
        if op == sre_parse.SUBPATTERN:
            if _overlapping_branches(arg[-1]):
                return True
        elif op == sre_parse.BRANCH:
            literals = [_literal(b) for b in arg[1]]
            known = [x for x in literals if x is not None]
            if any(a != b and b.startswith(a) for a in known for b in known) or len(known) != len(set(known)):
                return True
    return False


def _nested_repeat(items: Any) -> bool:
    for op, arg in items:
        if op in _REPEATS:
            _lo, hi, sub = arg
            if (hi == _UNBOUNDED or hi > 1) and _has_unbounded_repeat(sub):
                return True
            if hi == _UNBOUNDED and _overlapping_branches(sub):
                return True
            if _nested_repeat(sub):
                return True
        elif op == sre_parse.SUBPATTERN:
            if _nested_repeat(arg[-1]):
                return True
        elif op == sre_parse.BRANCH:
            if any(_nested_repeat(branch) for branch in arg[1]):
                return True
        elif op in (sre_parse.GROUPREF, sre_parse.GROUPREF_EXISTS):
            return True
    return False


def _uses_lookaround(items: Any) -> bool:
    for op, arg in items:
        if op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            return True
        if op in _REPEATS and _uses_lookaround(arg[2]):
            return True
        if op == sre_parse.SUBPATTERN and _uses_lookaround(arg[-1]):
            return True
        if op == sre_parse.BRANCH and any(_uses_lookaround(b) for b in arg[1]):
            return True
    return False


def check_pattern(pattern: str) -> tuple[str, str] | None:
    """Return (code, message) when a pack pattern is invalid or unsafe, else None."""
    if len(pattern) > 2000:
        return ("E-RULE-REGEX", "pattern longer than 2000 characters")
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        return ("E-RULE-REGEX", f"invalid regular expression ({exc.msg} at position {exc.pos})")
    if _uses_lookaround(list(parsed)):
        return ("E-RULE-REGEX", "lookahead/lookbehind is not supported by the linear-time engine (use 'exclude:' patterns)")
    if _nested_repeat(list(parsed)):
        return ("E-RULE-REGEX-UNSAFE", "nested repetition or backreference (catastrophic backtracking)")
    try:
        re2.compile(pattern)
    except Exception as exc:  # re2 raises its own error type
        return ("E-RULE-REGEX", f"pattern not supported by the linear-time engine ({type(exc).__name__})")
    return None


@lru_cache(maxsize=4096)
def compile_safe(pattern: str, ignore_case: bool = True) -> Any:
    """Compile a (checked) pack pattern with RE2."""
    options = re2.Options()
    options.case_sensitive = not ignore_case
    return re2.compile(pattern, options)
