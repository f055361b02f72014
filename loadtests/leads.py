"""A seeded, deterministic generator of realistic lead events, as web forms and CRMs post them.

``make_lead(seed, index)`` is a pure function of its arguments: the same pair always gives the
same lead, and ``event_id`` is unique per pair. Leads vary the way real traffic does: names
from several cultures, titles from students to the C-suite, companies from 1 to 100,000+
people with revenue that fits the headcount, countries weighted toward where B2B leads come
from, ~30% free-mail addresses, phones in each country's own format, and some messy input
(upper-case emails, country names instead of codes, website variants) for normalization.
All data is synthetic.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import phonenumbers

__all__ = ["SENIORITIES", "Lead", "generate_leads", "make_lead"]

Lead = dict[str, Any]
"""One lead event as a JSON-ready dict."""

_BASE_TIME = datetime(2025, 6, 1, tzinfo=UTC)


class _Country(NamedTuple):
    code: str
    weight: int
    spellings: tuple[str, ...]  # how forms send it: alpha-2 first, then alpha-3 and names
    cultures: tuple[str, ...]
    free_domains: tuple[str, ...]
    tld: str
    legal: tuple[str, ...]
    places: tuple[tuple[str, str], ...]  # (region, city)


_COUNTRIES = (
    _Country(
        "US",
        40,
        ("US", "USA", "United States"),
        ("anglo", "anglo", "hispanic", "chinese", "indian"),
        ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com"),
        ".com",
        ("Inc.", "LLC", "Corp."),
        (
            ("CA", "San Francisco"),
            ("NY", "New York"),
            ("TX", "Austin"),
            ("IL", "Chicago"),
            ("MA", "Boston"),
            ("WA", "Seattle"),
        ),
    ),
    _Country(
        "CA",
        6,
        ("CA", "CAN", "Canada"),
        ("anglo", "french", "chinese"),
        ("gmail.com", "hotmail.ca", "yahoo.ca"),
        ".ca",
        ("Inc.", "Ltd."),
        (("ON", "Toronto"), ("BC", "Vancouver"), ("QC", "Montréal")),
    ),
    _Country(
        "GB",
        10,
        ("GB", "GBR", "United Kingdom", "UK"),
        ("anglo", "anglo", "indian"),
        ("gmail.com", "hotmail.co.uk", "yahoo.co.uk", "btinternet.com"),
        ".co.uk",
        ("Ltd", "plc"),
        (("England", "London"), ("England", "Manchester"), ("Scotland", "Edinburgh")),
    ),
    _Country(
        "DE",
        8,
        ("DE", "DEU", "Germany", "Deutschland"),
        ("german", "german", "turkish"),
        ("gmx.de", "web.de", "gmail.com", "t-online.de"),
        ".de",
        ("GmbH", "AG"),
        (("Berlin", "Berlin"), ("Bayern", "München"), ("Hamburg", "Hamburg")),
    ),
    _Country(
        "FR",
        6,
        ("FR", "FRA", "France"),
        ("french", "french", "arabic"),
        ("gmail.com", "hotmail.fr", "orange.fr", "yahoo.fr", "laposte.net"),
        ".fr",
        ("SAS", "SA"),
        (("Île-de-France", "Paris"), ("Auvergne-Rhône-Alpes", "Lyon"), ("Occitanie", "Toulouse")),
    ),
    _Country(
        "NL",
        4,
        ("NL", "NLD", "Netherlands", "The Netherlands"),
        ("dutch",),
        ("gmail.com", "hotmail.nl", "ziggo.nl", "outlook.com"),
        ".nl",
        ("B.V.", "N.V."),
        (("Noord-Holland", "Amsterdam"), ("Zuid-Holland", "Rotterdam"), ("Utrecht", "Utrecht")),
    ),
    _Country(
        "ES",
        4,
        ("ES", "ESP", "Spain", "España"),
        ("hispanic",),
        ("gmail.com", "hotmail.es", "yahoo.es"),
        ".es",
        ("S.L.", "S.A."),
        (("Madrid", "Madrid"), ("Cataluña", "Barcelona"), ("Andalucía", "Sevilla")),
    ),
    _Country(
        "IN",
        8,
        ("IN", "IND", "India"),
        ("indian",),
        ("gmail.com", "yahoo.co.in", "rediffmail.com"),
        ".in",
        ("Pvt Ltd", "Ltd"),
        (("Karnataka", "Bengaluru"), ("Maharashtra", "Mumbai"), ("Telangana", "Hyderabad")),
    ),
    _Country(
        "BR",
        5,
        ("BR", "BRA", "Brazil"),
        ("brazilian",),
        ("gmail.com", "hotmail.com", "uol.com.br", "bol.com.br"),
        ".com.br",
        ("Ltda.", "S.A."),
        (("SP", "São Paulo"), ("RJ", "Rio de Janeiro"), ("MG", "Belo Horizonte")),
    ),
    _Country(
        "AU",
        4,
        ("AU", "AUS", "Australia"),
        ("anglo", "chinese"),
        ("gmail.com", "bigpond.com", "outlook.com"),
        ".com.au",
        ("Pty Ltd",),
        (("NSW", "Sydney"), ("VIC", "Melbourne"), ("QLD", "Brisbane")),
    ),
    _Country(
        "JP",
        3,
        ("JP", "JPN", "Japan"),
        ("japanese",),
        ("gmail.com", "yahoo.co.jp"),
        ".co.jp",
        ("K.K.",),
        (("Tokyo", "Tokyo"), ("Osaka", "Osaka"), ("Kanagawa", "Yokohama")),
    ),
    _Country(
        "SE",
        2,
        ("SE", "SWE", "Sweden"),
        ("nordic",),
        ("gmail.com", "hotmail.com", "outlook.com"),
        ".se",
        ("AB",),
        (("Stockholm", "Stockholm"), ("Västra Götaland", "Göteborg")),
    ),
)
_COUNTRY_WEIGHTS = [c.weight for c in _COUNTRIES]

_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "anglo": (
        ("James", "Emily", "Michael", "Sarah", "David", "Olivia", "Chris", "Hannah", "Liam", "Grace"),
        ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "O'Brien", "Clarke", "Walker", "Hughes"),
    ),
    "hispanic": (
        ("María", "José", "Lucía", "Carlos", "Sofía", "Javier", "Ana", "Diego"),
        ("García", "Martínez", "López", "Fernández", "Sánchez", "Romero", "Navarro"),
    ),
    "chinese": (
        ("Wei", "Li", "Jing", "Hao", "Xin", "Yan", "Jun"),
        ("Wang", "Zhang", "Chen", "Liu", "Huang", "Lin"),
    ),
    "indian": (
        ("Priya", "Rahul", "Ananya", "Arjun", "Deepika", "Vikram", "Sneha", "Rohan"),
        ("Sharma", "Patel", "Iyer", "Reddy", "Gupta", "Nair", "Singh"),
    ),
    "german": (
        ("Lukas", "Anna", "Jonas", "Lea", "Felix", "Sophie", "Maximilian", "Jürgen"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Schäfer"),
    ),
    "turkish": (("Emre", "Elif", "Mehmet", "Zeynep", "Can"), ("Yılmaz", "Kaya", "Demir", "Şahin", "Çelik")),  # noqa: RUF001 - Turkish dotless i
    "french": (
        ("Camille", "Louis", "Chloé", "Hugo", "Léa", "Théo", "Manon", "François"),
        ("Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Girard", "Rousseau"),
    ),
    "arabic": (
        ("Omar", "Yasmine", "Karim", "Leila", "Samir", "Nadia"),
        ("Haddad", "Benali", "Mansour", "Khalil"),
    ),
    "dutch": (
        ("Daan", "Sanne", "Bram", "Fleur", "Ruben", "Lotte", "Sem"),
        ("de Vries", "Jansen", "van Dijk", "Bakker", "Visser", "de Jong", "van den Berg"),
    ),
    "brazilian": (
        ("João", "Ana", "Pedro", "Beatriz", "Lucas", "Juliana", "Gabriel"),
        ("Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Ribeiro"),
    ),
    "japanese": (
        ("Haruto", "Yui", "Sota", "Aoi", "Ren", "Hina", "Takumi"),
        ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Nakamura"),
    ),
    "nordic": (
        ("Erik", "Astrid", "Lars", "Ingrid", "Nils", "Maja"),
        ("Andersson", "Johansson", "Karlsson", "Nilsson", "Lindqvist", "Åberg"),
    ),
}

SENIORITIES = ("c_level", "vp", "director", "manager", "individual_contributor", "student")
_SENIORITY_WEIGHTS = (5, 8, 14, 25, 40, 8)
_TITLES: dict[str, tuple[str, ...]] = {
    "c_level": ("CEO", "Chief Technology Officer", "CFO", "Chief Marketing Officer", "COO", "Founder & CEO"),
    "vp": ("VP of Sales", "VP Engineering", "Vice President, Marketing", "VP Operations", "SVP Finance"),
    "director": ("Director of IT", "Marketing Director", "Director, Revenue Operations", "Head of Data"),
    "manager": ("Sales Manager", "Engineering Manager", "Product Manager", "IT Manager", "Marketing Manager"),
    "individual_contributor": (
        "Software Engineer",
        "Data Analyst",
        "Account Executive",
        "Designer",
        "DevOps Engineer",
        "Marketing Specialist",
        "Consultant",
    ),
    "student": ("Student", "MBA Candidate", "PhD Student", "Intern"),
}

# (label, lowest, highest, weight) headcount bands.
_SIZE_BANDS = (
    ("1-10", 1, 10, 18),
    ("11-50", 11, 50, 24),
    ("51-200", 51, 200, 20),
    ("201-1000", 201, 1000, 16),
    ("1001-5000", 1001, 5000, 10),
    ("5001-10000", 5001, 10_000, 5),
    ("10000+", 10_001, 250_000, 7),
)
_BAND_WEIGHTS = [b[3] for b in _SIZE_BANDS]

# Industry -> typical revenue per employee, in USD thousands (low, high).
_INDUSTRIES = {
    "Software": (150, 450),
    "Financial Services": (200, 600),
    "Manufacturing": (150, 320),
    "Retail": (100, 250),
    "Healthcare": (80, 200),
    "Consulting": (100, 220),
    "Education": (40, 110),
    "Logistics": (120, 300),
    "Media": (120, 350),
    "Telecommunications": (250, 600),
}
_INDUSTRY_NAMES = tuple(_INDUSTRIES)

_COMPANY_STEMS = (
    "North",
    "Blue",
    "Iron",
    "Bright",
    "Silver",
    "Quantum",
    "Cedar",
    "Atlas",
    "Nova",
    "Summit",
    "Harbor",
    "Vertex",
    "Pioneer",
    "Lumen",
    "Falcon",
    "Orbit",
    "Granite",
    "Evergreen",
)
_COMPANY_TAILS = ("wind", "field", "stone", "wave", "path", "forge", "point", "bridge", "line", "works")
_COMPANY_KINDS = (
    "Analytics",
    "Systems",
    "Labs",
    "Logistics",
    "Health",
    "Capital",
    "Retail",
    "Media",
    "Robotics",
    "Software",
    "Consulting",
    "Foods",
)

_SOURCES = (("web_form", 60), ("hubspot", 15), ("salesforce", 10), ("import", 10), ("chat", 5))
_UTMS = (
    ("google", "cpc"),
    ("linkedin", "paid_social"),
    ("newsletter", "email"),
    ("facebook", "paid_social"),
    ("bing", "cpc"),
    ("partner", "referral"),
    ("g2", "review"),
    ("Google", "CPC"),
)
_CAMPAIGNS = ("spring_launch", "webinar_q2", "brand_2025", "retargeting", "ebook_ai_guide", "pricing_page")
_FORMS = ("demo", "contact", "newsletter")
_PRODUCTS = ("analytics", "api", "sso", "integrations", "reporting", "enterprise_plan")


def make_lead(seed: int, index: int) -> Lead:
    """The ``index``-th lead of the run seeded ``seed``; the same arguments give the same lead."""
    rng = random.Random(f"{seed}:{index}")
    country = rng.choices(_COUNTRIES, _COUNTRY_WEIGHTS)[0]
    first, last = _person(rng, country)
    seniority = rng.choices(SENIORITIES, _SENIORITY_WEIGHTS)[0]
    lead: Lead = {
        "event_id": f"lg-{seed}-{index}",
        "occurred_at": _timestamp(rng),
        "source": _weighted(rng, _SOURCES),
        "first_name": first,
        "last_name": last,
        "title": rng.choice(_TITLES[seniority]),
    }
    company_domain = None if seniority == "student" else _add_company(rng, lead, country)
    # About 30% free mail overall: every student, and a quarter of people at a company.
    email_domain = company_domain
    if email_domain is None or rng.random() < 0.25:
        email_domain = rng.choice(country.free_domains)
    lead["email"] = _email(rng, first, last, email_domain)
    _add_place(rng, lead, country)
    _add_marketing(rng, lead)
    return lead


def generate_leads(count: int, seed: int = 0) -> Iterator[Lead]:
    """``count`` leads of the run seeded ``seed``, in index order."""
    return (make_lead(seed, index) for index in range(count))


def _weighted(rng: random.Random, choices: Sequence[tuple[str, int]]) -> str:
    return rng.choices([c[0] for c in choices], [c[1] for c in choices])[0]


def _person(rng: random.Random, country: _Country) -> tuple[str, str]:
    firsts, lasts = _NAMES[rng.choice(country.cultures)]
    return rng.choice(firsts), rng.choice(lasts)


def _timestamp(rng: random.Random) -> str:
    moment = _BASE_TIME - timedelta(seconds=rng.randrange(90 * 24 * 3600))
    return moment.isoformat().replace("+00:00", "Z")


def _add_company(rng: random.Random, lead: Lead, country: _Country) -> str:
    """Fill company, size, revenue, industry and website; return the company's domain."""
    stem = rng.choice(_COMPANY_STEMS) + rng.choice(_COMPANY_TAILS)
    kind = rng.choice(_COMPANY_KINDS)
    domain = f"{_ascii_slug(stem)}{rng.choice(('', '-' + _ascii_slug(kind)))}{country.tld}"
    lead["company"] = f"{stem} {kind} {rng.choice(country.legal)}"
    industry = rng.choice(_INDUSTRY_NAMES)
    lead["industry"] = industry
    _, low, high, _ = rng.choices(_SIZE_BANDS, _BAND_WEIGHTS)[0]
    employees = round(low * (high / low) ** rng.random())  # log-uniform within the band
    if rng.random() < 0.9:
        lead["employees"] = str(employees) if rng.random() < 0.05 else employees
    if rng.random() < 0.75:
        per_head = rng.uniform(*_INDUSTRIES[industry]) * 1000
        lead["annual_revenue"] = round(employees * per_head * rng.lognormvariate(0, 0.25), -3)
    if rng.random() < 0.7:
        pattern = rng.choice(("https://www.{}", "{}", "http://{}/", "www.{}", "https://{}/contact", "WWW.{}"))
        lead["website"] = pattern.format(domain)
    return domain


def _email(rng: random.Random, first: str, last: str, domain: str) -> str:
    f, surname = _ascii_slug(first), _ascii_slug(last)
    local = rng.choice((f"{f}.{surname}", f"{f}{surname}", f"{f[0]}{surname}", f"{f}_{surname}", f))
    if rng.random() < 0.3:
        local += str(rng.randrange(1, 100))
    email = f"{local}@{domain}"
    return email.title() if rng.random() < 0.1 else email


def _add_place(rng: random.Random, lead: Lead, country: _Country) -> None:
    region, city = rng.choice(country.places)
    given = rng.random()
    if given < 0.95:
        lead["country"] = country.spellings[0] if given < 0.7 else rng.choice(country.spellings[1:])
        lead["region"], lead["city"] = region, city
    if rng.random() < 0.75:
        # A national-format number only reads with the country, so it needs one.
        national = "country" in lead and rng.random() < 0.7
        lead["phone"] = _phone(rng, country.code, national=national)


def _phone(rng: random.Random, region: str, *, national: bool) -> str:
    kind = rng.choice((phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE))
    number = phonenumbers.example_number_for_type(region, kind)
    if number is None:
        raise ValueError(f"phonenumbers has no example number for {region}")
    digits = str(number.national_number)
    for _ in range(20):  # vary the subscriber digits until the result is still a valid number
        candidate = phonenumbers.parse(f"+{number.country_code}{digits[:-4]}{rng.randrange(10_000):04d}")
        if phonenumbers.is_valid_number(candidate):
            number = candidate
            break
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if national
        else rng.choice((phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164))
    )
    return str(phonenumbers.format_number(number, style))


def _add_marketing(rng: random.Random, lead: Lead) -> None:
    if rng.random() < 0.6:
        lead["utm_source"], lead["utm_medium"] = rng.choice(_UTMS)
        lead["utm_campaign"] = rng.choice(_CAMPAIGNS)
    if lead["source"] == "web_form" and rng.random() < 0.8:
        lead["form"] = rng.choice(_FORMS)  # an unknown top-level key: kept as an attribute
    if rng.random() < 0.4:
        lead.setdefault("attributes", {})["product_interest"] = rng.sample(_PRODUCTS, rng.randint(1, 3))
    if rng.random() < 0.15:
        lead.setdefault("attributes", {})["newsletter_opt_in"] = rng.random() < 0.5
    if rng.random() < 0.1:
        lead["page_url"] = "/pricing" if rng.random() < 0.5 else "/product/tour"


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())
