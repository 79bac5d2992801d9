"""Rule packs: safe loading, every problem with file:line:col, extends, and the shipped packs."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from crmclean.cli import app
from crmclean.errors import RulePackError
from crmclean.rules.packs import builtin_packs, load_pack
from crmclean.rules.regexsafe import check_pattern


def _problems(write, text: str, name: str = "p.yaml") -> list[tuple[str, str]]:
    with pytest.raises(RulePackError) as exc:
        load_pack(str(write(name, text)))
    return [(p.code, p.location.split(name)[-1]) for p in exc.value.problems]


@pytest.mark.parametrize(
    ("text", "code", "where"),
    [
        ("kind: rules\nnormalize: [\n", "E-YAML-SYNTAX", ":3:1"),
        ("kind: rules\ndedupe:\n  max_pairs: 10\n  max_pairs: 20\n", "E-YAML-DUPKEY", ":4:3"),
        ("kind: rules\nnormalise: {}\n", "E-RULE-UNKNOWN-KEY", ":2:1"),
        ("kind: rules\ndedupe:\n  max_block_size: many\n", "E-RULE-TYPE", ":3:19"),
        ("kind: rules\nlifecycle:\n  signals:\n    x: {phrases: ['(a+)+$']}\n", "E-RULE-REGEX-UNSAFE", ":4:19"),
        ("kind: rules\nlifecycle:\n  signals:\n    x: {phrases: ['(unclosed']}\n", "E-RULE-REGEX", ":4:19"),
        ("kind: rules\na: &x [1]\nb: *x\n", "E-YAML-ALIAS", ":3:4"),
        ("kind: rules\nx: !!python/object/apply:os.system ['true']\n", "E-YAML-TAG", ":2:4"),
        ("kind: rulez\n", "E-RULE-KIND", ":1:1"),
        ("kind: rules\nlifecycle:\n  rules:\n    - {id: a, when: {older_than: {field: nope, days: 3}}, action: archive, reason: X}\n", "E-RULE-UNKNOWN", "@nope"),
        ("kind: rules\nlifecycle:\n  rules:\n    - {id: a, when: {sometimes: true}, action: archive, reason: X}\n", "E-RULE-UNKNOWN-OP", "@sometimes"),
        ("kind: rules\ngates:\n  - {metric: share.rejected, max: 0.1}\n", "E-RULE-MISSING", ":3:5"),
    ],
)
def test_invalid_packs_are_refused_with_a_location(write, text, code, where):
    if where.startswith("@"):  # the 1-based line:col of the offending token
        token = where[1:]
        line_no, line = next((i, ln) for i, ln in enumerate(text.splitlines(), 1) if token in ln)
        where = f":{line_no}:{line.index(token) + 1}"
    problems = _problems(write, text)
    assert (code, where) in problems, problems



def _same_marked(a, b) -> bool:
    from crmclean.rules.yamlsafe import MarkedDict, MarkedList

    if type(a) is not type(b):
        return False
    if isinstance(a, MarkedDict):
        return (list(a) == list(b) and (a.mark, a.key_marks, a.value_marks) == (b.mark, b.key_marks, b.value_marks)
                and all(_same_marked(a[k], b[k]) for k in a))
    if isinstance(a, MarkedList):
        return len(a) == len(b) and (a.mark, a.item_marks) == (b.mark, b.item_marks) and all(map(_same_marked, a, b))
    return bool(a == b)


def test_libyaml_reads_every_shipped_pack_as_the_python_loader_does(monkeypatch):
    # the packs are parsed by libyaml when it is there: same values, same line:col marks
    from pathlib import Path

    import crmclean.rules.yamlsafe as Y

    if Y._LIBYAML is None:
        pytest.skip("PyYAML without libyaml")
    packs = sorted((Path(__file__).parent.parent / "rules").rglob("*.yaml"))
    assert len(packs) > 20
    for path in packs:
        text = path.read_text(encoding="utf-8")
        with monkeypatch.context() as m:
            m.setattr(Y, "_Loader", lambda *a: pytest.fail("read by the Python loader"))
            fast = Y.load_yaml_text(text, str(path))
        with monkeypatch.context() as m:
            m.setattr(Y, "_LIBYAML", None)
            slow = Y.load_yaml_text(text, str(path))
        assert _same_marked(fast, slow), path


def test_deep_nesting_is_refused_not_a_crash():
    # libyaml's composer recurses in C: a pack nested 100,000 deep must still get E-YAML-DEPTH
    # (run apart: a crash would take the test run with it)
    import subprocess
    import sys

    code = ("from crmclean.errors import RulePackError\nfrom crmclean.rules.yamlsafe import load_yaml_text\n"
            "try:\n    load_yaml_text('kind: rules\\na: ' + '[' * 100000 + ']' * 100000, 'p.yaml')\n"
            "except RulePackError as exc:\n    print(exc.problems[0].code)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "E-YAML-DEPTH", (done.returncode, done.stderr[-300:])

def test_every_problem_is_reported_at_once(write):
    problems = _problems(write, "kind: rules\nnormalise: {}\ndedupe: {max_block_size: x, blocking: []}\ngates: [{id: g}]\n")
    assert len(problems) >= 4


def test_extends_merges_and_detects_cycles(write, tmp_path):
    child = write("child.yaml", "kind: rules\nextends: default\ndedupe:\n  thresholds: {auto_merge: 0.999, review: 0.9}\n")
    pack = load_pack(str(child))
    assert pack.get("dedupe", "thresholds", "auto_merge") == 0.999
    assert pack.get("dedupe", "blocking")  # inherited from default
    write("a.yaml", "kind: rules\nextends: b.yaml\n")
    write("b.yaml", "kind: rules\nextends: a.yaml\n")
    with pytest.raises(RulePackError) as exc:
        load_pack(str(tmp_path / "a.yaml"))
    assert exc.value.problems[0].code == "E-RULE-EXTENDS"


def test_all_shipped_packs_load():
    for name in builtin_packs():
        assert load_pack(name).data


def test_regex_safety():
    assert check_pattern(r"\bpassed\s+away\b") is None
    assert check_pattern("(a+)+$")[0] == "E-RULE-REGEX-UNSAFE"
    assert check_pattern(r"(\w+)\1")[0] == "E-RULE-REGEX-UNSAFE"
    assert check_pattern(r"foo(?!bar)")[0] == "E-RULE-REGEX"


def test_rules_check_cli_exit_codes(write):
    runner = CliRunner()
    good = write("good.yaml", "kind: rules\nextends: default\n")
    bad = write("bad.yaml", "kind: rules\nunknown: 1\n")
    assert runner.invoke(app, ["rules", "check", str(good)]).exit_code == 0
    result = runner.invoke(app, ["rules", "check", str(bad)])
    assert result.exit_code == 2 and "bad.yaml:2:1" in result.output


def test_no_code_execution_from_a_pack(write, tmp_path):
    canary = tmp_path / "pwned"
    _problems(write, f"kind: rules\nx: !!python/object/apply:os.system ['touch {canary}']\n")
    assert not canary.exists()
