"""The validate stage's built-in checks, as tables."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from crmclean.model import CANONICAL_FIELDS, RECORD_ID
from crmclean.rules.packs import load_pack
from crmclean.validate import validate

AS_OF = dt.date(2026, 6, 30)


def _frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    base = {c: "" for c in CANONICAL_FIELDS}
    return pd.DataFrame([{**base, RECORD_ID: f"r{k}", "last_name": "Doe", "_object": "contact", **row} for k, row in enumerate(rows)])


@pytest.mark.parametrize(("email", "website", "flagged"), [
    ("ann@acme.com", "acme.com", False),
    ("ann@ACME.com", "https://www.Acme.com/about", False),  # scheme, www and path go; case is folded
    ("ann@sales.acme.com", "acme.com", False),  # a subdomain of the company's
    ("ann@notacme.com", "acme.com", True),  # a suffix that is not a subdomain
    ("ann@globex.com", "acme.com", True),
    ("ann@gmail.com", "acme.com", False),  # a free mailbox says nothing of the company
    ("ann@globex.com", "", False),  # no company domain
    ("ann@globex.com", "https://", False),  # a company domain of nothing
    ("not-an-email", "acme.com", False),  # no "@": not an email to judge
    ("a@b@globex.com", "globex.com", False),  # the domain is after the last "@"
    ("ann@STRASSE.de", "straße.de", False),  # casefolded, not lowered: ß is ss
])
def test_email_domain_against_the_company_domain(email, website, flagged):
    rows = [{"email": email, "company_domain": website}, {"email": "bob@initech.com", "company_domain": ""}]
    found = validate(_frame(rows), load_pack("default"), None, AS_OF)
    hits = found[found["check_id"] == "email.company_domain"]
    assert hits[RECORD_ID].tolist() == (["r0"] if flagged else [])
    assert set(hits["reason"]) <= {"EMAIL_DOMAIN_NOT_COMPANY"}


@pytest.mark.parametrize(("created", "activity", "checks"), [
    ("2020-01-01", "2021-01-01", set()),
    ("2022-01-01", "2021-01-01", {"date.order"}),
    ("2022-01-01T10:00:00", "2021-01-01", {"date.order"}),
    ("2026-07-01", "", set()),  # the day after as_of is within the default tolerance
    ("2026-07-02", "", {"date.future"}),
    ("2027-01-01", "2026-01-01", {"date.future", "date.order"}),
    ("garbage", "2021-01-01", set()),
])
def test_date_checks(created, activity, checks):
    found = validate(_frame([{"created_at": created, "last_activity_at": activity}]), load_pack("default"), None, AS_OF)
    assert set(found["check_id"]) & {"date.future", "date.order"} == checks
