"""Intake: body bytes to LeadIn (``parse_lead``) and LeadIn to NormalizedLead (``normalize``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from leadroute.intake import (
    FieldError,
    FieldPolicy,
    InvalidLead,
    MalformedBody,
    normalize,
    normalize_checked,
    parse_lead,
    read_lead,
)
from leadroute.intake.domains import canonical_host, registrable_domain
from leadroute.models import MAX_ATTRIBUTES, FieldWarning, LeadIn, NormalizedLead

STRICT = FieldPolicy(phone="reject", website="reject", country="reject")

_ENCODER = msgspec.json.Encoder()


def body(**fields: Any) -> bytes:
    return _ENCODER.encode(fields)


def parse_errors(raw: bytes) -> dict[str, str]:
    with pytest.raises(InvalidLead) as info:
        parse_lead(raw)
    return {e.field: e.message for e in info.value.errors}


def norm(policy: FieldPolicy = STRICT, **fields: Any) -> NormalizedLead:
    fields.setdefault("email", "jane@acme.com")
    return normalize(LeadIn(**fields), policy)


def norm_errors(policy: FieldPolicy = STRICT, **fields: Any) -> dict[str, str]:
    with pytest.raises(InvalidLead) as info:
        norm(policy, **fields)
    return {e.field: e.message for e in info.value.errors}


def norm_warnings(**fields: Any) -> tuple[NormalizedLead, dict[str, str]]:
    """Normalized with the default policy (warn): the lead and its warnings by field."""
    fields.setdefault("email", "jane@acme.com")
    lead, warnings = normalize_checked(LeadIn(**fields))
    return lead, {w.field: w.message for w in warnings}


class TestParseAccepts:
    """A well-formed body becomes a LeadIn with every contract field typed."""

    def test_contract_fields(self) -> None:
        lead = parse_lead(
            body(
                email="jane@acme.com",
                employees=250,
                annual_revenue=1_000_000,
                occurred_at="2025-03-04T05:06:07+02:00",
            )
        )
        assert lead.email == "jane@acme.com"
        assert lead.employees == 250
        assert lead.annual_revenue == 1_000_000.0
        assert lead.occurred_at == datetime(2025, 3, 4, 3, 6, 7, tzinfo=UTC)

    def test_numeric_strings_from_forms(self) -> None:
        lead = parse_lead(body(email="a@acme.com", employees="42", annual_revenue="1.5e6"))
        assert (lead.employees, lead.annual_revenue) == (42, 1_500_000.0)

    def test_empty_numeric_string_is_absent(self) -> None:
        assert parse_lead(body(email="a@acme.com", employees="")).employees is None

    def test_phone_alone_is_enough(self) -> None:
        assert parse_lead(body(phone="+14155552671")).phone == "+14155552671"


class TestUnknownFields:
    """Keys the contract does not name are kept in attributes, and explicit attributes win."""

    def test_kept_in_attributes(self) -> None:
        lead = parse_lead(body(email="a@acme.com", form="demo", product_interest=["api", "sso"]))
        assert lead.attributes == {"form": "demo", "product_interest": ["api", "sso"]}

    def test_merged_with_explicit_attributes_which_win(self) -> None:
        lead = parse_lead(body(email="a@acme.com", form="contact", attributes={"form": "demo", "plan": 3}))
        assert lead.attributes == {"form": "demo", "plan": 3}


class TestParseNamesEveryBadField:
    """Every bad field is reported at once, each under its own name."""

    def test_message_names_fields_not_values(self) -> None:
        with pytest.raises(InvalidLead) as info:
            parse_lead(body(email="secret@", employees="many"))
        assert str(info.value) == "invalid lead: employees"

    def test_several_fields(self) -> None:
        errors = parse_errors(
            body(email=5, employees=-1, occurred_at="yesterday", annual_revenue=True, country=["US"])
        )
        assert set(errors) == {"email", "employees", "occurred_at", "annual_revenue", "country"}
        assert "RFC3339" in errors["occurred_at"]
        assert ">= 0" in errors["employees"]

    def test_string_too_long(self) -> None:
        errors = parse_errors(body(email="a@acme.com", first_name="x" * 256, website="w" * 2001))
        assert set(errors) == {"first_name", "website"}
        assert "length <= 255" in errors["first_name"]

    def test_non_finite_revenue(self) -> None:
        assert "annual_revenue" in parse_errors(body(email="a@acme.com", annual_revenue="inf"))

    def test_needs_email_or_phone(self) -> None:
        assert parse_errors(body(first_name="Jane", email="  ")) == {
            "email": "a lead needs an email or a phone"
        }

    def test_attributes_not_an_object(self) -> None:
        assert set(parse_errors(body(email="a@acme.com", attributes=[1]))) == {"attributes"}


class TestAttributeLimits:
    """Extra attributes are bounded in number, name shape, and value type and size."""

    def test_too_many(self) -> None:
        extra = {f"k{i}": i for i in range(MAX_ATTRIBUTES + 1)}
        errors = parse_errors(body(email="a@acme.com", **extra))
        assert list(errors) == ["attributes"]
        assert str(MAX_ATTRIBUTES) in errors["attributes"]

    def test_exactly_the_maximum_is_fine(self) -> None:
        extra = {f"k{i}": i for i in range(MAX_ATTRIBUTES)}
        assert len(parse_lead(body(email="a@acme.com", **extra)).attributes) == MAX_ATTRIBUTES

    def test_bad_keys_named(self) -> None:
        raw = body(email="a@acme.com", **{"bad-key": 1, "9lives": 2}, attributes={"x" * 65: 3})
        assert set(parse_errors(raw)) == {"attributes.bad-key", "attributes.9lives", f"attributes.{'x' * 64}"}

    def test_bad_values_named(self) -> None:
        raw = body(
            email="a@acme.com",
            nested={"a": 1},
            long="x" * 2001,
            many=list(range(51)),
            deep=[[1]],
            ok=["a", 1, 2.5, True, None],
        )
        assert set(parse_errors(raw)) == {
            "attributes.nested",
            "attributes.long",
            "attributes.many",
            "attributes.deep",
        }


class TestMalformedBody:
    """A body that is not a JSON object is MalformedBody (HTTP 400), a kind of InvalidLead."""

    @pytest.mark.parametrize(
        ("raw", "says"),
        [
            (b"{not json", "not valid JSON"),
            (b"\xff\xfe", "not valid JSON"),
            (b"", "not valid JSON"),
            (b'[{"email": "a@acme.com"}]', "not array"),
            (b'"a@acme.com"', "not str"),
            (b"null", "not null"),
        ],
    )
    def test_rejected(self, raw: bytes, says: str) -> None:
        with pytest.raises(MalformedBody) as info:
            parse_lead(raw)
        assert says in info.value.message
        assert str(info.value) == info.value.message
        assert info.value.errors == [FieldError("body", info.value.message)]
        assert isinstance(info.value, InvalidLead)


class TestEmail:
    """Emails are syntax-checked, lower-cased whole, and split into their domain."""

    def test_lower_cased(self) -> None:
        lead = norm(email="  Jane.DOE@Acme.COM ")
        assert (lead.email, lead.email_domain) == ("jane.doe@acme.com", "acme.com")

    @pytest.mark.parametrize("email", ["jane", "jane@", "jane@@acme.com", "jane doe@acme.com", "a@acme"])
    def test_invalid(self, email: str) -> None:
        errors = norm_errors(email=email)
        assert list(errors) == ["email"]
        assert errors["email"]

    @pytest.mark.parametrize("domain", ["gmail.com", "yahoo.co.uk", "hotmail.fr", "gmx.de", "outlook.com"])
    def test_free(self, domain: str) -> None:
        lead = norm(email=f"someone@{domain.upper()}")
        assert lead.is_free_email
        assert lead.company_domain is None

    def test_corporate_is_not_free(self) -> None:
        lead = norm(email="jane@acme-robotics.com")
        assert not lead.is_free_email
        assert lead.company_domain == "acme-robotics.com"


class TestPhone:
    """Phones become E.164 using the lead's country as the region for national formats."""

    @pytest.mark.parametrize(
        ("phone", "country", "e164"),
        [
            ("020 7946 0958", "GB", "+442079460958"),
            ("(415) 555-2671", "US", "+14155552671"),
            ("(415) 555-2671", "United States", "+14155552671"),
            ("+49 30 123456", None, "+4930123456"),
            ("+44 20 7946 0958", "US", "+442079460958"),
        ],
    )
    def test_e164(self, phone: str, country: str | None, e164: str) -> None:
        lead = norm(phone=f" {phone} ", country=country)
        assert (lead.phone, lead.phone_e164) == (phone, e164)

    @pytest.mark.parametrize("phone", ["call me", "12345", "(415) 555-2671", "+1 000 000 0000"])
    def test_unusable_phone_kept_with_a_warning_when_email_reaches_the_lead(self, phone: str) -> None:
        lead, warnings = norm_warnings(phone=phone)  # no country: national numbers cannot be read
        assert (lead.phone, lead.phone_e164) == (phone, None)
        assert list(warnings) == ["phone"]
        assert "kept as sent" in warnings["phone"]
        assert phone not in warnings["phone"]  # the value is never echoed

    def test_unusable_phone_next_to_an_email_is_an_error_when_the_policy_rejects(self) -> None:
        assert list(norm_errors(phone="call me")) == ["phone"]

    def test_valid_phone_gives_no_warning(self) -> None:
        assert norm_warnings(phone="+44 20 7946 0958")[1] == {}

    @pytest.mark.parametrize("phone", ["call me", "(415) 555-2671", "+1 000 000 0000"])
    def test_unusable_phone_is_an_error_when_it_is_the_only_contact(self, phone: str) -> None:
        lenient = FieldPolicy()  # whatever the policy says
        assert list(norm_errors(lenient, email=None, phone=phone)) == ["phone"]

    def test_unusable_phone_reported_with_a_bad_email(self) -> None:
        assert set(norm_errors(email="nope", phone="nope")) == {"email", "phone"}


class TestCountry:
    """Countries given as codes or common names become ISO alpha-2; unknown ones are errors."""

    @pytest.mark.parametrize(
        ("given", "code"),
        [
            ("us", "US"),
            ("USA", "US"),
            ("U.S.A.", "US"),
            ("United States", "US"),
            ("UK", "GB"),
            ("GBR", "GB"),
            ("United Kingdom", "GB"),
            ("826", "GB"),
            ("76", "BR"),
            ("Deutschland", "DE"),
            ("germany", "DE"),
            ("The Netherlands", "NL"),
            ("  France ", "FR"),
            ("JPN", "JP"),
        ],
    )
    def test_to_alpha_2(self, given: str, code: str) -> None:
        assert norm(country=given).country == code

    def test_unknown_is_an_error_when_the_policy_rejects(self) -> None:
        assert list(norm_errors(country="Narnia")) == ["country"]

    def test_unknown_is_a_warning_by_default(self) -> None:
        lead, warnings = norm_warnings(country="Narnia")
        assert lead.country is None
        assert list(warnings) == ["country"]


class TestCompanyDomain:
    """The company domain is the registrable domain (Public Suffix List) of the website, else of
    a corporate (not free) email: every host of one company is one account."""

    @pytest.mark.parametrize(
        ("website", "domain"),
        [
            ("https://www.Acme.com/path", "acme.com"),
            ("acme.io", "acme.io"),
            ("http://sub.acme.co.uk:8080", "acme.co.uk"),
            ("WWW.ACME.COM.", "acme.com"),
            ("https://acme.com?utm_source=x", "acme.com"),
            ("shop.acme.co.uk", "acme.co.uk"),  # a two-label public suffix
            ("https://eu.shop.acme.com.au/", "acme.com.au"),
            ("sales.acme.example", "acme.example"),  # unknown TLD: the PSL's default rule "*"
            ("intranet.acme.internal", "acme.internal"),
            ("acme.github.io", "acme.github.io"),  # PSL private suffix: a company per subdomain
            ("https://xn--bcher-kva.de", "bücher.de"),  # punycode and Unicode: one form
            ("https://www.BÜCHER.de/", "bücher.de"),
            ("shop.xn--p1ai", "shop.рф"),  # an IDN top-level domain
        ],
    )
    def test_from_website(self, website: str, domain: str) -> None:
        lead = norm(email="jane@gmail.com", website=f" {website} ")
        assert (lead.website, lead.company_domain) == (website, domain)

    @pytest.mark.parametrize(
        "website",
        [
            "acme",
            "localhost",
            "http://localhost:8000",
            "ac me.com",
            "http://acme.com:99999",
            "ftp://acme.com",
            "mailto:jane@acme.com",
            "10.0.0.1",  # IP literals are not a company's domain
            "http://192.168.1.20/form",
            "http://[2001:db8::1]/",
            "co.uk",  # a public suffix is nobody's domain
            "github.io",
            "acme_corp.com",  # not a host name
        ],
    )
    def test_garbage_website(self, website: str) -> None:
        assert list(norm_errors(website=website)) == ["website"]

    def test_garbage_website_is_a_warning_by_default_and_the_email_gives_the_domain(self) -> None:
        lead, warnings = norm_warnings(email="jane@sales.acme.com", website="n/a")
        assert (lead.website, lead.company_domain) == ("n/a", "acme.com")
        assert list(warnings) == ["website"]

    @pytest.mark.parametrize(
        ("email", "domain"),
        [
            ("y@sales.acme.example", "acme.example"),
            ("y@eu.sales.acme.co.uk", "acme.co.uk"),
            ("y@acme.co.uk", "acme.co.uk"),
            ("y@mail.bücher.de", "bücher.de"),
            ("y@mail.xn--bcher-kva.de", "bücher.de"),
        ],
    )
    def test_from_email_subdomains(self, email: str, domain: str) -> None:
        lead = norm(email=email)
        assert lead.company_domain == domain
        assert lead.email_domain == email.split("@")[1].replace("xn--bcher-kva", "bücher")

    def test_free_mail_gives_no_account_even_from_a_subdomain(self) -> None:
        # today's rule kept: a free-mail address is no company; a host under a free-mail domain
        # would otherwise make every such lead one "gmail.com" account
        lead = norm(email="someone@mail.gmail.com")
        assert lead.company_domain is None
        assert not lead.is_free_email  # is_free_email still means "this exact domain is free-mail"

    def test_website_wins_over_email(self) -> None:
        assert norm(email="jane@acme.com", website="acme.io").company_domain == "acme.io"

    def test_from_corporate_email(self) -> None:
        assert norm(email="jane@Acme.com").company_domain == "acme.com"

    def test_none_from_free_email(self) -> None:
        assert norm(email="jane@gmail.com").company_domain is None


class TestTidyFields:
    """Strings are trimmed, empty ones dropped, names collapsed, source and utm lower-cased."""

    def test_tidy(self) -> None:
        lead = norm(
            first_name="  Mary  Ann ",
            last_name="",
            title="VP \t of  Sales",
            company=" Acme   Robotics  GmbH ",
            city="  Berlin ",
            region="   ",
            source=" HubSpot ",
            utm_source="Google",
            utm_medium="CPC",
            utm_campaign="Spring_Launch",
            industry=" Software ",
            employees=12,
            annual_revenue=3.5e6,
            attributes={"form": "Demo"},
        )
        assert (lead.first_name, lead.last_name, lead.title, lead.company) == (
            "Mary Ann",
            None,
            "VP of Sales",
            "Acme Robotics GmbH",
        )
        assert (lead.city, lead.region, lead.industry) == ("Berlin", None, "Software")
        assert (lead.source, lead.utm_source, lead.utm_medium, lead.utm_campaign) == (
            "hubspot",
            "google",
            "cpc",
            "spring_launch",
        )
        assert (lead.employees, lead.annual_revenue, lead.attributes) == (12, 3.5e6, {"form": "Demo"})

    def test_naive_occurred_at_is_utc(self) -> None:
        assert norm(occurred_at=datetime(2025, 1, 1, 12)).occurred_at == datetime(2025, 1, 1, 12, tzinfo=UTC)


class TestDomains:
    """The Public Suffix List comes from tldextract's bundled snapshot: no network, no cache file."""

    def test_no_network_and_no_files(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
        import socket

        import tldextract

        def refuse(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("the Public Suffix List must not be fetched")

        monkeypatch.setattr(socket.socket, "connect", refuse)
        monkeypatch.setattr(socket, "create_connection", refuse)
        monkeypatch.setenv("HOME", str(tmp_path))  # where a default cache would be written
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        fresh = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())
        assert fresh("shop.acme.co.uk").suffix == "co.uk"
        registrable_domain.cache_clear()
        assert registrable_domain("www.shop.acme.co.uk") == "acme.co.uk"
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize(
        ("host", "canonical"),
        [
            ("WWW.Acme.COM.", "www.acme.com"),
            ("xn--bcher-kva.de", "bücher.de"),
            ("localhost", None),
            ("10.0.0.1", None),
            ("::1", None),
            ("a..b", None),
            ("-acme.com", None),
        ],
    )
    def test_canonical_host(self, host: str, canonical: str | None) -> None:
        assert canonical_host(host) == canonical

    @pytest.mark.parametrize("host", ["co.uk", "com", "github.io"])
    def test_a_public_suffix_has_no_registrable_domain(self, host: str) -> None:
        assert registrable_domain(host) is None


class TestReadLeadNamesEveryFieldInOneError:
    """read_lead reports type errors and normalization errors together, in the schema's order."""

    def read_errors(self, raw: bytes, policy: FieldPolicy = STRICT) -> list[str]:
        with pytest.raises(InvalidLead) as info:
            read_lead(raw, policy)
        return [e.field for e in info.value.errors]

    def test_type_errors_and_a_bad_email_together(self) -> None:
        # msgspec alone would stop at the first; parse then normalize used to stop after parse
        raw = body(employees="lots", email="not-an-email", title=5)
        assert self.read_errors(raw) == ["email", "title", "employees"]

    def test_order_is_the_schemas_whatever_the_body_order(self) -> None:
        fields = {
            "zz": {"deep": 1},
            "attributes": {"b": [[1]], "a": {"x": 1}},
            "country": "Atlantis",
            "website": "no dots",
            "annual_revenue": "x",
            "phone": "call me",
            "email": "x@",
            "occurred_at": "yesterday",
        }
        expected = [
            "occurred_at",
            "email",
            "phone",
            "website",
            "country",
            "annual_revenue",
            "attributes.a",
            "attributes.b",
            "attributes.zz",
        ]
        assert self.read_errors(body(**fields)) == expected
        assert self.read_errors(body(**dict(reversed(fields.items())))) == expected

    def test_parse_lead_alone_uses_the_same_order(self) -> None:
        raw = body(utm_source=1, email=2, attributes={"b": {}, "a": {}})
        assert list(parse_errors(raw)) == ["email", "utm_source", "attributes.a", "attributes.b"]

    def test_warnings_come_back_with_the_lead(self) -> None:
        read = read_lead(body(email="jane@acme.com", country="Narnia", phone="call me", website="n/a"))
        assert [w.field for w in read.warnings] == ["phone", "website", "country"]
        assert all(isinstance(w, FieldWarning) for w in read.warnings)
        assert (read.lead.email, read.lead.company_domain) == ("jane@acme.com", "acme.com")

    def test_bad_attributes_do_not_hide_other_errors(self) -> None:
        assert self.read_errors(body(email="x@", plan={"a": 1})) == ["email", "attributes.plan"]


class TestNormalizeReportsEveryField:
    """normalize raises one InvalidLead naming each bad field."""

    def test_several(self) -> None:
        assert set(norm_errors(email="x@", country="Atlantis", website="no dots")) == {
            "email",
            "country",
            "website",
        }

    def test_end_to_end(self) -> None:
        raw = body(
            email="Jane@Acme.com",
            phone="020 7946 0958",
            country="United Kingdom",
            website="acme.co.uk",
            form="demo",
        )
        lead = normalize(parse_lead(raw))
        assert (lead.phone_e164, lead.country, lead.company_domain, lead.attributes) == (
            "+442079460958",
            "GB",
            "acme.co.uk",
            {"form": "demo"},
        )
