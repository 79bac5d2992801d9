"""Deterministic synthetic CRM exports with ground truth.

Each *entity* is a real person (or company); each *record* is one row of an export. The
generator writes realistic dirt — nicknames, typos, swapped names, "SMITH, ROBERT", missing
fields, phones in many formats, address variants, company suffix variants, changed titles and
emails — and the look-alikes that must never merge: spouses at one address and phone, father
and son (Jr./Sr.), colleagues on one switchboard number, people behind one role mailbox, and
common names in different places. Notes carry lifecycle signals and false alarms, labelled.

Everything is decided by ``random.Random(seed)``: the same seed gives the same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from dataclasses import dataclass, field
from typing import Any

FIRST_M = ["Robert", "William", "James", "John", "Michael", "David", "Richard", "Joseph", "Thomas", "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Donald", "Steven", "Andrew", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Edward", "Ronald", "Timothy", "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Scott", "Frank", "Benjamin", "Gregory", "Samuel", "Raymond", "Patrick", "Alexander", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Henry", "Douglas", "Peter", "Walter", "Nathan", "Zachary", "Harold", "Kyle", "Carl", "Arthur", "Gerald", "Roger", "Keith", "Lawrence", "Terry", "Sean", "Albert", "Joe", "Christian", "Austin", "Willie", "Jesse", "Ethan", "Billy", "Bruce", "Bryan", "Ralph", "Roy", "Jordan", "Eugene", "Wayne", "Louis", "Dylan", "Alan", "Juan", "Noah", "Russell", "Harry", "Randy", "Philip", "Vincent", "Gabriel", "Bobby", "Johnny", "Howard", "Thaddeus", "Ezekiel", "Cornelius", "Leopold", "Rafael", "Mateo", "Hiroshi", "Chinedu", "Oluwaseun", "Dmitri", "Anders", "Kwame", "Santiago", "Tariq", "José", "François", "Søren"]
FIRST_F = ["Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen", "Nancy", "Lisa", "Margaret", "Betty", "Sandra", "Ashley", "Dorothy", "Kimberly", "Emily", "Donna", "Michelle", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Rebecca", "Laura", "Sharon", "Cynthia", "Kathleen", "Amy", "Shirley", "Angela", "Helen", "Anna", "Brenda", "Pamela", "Nicole", "Samantha", "Katherine", "Emma", "Ruth", "Christine", "Catherine", "Debra", "Rachel", "Carolyn", "Janet", "Virginia", "Maria", "Heather", "Diane", "Julie", "Joyce", "Victoria", "Kelly", "Christina", "Joan", "Evelyn", "Lauren", "Judith", "Olivia", "Martha", "Cheryl", "Megan", "Andrea", "Hannah", "Jacqueline", "Ann", "Jean", "Alice", "Kathryn", "Gloria", "Teresa", "Doris", "Sara", "Janice", "Julia", "Marie", "Madison", "Grace", "Judy", "Theresa", "Beverly", "Denise", "Marilyn", "Amber", "Danielle", "Abigail", "Brittany", "Rose", "Diana", "Natalie", "Sophia", "Alexis", "Lori", "Kayla", "Jane", "Philippa", "Guinevere", "Ngozi", "Ingrid", "Priya", "Yuki", "Siobhan", "Anastasia", "Beatrix", "Oksana", "Zoë", "Renée", "Inés"]
NICK = {"Robert": ["Bob", "Rob", "Bobby"], "William": ["Bill", "Will", "Billy"], "James": ["Jim", "Jimmy"], "John": ["Jack", "Johnny"], "Michael": ["Mike"], "Richard": ["Rick", "Dick", "Rich"], "Joseph": ["Joe"], "Thomas": ["Tom", "Tommy"], "Charles": ["Charlie", "Chuck"], "Christopher": ["Chris"], "Daniel": ["Dan", "Danny"], "Matthew": ["Matt"], "Anthony": ["Tony"], "Donald": ["Don"], "Steven": ["Steve"], "Andrew": ["Andy", "Drew"], "Joshua": ["Josh"], "Kenneth": ["Ken", "Kenny"], "Edward": ["Ed", "Eddie", "Ted"], "Ronald": ["Ron"], "Timothy": ["Tim"], "Jeffrey": ["Jeff"], "Nicholas": ["Nick"], "Jonathan": ["Jon"], "Stephen": ["Steve"], "Benjamin": ["Ben"], "Gregory": ["Greg"], "Samuel": ["Sam"], "Patrick": ["Pat"], "Alexander": ["Alex"], "Zachary": ["Zach"], "Lawrence": ["Larry"], "Elizabeth": ["Liz", "Beth", "Betsy", "Eliza"], "Patricia": ["Pat", "Patty", "Trish"], "Jennifer": ["Jen", "Jenny"], "Margaret": ["Maggie", "Peggy", "Meg"], "Susan": ["Sue", "Susie"], "Katherine": ["Kate", "Kathy", "Katie"], "Kathleen": ["Kathy"], "Deborah": ["Debbie", "Deb"], "Rebecca": ["Becky"], "Cynthia": ["Cindy"], "Pamela": ["Pam"], "Samantha": ["Sam"], "Christine": ["Chris", "Christy"], "Catherine": ["Cathy", "Kate"], "Victoria": ["Vicky", "Tori"], "Jacqueline": ["Jackie"], "Theresa": ["Terri"], "Judith": ["Judy"], "Abigail": ["Abby"], "Kimberly": ["Kim"], "Stephanie": ["Steph"], "Dorothy": ["Dot"], "Barbara": ["Barb"]}
LAST_COMMON = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts"]
LAST_RARE = ["Okonkwo", "Vanderbilt", "Kowalczyk", "Abernathy", "Fitzgerald", "Nakamura", "Oyelaran", "Bergstrom", "Castellanos", "Delacroix", "Esposito", "Fairweather", "Gallagher", "Hargreaves", "Ibarra", "Jablonski", "Kuznetsov", "Lindqvist", "Montgomery", "Novak", "O'Brien", "McDonald", "MacKenzie", "Pemberton", "Quintero", "Rasmussen", "Schwartz", "Thornton", "Underwood", "Valdivia", "Whitfield", "Yamamoto", "Zimmerman", "van der Berg", "de la Cruz", "Al-Hassan", "Brennan", "Caldwell", "Donovan", "Ellsworth", "Fontaine", "Grayson", "Holloway", "Iverson", "Jennings", "Kavanagh", "Lockhart", "Mercado", "Nakashima", "Ortega", "Pritchard", "Radcliffe", "Sinclair", "Tolliver", "Upton", "Villanueva", "Whitaker", "Xiong", "Yilmaz", "Zeller", "Ashworth", "Blackwood", "Chamberlain", "Dunleavy", "Eastwood", "Fairbanks", "Goldberg", "Hawthorne", "Ingram", "Kingsley", "Lancaster", "Merriweather", "Northcott", "Oakley", "Prescott", "Rutherford", "Stanton", "Templeton", "Wadsworth", "Winslow", "Müller", "Núñez", "Château", "Åberg"]
STREETS = ["Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Sunset", "Lincoln", "Jackson", "Church", "River", "Highland", "Forest", "Meadow", "Spring", "Ridge", "Walnut", "Chestnut", "Willow", "Franklin", "Madison", "Jefferson", "Adams", "Cherry", "Dogwood", "Magnolia", "Harbor", "Prospect", "Union", "Mill", "Center", "Broad", "Market", "Water", "Bridge", "Valley"]
SUFFIXES = [("Street", ["St", "St.", "STREET", "Str"]), ("Avenue", ["Ave", "Ave.", "Av", "AVENUE"]), ("Road", ["Rd", "Rd.", "ROAD"]), ("Drive", ["Dr", "Dr.", "DRIVE"]), ("Lane", ["Ln", "Ln."]), ("Boulevard", ["Blvd", "Blvd.", "Boul"]), ("Court", ["Ct", "Crt"]), ("Place", ["Pl"]), ("Parkway", ["Pkwy", "Pky"]), ("Circle", ["Cir"]), ("Terrace", ["Ter", "Terr"]), ("Way", ["WAY"])]
UNITS = [("Apartment", ["Apt", "Apt.", "#"]), ("Suite", ["Ste", "Ste.", "#"]), ("Unit", ["Unit", "#"])]
DIRS = [("North", "N"), ("South", "S"), ("East", "E"), ("West", "W")]
# (city, state code, state name, zip3 prefix, area codes)
PLACES = [("Springfield", "IL", "Illinois", "627", ["217"]), ("Chicago", "IL", "Illinois", "606", ["312", "773"]), ("Austin", "TX", "Texas", "787", ["512"]), ("Dallas", "TX", "Texas", "752", ["214", "469"]), ("Houston", "TX", "Texas", "770", ["713", "281"]), ("Seattle", "WA", "Washington", "981", ["206"]), ("Portland", "OR", "Oregon", "972", ["503"]), ("Denver", "CO", "Colorado", "802", ["303", "720"]), ("Phoenix", "AZ", "Arizona", "850", ["602", "480"]), ("Atlanta", "GA", "Georgia", "303", ["404", "678"]), ("Miami", "FL", "Florida", "331", ["305", "786"]), ("Boston", "MA", "Massachusetts", "021", ["617", "857"]), ("New York", "NY", "New York", "100", ["212", "646"]), ("Brooklyn", "NY", "New York", "112", ["718", "347"]), ("San Francisco", "CA", "California", "941", ["415"]), ("Los Angeles", "CA", "California", "900", ["213", "310"]), ("San Diego", "CA", "California", "921", ["619", "858"]), ("Nashville", "TN", "Tennessee", "372", ["615"]), ("Columbus", "OH", "Ohio", "432", ["614"]), ("Minneapolis", "MN", "Minnesota", "554", ["612"]), ("Raleigh", "NC", "North Carolina", "276", ["919"]), ("Kansas City", "MO", "Missouri", "641", ["816"]), ("Indianapolis", "IN", "Indiana", "462", ["317"]), ("Salt Lake City", "UT", "Utah", "841", ["801"]), ("Newark", "NJ", "New Jersey", "071", ["973"]), ("Hartford", "CT", "Connecticut", "061", ["860"]), ("Providence", "RI", "Rhode Island", "029", ["401"]), ("Burlington", "VT", "Vermont", "054", ["802"]), ("Portland", "ME", "Maine", "041", ["207"]), ("Madison", "WI", "Wisconsin", "537", ["608"])]
INTL = [("London", "", "GB", "United Kingdom", "SW1A 1AA", "+44 20 79{:02d} {:04d}"), ("Toronto", "ON", "CA", "Canada", "M5V 2T6", "+1 416 6{:02d} {:04d}"), ("Berlin", "", "DE", "Germany", "10115", "+49 30 90{:02d}{:04d}"), ("Paris", "", "FR", "France", "75001", "+33 1 42 {:02d} {:04d}"), ("Sydney", "NSW", "AU", "Australia", "2000", "+61 2 93{:02d} {:04d}")]
COMPANY_WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka", "Cyberdyne", "Soylent", "Tyrell", "Massive", "Dynamic", "Pinnacle", "Summit", "Horizon", "Evergreen", "Bluewater", "Redwood", "Ironclad", "Northwind", "Contoso", "Fabrikam", "Litware", "Proseware", "Adatum", "Tailspin", "Woodgrove", "Lucerne", "Fourth Coffee", "Blue Yonder", "Alpine Ski", "Coho Winery", "Wide World", "Margie's Travel", "Trey Research", "Graphic Design", "Humongous", "Southridge"]
COMPANY_KIND = ["Industries", "Systems", "Solutions", "Logistics", "Partners", "Labs", "Foods", "Energy", "Capital", "Health", "Media", "Robotics", "Consulting", "Manufacturing", "Analytics", "Software", "Holdings", "Group", "Works", "Supply"]
LEGAL = [("Inc.", ["Inc", "Incorporated", "INC", ""]), ("LLC", ["L.L.C.", "llc", ""]), ("Corp.", ["Corporation", "Corp", ""]), ("Ltd", ["Limited", "Ltd.", ""]), ("Co.", ["Company", ""])]
TITLES = ["Account Executive", "Sales Manager", "VP of Sales", "Chief Financial Officer", "Marketing Director", "Software Engineer", "Operations Manager", "Office Manager", "Purchasing Manager", "CEO", "CTO", "Controller", "HR Director", "Procurement Lead", "Product Manager", "Consultant", "Analyst", "Director of IT"]
FREE_DOMAINS = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com", "comcast.net"]
DOMAIN_TYPOS = {"gmail.com": "gmial.com", "yahoo.com": "yaho.com", "hotmail.com": "hotmial.com", "outlook.com": "outlok.com"}
LEAD_STATUS = ["New", "Open", "Working", "Qualified", "Nurturing", "Unqualified", "Disqualified"]

# notes: (text, signal or None). Signals: deceased, left_company, out_of_business, hostile, unresponsive
NOTES_POS = {
    "deceased": ["Deceased per family {y}", "Passed away in {y}, per spouse", "RIP - obituary in local paper", "Contact deceased. Remove from lists.", "Family called: he died last spring", "DECEASED", "passed away", "Per daughter, Mr. {ln} passed away in March", "deceased - do not mail", "In memoriam. Spouse asked us to close the account.", "Notified of death. Obituary seen {y}."],
    "left_company": ["No longer with company - moved to {co}", "Left the firm in {y}", "no longer with {co2}", "Has left the company, now at {co}", "Retired in {y}", "Moved to {co} as {title}", "Left company. New contact is the office manager.", "LEFT THE COMPANY", "Resigned {y}; forwarding to successor", "no longer works here per receptionist", "Now works at {co}"],
    "out_of_business": ["Company out of business", "Closed down in {y}", "Went bankrupt in {y}", "Out of business - site is gone", "Company ceased trading {y}", "Business closed permanently", "Company dissolved {y}", "filed for bankruptcy, closed down", "Shut down operations last year"],
    "hostile": ["Hostile, do not contact", "Do not contact - threatened legal action", "HOSTILE - do not call", "Asked us to stop contacting him. Do not call.", "Very abusive on the phone. Never call again.", "Do not email, cease and desist letter received", "Remove me from your list! (customer wrote)", "Hostile prospect"],
    "unresponsive": ["bounced x3", "Email bounced 3 times", "No reply to 8 emails", "no response after 5 calls", "Unresponsive since {y}", "Hard bounce on last campaign", "Never replies to emails", "No answer to 6 calls, voicemail full", "Ghosted after demo", "Emails undeliverable"],
}
NOTES_NEG = [
    "Handles deceased estates for the firm", "Helped a client who left the company last year", "Do not contact before Monday", "Do not call before 10am, prefers email",
    "Specializes in deceased estates and probate", "Her client's father passed away; sending condolences card", "Our competitor went bankrupt, good opportunity",
    "Interested in hostile takeover defense consulting", "Left a voicemail, will follow up", "Left message with assistant", "Quick reply, very engaged",
    "Bankruptcy attorney, refers clients", "Wants to discuss the liquidation services we offer", "Shut down the server for maintenance during call",
    "Closed the deal in Q3!", "No reply needed, FYI only", "Bounced ideas around for the new campaign", "Prompt response to last email",
    "Met at trade show, interested in renewal", "Prefers phone calls in the afternoon", "Budget approved for next year", "Asked for pricing on enterprise tier",
    "Referred by existing customer", "Renewal due in March", "Great call, wants a demo", "Do not call on weekends", "Their CFO retired last month; new CFO is John",
    "Terminated the trial early, may come back", "Customer's supplier went out of business, needs new vendor", "The boss moved to Globex, she stayed",
    "Cable rip and replace project", "Semi-retired but still consulting", "Not hostile, just busy", "", "", "", "", "", "", "", "", "",
]


@dataclass
class Entity:
    eid: str
    kind: str  # person | company
    first: str = ""
    last: str = ""
    suffix: str = ""
    gender: str = ""
    email: str = ""
    phone: str = ""  # digits (10) for US, or formatted intl
    mobile: str = ""
    street_no: str = ""
    street: str = ""
    suffix_i: int = 0
    predir: str = ""
    unit: tuple[int, str] | None = None
    city_i: int = 0
    intl: int = -1
    company: str = ""
    legal_i: int = -1
    domain: str = ""
    title: str = ""
    created: dt.date = dt.date(2015, 1, 1)
    last_activity: dt.date | None = None
    signal: str | None = None
    status: str = ""
    opt_out: bool = False
    dnc: bool = False
    group: str = ""  # hard-negative group label
    aliases: set[str] = field(default_factory=set)


@dataclass
class Record:
    rid: str
    eid: str
    values: dict[str, str]
    note_signal: str | None = None
    expected_phone: str = ""
    expected_email: str = ""


@dataclass
class Dataset:
    records: list[Record]
    entities: dict[str, Entity]
    as_of: dt.date
    extra: dict[str, Any] = field(default_factory=dict)


def _valid_us(rng: random.Random, area: str) -> str:
    while True:
        exch = rng.randint(200, 999)
        if exch % 100 == 11 or exch == 555 or str(exch)[1:] == "11":
            continue
        return f"{area}{exch:03d}{rng.randint(0, 9999):04d}"


class Generator:
    def __init__(self, seed: int = 1, as_of: dt.date = dt.date(2026, 11, 1)) -> None:
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.entities: dict[str, Entity] = {}
        self.records: list[Record] = []
        self._eid = 0
        self._rid = 0
        self.emails: set[str] = set()
        self.companies: list[tuple[str, int, str, str, int]] = []  # name, legal_i, domain, switchboard, city_i
        for i in range(400):
            word = COMPANY_WORDS[i % len(COMPANY_WORDS)]
            kind = COMPANY_KIND[(i * 7 + i // len(COMPANY_WORDS)) % len(COMPANY_KIND)]
            name = f"{word} {kind}"
            city_i = self.rng.randrange(len(PLACES))
            domain = (word + kind).lower().replace(" ", "").replace("'", "") + self.rng.choice([".com", ".com", ".net", ".io", ".co"])
            self.companies.append((name, self.rng.randrange(len(LEGAL)), domain, _valid_us(self.rng, PLACES[city_i][4][0]), city_i))

    # --- entities -------------------------------------------------------------------------
    def _new_eid(self) -> str:
        self._eid += 1
        return f"E{self._eid:07d}"

    def _person(self, **kw: Any) -> Entity:
        rng = self.rng
        gender = kw.pop("gender", rng.choice("MF"))
        first = kw.pop("first", rng.choice(FIRST_M if gender == "M" else FIRST_F))
        last = kw.pop("last", rng.choice(LAST_COMMON) if rng.random() < 0.6 else rng.choice(LAST_RARE))
        city_i = kw.pop("city_i", rng.randrange(len(PLACES)))
        intl = kw.pop("intl", rng.randrange(len(INTL)) if rng.random() < 0.06 else -1)
        e = Entity(eid=self._new_eid(), kind="person", first=first, last=last, gender=gender, city_i=city_i, intl=intl)
        e.street_no = str(rng.randint(1, 9899))
        e.street = rng.choice(STREETS)
        e.suffix_i = rng.randrange(len(SUFFIXES))
        e.predir = rng.choice(DIRS)[0] if rng.random() < 0.15 else ""
        e.unit = (rng.randrange(len(UNITS)), str(rng.randint(1, 40)) + rng.choice(["", "", "B", "A"])) if rng.random() < 0.2 else None
        area = PLACES[city_i][4][0]
        e.phone = _valid_us(rng, area) if intl < 0 else INTL[intl][5].format(rng.randint(10, 99), rng.randint(0, 9999))
        e.mobile = _valid_us(rng, rng.choice(PLACES[city_i][4])) if intl < 0 and rng.random() < 0.5 else ""
        if rng.random() < 0.8:
            co = rng.randrange(len(self.companies))
            e.company, e.legal_i, e.domain, _, _ = self.companies[co]
        e.title = rng.choice(TITLES)
        handle = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{last[:1]}", f"{first}_{last}{rng.randint(1, 99)}", f"{last}.{first}"]).lower()
        handle = "".join(ch for ch in handle if ch.isalnum() or ch in "._")
        e.email = f"{handle}@{e.domain if e.domain and rng.random() < 0.6 else rng.choice(FREE_DOMAINS)}"
        while e.email in self.emails:  # a mailbox belongs to one person
            local, domain = e.email.split("@")
            e.email = f"{local}{rng.randint(1, 999)}@{domain}"
        self.emails.add(e.email)
        e.aliases.add(e.email)
        e.created = self.as_of - dt.timedelta(days=rng.randint(30, 3650))
        r = rng.random()
        if r < 0.18:
            e.last_activity = self.as_of - dt.timedelta(days=rng.randint(1096, 2900))  # stale
        elif r < 0.25:
            e.last_activity = None
        else:
            e.last_activity = self.as_of - dt.timedelta(days=rng.randint(1, 1090))
        if e.last_activity and e.last_activity < e.created:
            e.created = e.last_activity - dt.timedelta(days=rng.randint(1, 400))
        e.status = rng.choice(LEAD_STATUS)
        e.opt_out = rng.random() < 0.08
        e.dnc = rng.random() < 0.04
        for k, v in kw.items():
            setattr(e, k, v)
        self.entities[e.eid] = e
        return e

    def build(self, n_people: int, dup_rate: float = 0.3, hard_negatives: float = 0.12, signal_rate: float = 0.12) -> Dataset:
        rng = self.rng
        people: list[Entity] = []
        while len(people) < n_people:
            r = rng.random()
            if r < hard_negatives:
                people.extend(self._hard_negative_group())
            else:
                people.append(self._person())
        people = people[:n_people]
        for e in people:
            if rng.random() < signal_rate:
                e.signal = rng.choice(list(NOTES_POS))
            copies = 1
            if rng.random() < dup_rate:
                copies += rng.choice([1, 1, 1, 2, 2, 3])
            for c in range(copies):
                self.records.append(self._render(e, dirty=c > 0 or rng.random() < 0.35, first_copy=c == 0))
        order = list(range(len(self.records)))
        rng.shuffle(order)
        records = [self.records[i] for i in order]
        return Dataset(records=records, entities=self.entities, as_of=self.as_of)

    def _hard_negative_group(self) -> list[Entity]:
        rng = self.rng
        kind = rng.choice(["spouses", "jr_sr", "colleagues", "role_mailbox", "common_name", "siblings"])
        g = f"{kind}-{self._eid}"
        if kind == "spouses":
            a = self._person(gender="M", group=g)
            b = self._person(gender="F", last=a.last, city_i=a.city_i, intl=a.intl, group=g)
            b.street_no, b.street, b.suffix_i, b.predir, b.unit, b.phone = a.street_no, a.street, a.suffix_i, a.predir, a.unit, a.phone
            return [a, b]
        if kind == "jr_sr":
            a = self._person(gender="M", suffix="Sr.", group=g)
            b = self._person(gender="M", first=a.first, last=a.last, suffix="Jr.", city_i=a.city_i, intl=a.intl, group=g)
            b.street_no, b.street, b.suffix_i, b.predir, b.unit, b.phone = a.street_no, a.street, a.suffix_i, a.predir, a.unit, a.phone
            return [a, b]
        if kind in ("colleagues", "role_mailbox"):
            co = rng.randrange(len(self.companies))
            name, legal_i, domain, switchboard, city_i = self.companies[co]
            out = []
            for _ in range(rng.randint(3, 6)):
                e = self._person(city_i=city_i, intl=-1, company=name, legal_i=legal_i, domain=domain, group=g)
                e.phone = switchboard
                e.street_no, e.street, e.suffix_i, e.predir = str(100 + co * 7), "Corporate", 6, ""
                if kind == "role_mailbox":
                    e.email = f"{rng.choice(['info', 'sales', 'office', 'contact'])}@{domain}"
                out.append(e)
            return out
        if kind == "siblings":
            a = self._person(group=g)
            b = self._person(last=a.last, city_i=a.city_i, group=g)
            b.phone = a.phone  # parents' landline
            return [a, b]
        # common name: same first and last, different places and contacts
        first = rng.choice(["John", "Mary", "James", "Jennifer", "Michael", "Linda", "David", "Maria"])
        last = rng.choice(["Smith", "Johnson", "Garcia", "Brown"])
        return [self._person(first=first, last=last, gender="M" if first in ("John", "James", "Michael", "David") else "F", group=g) for _ in range(rng.randint(2, 4))]

    # --- rendering one record with dirt ------------------------------------------------------
    def _render(self, e: Entity, dirty: bool, first_copy: bool) -> Record:
        rng = self.rng
        self._rid += 1
        rid = f"R{self._rid:07d}"
        first, last, suffix = e.first, e.last, e.suffix
        email, phone, mobile = e.email, e.phone, e.mobile
        company_name = self._company_display(e, variant=dirty and rng.random() < 0.4)
        title = e.title
        street = self._street(e, variant=dirty and rng.random() < 0.5)
        city, state, zipc, country = self._place(e, variant=dirty and rng.random() < 0.4)
        name_style = "normal"
        if dirty:
            used: set[int] = set()
            for _ in range(rng.choice([1, 1, 2, 2, 3])):
                d = rng.random()
                kind = int(d * 50)  # each kind of dirt at most once per record (one typo per name, ...)
                if kind in used or (d < 0.26 and {int(x * 50) for x in (0.0, 0.16)} & used):
                    continue
                used.add(kind)
                if d < 0.16 and first in NICK:
                    first = rng.choice(NICK[first])
                elif d < 0.26:
                    first = _typo(rng, first) if len(first) > 4 else first
                elif d < 0.34:
                    last = _typo(rng, last) if len(last) > 5 else last
                elif d < 0.40:
                    name_style = "swapped"
                elif d < 0.48:
                    name_style = rng.choice(["upper_comma", "upper", "lower"])
                elif d < 0.58:
                    email = ""
                elif d < 0.64:
                    phone = ""
                elif d < 0.70:
                    street = ""
                elif d < 0.76:
                    title = rng.choice(TITLES)
                elif d < 0.81 and "@" in email and email.split("@")[1] in DOMAIN_TYPOS:
                    email = email.split("@")[0] + "@" + DOMAIN_TYPOS[email.split("@")[1]]
                elif d < 0.86 and email:
                    email = rng.choice([email.upper(), " " + email + " ", f"<{email}>", email.capitalize()])
                elif d < 0.90:
                    mobile, phone = phone if e.intl < 0 else mobile, mobile
                elif d < 0.93:
                    company_name = ""
                elif email:  # a new personal mailbox: nobody else's
                    email = self._fresh_email(email.split("@")[0].strip(" <>").lower(), rng.choice(FREE_DOMAINS), e)
        expected_phone = _e164(phone, e) if phone else ""
        phone_text = self._phone_text(phone, e) if phone else ""
        mobile_text = self._phone_text(mobile, e) if mobile else ""
        if name_style == "swapped":
            first, last = last, first
        elif name_style == "upper_comma":
            first, last = "", f"{last.upper()}, {first.upper()}"
        elif name_style == "upper":
            first, last = first.upper(), last.upper()
        elif name_style == "lower":
            first, last = first.lower(), last.lower()
        note, note_signal = self._note(e, first_copy)
        created = e.created + dt.timedelta(days=rng.randint(0, 30) if not first_copy else 0)
        activity = e.last_activity
        if activity and not first_copy and rng.random() < 0.5:
            activity = activity - dt.timedelta(days=rng.randint(1, 200))
        values = {
            "id": rid, "first_name": first, "last_name": last + ((" " + suffix) if suffix and rng.random() < 0.5 else ""),
            "suffix": "", "email": email, "phone": phone_text, "mobile": mobile_text, "company": company_name,
            "title": title, "street": street, "city": city, "state": state, "zip": zipc, "country": country,
            "created": created.isoformat(), "last_activity": activity.isoformat() if activity else "",
            "status": e.status, "opt_out": "true" if e.opt_out and rng.random() < 0.8 else "false",
            "dnc": "true" if e.dnc else "false", "notes": note, "owner": rng.choice(["jdoe", "asmith", "mlee", "kpatel", "rgarcia"]),
        }
        if suffix and " " + suffix not in values["last_name"]:
            values["suffix"] = suffix
        exp_email = email.strip().strip("<>").lower()
        if "@" in exp_email and exp_email.split("@")[1] in DOMAIN_TYPOS.values():
            exp_email = exp_email.split("@")[0] + "@" + {v: k for k, v in DOMAIN_TYPOS.items()}[exp_email.split("@")[1]]
        return Record(rid=rid, eid=e.eid, values=values, note_signal=note_signal, expected_phone=expected_phone, expected_email=exp_email)

    def _fresh_email(self, local: str, domain: str, e: Entity) -> str:
        candidate = f"{local}@{domain}"
        while candidate in self.emails and candidate not in e.aliases:
            candidate = f"{local}{self.rng.randint(1, 999)}@{domain}"
        self.emails.add(candidate)
        e.aliases.add(candidate)
        return candidate

    def _note(self, e: Entity, first_copy: bool) -> tuple[str, str | None]:
        rng = self.rng
        if e.signal and (first_copy or rng.random() < 0.5):
            text = rng.choice(NOTES_POS[e.signal])
            co = rng.choice(self.companies)[0]
            text = text.format(y=rng.randint(2019, 2025), co=co, co2=e.company or co, ln=e.last, title=rng.choice(TITLES))
            if rng.random() < 0.3:
                text = text.lower() if rng.random() < 0.5 else text.upper()
            if rng.random() < 0.3:
                text = rng.choice(["Called 3/4. ", "Update: ", "FYI - ", "Per call: "]) + text
            return text, e.signal
        return rng.choice(NOTES_NEG), None

    def _company_display(self, e: Entity, variant: bool) -> str:
        if not e.company:
            return ""
        std, variants = LEGAL[e.legal_i]
        legal = self.rng.choice(variants) if variant else std
        name = f"{e.company} {legal}".strip() if legal else e.company
        if variant and self.rng.random() < 0.3:
            name = name.upper()
        return name.replace(" Inc.", ", Inc.") if self.rng.random() < 0.2 else name

    def _street(self, e: Entity, variant: bool) -> str:
        rng = self.rng
        if e.intl >= 0:
            return f"{e.street_no} {e.street} Road"
        full, abbrs = SUFFIXES[e.suffix_i]
        suf = rng.choice(abbrs) if variant else full
        pre = e.predir
        if pre and variant:
            pre = dict(DIRS)[pre] if rng.random() < 0.6 else pre
        parts = [e.street_no, pre, e.street, suf]
        if e.unit:
            ui, num = e.unit
            ufull, uabbrs = UNITS[ui]
            utype = rng.choice(uabbrs) if variant else ufull
            parts += [f"#{num}" if utype == "#" else f"{utype} {num}"]
        text = " ".join(p for p in parts if p)
        if variant and rng.random() < 0.3:
            text = text.upper()
        return text

    def _place(self, e: Entity, variant: bool) -> tuple[str, str, str, str]:
        rng = self.rng
        if e.intl >= 0:
            city, state, code, name, postal, _ = INTL[e.intl]
            return city, state, postal, rng.choice([name, code]) if variant else name
        city, st, st_name, zip3, _ = PLACES[e.city_i]
        zipc = f"{zip3}{int(e.street_no) % 100:02d}"
        if variant:
            st = rng.choice([st, st_name, st.lower()])
            zipc = rng.choice([zipc, zipc + "-" + f"{int(e.street_no) * 7 % 10000:04d}", zipc.lstrip("0") or zipc])
            city = rng.choice([city, city.upper()])
        return city, st, zipc, rng.choice(["US", "USA", "United States", "U.S.", ""]) if variant else "United States"

    def _phone_text(self, value: str, e: Entity) -> str:
        if not value.isdigit():
            return value
        rng = self.rng
        a, b, c = value[:3], value[3:6], value[6:]
        fmt = rng.choice(["({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "{a}{b}{c}", "+1 {a} {b} {c}", "1-{a}-{b}-{c}", "+1 ({a}) {b}-{c}", "{a} {b} {c}"])
        text = fmt.format(a=a, b=b, c=c)
        if rng.random() < 0.05:
            text += rng.choice([" x123", " ext. 45", " ext 7"])
        return text


def _e164(value: str, e: Entity) -> str:
    if value.isdigit():
        return "+1" + value
    return "+" + "".join(ch for ch in value if ch.isdigit())


def _typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1)
    op = rng.random()
    if op < 0.33:
        return word[:i] + word[i + 1:]
    if op < 0.66:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:] if i + 2 <= len(word) else word
    return word[:i] + rng.choice("aeiourstln") + word[i + 1:]


# --- writing in each CRM's export format ------------------------------------------------------

FORMATS: dict[str, dict[str, Any]] = {
    "salesforce": {"headers": {"id": "Id", "first_name": "FirstName", "last_name": "LastName", "suffix": "Suffix", "email": "Email", "phone": "Phone", "mobile": "MobilePhone", "company": "Account.Name", "title": "Title", "street": "MailingStreet", "city": "MailingCity", "state": "MailingState", "zip": "MailingPostalCode", "country": "MailingCountry", "created": "CreatedDate", "last_activity": "LastActivityDate", "opt_out": "HasOptedOutOfEmail", "dnc": "DoNotCall", "notes": "Description", "owner": "OwnerId"}, "date": "%m/%d/%Y", "bool": ("true", "false")},
    "hubspot": {"headers": {"id": "Record ID", "first_name": "First Name", "last_name": "Last Name", "email": "Email", "phone": "Phone Number", "mobile": "Mobile Phone Number", "company": "Company Name", "title": "Job Title", "street": "Street Address", "city": "City", "state": "State/Region", "zip": "Postal Code", "country": "Country/Region", "created": "Create Date", "last_activity": "Last Activity Date", "status": "Lead Status", "opt_out": "Unsubscribed from all email", "notes": "Notes", "owner": "Contact owner"}, "date": "%Y-%m-%d", "bool": ("true", "false")},
    "dynamics": {"headers": {"id": "contactid", "first_name": "firstname", "last_name": "lastname", "suffix": "suffix", "email": "emailaddress1", "phone": "telephone1", "mobile": "mobilephone", "company": "parentcustomerid", "title": "jobtitle", "street": "address1_line1", "city": "address1_city", "state": "address1_stateorprovince", "zip": "address1_postalcode", "country": "address1_country", "created": "createdon", "last_activity": "lastactivitydate", "opt_out": "donotemail", "dnc": "donotphone", "notes": "description", "owner": "ownerid"}, "date": "%m/%d/%Y", "bool": ("1", "0")},
    "zoho": {"headers": {"id": "Lead Id", "first_name": "First Name", "last_name": "Last Name", "email": "Email", "phone": "Phone", "mobile": "Mobile", "company": "Company", "title": "Title", "street": "Street", "city": "City", "state": "State", "zip": "Zip Code", "country": "Country", "created": "Created Time", "last_activity": "Last Activity Time", "status": "Lead Status", "opt_out": "Email Opt Out", "notes": "Description", "owner": "Lead Owner"}, "date": "%m/%d/%Y %H:%M:%S", "bool": ("true", "false")},
    "pipedrive": {"headers": {"id": "Person - ID", "first_name": "Person - First name", "last_name": "Person - Last name", "email": "Person - Email - Work", "phone": "Person - Phone - Work", "mobile": "Person - Phone - Mobile", "company": "Person - Organization", "title": "Person - Job title", "street": "Person - Postal address", "city": "Person - City", "created": "Person - Person created", "last_activity": "Person - Last activity date", "status": "Person - Labels", "opt_out": "Person - Marketing status", "notes": "Person - Notes", "owner": "Person - Owner"}, "date": "%Y-%m-%d", "bool": ("unsubscribed", "subscribed")},
    "generic": {"headers": {"id": "ID", "first_name": "First Name", "last_name": "Last Name", "suffix": "Suffix", "email": "Email", "phone": "Phone", "mobile": "Mobile", "company": "Company", "title": "Job Title", "street": "Address", "city": "City", "state": "State", "zip": "Zip", "country": "Country", "created": "Created", "last_activity": "Last Activity", "status": "Lead Status", "opt_out": "Email Opt Out", "dnc": "Do Not Call", "notes": "Notes", "owner": "Owner"}, "date": "%Y-%m-%d", "bool": ("true", "false")},
}


def rows_for(dataset: Dataset, fmt: str) -> tuple[list[str], list[list[str]]]:
    spec = FORMATS[fmt]
    headers = spec["headers"]
    keys = list(headers)
    out = []
    for rec in dataset.records:
        v = dict(rec.values)
        if v.get("suffix") and "suffix" not in headers:  # no Suffix column: it lives in the last name
            v["last_name"] = f"{v['last_name']} {v['suffix']}"
        for dk in ("created", "last_activity"):
            if v.get(dk):
                d = dt.date.fromisoformat(v[dk])
                v[dk] = d.strftime(spec["date"]) if "%H" not in spec["date"] else dt.datetime(d.year, d.month, d.day, 9, 30).strftime(spec["date"])
        t, f = spec["bool"]
        for bk in ("opt_out", "dnc"):
            v[bk] = t if v.get(bk) == "true" else f
        if fmt == "pipedrive":
            v["street"] = ", ".join(x for x in (v["street"], v["city"], v["state"], v["zip"]) if x)
        out.append([v.get(k, "") for k in keys])
    return [headers[k] for k in keys], out


def write_csv(dataset: Dataset, fmt: str, path: str, encoding: str = "utf-8", delimiter: str = ",") -> None:
    headers, rows = rows_for(dataset, fmt)
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n" if fmt in ("salesforce", "dynamics") else "\n")
    w.writerow(headers)
    w.writerows(rows)
    with open(path, "w", encoding=encoding, newline="") as fh:
        fh.write(buf.getvalue())


def write_truth(dataset: Dataset, path: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["record_id", "entity_id", "group", "signal", "expected_phone", "expected_email"])
        for r in dataset.records:
            w.writerow([r.rid, r.eid, dataset.entities[r.eid].group, r.note_signal or "", r.expected_phone, r.expected_email])


def generate(n_people: int, seed: int = 1, as_of: dt.date = dt.date(2026, 11, 1)) -> Dataset:
    return Generator(seed, as_of).build(n_people)


# --- accounts (companies), linked to contacts by id ----------------------------------------------

ACCOUNT_NOTES = [("Company out of business since {y}", "out_of_business"), ("Closed down in {y}", "out_of_business"),
                 ("Went bankrupt in {y}", "out_of_business"), ("Key account, renewal in Q2", None), ("Bankruptcy attorneys on retainer", None),
                 ("Closed the deal in Q3!", None), ("", None), ("", None), ("", None)]


def accounts(gen: Generator, n: int) -> tuple[list[list[str]], dict[str, str]]:
    """Account rows (Salesforce Data Loader layout) and company name → account id; some duplicates."""
    rng = gen.rng
    rows = []
    ids: dict[str, str] = {}
    for i, (name, legal_i, domain, switchboard, city_i) in enumerate(gen.companies[:n]):
        city, st, _st_name, zip3, _ = PLACES[city_i]
        acc_id = f"001A{i:011d}AA"
        ids[name] = acc_id
        note, _sig = rng.choice(ACCOUNT_NOTES)
        created = gen.as_of - dt.timedelta(days=rng.randint(400, 4000))
        base = [acc_id, f"{name} {LEGAL[legal_i][0]}".strip(), f"www.{domain}", _fmt_us(switchboard), f"{100 + i * 7} Corporate Ct", city, st,
                f"{zip3}{i % 100:02d}", "US", rng.choice(["Customer", "Prospect", "Partner"]), note.format(y=rng.randint(2019, 2025)),
                created.strftime("%Y-%m-%dT%H:%M:%S.000Z")]
        rows.append(base)
        if rng.random() < 0.15:  # a duplicate account: legal-suffix variant, same phone and address
            dup = list(base)
            dup[0] = f"001B{i:011d}AA"
            dup[1] = f"{name} {rng.choice(LEGAL[legal_i][1])}".strip().upper() if rng.random() < 0.5 else f"{name}, {rng.choice(LEGAL[legal_i][1])}".strip(", ")
            rows.append(dup)
    return rows, ids


ACCOUNT_HEADERS = ["Id", "Name", "Website", "Phone", "BillingStreet", "BillingCity", "BillingState", "BillingPostalCode", "BillingCountry", "Type", "Description", "CreatedDate"]


def _fmt_us(digits: str) -> str:
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
