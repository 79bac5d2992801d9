"""Safe YAML loading for rule packs: line:col marks kept, duplicate keys and aliases refused.

PyYAML silently keeps the last of two equal keys and expands aliases without bound; a rule
pack is configuration people edit by hand, so both are errors here. Only the safe loader is
used: Python tags are refused by PyYAML's SafeConstructor.
"""

from __future__ import annotations

from typing import Any

import yaml

from crmclean.errors import Problem, RulePackError

MAX_PACK_BYTES = 2 * 1024 * 1024


class MarkedDict(dict[str, Any]):
    """A mapping that remembers where each key (and the mapping itself) stood."""

    def __init__(self) -> None:
        super().__init__()
        self.key_marks: dict[str, tuple[int, int]] = {}
        self.value_marks: dict[str, tuple[int, int]] = {}
        self.mark: tuple[int, int] = (1, 1)


class MarkedList(list[Any]):
    def __init__(self) -> None:
        super().__init__()
        self.item_marks: list[tuple[int, int]] = []
        self.mark: tuple[int, int] = (1, 1)


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Marks(yaml.constructor.SafeConstructor):
    """Mappings and sequences built as MarkedDict/MarkedList, duplicate keys collected as problems."""

    def __init__(self, stream: str, path: str) -> None:
        super().__init__(stream)  # type: ignore[call-arg]  # the loader's next class takes the stream
        self.path = path
        self.problems: list[Problem] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> MarkedDict:  # type: ignore[override]
        result = MarkedDict()
        result.mark = _pos(node)
        for key_node, value_node in node.value:
            # Keys are taken as written: YAML 1.1 would turn `on:`/`true:` keys into booleans.
            if isinstance(key_node, yaml.ScalarNode):
                key = str(key_node.value)
            else:
                key = str(self.construct_object(key_node, deep=True))
            line, col = _pos(key_node)
            if key in result:
                first = result.key_marks[key]
                self.problems.append(
                    Problem(
                        "E-YAML-DUPKEY",
                        f"{self.path}:{line}:{col}",
                        f"key '{key}' already defined at {first[0]}:{first[1]}",
                        "remove one of the two keys",
                    )
                )
                continue
            result[key] = self.construct_object(value_node, deep=True)
            result.key_marks[key] = (line, col)
            result.value_marks[key] = _pos(value_node)
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> MarkedList:  # type: ignore[override]
        result = MarkedList()
        result.mark = _pos(node)
        for child in node.value:
            result.append(self.construct_object(child, deep=True))
            result.item_marks.append(_pos(child))
        return result


class _Loader(_Marks, yaml.SafeLoader):
    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            line, col = event.start_mark.line + 1, event.start_mark.column + 1
            raise RulePackError(
                [
                    Problem(
                        "E-YAML-ALIAS",
                        f"{self.path}:{line}:{col}",
                        "YAML aliases (*name) are not allowed in rule packs",
                        "write the value out, or use 'extends:' to share settings",
                    )
                ]
            )
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


# registered once on the mixin: both loaders inherit its table
_Marks.add_constructor("tag:yaml.org,2002:map", _Marks.construct_mapping)  # type: ignore[type-var]  # the stubs' bound knows no mixin
_Marks.add_constructor("tag:yaml.org,2002:seq", _Marks.construct_sequence)  # type: ignore[type-var]  # the stubs' bound knows no mixin

_LIBYAML: Any = getattr(yaml, "CSafeLoader", None)
MAX_LIBYAML_DEPTH = 64  # deeper packs go to the pure-Python loader: libyaml's composer recurses in C
if _LIBYAML is not None:

    class _CLoader(_Marks, _LIBYAML):  # type: ignore[misc,valid-type]
        """The same marked values, parsed and composed by libyaml."""


def _plain(text: str) -> bool:
    """Whether libyaml may compose the text: no alias (``*name``), and nesting no deeper than
    MAX_LIBYAML_DEPTH (a thousand-deep ``[[[…`` overflows the C stack of its composer). Told from
    libyaml's event stream, which its parser makes without recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=_LIBYAML):
        if isinstance(event, yaml.AliasEvent):
            return False
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_LIBYAML_DEPTH:
                return False
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return True


def _load_with_libyaml(text: str, path: str) -> Any:
    """The pack parsed by libyaml (~8x faster than the pure-Python parser) into the same marked
    values, or None when it holds anything the pure-Python loader must judge — a character its
    reader refuses, an alias, a duplicate key, any error — so every refusal keeps its code and
    location."""
    if _LIBYAML is None or yaml.reader.Reader.NON_PRINTABLE.search(text):
        return None
    try:
        if not _plain(text):
            return None
        loader = _CLoader(text, path)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except Exception:  # the pure-Python loader reports it, with its code and place
        return None
    return None if loader.problems else data


def load_yaml_text(text: str, path: str) -> Any:
    """Parse YAML text into MarkedDict/MarkedList values, or raise RulePackError."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PACK_BYTES:
        raise RulePackError(
            [Problem("E-RULE-SIZE", path, "rule pack is larger than 2 MiB", "split it with 'extends:'")]
        )
    fast = _load_with_libyaml(text, path)
    if fast is not None:
        return fast
    try:
        loader = _Loader(text, path)
    except yaml.YAMLError as exc:  # the reader refuses control characters before parsing starts
        raise RulePackError([Problem("E-YAML-SYNTAX", path, str(getattr(exc, "reason", "") or type(exc).__name__), "remove control characters from the pack")]) from None
    try:
        data = loader.get_single_data()
    except RulePackError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        what = (exc.problem or "invalid YAML").strip()
        code = "E-YAML-TAG" if "constructor" in type(exc).__name__.lower() else "E-YAML-SYNTAX"
        raise RulePackError(
            [Problem(code, loc, what, "fix the YAML syntax; only plain YAML data is allowed")]
        ) from None
    except yaml.YAMLError as exc:
        raise RulePackError(
            [Problem("E-YAML-SYNTAX", path, type(exc).__name__, "fix the YAML syntax")]
        ) from None
    except RecursionError:
        raise RulePackError(
            [Problem("E-YAML-DEPTH", path, "YAML nesting is too deep", "flatten the pack")]
        ) from None
    finally:
        loader.dispose()
    if loader.problems:
        raise RulePackError(loader.problems)
    return data


def load_yaml_file(path: str) -> Any:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_PACK_BYTES + 1)
    except OSError as exc:
        raise RulePackError(
            [Problem("E-RULE-READ", path, f"cannot read rule pack ({exc.strerror})", "check the path")]
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RulePackError(
            [Problem("E-RULE-ENCODING", path, f"not UTF-8 (byte offset {exc.start})", "save the pack as UTF-8")]
        ) from None
    return load_yaml_text(text, path)
