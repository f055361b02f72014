"""The load-test lead generator: deterministic, valid for intake, and varied like real traffic."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from loadtests.demo import demo_activities, demo_lead
from loadtests.leads import Lead, generate_leads, make_lead

from leadroute.intake import normalize, parse_event, parse_lead
from leadroute.models import NormalizedLead

_ENCODER = msgspec.json.Encoder()
_COUNT = 500


@pytest.fixture(scope="module")
def raw_leads() -> list[Lead]:
    return list(generate_leads(_COUNT, seed=7))


@pytest.fixture(scope="module")
def leads(raw_leads: list[Lead]) -> list[NormalizedLead]:
    return [normalize(parse_lead(_ENCODER.encode(raw))) for raw in raw_leads]


class TestDeterminism:
    """The same seed and index always give the same lead; event ids never repeat."""

    def test_same_arguments_same_lead(self) -> None:
        assert make_lead(3, 41) == make_lead(3, 41)
        assert make_lead(3, 41) != make_lead(4, 41)

    def test_event_ids_unique(self, raw_leads: list[Lead]) -> None:
        assert len({lead["event_id"] for lead in raw_leads}) == _COUNT


class TestValidForIntake:
    """Every generated lead passes parse_lead and normalize."""

    def test_all_accepted(self, leads: list[NormalizedLead]) -> None:
        assert len(leads) == _COUNT

    def test_every_phone_reads_as_e164(self, raw_leads: list[Lead], leads: list[NormalizedLead]) -> None:
        with_phone = [lead for raw, lead in zip(raw_leads, leads, strict=True) if "phone" in raw]
        assert with_phone
        assert all(lead.phone_e164 is not None for lead in with_phone)


class TestVaried:
    """Leads spread over countries, email kinds, seniorities, sizes and sources."""

    def test_countries(self, leads: list[NormalizedLead]) -> None:
        countries = Counter(lead.country for lead in leads)
        assert len(countries) >= 8
        assert countries.most_common(1)[0][0] == "US"

    def test_free_and_corporate_email(self, leads: list[NormalizedLead]) -> None:
        free = sum(lead.is_free_email for lead in leads) / len(leads)
        assert 0.2 < free < 0.45

    def test_corporate_leads_have_a_company_domain(self, leads: list[NormalizedLead]) -> None:
        assert all(lead.company_domain for lead in leads if not lead.is_free_email)

    def test_seniorities(self, raw_leads: list[Lead]) -> None:
        titles = {raw["title"] for raw in raw_leads}
        assert "Student" in titles
        assert any(t.startswith(("CEO", "Chief", "Founder")) for t in titles)
        assert any(t.startswith(("VP", "Vice", "SVP")) for t in titles)
        assert len(titles) >= 20

    def test_sizes_and_revenue_fit(self, leads: list[NormalizedLead]) -> None:
        sized = [lead for lead in leads if lead.employees and lead.annual_revenue]
        assert min(lead.employees or 0 for lead in sized) <= 10
        assert max(lead.employees or 0 for lead in sized) > 10_000
        assert all(10_000 < (lead.annual_revenue or 0) / (lead.employees or 1) < 2_000_000 for lead in sized)

    def test_sources_and_attributes(self, leads: list[NormalizedLead]) -> None:
        assert len({lead.source for lead in leads}) >= 4
        assert {lead.attributes.get("form") for lead in leads} >= {"demo", "contact", "newsletter"}
        assert any("product_interest" in lead.attributes for lead in leads)


class TestDemoHistory:
    """The demo history (scripts/demo-leads) is the same on every run, and valid for the API."""

    def test_leads_and_activities_are_repeatable(self) -> None:
        now = datetime(2026, 12, 1, tzinfo=UTC)
        assert demo_lead(5) == demo_lead(5)
        assert demo_activities(5, "x", now) == demo_activities(5, "x", now)

    def test_some_leads_have_activities_of_the_last_30_days_that_parse(self) -> None:
        now = datetime(2026, 12, 1, tzinfo=UTC)
        lead_id = "0b6c1f9e-0000-4000-8000-000000000000"
        events = [event for index in range(200) for event in demo_activities(index, lead_id, now)]
        with_events = sum(1 for index in range(200) if demo_activities(index, lead_id, now))
        assert 50 < with_events < 110  # about 40%
        assert {event["type"] for event in events} == {"page_view", "webinar_attended", "email_click"}
        for event in events:
            parsed = parse_event(_ENCODER.encode(event))
            assert now - timedelta(days=30) <= parsed.occurred_at <= now
        assert len({event["event_id"] for event in events}) == len(events)
