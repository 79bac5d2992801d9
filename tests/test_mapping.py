"""Source detection from header signatures, for every sample, real-style headers and the real exports."""

from __future__ import annotations

import pytest

from conftest import REAL, SAMPLES
from crmclean.errors import UsageError
from crmclean.io import load_table
from crmclean.io.mapping import header_key, map_headers, to_canonical

EXPECTED_SAMPLES = {
    "salesforce_contacts.csv": ("salesforce-contact", 387), "salesforce_accounts.csv": ("salesforce-account", 252),
    "hubspot_contacts.csv": ("hubspot-contact", 365), "dynamics_contacts.csv": ("dynamics-contact", 374),
    "zoho_leads.csv": ("zoho-lead", 367), "pipedrive_persons.csv": ("pipedrive-person", 350), "generic_contacts.xlsx": ("generic-contact", 332),
}


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED_SAMPLES.items()))
def test_every_sample_is_read_and_detected(name, expected):
    t = load_table(SAMPLES / name)
    m = map_headers(t.headers)
    assert (m.pack.name, t.rows_read) == expected
    assert not t.rejects


@pytest.mark.parametrize(
    ("headers", "source", "obj"),
    [
        (["ID", "FIRSTNAME", "LASTNAME", "EMAIL", "MAILINGSTREET", "MAILINGPOSTALCODE", "ACCOUNTID"], "salesforce-contact", "contact"),
        (["Id", "FirstName", "LastName", "Company", "Status", "LeadSource", "IsConverted", "Street", "PostalCode"], "salesforce-lead", "lead"),
        (["First Name", "Last Name", "Account Name", "Mailing Street", "Mailing Zip/Postal Code", "Contact Owner", "Last Activity"], "salesforce-report-contact", "contact"),
        (["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Contact owner", "Lifecycle Stage", "Create Date"], "hubspot-contact", "contact"),
        (["Record ID", "Company name", "Company Domain Name", "Company owner", "Phone Number", "City"], "hubspot-company", "account"),
        (["contactid", "firstname", "lastname", "emailaddress1", "telephone1", "address1_city", "donotphone"], "dynamics-contact", "contact"),
        (["First Name", "Last Name", "Email", "Business Phone", "Address 1: City", "Address 1: ZIP/Postal Code"], "dynamics-contact", "contact"),
        (["Contact Owner", "First Name", "Last Name", "Email", "Mailing Zip", "Created Time", "Last Activity Time"], "zoho-contact", "contact"),
        (["Lead Owner", "First Name", "Last Name", "Company", "Lead Status", "Zip Code", "Created Time"], "zoho-lead", "lead"),
        (["Person - Name", "Person - Email - Work", "Person - Phone - Work", "Person - Organization", "Person - Owner"], "pipedrive-person", "contact"),
        (["Organization - Name", "Organization - Address", "Organization - Owner", "Organization - ID"], "pipedrive-organization", "account"),
        (["first name", "last name", "e-mail", "phone"], "generic-contact", "contact"),
    ],
)
def test_detection_from_real_header_spellings(headers, source, obj):
    m = map_headers(headers)
    assert (m.pack.name, m.object_type) == (source, obj)


def test_source_override_and_missing_required_column():
    m = map_headers(["Email", "Phone"], source="generic-contact")
    assert m.forced and m.pack.name == "generic-contact"
    with pytest.raises(UsageError) as exc:
        map_headers(["Foo", "Bar"])
    assert exc.value.code == "E-SOURCE-UNKNOWN"


def test_header_key_folds_case_space_and_punctuation():
    assert header_key("Mailing Zip/Postal Code") == header_key("MAILING_ZIP_POSTAL_CODE") == "mailingzippostalcode"


def test_unmapped_columns_are_carried_through(write):
    t = load_table(write("x.csv", "First Name,Last Name,Favourite Colour\nAnn,Lee,teal\n"))
    c = to_canonical(t, map_headers(t.headers))
    assert c["extra.Favourite Colour"].tolist() == ["teal"]
    assert c["first_name"].tolist() == ["Ann"]


REAL_EXPECTED = {
    "salesforce_accounts_dataloader-sample.csv": (423, "salesforce-account"), "mautic_contacts_fakeleaddata.csv": (54, "generic-contact"),
    "mautic_contacts_10contacts-test.csv": (10, "generic-contact"), "atomiccrm_contacts_demo-data.csv": (500, "generic-contact"),
    "twentycrm_people_import-example.csv": (1000, "generic-contact"), "odoo_contacts_res-partner-import-example.csv": (6, "generic-contact"),
    "dynamics365_accounts_import-sample.csv": (5, "dynamics-account"), "krayin_persons_import-sample.csv": (2, "generic-contact"),
    "civicrm_contacts_locations-related-test.csv": (1, "generic-contact"),
}


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/real-exports not beside the checkout")
@pytest.mark.parametrize(("name", "expected"), sorted(REAL_EXPECTED.items()))
def test_real_exports(name, expected):
    t = load_table(REAL / name)
    assert (t.rows_read, map_headers(t.headers).pack.name) == expected
