"""End to end: golden outputs per target, conservation, determinism, idempotence, unmerge."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, SAMPLES
from crmclean.export.publish import Staging, verify
from crmclean.pipeline import RunOptions, run
from crmclean.unmerge import unmerge

AS_OF = dt.date(2026, 11, 1)
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("CRMCLEAN_UPDATE_GOLDEN") == "1"
ALL_SAMPLES = sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".csv", ".xlsx"))


def _run(names: list[str], target: str = "generic", **kw) -> object:
    return run(RunOptions(inputs=[SAMPLES / n for n in names], outdir=None, target=target, as_of=AS_OF, **kw))


def _csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)


@pytest.mark.parametrize(("sample", "target"), [("salesforce_contacts.csv", "salesforce"), ("hubspot_contacts.csv", "hubspot"),
                                                 ("dynamics_contacts.csv", "dynamics"), ("zoho_leads.csv", "zoho"),
                                                 ("pipedrive_persons.csv", "pipedrive"), ("generic_contacts.xlsx", "generic")])
def test_golden_outputs_per_target(sample, target):
    result = _run([sample], target)
    golden = GOLDEN / f"{Path(sample).stem}.{target}.clean.csv"
    states = GOLDEN / f"{Path(sample).stem}.{target}.states.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_bytes(result.files["clean.csv"])
        states.write_text(json.dumps(result.summary["states"], indent=1) + "\n")
    assert result.files["clean.csv"] == golden.read_bytes(), "clean.csv differs from the golden file (CRMCLEAN_UPDATE_GOLDEN=1 to accept)"
    assert result.summary["states"] == json.loads(states.read_text())


def test_salesforce_output_matches_the_data_loader_template():
    # Data Loader Guide, "Supported Data Types" / "Date Formats": API names as headers,
    # yyyy-MM-dd dates, yyyy-MM-ddTHH:mm:ss.SSSZ datetimes, true/false booleans.
    clean = _csv(_run(["salesforce_contacts.csv"], "salesforce").files["clean.csv"])
    assert {"FirstName", "LastName", "Email", "Phone", "MailingStreet", "MailingPostalCode", "HasOptedOutOfEmail", "DoNotCall"} <= set(clean.columns)
    assert clean["Last_Activity_Date__c"].str.fullmatch(r"(\d{4}-\d{2}-\d{2})?").all()
    assert set(clean["HasOptedOutOfEmail"]) <= {"true", "false", ""} and set(clean["DoNotCall"]) <= {"true", "false", ""}
    assert (clean["LastName"] != "").all()
    phones = clean["Phone"][clean["Phone"] != ""]
    assert phones.str.match(r"^\+\d+").mean() > 0.95


def test_hubspot_output_matches_the_import_template():
    # HubSpot "Set up your import file": property labels as headers, owner by email,
    # lifecycle stage internal values; Email is the contacts' unique key.
    clean = _csv(_run(["hubspot_contacts.csv"], "hubspot").files["clean.csv"])
    assert {"First Name", "Last Name", "Email", "Phone Number", "Lifecycle Stage", "Lead Status", "Contact owner"} <= set(clean.columns)
    allowed = {"NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING", ""}
    assert set(clean["Lead Status"]) <= allowed


def test_dynamics_output_matches_the_dataverse_columns():
    # Dataverse contact table: logical names; two-option booleans as 1/0; statecode 0 active / 1 inactive.
    clean = _csv(_run(["dynamics_contacts.csv"], "dynamics").files["clean.csv"])
    assert {"firstname", "lastname", "emailaddress1", "telephone1", "address1_postalcode", "donotemail", "donotphone", "statecode"} <= set(clean.columns)
    assert set(clean["donotemail"]) <= {"1", "0", ""} and set(clean["statecode"]) <= {"0", "1"}


@pytest.mark.parametrize("sample", ALL_SAMPLES)
def test_conservation_and_ledger_invariants(sample):
    result = _run([sample])
    ledger = _csv(result.files["ledger.csv"])
    s = result.summary
    assert len(ledger) == s["rows_read"] == sum(s["states"].values())
    assert ledger["record_id"].is_unique
    exported = set(ledger.loc[ledger["state"].isin(["exported", "deactivated"]), "record_id"])
    merged = ledger[ledger["state"] == "merged"]
    assert merged["survivor_id"].isin(exported | set(ledger.loc[ledger["state"] == "archived", "record_id"])).all()
    clean = _csv(result.files["clean.csv"])
    assert len(clean) == len(exported)
    archive = _csv(result.files["archive.csv"])
    assert set(archive["record_id"]) == set(ledger.loc[ledger["state"] == "archived", "record_id"])
    assert (archive["reason"] != "").all()
    clusters = _csv(result.files["clusters.csv"])
    assert set(clusters["record_id"]) == set(ledger.loc[ledger["state"] != "rejected", "record_id"])


def test_contacts_and_accounts_in_one_run_propagate_and_conserve():
    result = _run(["salesforce_contacts.csv", "salesforce_accounts.csv"], "salesforce")
    assert {"clean.csv", "clean_account.csv"} <= set(result.files)
    per_file = {i["file"]: i for i in result.summary["inputs"]}
    for info in per_file.values():
        assert info["rows_read"] == sum(info[k] for k in ("exported", "merged", "archived", "deactivated", "deleted", "rejected"))
    assert result.summary["lifecycle_reasons"].get("OUT_OF_BUSINESS", 0) > 0


def test_same_inputs_give_byte_identical_outputs():
    a = _run(["hubspot_contacts.csv", "pipedrive_persons.csv"], "salesforce")
    b = _run(["hubspot_contacts.csv", "pipedrive_persons.csv"], "salesforce")
    assert a.files == b.files


@pytest.mark.parametrize("sample", ["hubspot_contacts.csv", "salesforce_contacts.csv", "zoho_leads.csv"])
def test_running_on_its_own_output_changes_nothing(sample, tmp_path):
    first = _run([sample], "generic")
    again_in = tmp_path / "clean.csv"
    again_in.write_bytes(first.files["clean.csv"])
    second = run(RunOptions(inputs=[again_in], outdir=None, target="generic", as_of=AS_OF))
    assert second.summary["changes"] == 0
    assert second.summary["states"]["merged"] == 0


def test_unmerge_restores_the_original_records_byte_for_byte(tmp_path):
    sample = SAMPLES / "hubspot_contacts.csv"
    result = _run([sample.name], "salesforce")
    out = tmp_path / "out"
    staging = Staging(out)
    for name, data in result.files.items():
        staging.write_bytes(name, data)
    staging.publish({})
    verify(out)
    written = unmerge(out, tmp_path / "restored")
    restored = list(csv.reader(io.StringIO((tmp_path / "restored" / "unmerged-hubspot_contacts.csv").read_text("utf-8"), newline="")))
    original = list(csv.reader(io.StringIO(sample.read_text("utf-8"), newline="")))
    header, rows = original[0], original[1:]
    merged = _csv(result.files["merged.csv"])
    lines = sorted(int(x) for x in merged["source_line"])
    assert restored[0] == header
    assert restored[1:] == [rows[line - 2] for line in lines]  # line 2 is the first data row
    assert sum(written.values()) == len(merged)


def test_formula_like_cells_are_neutralized_and_recorded(write):
    path = write("f.csv", "First Name,Last Name,Email,Notes,Phone\n=cmd|'/C calc'!A0,Smith,a@x.com,@SUM(1+1),+14155552671\nAnn,-Lee,b@x.com,ok,-5\n")
    result = run(RunOptions(inputs=[path], outdir=None, as_of=AS_OF))
    clean = _csv(result.files["clean.csv"])
    assert clean["first_name"].tolist()[0] == "'=cmd|'/C calc'!A0"
    assert clean["notes"].tolist()[0] == "'@SUM(1+1)"
    assert clean["phone"].tolist()[0] == "+14155552671"  # plain data is not touched
    assert clean["last_name"].tolist()[1] == "'-Lee"
    changes = _csv(result.files["changes.csv"])
    assert (changes["reason"] == "FORMULA_NEUTRALIZED").sum() == 3
    assert result.summary["formula_cells"] == 3
    assert not result.gates_passed  # the default pack gates on formula cells


def test_rejects_are_in_the_ledger_and_rejects_csv(write):
    path = write("r.csv", "First Name,Last Name,Email\nAnn,Lee,a@x.com\nBob,Ray\nCy,Dee,c@x.com,extra\n")
    result = run(RunOptions(inputs=[path], outdir=None, as_of=AS_OF))
    rej = _csv(result.files["rejects.csv"])
    assert rej[["source_line", "code"]].values.tolist() == [["3", "E-CSV-SHORT"], ["4", "E-CSV-RAGGED"]]
    assert result.summary["states"]["rejected"] == 2 and result.summary["rows_read"] == 3


def test_report_is_self_contained_and_masked():
    result = _run(["hubspot_contacts.csv"], "hubspot")
    html = result.files["report.html"].decode()
    assert "<script" not in html.lower() and not re.search(r"(src|href)=\"https?://", html)
    assert "<svg" in html
    clean = _csv(result.files["clean.csv"])
    leaked = [e for e in clean["Email"] if e and e in html]
    assert not leaked


def test_real_exports_run_end_to_end():
    from conftest import REAL

    if not REAL.is_dir():
        pytest.skip("shared/real-exports not beside the checkout")
    for path in sorted(REAL.glob("*.csv")):
        result = run(RunOptions(inputs=[path], outdir=None, as_of=AS_OF))
        assert result.summary["rows_read"] == sum(result.summary["states"].values())


def test_hash_of_every_input_is_recorded_and_inputs_are_untouched():
    path = SAMPLES / "zoho_leads.csv"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = _run([path.name])
    assert result.summary["inputs"][0]["sha256"] == before == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("chunk", [2, 250_000])
def test_row_hashes_are_sha256_of_the_cells_joined_by_unit_separators(monkeypatch, chunk) -> None:
    """The ledger's row_sha256: Arrow-joined and hashed from its buffer, it must equal the plain
    definition for Arrow and object columns alike."""
    import numpy as np

    from crmclean.io.table import RawTable
    from crmclean.model import STR
    from crmclean.pipeline import _row_hashes

    monkeypatch.setattr("crmclean.export.safe.CSV_CHUNK_ROWS", chunk)  # rows joined a few at a time, too
    rows = [["a", "", "é,\n\"x\""], ["", "", ""], ["1", "\x1f", "z"]]
    for dtype in (STR, object):
        for headers in (["h1", "h2", "h3"], ["h1"]):
            frame = pd.DataFrame([r[: len(headers)] for r in rows], columns=headers, dtype=dtype)
            table = RawTable("p", "p", "", headers, frame, np.arange(3))
            want = [hashlib.sha256("\x1f".join(r[: len(headers)]).encode("utf-8")).hexdigest() for r in rows]
            assert _row_hashes(table) == want
    assert _row_hashes(RawTable("p", "p", "", [], pd.DataFrame(index=range(2)), np.arange(2))) == []


def test_concatenated_logs_are_arrow_text_and_keep_what_is_not_text() -> None:
    """The stages' change logs (Arrow and Python strings) concatenate into Arrow text; a column
    categorical somewhere is plain strings (one object per distinct value); a column with a
    missing or non-text value is concatenated as pandas does."""
    from crmclean.model import STR, concat

    a = pd.DataFrame({"k": pd.Series(["x", "y"], dtype=STR), "c": pd.Series(["p", "p"], dtype="category"), "m": ["1", "2"]})
    b = pd.DataFrame({"k": pd.Series(["z"], dtype=object), "c": pd.Series(["q"], dtype=STR), "m": pd.Series([None], dtype=object)})
    out = concat([a, b], ("k", "c", "m"))
    assert out["k"].dtype == STR and out["c"].dtype == object
    assert out["k"].tolist() == ["x", "y", "z"] and out["c"].tolist() == ["p", "p", "q"]
    assert out["c"].iloc[0] is out["c"].iloc[1]
    assert out["m"].dtype == object and out["m"].tolist() == ["1", "2", None]
    assert concat([a.iloc[:0]], ("k",))["k"].dtype == object and concat([a, b.iloc[:0]], ("k", "c"))["c"].tolist() == ["p", "p"]


# --- the files' writer thread ----------------------------------------------------------------------

def _writer_threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("crmclean-writer")]


def test_files_are_written_in_order_one_at_a_time_with_their_bytes(tmp_path):
    import threading

    from crmclean.pipeline import _Outputs

    staging = Staging(tmp_path / "out")
    files = _Outputs(staging)
    started = threading.Event()
    release = threading.Event()

    def slow():
        started.set()
        assert release.wait(10)
        yield b"a,b\n"
        yield b"1,2\n"

    files["first.csv"] = slow()
    assert started.wait(10)  # the first file is being written while the run goes on
    made_second = threading.Event()

    def second():
        files["second.csv"] = b"x\n"  # waits for the first file
        made_second.set()

    t = threading.Thread(target=second)
    t.start()
    assert not made_second.wait(0.2)  # one file at a time
    release.set()
    t.join(10)
    assert made_second.is_set()
    files.finish()
    assert files.names == ["first.csv", "second.csv"] and not _writer_threads()
    assert (staging.path / "first.csv").read_bytes() == b"a,b\n1,2\n"
    assert (staging.path / "second.csv").read_bytes() == b"x\n"
    assert staging.files["first.csv"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_a_failed_write_is_raised_in_the_run_and_a_failed_run_stops_the_writer(tmp_path):
    import threading

    from crmclean.pipeline import _Outputs

    files = _Outputs(Staging(tmp_path / "a"))

    def broken():
        yield b"a\n"
        raise OSError(28, "injected")

    files["one.csv"] = broken()
    with pytest.raises(OSError, match="injected"):
        files["two.csv"] = b"b\n"  # the next file raises the last one's failure
    files.abort()
    assert not _writer_threads()

    files = _Outputs(Staging(tmp_path / "b"))
    pieces = {"n": 0}
    going = threading.Event()

    def endless():
        while True:
            pieces["n"] += 1
            going.set()
            yield b"x" * 1024

    files["big.csv"] = endless()
    assert going.wait(10)
    files.abort()  # the run failed: the endless write stops at its next piece
    stopped_at = pieces["n"]
    assert not _writer_threads()
    threading.Event().wait(0.1)
    assert pieces["n"] == stopped_at  # and nothing is written after

    files = _Outputs(None)  # without staging the files are kept in memory, joined
    files["m.csv"] = iter([b"a", b"b"])
    files.finish()
    assert files.files == {"m.csv": b"ab"}



def test_a_file_written_beside_the_others_neither_waits_nor_is_waited_for(tmp_path):
    import threading

    from crmclean.pipeline import _Outputs

    staging = Staging(tmp_path / "out")
    files = _Outputs(staging)
    release = threading.Event()

    def log():
        yield b"h\n"
        assert release.wait(10)  # held until the files taken after it are written
        yield b"1\n"

    files.beside("changes.csv", log())
    files["next.csv"] = b"x\n"
    files["last.csv"] = b"y\n"  # waits for next.csv, not for changes.csv
    files._wait()
    assert (staging.path / "last.csv").read_bytes() == b"y\n" and "changes.csv" not in staging.files
    release.set()
    files.finish()  # waits for the file beside too
    assert files.names == ["changes.csv", "next.csv", "last.csv"] and not _writer_threads()
    assert (staging.path / "changes.csv").read_bytes() == b"h\n1\n"

    files = _Outputs(Staging(tmp_path / "a"))

    def broken():
        yield b"a\n"
        raise OSError(28, "injected")

    files.beside("changes.csv", broken())
    files["other.csv"] = b"b\n"
    with pytest.raises(OSError, match="injected"):
        files.finish()  # the failure beside is raised in the run
    assert not _writer_threads()

    files = _Outputs(Staging(tmp_path / "b"))
    going = threading.Event()

    def endless():
        while True:
            going.set()
            yield b"x" * 1024

    files.beside("changes.csv", endless())
    assert going.wait(10)
    files.abort()  # stopped at its next piece
    assert not _writer_threads()

def test_a_run_writes_the_same_files_with_its_change_log_packed_in_pieces_as_unpacked(monkeypatch):
    """normalize's change log is held packed and read back a piece at a time: changes.csv, the
    summary's counts per rule and the report's first examples of each rule must be those of the
    log held as one frame, wherever the pieces are cut."""
    import crmclean.model
    import crmclean.pipeline

    names = ["hubspot_contacts.csv", "pipedrive_persons.csv"]
    monkeypatch.setattr(crmclean.model, "PACK_ROWS", 7)
    packed = _run(names, "salesforce")
    monkeypatch.setattr(crmclean.pipeline, "PackedFrame", lambda frame: frame)
    whole = _run(names, "salesforce")
    assert whole.summary["changes"] > 1000 and len(whole.summary["changes_by_rule"]) > 10
    assert packed.files == whole.files
