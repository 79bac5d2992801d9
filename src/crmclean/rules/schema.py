"""A small declarative schema for rule packs, reporting every problem with file:line:col.

Declaration apart from execution: a pack is validated completely when it is loaded, so a bad
pack fails before any data is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crmclean.errors import Problem
from crmclean.rules.regexsafe import check_pattern
from crmclean.rules.yamlsafe import MarkedDict, MarkedList


@dataclass
class Ctx:
    path: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, code: str, pos: tuple[int, int], where: str, msg: str, hint: str) -> None:
        self.problems.append(Problem(code, f"{self.path}:{pos[0]}:{pos[1]}", f"{where}: {msg}", hint))


class Node:
    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__.lower()


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text"}.get(
        type(value), "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__
    )


class Str(Node):
    def __init__(self, pattern: str | None = None, max_len: int = 10_000) -> None:
        self.pattern = re.compile(pattern) if pattern else None
        self.max_len = max_len

    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        if not isinstance(value, str):
            ctx.add("E-RULE-TYPE", pos, where, f"expected text, got {_type_name(value)}", "quote the value")
            return
        if len(value) > self.max_len:
            ctx.add("E-RULE-VALUE", pos, where, f"text longer than {self.max_len} characters", "shorten it")
        elif self.pattern and not self.pattern.fullmatch(value):
            ctx.add("E-RULE-VALUE", pos, where, "value has the wrong form", f"expected {self.pattern.pattern}")


class Num(Node):
    def __init__(self, lo: float | None = None, hi: float | None = None, integer: bool = False) -> None:
        self.lo, self.hi, self.integer = lo, hi, integer

    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        ok_types: tuple[type, ...] = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            kind = "a whole number" if self.integer else "a number"
            ctx.add("E-RULE-TYPE", pos, where, f"expected {kind}, got {_type_name(value)}", "write a plain number")
            return
        number = float(value)  # type: ignore[arg-type]
        if (self.lo is not None and number < self.lo) or (self.hi is not None and number > self.hi):
            ctx.add("E-RULE-RANGE", pos, where, f"{value} is outside {self.lo}..{self.hi}", "choose a value in range")


class Bool(Node):
    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        if not isinstance(value, bool):
            ctx.add("E-RULE-TYPE", pos, where, f"expected true or false, got {_type_name(value)}", "write true or false")


class Enum(Node):
    def __init__(self, *values: str) -> None:
        self.values = values

    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        if value not in self.values:
            ctx.add(
                "E-RULE-UNKNOWN",
                pos,
                where,
                f"unknown value {value!r}" if isinstance(value, str) else f"expected one of the names, got {_type_name(value)}",
                "valid: " + ", ".join(self.values),
            )


class Regex(Node):
    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        if not isinstance(value, str):
            ctx.add("E-RULE-TYPE", pos, where, f"expected a regular expression, got {_type_name(value)}", "quote it")
            return
        problem = check_pattern(value)
        if problem:
            code, msg = problem
            ctx.add(code, pos, where, msg, "rewrite the pattern without nested repetition or backreferences")


class ListOf(Node):
    def __init__(self, item: Node, min_items: int = 0) -> None:
        self.item, self.min_items = item, min_items

    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        if not isinstance(value, list):
            ctx.add("E-RULE-TYPE", pos, where, f"expected a list, got {_type_name(value)}", "write a YAML list")
            return
        if len(value) < self.min_items:
            ctx.add("E-RULE-VALUE", pos, where, f"needs at least {self.min_items} item(s)", "add items")
        marks = value.item_marks if isinstance(value, MarkedList) else [pos] * len(value)
        for i, item in enumerate(value):
            self.item.check(item, f"{where}[{i}]", marks[i], ctx)


class OneOf(Node):
    """The first alternative whose type fits decides (e.g. a string or a list of strings)."""

    def __init__(self, *alternatives: tuple[Callable[[Any], bool], Node]) -> None:
        self.alternatives = alternatives

    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        for fits, node in self.alternatives:
            if fits(value):
                node.check(value, where, pos, ctx)
                return
        self.alternatives[-1][1].check(value, where, pos, ctx)


class DictOf(Node):
    def __init__(self, value: Node, keys: Node | None = None) -> None:
        self.value, self.keys = value, keys

    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        if not isinstance(value, dict):
            ctx.add("E-RULE-TYPE", pos, where, f"expected a mapping, got {_type_name(value)}", "write key: value pairs")
            return
        for key, item in value.items():
            kpos = value.key_marks.get(key, pos) if isinstance(value, MarkedDict) else pos
            vpos = value.value_marks.get(key, pos) if isinstance(value, MarkedDict) else pos
            if self.keys is not None:
                self.keys.check(key, f"{where}.{key}", kpos, ctx)
            self.value.check(item, f"{where}.{key}", vpos, ctx)


class Map(Node):
    def __init__(self, fields: Mapping[str, Node], required: Sequence[str] = (), check: Callable[[dict[str, Any], str, tuple[int, int], Ctx], None] | None = None) -> None:
        self.fields, self.required, self.extra_check = dict(fields), tuple(required), check

    def check(self, value: Any, where: str, pos: tuple[int, int], ctx: Ctx) -> None:
        if not isinstance(value, dict):
            ctx.add("E-RULE-TYPE", pos, where, f"expected a mapping, got {_type_name(value)}", "write key: value pairs")
            return
        for key, item in value.items():
            kpos = value.key_marks.get(key, pos) if isinstance(value, MarkedDict) else pos
            vpos = value.value_marks.get(key, pos) if isinstance(value, MarkedDict) else pos
            node = self.fields.get(key)
            if node is None:
                close = _closest(key, self.fields)
                hint = f"did you mean '{close}'?" if close else "valid keys: " + ", ".join(self.fields)
                ctx.add("E-RULE-UNKNOWN-KEY", kpos, f"{where}.{key}" if where else key, "unknown key", hint)
                continue
            node.check(item, f"{where}.{key}" if where else key, vpos, ctx)
        for key in self.required:
            if key not in value:
                ctx.add("E-RULE-MISSING", pos, where or "pack", f"required key '{key}' is missing", f"add '{key}:'")
        if self.extra_check:
            self.extra_check(value, where, pos, ctx)


def _closest(key: str, options: Mapping[str, Any]) -> str | None:
    import difflib

    found = difflib.get_close_matches(key, list(options), n=1, cutoff=0.6)
    return found[0] if found else None


def validate(value: Any, schema: Node, path: str) -> list[Problem]:
    ctx = Ctx(path)
    pos = value.mark if isinstance(value, MarkedDict | MarkedList) else (1, 1)
    schema.check(value, "", pos, ctx)
    return ctx.problems
