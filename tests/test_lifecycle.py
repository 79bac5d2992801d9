"""Lifecycle: each rule, exact boundaries, precedence, account propagation, phrases and false alarms."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmclean.errors import UsageError
from crmclean.lifecycle import (
    LifecycleContext,
    compile_signals,
    find_signals,
    lifecycle,
    load_suppression,
    signal_table,
)
from crmclean.rules.packs import load_pack
from helpers import canonical

PACK = load_pack("default")
SIGNALS = compile_signals(PACK)
AS_OF = dt.date(2026, 11, 23)


def _run(rows, **ctx):
    frame = canonical(rows)
    return lifecycle(frame, PACK, LifecycleContext(as_of=AS_OF, **ctx)).frame.set_index("record_id")


@pytest.mark.parametrize(
    ("note", "signal"),
    [
        ("Deceased per family 2023", "deceased"), ("passed away", "deceased"), ("RIP", "deceased"), ("R.I.P. - obituary in paper", "deceased"),
        ("Mr. Lee passed away in March", "deceased"), ("DECEASED - do not mail", "deceased"),
        ("no longer with company - moved to Globex", "left_company"), ("left the firm", "left_company"), ("Retired in 2022", "left_company"),
        ("LEFT THE COMPANY", "left_company"), ("has left, now at Initech", "left_company"),
        ("out of business", "out_of_business"), ("closed down", "out_of_business"), ("Went bankrupt in 2021", "out_of_business"),
        ("Company dissolved 2020", "out_of_business"),
        ("hostile, do not contact", "hostile"), ("Do not call - threatened legal action", "hostile"), ("cease and desist received", "hostile"),
        ("bounced x3", "unresponsive"), ("no reply to 8 emails", "unresponsive"), ("Hard bounce on last campaign", "unresponsive"),
        ("Email bounced 3 times", "unresponsive"), ("Ghosted after demo", "unresponsive"),
    ],
)
def test_signals_in_reps_phrasing(note, signal):
    assert signal in find_signals(note, SIGNALS)


_WORDS = ["deceased", "estates", "passed", "away", "RIP", "r.i.p.", "left", "the", "company", "client", "retired", "semi-retired", "bounced",
          "hostile", "do", "not", "call", "out", "of", "business", "moved", "to", "Globex", ".", ";", ",", "\n", "died", "down", "ghosted", "x3"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_WORDS), st.text(max_size=8)), max_size=14).map(" ".join))
def test_signal_table_screen_equals_the_full_search(note):
    """The batch screen (one alternation per signal) only skips notes the phrases cannot match."""
    assert signal_table([note, note.upper(), ""], SIGNALS) == [find_signals(note, SIGNALS), find_signals(note.upper(), SIGNALS), ()]


def test_signal_table_searches_the_same_prefix_and_takes_any_text():
    """The Arrow screen sees the first MAX_NOTE_CHARS characters, as the per-note search does
    (a multi-byte character counts once)."""
    from crmclean.lifecycle import MAX_NOTE_CHARS

    pad = "é" * (MAX_NOTE_CHARS - len("deceased"))
    notes = [pad + "deceased", pad + "x deceased", "DECEASED 2023", "ok", ""]
    assert signal_table(notes, SIGNALS) == [find_signals(t, SIGNALS) for t in notes] == [("deceased",), (), ("deceased",), (), ()]


@pytest.mark.parametrize(
    "note",
    [
        "handles deceased estates", "Specializes in deceased estates and probate", "helped a client who left the company",
        "do not contact before Monday", "Do not call before 10am, prefers email", "Her client's father passed away; sent a card",
        "Our competitor went bankrupt, good opportunity", "Interested in hostile takeover defense", "Left a voicemail, will follow up",
        "Bankruptcy attorney, refers clients", "Shut down the server for maintenance", "Closed the deal in Q3!", "No reply needed, FYI only",
        "Bounced ideas around for the campaign", "Not hostile, just busy", "Their CFO retired last month", "Semi-retired but still consulting",
        "Terminated the trial early, may come back", "Customer's supplier went out of business", "The boss moved to Globex, she stayed",
    ],
)
def test_false_alarms_raise_no_signal(note):
    assert find_signals(note, SIGNALS) == ()


def test_stale_boundary_is_exact_and_leap_days_count():
    exactly = (AS_OF - dt.timedelta(days=1095)).isoformat()
    one_more = (AS_OF - dt.timedelta(days=1096)).isoformat()
    f = _run([{"last_name": "A", "last_activity_at": exactly}, {"last_name": "B", "last_activity_at": one_more}])
    assert f["_state"].tolist() == ["exported", "archived"]
    assert f.loc["R2", "_reason"] == "STALE_NO_ACTIVITY_3Y"
    assert (dt.date(2024, 3, 1) - dt.date(2021, 3, 1)).days == 1096  # the span holds a leap day: it counts


def test_missing_or_unparseable_dates_never_archive_but_go_to_review():
    f = _run([{"last_name": "A"}, {"last_name": "B", "last_activity_at": "someday"}, {"last_name": "C", "modified_at": "2010-01-01"}])
    assert f["_state"].tolist() == ["exported", "exported", "archived"]  # C: falls back to last modified
    assert f.loc["R1", "_review"] == "STALE_NO_ACTIVITY_3Y:UNKNOWN_DATE"
    assert f.loc["R2", "_review"] == "STALE_NO_ACTIVITY_3Y:UNKNOWN_DATE"


def test_precedence_strongest_action_wins_and_every_reason_is_kept():
    old = "2015-01-01"
    f = _run([{"last_name": "A", "last_activity_at": old, "notes": "left the firm; hostile, do not contact"}])
    row = f.loc["R1"]
    assert row["_state"] == "archived" and row["_reason"] == "STALE_NO_ACTIVITY_3Y"
    assert row["_reasons"].split(";") == ["HOSTILE", "LEFT_COMPANY", "STALE_NO_ACTIVITY_3Y"]
    assert row["do_not_call"] == "true" and row["email_opt_out"] == "true"  # hostile forces both on


def test_each_default_rule():
    recent = (AS_OF - dt.timedelta(days=30)).isoformat()
    rows = [
        {"last_name": "Dead", "notes": "Deceased per family 2023", "last_activity_at": recent},
        {"last_name": "Gone", "notes": "no longer with company - moved to Globex", "last_activity_at": recent},
        {"last_name": "Mean", "notes": "Hostile, do not contact", "last_activity_at": recent},
        {"last_name": "Quiet", "notes": "bounced x3", "last_activity_at": recent},
        {"last_name": "Lead", "_object": "lead", "lead_status": "Disqualified", "last_activity_at": (AS_OF - dt.timedelta(days=400)).isoformat()},
        {"last_name": "Fresh", "_object": "lead", "lead_status": "Disqualified", "last_activity_at": recent},
        {"last_name": "Fine", "last_activity_at": recent},
    ]
    frame = canonical(rows)
    frame["_object"] = [r.get("_object", "contact") for r in rows]
    f = lifecycle(frame, PACK, LifecycleContext(as_of=AS_OF)).frame.set_index("last_name")
    assert f.loc["Dead", ["_state", "_reason"]].tolist() == ["archived", "DECEASED"]
    assert f.loc["Gone", ["_state", "_reason"]].tolist() == ["deactivated", "LEFT_COMPANY"]
    assert f.loc["Mean", ["_state", "_reason", "do_not_call"]].tolist() == ["exported", "HOSTILE", "true"]
    assert f.loc["Quiet", ["_state", "_reason"]].tolist() == ["exported", "UNRESPONSIVE"]
    assert f.loc["Lead", ["_state", "_reason"]].tolist() == ["archived", "DISQUALIFIED_LEAD"]
    assert f.loc["Fresh", "_state"] == "exported" and f.loc["Fine", "_reasons"] == ""


def test_out_of_business_account_propagates_to_its_contacts():
    rows = [
        {"_object": "account", "record_id": "A1", "company_name": "Globex", "notes": "Company out of business since 2022"},
        {"_object": "contact", "record_id": "C1", "last_name": "Lee", "account_ref": "A1"},
        {"_object": "contact", "record_id": "C2", "last_name": "Kim", "company_name": "Globex Inc."},
        {"_object": "contact", "record_id": "C3", "last_name": "Ray", "company_name": "Initech"},
    ]
    frame = canonical(rows)
    frame["_object"] = [r["_object"] for r in rows]
    f = lifecycle(frame, PACK, LifecycleContext(as_of=AS_OF)).frame.set_index("record_id")
    assert f["_state"].to_dict() == {"A1": "deactivated", "C1": "deactivated", "C2": "deactivated", "C3": "exported"}


def test_opt_out_is_sticky_even_against_a_pack_rule(write):
    pack = load_pack(str(write("p.yaml", "kind: rules\nextends: default\nlifecycle:\n  rules:\n    - {id: x, when: {present: last_name}, action: tag, reason: X, set: {email_opt_out: 'false'}}\n")))
    frame = canonical([{"last_name": "A", "email_opt_out": "true"}])
    f = lifecycle(frame, pack, LifecycleContext(as_of=AS_OF)).frame
    assert f["email_opt_out"].tolist() == ["true"]


def test_delete_only_proposed_with_the_flag(write):
    pack = load_pack(str(write("p.yaml", "kind: rules\nextends: default\nlifecycle:\n  rules:\n    - {id: purge, when: {signal: deceased}, action: delete, reason: PURGE}\n")))
    frame = canonical([{"last_name": "A", "notes": "deceased"}])
    assert lifecycle(frame, pack, LifecycleContext(as_of=AS_OF)).frame["_state"].tolist() == ["archived"]
    assert lifecycle(frame, pack, LifecycleContext(as_of=AS_OF, allow_delete=True)).frame["_state"].tolist() == ["deleted"]


def test_suppression_lists(write):
    dnc_path = write("dnc.csv", "email,phone\nANN@X.COM,\n,(415) 555-2671\n")
    dnc = load_suppression(f"do_not_contact={dnc_path}")
    dead = load_suppression(str(write("deceased.csv", "first_name,last_name\nROBERT,Okonkwo\n")))
    assert dead.kind == "deceased"
    rows = [{"first_name": "Ann", "last_name": "Lee", "email": "ann@x.com"}, {"last_name": "B", "phone": "415.555.2671"},
            {"first_name": "Robert", "last_name": "Okonkwo"}, {"last_name": "C", "email": "c@x.com"}]
    f = _run(rows, suppressions=[dnc, dead])
    assert f["_reason"].tolist() == ["SUPPRESSED_DNC", "SUPPRESSED_DNC", "SUPPRESSED_DECEASED", ""]
    assert f["_state"].tolist() == ["exported", "exported", "archived", "exported"]
    assert f.loc["R1", "do_not_call"] == "true"
    with pytest.raises(UsageError):
        vip_path = write("v.csv", "email\na@b.co\n")
        _run(rows, suppressions=[load_suppression(f"vip={vip_path}")])


def test_signal_accuracy_on_labelled_notes():
    """Precision and recall per signal on the generator's labelled notes (the benchmark in small)."""
    import pandas as pd
    from bench.evaluate import signal_accuracy
    from bench.synth import generate

    data = generate(3000, seed=5)
    truth = pd.DataFrame([{"record_id": r.rid, "signal": r.note_signal or ""} for r in data.records])
    predicted = pd.Series({r.rid: ";".join(find_signals(r.values["notes"], SIGNALS)) for r in data.records})
    for sig, acc in signal_accuracy(predicted, truth).items():
        assert acc["precision"] >= 0.98 and acc["recall"] >= 0.95, (sig, acc)
