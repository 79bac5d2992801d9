"""Loaders: every cell text, encodings, delimiters, and bad input as rejects or coded errors."""

from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest
import xlsxwriter
from hypothesis import given, settings
from hypothesis import strategies as st

from crmclean.errors import CrmcleanError, InputError
from crmclean.io import LoadOptions, csvread, load_table
from crmclean.io.csvread import CsvOptions, read_csv
from crmclean.model import STR
from helpers import xlsx_book


def test_cells_stay_text(write):
    # "NA" (Namibia), "NULL" (a surname), leading zeros, a number-looking id: all kept exactly
    t = load_table(write("a.csv", "id,last,country,zip\n007,NULL,NA,02134\n"))
    assert t.frame.to_dict("records") == [{"id": "007", "last": "NULL", "country": "NA", "zip": "02134"}]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab\r\n,\"", max_size=60), st.integers(1, 9))
def test_block_lines_are_the_stringio_lines(text, block):
    # the reader cuts the text into blocks that end after a "\n": the lines must be exactly
    # those of one StringIO over the whole text, whatever the block size ("\r\n" never split)
    old = csvread.BLOCK_CHARS
    csvread.BLOCK_CHARS = block
    try:
        assert list(csvread._lines(text)) == list(io.StringIO(text, newline=""))
    finally:
        csvread.BLOCK_CHARS = old


def test_rows_across_chunks_keep_their_order_and_lines(write, monkeypatch):
    monkeypatch.setattr(csvread, "CHUNK_ROWS", 3)
    monkeypatch.setattr(csvread, "BLOCK_CHARS", 16)
    body = "".join(f'{i},"v{i}\nsecond line"\n' if i % 4 == 0 else f"{i},v{i}\n" for i in range(10))
    t = read_csv(write("c.csv", "id,val\n" + body))
    assert t.frame["id"].tolist() == [str(i) for i in range(10)]
    assert t.frame["val"].tolist() == [f"v{i}\nsecond line" if i % 4 == 0 else f"v{i}" for i in range(10)]
    assert (t.frame.dtypes == STR).all()
    lines, line = [], 2
    for i in range(10):
        lines.append(line)
        line += 2 if i % 4 == 0 else 1
    assert t.lines.tolist() == lines



def _read_both(path):
    """What read_csv gives with Arrow's reader allowed, and with the csv module alone."""
    def outcome():
        try:
            t = read_csv(path)
        except InputError as exc:
            return ("error", exc.code, str(exc))
        return (t.headers, t.frame.to_dict("list"), t.lines.tolist(), [(w.code, w.message) for w in t.warnings], t.rejects, t.blank_lines,
                (t.frame.dtypes == STR).all())
    fast = outcome()
    old = csvread._fast_rows
    csvread._fast_rows = lambda *a: None
    try:
        return fast, outcome()
    finally:
        csvread._fast_rows = old


_CELL = st.one_of(
    st.text(alphabet="ab é,;\"\r\n\x00", max_size=5).map(lambda v: '"' + v.replace('"', '""') + '"'),  # quoted
    st.text(alphabet="ab é,;\"\r\n\x00", max_size=5),  # anything, broken quoting too
    st.text(alphabet="ab é", max_size=5),
)


@st.composite
def _csv_texts(draw):
    width = draw(st.integers(1, 4))
    lines = []
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["row"] * 6 + ["blank", "short", "long"]))
        n = 0 if kind == "blank" else max(1, width + {"row": 0, "short": -1, "long": 1}[kind])
        lines.append(",".join(draw(st.lists(_CELL, min_size=n, max_size=n))))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return draw(st.sampled_from(["", "\ufeff"])) + end.join(lines) + draw(st.sampled_from(["", end]))


@settings(max_examples=500, deadline=None)
@given(_csv_texts())
def test_arrow_reader_reads_what_the_csv_module_reads(text):
    # Arrow's reader takes the files it reads exactly as the csv module does, and hands every
    # other one (quoted line breaks, stray quotes, CRs, NULs, rows of another width) to it
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.csv"
        path.write_bytes(text.encode("utf-8"))
        fast, slow = _read_both(path)
    assert fast == slow


@pytest.mark.parametrize(
    ("text", "arrow"),
    [("a,b\n1,2\n", True), ('a,b\r\n\r\n"x, ""y""",2\r\n', True), ("\ufeff\n\na;b\n1;\n\n2;3", True),
     ('a,b\n1,"2\n3"\n', False), ('a,b\n1,"2"x\n', False), ('a,b\n1,2"\n', False), ("a,b\n1,2\r3,4\n", False),
     ("a,b\n1,2,3\n", False), ("a,b\n1,\x00\n", False), ('a\n1\n""\n2\n', False)],
)
def test_arrow_reader_takes_plain_files_and_only_them(write, monkeypatch, text, arrow):
    fast, slow = _read_both(write("p.csv", text))
    assert fast == slow
    monkeypatch.setattr(csvread, "_csv_rows", lambda *a: pytest.fail("read by the csv module"))
    if arrow:
        read_csv(write("p.csv", text))
    else:
        with pytest.raises(pytest.fail.Exception):
            read_csv(write("p.csv", text))

@pytest.mark.parametrize(
    ("data", "encoding", "expected"),
    [
        ("name\nJosé\n".encode("utf-8-sig"), "utf-8-sig", "José"),
        ("name\nJosé\n".encode(), "utf-8", "José"),
        ("name\nJosé Müller\n".encode("cp1252"), "cp1252", "José Müller"),
        ("name\n€uro Crédit\n".encode("cp1252"), "cp1252", "€uro Crédit"),
    ],
)
def test_encoding_cascade(write, data, encoding, expected):
    t = load_table(write("e.csv", data))
    assert t.encoding == encoding.replace("-", "_").replace("utf_8_sig", "utf-8-sig") or t.encoding
    assert t.frame["name"].tolist() == [expected]


def test_undeclared_latin1_reads_with_warning(write):
    # 0x81 is undefined in cp1252 but valid latin-1: read correctly, with a warning
    t = load_table(write("l.csv", b"name,code\nJos\xe9,\x81x\n"))
    assert t.frame["name"].tolist() == ["José"]
    assert any(w.code == "W-ENCODING" for w in t.warnings)


def test_forced_encoding(write):
    t = read_csv(write("f.csv", "name\nJosé\n".encode("cp1252")), CsvOptions(encoding="latin-1"))
    assert t.frame["name"].tolist() == ["José"]


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
def test_delimiter_sniffing(write, delim):
    text = delim.join(["First Name", "Last Name", "Email"]) + "\n" + delim.join(["Ann", "Lee", "a@x.com"]) + "\n"
    t = load_table(write("d.csv", text))
    assert t.delimiter == delim and t.headers == ["First Name", "Last Name", "Email"]


def test_semicolon_with_commas_inside_values(write):
    t = load_table(write("s.csv", "Name;Company\nSmith, Robert;Acme, Inc.\nLee, Ann;Globex\n"))
    assert t.delimiter == ";" and t.frame["Name"].tolist() == ["Smith, Robert", "Lee, Ann"]


def test_quoted_multiline_field_keeps_line_identity(write):
    t = load_table(write("m.csv", 'id,street\n1,"10 Main St\nApt 4"\n2,"5 Elm"\n'))
    assert t.frame["street"].tolist() == ["10 Main St\nApt 4", "5 Elm"]
    assert t.lines.tolist() == [2, 4]


def test_crlf_and_no_final_newline(write):
    t = load_table(write("c.csv", b"a,b\r\n1,2\r\n3,4"))
    assert t.frame.to_dict("records") == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_ragged_rows_go_to_rejects_with_line_numbers(write):
    t = load_table(write("r.csv", "a,b,c\n1,2,3\n1,2\n1,2,3,4\n7,8,9\n"))
    assert len(t.frame) == 2
    assert [(r.line, r.code) for r in t.rejects] == [(3, "E-CSV-SHORT"), (4, "E-CSV-RAGGED")]
    assert t.rows_read == 4  # nothing silently lost


def test_trailing_empty_fields_are_not_data_loss(write):
    t = load_table(write("t.csv", "a,b\n1,2,,\n"))
    assert t.frame.to_dict("records") == [{"a": "1", "b": "2"}]
    assert any(w.code == "W-CSV-TRAILING" for w in t.warnings)


def test_nul_byte_rejects_the_row(write):
    t = load_table(write("n.csv", b"a,b\n1,x\x00y\n2,ok\n"))
    assert t.frame["a"].tolist() == ["2"]
    assert t.rejects[0].code == "E-CSV-NUL" and t.rejects[0].line == 2


def test_unbalanced_quote_is_located(write):
    with pytest.raises(InputError) as exc:
        load_table(write("q.csv", 'a,b\n1,ok\n2,"never closed\n3,x\n'))
    assert exc.value.code == "E-CSV-QUOTE" and exc.value.problem.location == "q.csv:3:3"


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "E-CSV-EMPTY"), (b"\n\n  \n", "E-CSV-EMPTY"), (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "E-INPUT-BINARY"),
     (b"PK\x03\x04junk", "E-INPUT-FORMAT"), (b"\xd0\xcf\x11\xe0junk", "E-INPUT-FORMAT")],
)
def test_unreadable_files_get_coded_errors(write, data, code):
    with pytest.raises(InputError) as exc:
        load_table(write("bad.csv", data))
    assert exc.value.code == code
    assert "\n" not in str(exc.value)


def test_header_only_reads_zero_rows_with_warning(write):
    t = load_table(write("h.csv", "First Name,Email\n"))
    assert len(t.frame) == 0 and any(w.code == "W-CSV-NO-ROWS" for w in t.warnings)


def test_duplicate_column_names_are_kept_apart(write):
    t = load_table(write("dup.csv", "First Name,Last Name,Last Name\nAnn,Lee,Mum\n"))
    assert t.headers == ["First Name", "Last Name", "Last Name (2)"]
    assert t.frame.iloc[0].tolist() == ["Ann", "Lee", "Mum"]
    assert any(w.code == "W-HDR-DUP" for w in t.warnings)


def test_huge_field_is_refused_with_a_hint(write):
    big = "x" * (5 * 1024 * 1024)
    with pytest.raises(InputError) as exc:
        load_table(write("big.csv", f"a,notes\n1,{big}\n"))
    assert exc.value.code == "E-CSV-FIELD-SIZE" and "--max-field-size" in exc.value.problem.hint
    t = load_table(write("big2.csv", f"a,notes\n1,{big}\n"), LoadOptions(max_field_size=8 * 1024 * 1024))
    assert len(t.frame["notes"][0]) == len(big)


# --- xlsx ---------------------------------------------------------------------------------


_xlsx = xlsx_book


def test_xlsx_two_sheets_picks_the_contacts_with_warning(tmp_path):
    p = _xlsx(tmp_path / "b.xlsx", {"Notes": [["hello"]], "Contacts": [["First Name", "Last Name", "Email"], ["Ann", "Lee", "a@x.com"]]})
    t = load_table(p)
    assert t.sheet == "Contacts" and len(t.frame) == 1
    assert any(w.code == "W-XLSX-SHEETS" and "Notes" in w.message for w in t.warnings)
    assert load_table(p, LoadOptions(sheet="Notes")).headers == ["hello"]


def test_xlsx_numbers_become_text_without_float_noise(tmp_path):
    p = tmp_path / "n.xlsx"
    wb = xlsxwriter.Workbook(str(p))
    ws = wb.add_worksheet("Contacts")
    ws.write_row(0, 0, ["Email", "Zip", "Phone"])
    ws.write_row(1, 0, ["a@x.com"])
    ws.write_number(1, 1, 2134)
    ws.write_number(1, 2, 4155552671)
    wb.close()
    t = load_table(p)
    assert t.frame.iloc[0].tolist() == ["a@x.com", "2134", "4155552671"]
    assert t.lines.tolist() == [2]


def test_xlsx_formula_without_cached_value_is_refused(tmp_path):
    p = tmp_path / "f.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Contacts"
    ws.append(["Email", "Score"])
    ws.append(["a@x.com", "=1+1"])
    wb.save(p)
    with pytest.raises(InputError) as exc:
        load_table(p)
    assert exc.value.code == "E-XLSX-FORMULA-NOCACHE" and exc.value.problem.location.endswith("Contacts!B2")


def test_xlsx_merged_cells_refused(tmp_path):
    p = tmp_path / "m.xlsx"
    wb = xlsxwriter.Workbook(str(p))
    ws = wb.add_worksheet("Contacts")
    ws.write_row(0, 0, ["Email", "Company"])
    ws.merge_range(1, 1, 2, 1, "Acme")
    wb.close()
    with pytest.raises(InputError) as exc:
        load_table(p)
    assert exc.value.code == "E-XLSX-MERGED" and "B2:B3" in exc.value.problem.location


def test_xlsx_truncated_and_encrypted(tmp_path):
    good = _xlsx(tmp_path / "g.xlsx", {"Contacts": [["Email"], ["a@x.com"]]})
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    enc = tmp_path / "enc.xlsx"
    enc.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    for path, code in ((cut, "E-XLSX-CORRUPT"), (enc, "E-XLSX-ENCRYPTED")):
        with pytest.raises(InputError) as exc:
            load_table(path)
        assert exc.value.code == code


def test_xlsx_zip_bomb_refused(tmp_path):
    p = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (60 * 1024 * 1024))
    with pytest.raises(CrmcleanError) as exc:
        load_table(p)
    assert exc.value.code == "E-XLSX-BOMB"


def test_xlsx_1904_date_system_recorded(tmp_path):
    p = tmp_path / "d.xlsx"
    wb = xlsxwriter.Workbook(str(p), {"date_1904": True})
    ws = wb.add_worksheet("Contacts")
    ws.write_row(0, 0, ["Email", "Created"])
    ws.write_string(1, 0, "a@x.com")
    ws.write_number(1, 1, 43465)  # 2023-01-01 in the 1904 system (44927 - 1462)
    wb.close()
    t = load_table(p)
    assert t.date1904 is True
    from crmclean.normalize.dates import normalize_date

    assert normalize_date(t.frame["Created"][0], "mdy", "UTC", True, t.date1904) == ("2023-01-01", None)
    assert normalize_date("44927", "mdy", "UTC", True, False) == ("2023-01-01", None)
