"""The reliability matrix (research note T1–T5, T10, T17): generated corpora of malformed inputs,
hostile workbooks and invalid packs must each end in success or a documented, located error;
random exports conserve every row; I/O faults publish nothing."""

from __future__ import annotations

import datetime as dt
import errno
import itertools
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import xlsxwriter
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crmclean.errors import CrmcleanError, RulePackError
from crmclean.io import load_table
from crmclean.pipeline import RunOptions, run
from crmclean.rules.packs import load_pack
from helpers import xlsx_book

AS_OF = dt.date(2026, 11, 1)
GOOD = [["First Name", "Last Name", "Email", "Phone"], ["Ann", "Lee", "ann@x.com", "(415) 555-2671"], ["José", "Müller", "jm@x.de", "+49 30 901820"]]

# --- T1: malformed CSV corpus ----------------------------------------------------------------

DEFECTS = {
    "clean": lambda rows, d: rows,
    "ragged_long": lambda rows, d: [*rows, ["a", "b", "c", "d", "e"]],
    "ragged_short": lambda rows, d: [*rows, ["a"]],
    "unbalanced_quote": lambda rows, d: [*rows, ['"open', "x", "y", "z"]],
    "nul": lambda rows, d: [*rows, ["a\x00b", "x", "y", "z"]],
    "dup_header": lambda rows, d: [["Email", "Email", "Phone", "Last Name"], *rows[1:]],
    "blank_header": lambda rows, d: [["First Name", "", "Email", "Phone"], *rows[1:]],
    "header_only": lambda rows, d: rows[:1],
    "quoted_newline": lambda rows, d: [*rows, ["multi\nline", "x", "y@z.com", "1"]],
    "embedded_delim": lambda rows, d: [*rows, [f"a{d}b", "x", "y@z.com", "1"]],
    "trailing_empty": lambda rows, d: [*rows, ["a", "b", "c@d.com", "1", "", ""]],
    "formula": lambda rows, d: [*rows, ["=HYPERLINK(1)", "+x", "@y", "-z"]],
    "blank_lines": lambda rows, d: [rows[0], [], *rows[1:], []],
}
ENCODINGS = ["utf-8", "utf-8-sig", "cp1252", "utf-16"]
DELIMS = [",", ";", "\t"]
EOLS = ["\n", "\r\n"]


def _render(rows: list[list[str]], delim: str, eol: str) -> str:
    out = []
    for r in rows:
        cells = []
        for c in r:
            if c.startswith('"open'):
                cells.append(c)
            elif any(ch in c for ch in (delim, '"', "\n", "\r")):
                cells.append('"' + c.replace('"', '""') + '"')
            else:
                cells.append(c)
        out.append(delim.join(cells))
    return eol.join(out) + eol


def _csv_corpus() -> list[tuple[str, bytes]]:
    corpus = []
    for (name, defect), enc, delim, eol in itertools.product(DEFECTS.items(), ENCODINGS, DELIMS, EOLS):
        if enc == "utf-16" and (delim != "," or eol != "\n"):
            continue
        text = _render(defect([list(r) for r in GOOD], delim), delim, eol)
        try:
            data = text.encode(enc)
        except UnicodeEncodeError:
            data = text.encode("utf-8")
        corpus.append((f"{name}-{enc}-{ord(delim)}-{len(eol)}", data))
    corpus += [
        ("empty", b""), ("spaces", b"   \n\n"), ("binary", bytes(range(256)) * 64), ("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 300),
        ("zip_named_csv", b"PK\x03\x04" + b"\x00" * 64), ("ole_named_csv", b"\xd0\xcf\x11\xe0" + b"\x00" * 64),
        ("latin1_undeclared", "First Name,Email\nRenée,r@x.fr\n".encode("latin-1") + b"\x81\n"),
        ("huge_field", b"First Name,Notes\nA," + b"x" * (2 * 1024 * 1024) + b"\n"),
        ("cr_only", b"First Name,Email\rAnn,a@x.com\rBob,b@x.com\r"), ("one_column", b"Email\na@x.com\n"),
        ("quote_mid_field", b'First Name,Email\nA"nn,a@x.com\n'), ("mixed_eol", b"First Name,Email\r\nAnn,a@x.com\nBob,b@x.com\r\n"),
        ("unknown_headers", b"foo,bar\n1,2\n"), ("pipe", b"First Name|Email\nAnn|a@x.com\n"), ("bom_only", b"\xef\xbb\xbf"),
    ]
    return corpus


CSV_CORPUS = _csv_corpus()


def test_csv_corpus_is_large_enough():
    assert len(CSV_CORPUS) >= 150


@pytest.mark.parametrize(("name", "data"), CSV_CORPUS, ids=[n for n, _ in CSV_CORPUS])
def test_malformed_csv_ends_in_success_or_a_located_coded_error(tmp_path, name, data):
    path = tmp_path / f"{name}.csv"
    path.write_bytes(data)
    try:
        result = run(RunOptions(inputs=[path], outdir=None, as_of=AS_OF, stages=("normalize",)))
    except CrmcleanError as exc:
        assert exc.code.startswith("E-") and "\n" not in str(exc)
        return
    s = result.summary
    assert s["rows_read"] == sum(s["states"].values())  # nothing lost, nothing invented


# --- T2: hostile and odd workbooks ------------------------------------------------------------

_book = xlsx_book


def _rewrite(src: Path, dst: Path, change: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item, change.get(item.filename, zin.read(item.filename)))
        for name, data in change.items():
            if name not in zin.namelist():
                zout.writestr(name, data)
    return dst


def _xlsx_corpus(tmp: Path) -> list[Path]:
    base = _book(tmp / "base.xlsx", {"Contacts": GOOD})
    out = [base, _book(tmp / "two.xlsx", {"Notes": [["x"]], "Contacts": GOOD}), _book(tmp / "empty.xlsx", {"Contacts": []}),
           _book(tmp / "1904.xlsx", {"Contacts": GOOD}, date_1904=True), _book(tmp / "header_only.xlsx", {"Contacts": GOOD[:1]}),
           _book(tmp / "many.xlsx", {f"S{i}": GOOD for i in range(12)}), _book(tmp / "wide.xlsx", {"Contacts": [GOOD[0] + ["x"] * 200, GOOD[1]]})]
    raw = base.read_bytes()
    for i, cut in enumerate((10, 30, 100, 300, 500, 1000, len(raw) // 4, len(raw) // 3, len(raw) // 2, len(raw) - 400, len(raw) - 200, len(raw) - 22)):
        p = tmp / f"cut{i}.xlsx"
        p.write_bytes(raw[:cut])
        out.append(p)
    for i, flip in enumerate((40, 200, 400, 800, 1200, len(raw) // 2, len(raw) - 100)):
        p = tmp / f"flip{i}.xlsx"
        b = bytearray(raw)
        b[flip] ^= 0xFF
        p.write_bytes(bytes(b))
        out.append(p)
    (tmp / "ole.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 4096)
    (tmp / "renamed.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 4096)
    (tmp / "text.xlsx").write_bytes(b"First Name,Email\nAnn,a@x.com\n")
    (tmp / "pk_garbage.xlsx").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    out += [tmp / "ole.xlsx", tmp / "renamed.xls", tmp / "text.xlsx", tmp / "pk_garbage.xlsx"]
    laughs = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><workbook>&c;</workbook>'
    xxe = b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY x SYSTEM "file:///etc/passwd">]><workbook>&x;</workbook>'
    out.append(_rewrite(base, tmp / "laughs.xlsx", {"xl/workbook.xml": laughs}))
    out.append(_rewrite(base, tmp / "xxe.xlsx", {"xl/workbook.xml": xxe}))
    out.append(_rewrite(base, tmp / "laughs_sheet.xlsx", {"xl/worksheets/sheet1.xml": laughs}))
    out.append(_rewrite(base, tmp / "no_rels.xlsx", {"xl/_rels/workbook.xml.rels": b"<Relationships/>"}))
    out.append(_rewrite(base, tmp / "bad_xml.xlsx", {"xl/workbook.xml": b"<workbook><sheets"}))
    out.append(_rewrite(base, tmp / "bad_sheet.xlsx", {"xl/worksheets/sheet1.xml": b"<worksheet><sheetData><row"}))
    nocache = (b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
               b'<row r="1"><c r="A1" t="inlineStr"><is><t>Email</t></is></c></row><row r="2"><c r="A2"><f>1+1</f></c></row></sheetData></worksheet>')
    out.append(_rewrite(base, tmp / "formula_nocache.xlsx", {"xl/worksheets/sheet1.xml": nocache}))
    # a stray value far from the table: the reader would allocate the whole bounding box (550 GB
    # for XFD1048576) and abort the process; refused before it reads, on any sheet it will read
    sheet = b"<worksheet xmlns='http://schemas.openxmlformats.org/spreadsheetml/2006/main'><sheetData><row r='1'><c r='A1' t='inlineStr'><is><t>Email</t></is></c></row>%s</sheetData></worksheet>"
    for name, far in (("stray_far.xlsx", b"<row r='1048576'><c r='XFD1048576'><v>1</v></c></row>"),
                      ("stray_8digit.xlsx", b"<row r='99999999'><c r='xfd99999999'><v>1</v></c></row>"),
                      ("stray_row_attr.xlsx", b"<row r='99999999999'><c><v>1</v></c></row>"),
                      ("stray_styled_only.xlsx", b"<row r='1048576'><c r='XFD1048576' s='1'/></row>"),  # no value: nothing to hold
                      ("far_but_narrow.xlsx", b"<row r='200000'><c r='A200000'><v>1</v></c></row>")):
        out.append(_rewrite(base, tmp / name, {"xl/worksheets/sheet1.xml": sheet % far}))
    two = _book(tmp / "two_base.xlsx", {"Notes": [["x"]], "Contacts": GOOD})  # the stray value in the sheet looked at first
    out.append(_rewrite(two, tmp / "stray_first_sheet.xlsx", {"xl/worksheets/sheet1.xml": sheet % b"<row r='1048576'><c r='XFD1048576'><v>1</v></c></row>"}))
    with zipfile.ZipFile(tmp / "bomb.xlsx", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (40 * 1024 * 1024))
    out.append(tmp / "bomb.xlsx")
    with zipfile.ZipFile(tmp / "entries.xlsx", "w") as z:
        for i in range(10_050):
            z.writestr(f"x/{i}", b"")
    out.append(tmp / "entries.xlsx")
    wb = xlsxwriter.Workbook(str(tmp / "merged.xlsx"))
    ws = wb.add_worksheet("Contacts")
    ws.write_row(0, 0, GOOD[0])
    ws.merge_range(1, 0, 2, 0, "Ann")
    wb.close()
    out.append(tmp / "merged.xlsx")
    wb = xlsxwriter.Workbook(str(tmp / "hidden.xlsx"))
    wb.add_worksheet("Hidden").hide()
    ws = wb.add_worksheet("Contacts")
    for r, row in enumerate(GOOD):
        ws.write_row(r, 0, row)
    wb.close()
    out.append(tmp / "hidden.xlsx")
    wb = xlsxwriter.Workbook(str(tmp / "numbers.xlsx"))
    ws = wb.add_worksheet("Contacts")
    ws.write_row(0, 0, ["Email", "Zip", "Created", "Flag"])
    ws.write_row(1, 0, ["a@x.com"])
    ws.write_number(1, 1, 2134)
    ws.write_datetime(1, 2, dt.datetime(2020, 1, 2), wb.add_format({"num_format": "yyyy-mm-dd"}))
    ws.write_boolean(1, 3, True)
    wb.close()
    out.append(tmp / "numbers.xlsx")
    return out


def test_hostile_workbooks_end_in_success_or_a_coded_error(tmp_path):
    corpus = _xlsx_corpus(tmp_path)
    assert len(corpus) >= 48
    outcomes = {}
    for path in corpus:
        try:
            t = load_table(path)
            outcomes[path.name] = f"ok:{t.rows_read}"
        except CrmcleanError as exc:
            assert exc.code.startswith("E-") and "\n" not in str(exc), path.name
            outcomes[path.name] = exc.code
    assert outcomes["laughs.xlsx"] == outcomes["xxe.xlsx"] == "E-XLSX-XML"
    assert outcomes["bomb.xlsx"] == outcomes["entries.xlsx"] == "E-XLSX-BOMB"
    assert outcomes["ole.xlsx"] == "E-XLSX-ENCRYPTED" and outcomes["renamed.xls"] == "E-XLSX-LEGACY"
    assert outcomes["formula_nocache.xlsx"] == "E-XLSX-FORMULA-NOCACHE" and outcomes["merged.xlsx"] == "E-XLSX-MERGED"
    assert outcomes["numbers.xlsx"] == "ok:1" and outcomes["hidden.xlsx"] == "ok:2"
    assert outcomes["stray_far.xlsx"] == outcomes["stray_8digit.xlsx"] == outcomes["stray_row_attr.xlsx"] == outcomes["stray_first_sheet.xlsx"] == "E-XLSX-RANGE"
    assert outcomes["stray_styled_only.xlsx"] == "ok:0" and outcomes["far_but_narrow.xlsx"] == "ok:1"


# --- T3: invalid rule packs ---------------------------------------------------------------

PACK_CASES = [
    "kind: rules\n{}: x\n", "kind: [rules]\n", "kind: rules\nkind: rules\n", "- a\n- b\n", "just text\n", "kind: rules\nextends: nowhere-pack\n",
    "kind: rules\nx: &a [*a]\n", "kind: rules\na: &a [1,2]\nb: [*a, *a]\n", "kind: rules\nx: !!python/name:os.system\n", "kind: rules\nx: !!binary aGk=\n",
    "kind: rules\nx: !custom 1\n", "kind: rules\n\tx: 1\n", "kind: rules\nx: 'unterminated\n", "kind: rules\nversion: 2\n", "kind: rules\nname: 'Bad Name!'\n",
    "kind: source\ncolumns: {first_name: Name}\nobject: contact\n", "kind: source\ncolumns: {nope: [A]}\nobject: contact\n",
    "kind: source\ncolumns: {email: [Email]}\nobject: person\n", "kind: target\ncolumns: {email: 3}\nobject: contact\n",
    "kind: target\nobject: contact\ncolumns: {email: Email}\nformula_guard: maybe\n", "kind: target\nobject: contact\n",
]
for key, bad in [("max_block_size", "1"), ("max_block_size", "'ten'"), ("max_pairs", "-5"), ("budget_action", "explode"), ("thresholds", "{auto_merge: 2}"),
                 ("thresholds", "{review: -1}"), ("blocking", "[]"), ("blocking", "[{id: x, on: [shoe_size]}]"), ("blocking", "[{on: [email]}]"),
                 ("survivorship", "{survivor: [tallest]}"), ("survivorship", "{fields: {email: coin_flip}}"), ("survivorship", "{fields: {nope: union}}"),
                 ("enabled", "'yes'"), ("shared_contact_min_names", "1"), ("unknown_knob", "1")]:
    PACK_CASES.append(f"kind: rules\ndedupe:\n  {key}: {bad}\n")
for cond in ["{older_than: {field: last_activity_at}}", "{older_than: {field: created_at, days: -1}}", "{field_in: {field: lead_status, values: []}}",
             "{signal: 'Bad Name'}", "{any: []}", "{not: {}}", "{all: [{flag: nope}]}", "{object: person}", "{eval: '1+1'}", "{older_than: {field: x, days: 3}, flag: do_not_call}"]:
    PACK_CASES.append(f"kind: rules\nlifecycle:\n  rules:\n    - {{id: r, when: {cond}, action: archive, reason: R}}\n")
for rule in ["{id: r, when: {flag: do_not_call}, action: shred, reason: R}", "{id: r, when: {flag: do_not_call}, action: tag, reason: lower}",
             "{id: r, when: {flag: do_not_call}, action: tag}", "{id: r, when: {flag: do_not_call}, action: tag, reason: R, set: {nope: 'x'}}"]:
    PACK_CASES.append(f"kind: rules\nlifecycle:\n  rules:\n    - {rule}\n")
for pattern in ["(a+)+$", "(a*)*b", "(a|aa)+$", "(\\w+)\\1", "(?=x)", "(?<!y)z", "[", "a{2,1}", "(?P<n>a)(?P=n)", "x" * 2100]:
    PACK_CASES.append(f"kind: rules\nlifecycle:\n  signals:\n    s: {{phrases: ['{pattern}']}}\n")
for gate in ["{id: g, metric: share.rejected, max: 'low'}", "{id: g}", "{metric: x, max: 1}", "{id: 'G G', metric: x, max: 1}", "{id: g, metric: 'bad metric', max: 1}"]:
    PACK_CASES.append(f"kind: rules\ngates:\n  - {gate}\n")
for check in ["{id: c, field: email, check: maybe}", "{id: c, field: nope, check: required}", "{id: c, field: email, check: matches, value: '(a+)+'}",
              "{id: c, field: email, check: required, severity: fatal}"]:
    PACK_CASES.append(f"kind: rules\nvalidate:\n  checks:\n    - {check}\n")


for ref in ["../../../etc/passwd", "/etc/passwd", "data/../../../../etc/hosts", "data/no-such-table.yaml", "''"]:
    PACK_CASES.append(f"kind: rules\nnormalize:\n  address:\n    pub28: {ref}\n")  # paths outside the pack and rules
    PACK_CASES.append(f"kind: rules\nnormalize:\n  country:\n    table: {ref}\n")


@pytest.mark.parametrize("text", PACK_CASES, ids=[f"pack{i}" for i in range(len(PACK_CASES))])
def test_invalid_packs_are_refused_with_file_line_col(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulePackError) as exc:
        load_pack(str(path))
    for p in exc.value.problems:
        assert p.code.startswith("E-") and (p.location.startswith(str(path)) or p.location == "nowhere-pack"), p


def test_a_table_symlinked_out_of_the_pack_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("a: 1\n", encoding="utf-8")
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "link.yaml").symlink_to(outside / "secret.yaml")
    (packs / "p.yaml").write_text("kind: rules\nnormalize:\n  country:\n    table: link.yaml\n", encoding="utf-8")
    with pytest.raises(RulePackError) as exc:
        load_pack(str(packs / "p.yaml"))
    assert [(p.code, p.location) for p in exc.value.problems] == [("E-RULE-PATH", f"{packs / 'p.yaml'}:4:12")]
    shutil.copy(outside / "secret.yaml", packs / "real.yaml")  # a real file beside the pack is fine
    (packs / "q.yaml").write_text("kind: rules\nnormalize:\n  country:\n    table: real.yaml\n", encoding="utf-8")
    assert load_pack(str(packs / "q.yaml")).data["normalize"]["country"]["table"] == "real.yaml"


def test_pack_corpus_is_large_enough():
    assert len(PACK_CASES) >= 60


# --- T1/T3 fuzz: arbitrary bytes into the CSV loader and arbitrary text into the pack loader ----

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_fuzz_csv_loader(tmp_path, data):
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    try:
        load_table(path)
    except CrmcleanError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_fuzz_pack_loader(tmp_path, text):
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_pack(str(path))
    except RulePackError:
        pass


_XLSX_PARTS = ["xl/worksheets/sheet1.xml", "xl/workbook.xml", "xl/sharedStrings.xml", "xl/styles.xml", "[Content_Types].xml"]


def test_a_zip_entry_needing_an_unknown_zip_version_is_a_corrupt_workbook(tmp_path):
    """Found by the fuzz target: one damaged byte in the central directory's "version needed to
    extract" made Python's zipfile raise NotImplementedError, which escaped as a traceback."""
    raw = bytearray(_book(tmp_path / "base.xlsx", {"Contacts": GOOD}).read_bytes())
    at = raw.index(b"PK\x01\x02")  # the first central directory header
    raw[at + 6] = 64  # version needed to extract: 6.4
    path = tmp_path / "f.xlsx"
    path.write_bytes(bytes(raw))
    with pytest.raises(CrmcleanError) as exc:
        load_table(path)
    assert exc.value.code == "E-XLSX-CORRUPT"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_xlsx_loader_with_corrupted_bytes(tmp_path, flips):
    """Arbitrary byte damage anywhere in a valid workbook: a row count or a coded one-line error, nothing else."""
    base = bytearray(_book(tmp_path / "base.xlsx", {"Contacts": GOOD}).read_bytes())
    for pos, value in flips:
        base[pos % len(base)] = value
    path = tmp_path / "f.xlsx"
    path.write_bytes(bytes(base))
    try:
        load_table(path)
    except CrmcleanError as exc:
        assert exc.code.startswith("E-") and "\n" not in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(_XLSX_PARTS), st.one_of(st.text(max_size=600), st.builds(
    lambda cells: "<worksheet xmlns='http://schemas.openxmlformats.org/spreadsheetml/2006/main'><sheetData>" + "".join(
        f"<row r='{r}'><c r='{c}{r}' t='{t}'><v>{v}</v></c></row>" for r, c, t, v in cells) + "</sheetData></worksheet>",
    st.lists(st.tuples(st.integers(-2, 1_100_000), st.sampled_from(["A", "B", "ZZ", "XFD", "XFE", ""]), st.sampled_from(["s", "n", "b", "e", "str", "d", "x"]),
                       st.sampled_from(["0", "1", "-1", "1e308", "nan", "99999999", "", "abc", "2020-01-02"])), max_size=6))))
def test_fuzz_xlsx_loader_with_arbitrary_parts(tmp_path, part, xml):
    """Arbitrary text, or a sheet of odd cells (bad refs, types, shared-string indexes), in place of one workbook part."""
    base = _book(tmp_path / "base.xlsx", {"Contacts": GOOD})
    path = _rewrite(base, tmp_path / "f.xlsx", {part: xml.encode("utf-8", "surrogatepass")})
    try:
        load_table(path)
    except CrmcleanError as exc:
        assert exc.code.startswith("E-") and "\n" not in str(exc)


# --- T4/T5: random exports conserve every row; merges point at exported survivors ----------------

_SURVIVORS = ["most_recent_activity", "most_complete", "oldest_created", "newest_created"]


@st.composite
def _packs(draw: st.DrawFn) -> str:
    """A random *valid* rules pack on top of the default one."""
    auto = draw(st.floats(0.95, 0.9999))
    review = draw(st.floats(0.3, 0.94))
    survivors = draw(st.permutations(_SURVIVORS).map(lambda p: list(p[: 1 + len(p) // 2])))
    fields = draw(st.fixed_dictionaries({}, optional={"notes": st.sampled_from(["union", "longest", "fill_blanks"]),
                                                      "job_title": st.sampled_from(["most_recent", "survivor_only", "fill_blanks"]),
                                                      "phone": st.sampled_from(["fill_blanks", "survivor_only"])}))
    lines = ["kind: rules", "extends: default", "dedupe:", f"  thresholds: {{auto_merge: {auto:.4f}, review: {review:.4f}}}",
             f"  max_block_size: {draw(st.integers(2, 80))}", f"  budget_action: {draw(st.sampled_from(['tighten', 'warn']))}",
             "  survivorship:", f"    survivor: [{', '.join(survivors)}]"]
    if fields:
        lines.append("    fields: {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}")
    lines += ["lifecycle:", f"  enabled: {str(draw(st.booleans())).lower()}"]
    return "\n".join(lines) + "\n"


def _rows_by_line(path: Path) -> dict[int, list[str]]:
    """Each record of a CSV by the physical line it starts on (Python's csv, independent of crmclean)."""
    import csv
    import io

    out: dict[int, list[str]] = {}
    reader = csv.reader(io.StringIO(path.read_text("utf-8"), newline=""))
    prev = 0
    for row in reader:
        out[prev + 1] = row
        prev = reader.line_num
    return out


RANDOM_PIPELINES = int(os.environ.get("CRMCLEAN_RANDOM_PIPELINES", "20"))  # CI: 20; the long run by hand: 200


@settings(max_examples=RANDOM_PIPELINES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.one_of(st.integers(0, 80), st.integers(0, 1400)), st.integers(0, 10_000), st.sampled_from(["hubspot", "salesforce", "zoho", "pipedrive", "generic"]),
       _packs(), st.integers(0, 3))
def test_random_exports_conserve_rows(tmp_path, people, seed, fmt, pack_text, extra_bad):
    """T4/T5: 0–2,000-row exports with random dirt and duplicates, random valid packs: every row
    read ends in exactly one final state, every merged record points at a survivor that is in
    the outputs, and unmerge gives back each merged record exactly as it was in the input."""
    import io

    import pandas as pd
    from bench.synth import generate, write_csv

    from crmclean.export.publish import Staging
    from crmclean.unmerge import unmerge

    path = tmp_path / "r.csv"
    if people:
        write_csv(generate(people, seed=seed), fmt, str(path))
    else:
        path.write_text("First Name,Email\n")
    if extra_bad:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("only,two\n" * extra_bad)
    pack = tmp_path / "p.yaml"
    pack.write_text(pack_text)
    result = run(RunOptions(inputs=[path], outdir=None, pack=str(pack), as_of=AS_OF))
    s = result.summary
    assert s["rows_read"] == sum(s["states"].values())
    ledger = pd.read_csv(io.BytesIO(result.files["ledger.csv"]), dtype=str, keep_default_na=False)
    assert ledger["record_id"].is_unique and len(ledger) == s["rows_read"]
    alive = set(ledger.loc[ledger["state"].isin(["exported", "deactivated", "archived"]), "record_id"])
    assert ledger.loc[ledger["state"] == "merged", "survivor_id"].isin(alive).all()

    out = tmp_path / "out"
    staging = Staging(out)
    for name, data in result.files.items():
        staging.write_bytes(name, data)
    staging.publish({})
    merged = pd.read_csv(io.BytesIO(result.files["merged.csv"]), dtype=str, keep_default_na=False)
    written = unmerge(out, tmp_path / "restored")
    assert sum(written.values()) == len(merged)
    if len(merged):
        restored = list(csv_rows((tmp_path / "restored" / "unmerged-r.csv").read_text("utf-8")))
        by_line = _rows_by_line(path)
        assert restored[0] == by_line[1]
        assert restored[1:] == [by_line[line] for line in sorted(int(x) for x in merged["source_line"])]


def csv_rows(text: str) -> list[list[str]]:
    import csv
    import io

    return list(csv.reader(io.StringIO(text, newline="")))


def test_a_run_failing_after_some_files_were_written_publishes_nothing(tmp_path, monkeypatch):
    """The files go to the staging directory as the run makes them: a failure after the first of
    them leaves the previous outputs as they were and no staging directory behind."""
    from typer.testing import CliRunner

    from crmclean.cli import app
    from crmclean.export import report
    from crmclean.export.publish import verify

    sample = Path(__file__).resolve().parent.parent / "samples" / "zoho_leads.csv"
    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["run", str(sample), "-o", str(out), "--as-of", "2026-11-01"]).exit_code in (0, 1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    written: list[str] = []

    def fail(*_a, **_k):
        written.extend(p.name for p in tmp_path.iterdir() if ".staging-" in p.name for _ in p.iterdir())
        raise RuntimeError("injected")

    monkeypatch.setattr(report, "render_report", fail)  # the last file a run makes
    r = CliRunner().invoke(app, ["run", str(sample), "-o", str(out), "--as-of", "2026-11-02"])
    assert r.exit_code not in (0, 1)
    assert len(written) > 5  # the other files were in the staging directory when the run failed
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    verify(out)
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


# --- T10: I/O faults while publishing ---------------------------------------------------------

@pytest.mark.parametrize("fail_at", [0, 3, 8, 13])  # the 14th write is the manifest
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO])
def test_io_faults_publish_nothing_and_keep_the_previous_outputs(tmp_path, monkeypatch, fail_at, err):
    from typer.testing import CliRunner

    from crmclean.cli import app
    from crmclean.export import publish
    from crmclean.export.publish import verify

    sample = Path(__file__).resolve().parent.parent / "samples" / "zoho_leads.csv"
    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["run", str(sample), "-o", str(out), "--as-of", "2026-11-01"]).exit_code in (0, 1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    original = publish.Staging.write_bytes
    calls = {"n": 0}

    def failing(self, name, data):
        calls["n"] += 1
        if calls["n"] > fail_at:
            raise OSError(err, "injected")
        return original(self, name, data)

    monkeypatch.setattr(publish.Staging, "write_bytes", failing)
    r = CliRunner().invoke(app, ["run", str(sample), "-o", str(out), "--as-of", "2026-11-02"])
    assert r.exit_code == 4 and f"E-IO-{errno.errorcode[err]}" in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    verify(out)
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]
    monkeypatch.setattr(publish.Staging, "write_bytes", original)  # the disk recovers: the next run succeeds
    assert CliRunner().invoke(app, ["run", str(sample), "-o", str(out), "--as-of", "2026-11-02"]).exit_code in (0, 1)
    verify(out)
    assert json.loads((out / "summary.json").read_text())["as_of"] == "2026-11-02"


def test_symlinked_output_directory_is_refused(tmp_path):
    from typer.testing import CliRunner

    from crmclean.cli import app

    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    sample = Path(__file__).resolve().parent.parent / "samples" / "zoho_leads.csv"
    r = CliRunner().invoke(app, ["run", str(sample), "-o", str(link)])
    assert r.exit_code == 2 and "E-PATH-SYMLINK" in r.output


# --- T15: formula injection, property-tested over every output file ------------------------------

TRIGGER = st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'=", "''+"])
PAYLOAD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(TRIGGER, PAYLOAD), min_size=1, max_size=6), st.sampled_from(["salesforce", "hubspot", "generic"]))
@example(cells=[("\r", "=")], target="salesforce")  # a bare CR once split a record and exposed '='
def test_no_output_cell_can_execute_in_a_spreadsheet(tmp_path, cells, target):
    import csv
    import io

    from crmclean.export.safe import is_formula_like, unescape, write_xlsx

    rows = []
    for i, (trigger, payload) in enumerate(cells):
        evil = (trigger + payload).replace("\n", " ")
        rows.append([evil, f"Last{i}", f"u{i}@x.com", evil, "2020-01-01", evil])
    path = tmp_path / "e.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["First Name", "Last Name", "Email", "Notes", "Last Activity", "Company"])
        w.writerows(rows)
    result = run(RunOptions(inputs=[path], outdir=None, target=target, as_of=AS_OF))
    for name, data in result.files.items():
        if not name.endswith(".csv"):
            continue
        for row in csv.reader(io.StringIO(data.decode("utf-8"), newline="")):
            for cell in row:
                assert not is_formula_like(cell), (name, cell)
                assert unescape(cell) == cell or cell.startswith("'")
    import pandas as pd

    clean = pd.read_csv(io.BytesIO(result.files["clean.csv"]), dtype=str, keep_default_na=False)
    write_xlsx(tmp_path / "c.xlsx", clean)
    with zipfile.ZipFile(tmp_path / "c.xlsx") as z:
        assert b"<f>" not in z.read("xl/worksheets/sheet1.xml")


@given(st.lists(st.lists(st.text(alphabet=st.sampled_from(list("a,\"\r\n\x00\x01 =")), max_size=8), min_size=2, max_size=2), max_size=6),
       st.sampled_from(["\n", "\r\n"]))
@settings(max_examples=300)
def test_csv_writer_keeps_every_field_whole(rows, eol):
    """A bare CR inside a value is quoted even when records end in LF (Python's csv would not)."""
    import csv
    import io

    from crmclean.export.safe import csv_bytes

    data = csv_bytes(["a", "b"], rows, line_ending=eol).decode("utf-8")
    assert list(csv.reader(io.StringIO(data, newline=""))) == [["a", "b"], *rows]
    assert data.endswith(eol)


_CSV_TEXT = st.text(alphabet=st.sampled_from(list('a,"\r\n\x00\x01 =é')), max_size=6)


@given(st.lists(_CSV_TEXT, min_size=1, max_size=3, unique=True), st.data(), st.sampled_from(["\n", "\r\n"]),
       st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]), st.booleans())
@settings(max_examples=300, deadline=None)
@example(header=["a"], data=None, eol="\n", encoding="utf-8", arrow=True)  # one column: an empty record is ""
def test_arrow_csv_writer_writes_exactly_what_the_csv_module_writes(header, data, eol, encoding, arrow):
    """frame_csv_bytes assembles records in Arrow; its bytes must be the csv module's (with the
    bare-CR rule), for either kind of text column, any terminator and encoding."""
    import pandas as pd

    from crmclean.export.safe import csv_bytes, frame_csv_bytes
    from crmclean.model import STR

    n = data.draw(st.integers(0, 5)) if data is not None else 2
    rows = [[data.draw(_CSV_TEXT) if data is not None else "" for _ in header] for _ in range(n)]
    if encoding == "latin-1":
        rows = [[v.replace("é", "e") for v in row] for row in rows]
    frame = pd.DataFrame(rows, columns=header, dtype=STR if arrow else object)
    import crmclean.export.safe as safe

    chunk = data.draw(st.sampled_from([1, 2, 250_000])) if data is not None else 1  # records assembled a few at a time too
    saved, safe.CSV_CHUNK_ROWS = safe.CSV_CHUNK_ROWS, chunk
    try:
        assert frame_csv_bytes(frame, encoding=encoding, line_ending=eol) == csv_bytes(header, rows, encoding=encoding, line_ending=eol)
    finally:
        safe.CSV_CHUNK_ROWS = saved


@given(st.lists(st.lists(st.tuples(_CSV_TEXT, _CSV_TEXT), max_size=4), min_size=0, max_size=4), st.data())
@settings(max_examples=300, deadline=None)
def test_several_frames_are_written_as_their_concatenation(parts, data):
    """changes.csv is written from the stages' parts without concatenating them: the bytes must
    be those of the concatenation — header once, one quoting rule for the whole file (a CR in
    any part decides it), whatever each part's column types (Arrow, objects, categorical), and a
    missing cell anywhere takes the csv module's path for all."""
    import pandas as pd

    from crmclean.export.safe import frame_csv_pieces, frames_csv_pieces
    from crmclean.model import STR, concat

    frames = []
    for rows in parts:
        kind = data.draw(st.sampled_from([STR, object, "category"]))
        frames.append(pd.DataFrame(rows, columns=["a", "b"], dtype=object).astype(kind))
    if frames and data.draw(st.booleans()):
        frames[0] = frames[0].reindex(list(range(len(frames[0]) + 1)))  # a missing cell
    columns = ("a", "b")
    assert b"".join(frames_csv_pieces(frames, columns)) == b"".join(frame_csv_pieces(concat(frames, columns)))


@given(st.lists(st.text(max_size=4), max_size=12))
@settings(max_examples=300)
def test_first_character_screen_equals_the_python_test(values):
    """The vectorised first-character screen finds exactly the cells a per-cell test finds."""
    import numpy as np

    from crmclean.export.safe import _FIRST, _first_char_hits

    arr = np.array(values, dtype=object) if values else np.zeros(0, dtype=object)
    assert _first_char_hits(arr).tolist() == [i for i, v in enumerate(values) if v[:1] in _FIRST]


_CELLS = st.one_of(
    st.sampled_from(["+14155552671", "+14155552671;ext=12", "-12.5", "+3", "=SUM(A1)", "'=SUM(A1)", "''+1 x", "@cmd", "-", "+", "'",
                     "\tx", "\rx", "+1415555267", "+1234567890123456", "=1+1", "'+14155552671", "plain", ""]),
    st.text(alphabet="=+-@'\t\r0123456789;ext.a", max_size=20),
)


@settings(deadline=None, max_examples=60)
@given(st.lists(_CELLS, min_size=1, max_size=40), st.booleans())
def test_escape_frame_equals_escaping_every_cell(cells, arrow):
    """Long columns take the RE2 pre-screen for plain data (phones, numbers), Arrow-backed ones
    are screened in Arrow; the result must be exactly escape() of every cell, with every changed
    cell reported, and the input frame must be left as it was."""
    import pandas as pd

    from crmclean.export.safe import escape, escape_frame, formula_cells, is_formula_like
    from crmclean.model import STR

    column = (cells * (1200 // len(cells) + 1))[:1200]  # past the pre-screen's 1,000-hit threshold
    dtype = STR if arrow else object
    frame = pd.DataFrame({"a": pd.Series(column, dtype=dtype), "b": pd.Series(column[::-1], dtype=dtype)})
    out, hits = escape_frame(frame)
    for col in ("a", "b"):
        want = [escape(v) for v in frame[col]]
        assert out[col].tolist() == want
        assert sorted(i for i, c in hits if c == col) == [i for i, v in enumerate(frame[col]) if escape(v) != v]
        assert sorted(i for i, c in formula_cells(frame) if c == col) == [i for i, v in enumerate(frame[col]) if is_formula_like(v)]
    assert frame["a"].tolist() == column


def test_command_line_uses_malloc_for_arrow_unless_a_pool_is_chosen(monkeypatch) -> None:
    import pyarrow as pa

    from crmclean.procs import lean_arrow_memory

    before = pa.default_memory_pool()
    try:
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
        pa.set_memory_pool(pa.mimalloc_memory_pool())
        lean_arrow_memory()
        assert pa.default_memory_pool().backend_name == "mimalloc"  # the user's choice stands
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        lean_arrow_memory()
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(before)


def test_command_line_gives_threads_one_malloc_arena_unless_the_user_chose(monkeypatch) -> None:
    import crmclean.procs as procs

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(procs, "_libc", lambda name: (lambda a, b: calls.append((a, b))) if name == "mallopt" else None)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    procs.one_malloc_arena()
    assert calls == []  # the user's setting stands
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    procs.one_malloc_arena()
    assert calls == [(procs.M_ARENA_MAX, 1)]
    monkeypatch.setattr(procs, "_libc", lambda name: None)  # a C library without mallopt
    procs.one_malloc_arena()
    assert calls == [(procs.M_ARENA_MAX, 1)]


def test_release_memory_returns_freed_heap_to_the_system() -> None:
    """Between stages the run hands freed heap back (glibc's malloc_trim): resident memory after
    freeing many small objects drops instead of staying at its high-water mark."""
    import platform

    from crmclean.procs import release_memory

    def rss_mb() -> float:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        release_memory()  # a no-op there, but it must not fail
        return
    junk = [f"{i:07d}" * 150 for i in range(250_000)]  # ~260 MB of 1 KB strings: malloc's heap, not mmap
    keep = junk[::1000]
    before = rss_mb()
    del junk
    release_memory()
    assert rss_mb() < before - 100, (before, rss_mb())
    assert len(keep) == 250


@given(st.lists(st.tuples(_CSV_TEXT, _CSV_TEXT), max_size=12), st.integers(1, 5), st.sampled_from(["str", "category"]), st.integers(0, 12))
@settings(max_examples=200, deadline=None)
def test_a_packed_frame_gives_back_its_rows_and_dtypes_and_is_written_as_the_frame(rows, piece_rows, kind, cut):
    """A packed frame's pieces are the frame cut every ``rows`` rows, whatever its Arrow chunks,
    with its dtypes; written with other frames (its cells escaped or not) it gives the bytes of
    the frames' concatenation."""
    import pandas as pd

    from crmclean.export.safe import escape_frame, frame_csv_pieces, frames_csv_pieces
    from crmclean.model import STR, PackedFrame, concat

    frame = pd.DataFrame(rows, columns=["a", "b"], dtype=object).astype(STR if kind == "str" else "category")
    if kind == "str":  # text in two Arrow chunks, as a concatenated log holds it
        frame = concat([frame.iloc[:cut], frame.iloc[cut:]], ("a", "b")) if len(frame) else frame
    packed = PackedFrame(frame, rows=piece_rows)
    pieces = list(packed.pieces())
    assert len(packed) == len(frame) and [len(p) for p in pieces] == [min(piece_rows, len(frame) - a) for a in range(0, len(frame), piece_rows)]
    if len(frame):
        pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), frame)
    other = pd.DataFrame({"a": ["=1+1", "x\r"], "b": ["+14155552671", "-2"]}, dtype=object)
    columns = ("a", "b")
    for escaped in (False, True):
        parts = [packed, other, packed]
        got = frames_csv_pieces(parts, columns, escape_cells=escaped)
        parts.clear()  # the frames are taken when it is called, not when the file is read
        want = [escape_frame(f)[0] if escaped else f for f in (frame, other, frame)]
        assert b"".join(got) == b"".join(frame_csv_pieces(concat(want, columns)))
