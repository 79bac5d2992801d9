"""Write samples/: small realistic exports, one per CRM, each in its own dialect.

    python bench/make_samples.py        # deterministic: same bytes every time

Each file carries the dirt crmclean exists to fix (duplicates, nicknames, phone and address
variants, stale, deceased, hostile, left-the-company contacts) and the look-alikes it must not
merge. The ground truth goes to samples/truth/ for the tests.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.synth import ACCOUNT_HEADERS, Generator, accounts, rows_for, write_truth  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent / "samples"
AS_OF = dt.date(2026, 11, 1)

# file name, format, seed, people, encoding, delimiter, line ending
SAMPLES = [
    ("salesforce_contacts.csv", "salesforce", 101, 240, "utf-8-sig", ",", "\r\n"),
    ("hubspot_contacts.csv", "hubspot", 102, 240, "utf-8", ",", "\n"),
    ("dynamics_contacts.csv", "dynamics", 103, 240, "cp1252", ",", "\r\n"),
    ("zoho_leads.csv", "zoho", 104, 240, "utf-8", ";", "\n"),
    ("pipedrive_persons.csv", "pipedrive", 105, 240, "utf-8", ",", "\n"),
]


def _write(path: Path, headers: list[str], rows: list[list[str]], encoding: str, delimiter: str, eol: str) -> None:
    with open(path, "w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter, lineterminator=eol)
        w.writerow(headers)
        w.writerows(rows)


def main() -> None:
    ROOT.mkdir(exist_ok=True)
    (ROOT / "truth").mkdir(exist_ok=True)
    for name, fmt, seed, people, encoding, delimiter, eol in SAMPLES:
        gen = Generator(seed, AS_OF)
        data = gen.build(people)
        headers, rows = rows_for(data, fmt)
        if fmt == "salesforce":  # contacts point at their accounts by AccountId
            acc_rows, acc_ids = accounts(gen, 220)
            by_company = {r.rid: gen.entities[r.eid].company for r in data.records}
            headers = [*headers, "AccountId"]
            rows = [[*row, acc_ids.get(by_company[rec.rid], "")] for row, rec in zip(rows, data.records, strict=True)]
            _write(ROOT / "salesforce_accounts.csv", ACCOUNT_HEADERS, acc_rows, "utf-8-sig", ",", "\r\n")
        _write(ROOT / name, headers, rows, encoding, delimiter, eol)
        write_truth(data, str(ROOT / "truth" / (Path(name).stem + ".truth.csv")))
    # one Excel workbook (generic headers), with a second sheet that is not contacts
    gen = Generator(106, AS_OF)
    data = gen.build(240)
    headers, rows = rows_for(data, "generic")
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(ROOT / "generic_contacts.xlsx"), {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False})
    notes = wb.add_worksheet("Read me")
    notes.write_string(0, 0, "Exported from the legacy CRM. Contacts are on the next sheet.")
    ws = wb.add_worksheet("Contacts")
    for c, h in enumerate(headers):
        ws.write_string(0, c, h)
    for r, row in enumerate(rows, start=1):
        for c, v in enumerate(row):
            ws.write_string(r, c, v)
    wb.close()
    write_truth(data, str(ROOT / "truth" / "generic_contacts.truth.csv"))


if __name__ == "__main__":
    main()
