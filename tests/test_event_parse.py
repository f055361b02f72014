"""Parsing activity events: every bad field named, nothing echoed back."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from leadroute.intake import InvalidEvent, MalformedBody, parse_event
from leadroute.intake.events import FUTURE_TOLERANCE


def test_a_valid_event_by_email() -> None:
    event = parse_event(
        b'{"type": "page_view", "occurred_at": "2026-11-20T10:00:00Z", "email": "Jo@Acme.example",'
        b' "properties": {"url": "/pricing", "seconds": 40}}'
    )
    assert event.type == "page_view"
    assert event.occurred_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert event.properties == {"url": "/pricing", "seconds": 40}
    assert event.lead_id is None


def test_a_valid_event_by_lead_id() -> None:
    lead_id = uuid.uuid4()
    event = parse_event(
        f'{{"type": "webinar_attended", "occurred_at": "2026-11-20T10:00:00+01:00", "lead_id": "{lead_id}",'
        f' "event_id": "evt-1"}}'.encode()
    )
    assert event.lead_id == lead_id
    assert event.event_id == "evt-1"
    assert event.properties == {}


def fields(body: bytes, now: datetime | None = None) -> dict[str, str]:
    with pytest.raises(InvalidEvent) as info:
        parse_event(body, now=now)
    return {e.field: e.message for e in info.value.errors}


def test_every_bad_field_is_named() -> None:
    errors = fields(
        b'{"type": "Page View", "occurred_at": "2026-11-20T10:00:00", "lead_id": "42", "url": "/pricing"}'
    )
    assert set(errors) == {"type", "occurred_at", "lead_id", "url"}
    assert "timezone" in errors["occurred_at"]
    assert "properties" in errors["url"]


def test_the_lead_must_be_named_and_type_and_time_given() -> None:
    errors = fields(b"{}")
    assert set(errors) == {"type", "occurred_at", "lead_id"}


HEAD = '"type": "x", "occurred_at": "2026-11-20T10:00:00Z", "email": "a@b.example"'


def test_properties_are_flat_and_bounded() -> None:
    errors = fields(f'{{{HEAD}, "properties": {{"url": "/x", "a": {{"b": 1}}, "bad key": 1}}}}'.encode())
    assert set(errors) == {"properties.a", "properties.bad key"}
    many = ", ".join(f'"k{i}": {i}' for i in range(51))
    assert "properties" in fields(f'{{{HEAD}, "properties": {{{many}}}}}'.encode())


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_an_object(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse_event(body)


def test_an_event_dated_more_than_a_day_ahead_of_the_clock_is_refused() -> None:
    now = datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert timedelta(hours=24) == FUTURE_TOLERANCE  # the documented tolerance

    def body(when: str) -> bytes:
        return f'{{"type": "x", "occurred_at": "{when}", "email": "a@b.example"}}'.encode()

    errors = fields(body("9999-12-31T23:59:59Z"), now=now)
    assert set(errors) == {"occurred_at"}
    assert errors["occurred_at"] == (
        "is more than 24 hours after the service's clock (2026-11-20T10:00:00Z); "
        "send when the activity happened, with its time zone (Z or an offset like +02:00)"
    )
    assert set(fields(body("2026-11-21T10:00:01Z"), now=now)) == {"occurred_at"}
    # Within the tolerance (clock skew, a time zone written wrong), and in the past: accepted.
    assert parse_event(body("2026-11-21T10:00:00Z"), now=now).occurred_at == now + FUTURE_TOLERANCE
    assert parse_event(body("2026-11-21T11:00:00+02:00"), now=now).occurred_at < now + FUTURE_TOLERANCE
    assert parse_event(body("2020-01-01T00:00:00Z"), now=now).type == "x"
    # Reported with the other bad fields, at once.
    both = b'{"type": "Bad Type", "occurred_at": "9999-12-31T00:00:00Z", "email": "a@b.example"}'
    assert set(fields(both, now=now)) == {"type", "occurred_at"}


def with_properties(**properties: object) -> bytes:
    """An event of a known lead with these properties."""
    head = {"type": "x", "occurred_at": "2026-11-20T10:00:00Z", "email": "a@b.example"}
    return json.dumps(head | {"properties": properties}).encode()


class TestOneErrorNamesEverything:
    """An event's errors come in one InvalidEvent, the email and the property types included, in
    the schema's order (type, occurred_at, event_id, lead_id, email, properties, then unknown
    fields by name), properties by key."""

    def test_bad_email_with_other_errors(self) -> None:
        body = (
            b'{"type": "Page View", "occurred_at": "2026-11-20T10:00:00Z", "email": "nope", "zz": 1, "aa": 2}'
        )
        with pytest.raises(InvalidEvent) as info:
            parse_event(body)
        assert [e.field for e in info.value.errors] == ["type", "email", "aa", "zz"]

    def test_declared_property_types(self) -> None:
        declared = {"url": "STRING", "minutes": "FLOAT", "live": "BOOLEAN", "tags": "ARRAY", "at": "DATETIME"}
        body = with_properties(url=5, minutes="ten", live=1, tags="a", at="yesterday", other={"x": 1})
        with pytest.raises(InvalidEvent) as info:
            parse_event(body, declared=declared)
        errors = {e.field: e.message for e in info.value.errors}
        assert list(errors) == [
            "properties.at",
            "properties.live",
            "properties.minutes",
            "properties.other",
            "properties.tags",
            "properties.url",
        ]
        assert errors["properties.url"] == "must be a string (declared STRING in the ruleset)"
        assert "declared FLOAT" in errors["properties.minutes"]

    def test_declared_types_accept_their_values_ints_as_floats_and_null(self) -> None:
        declared = {"url": "STRING", "minutes": "FLOAT", "live": "BOOLEAN", "at": "DATETIME"}
        body = with_properties(url="/pricing", minutes=45, live=True, at="2026-11-20T10:00:00+01:00", note=5)
        assert parse_event(body, declared=declared).properties["minutes"] == 45
        nulls = with_properties(url=None, minutes=2.5)
        assert parse_event(nulls, declared=declared).properties == {"url": None, "minutes": 2.5}

    def test_true_is_not_a_number(self) -> None:
        body = with_properties(minutes=True)
        with pytest.raises(InvalidEvent) as info:
            parse_event(body, declared={"minutes": "FLOAT"})
        assert [e.field for e in info.value.errors] == ["properties.minutes"]


class TestTypedProperties:
    """What rules see of stored properties: mismatched declared values are absent."""

    def test_mismatches_are_left_out_and_datetimes_parsed(self) -> None:
        from leadroute.intake.events import typed_properties

        seen = typed_properties(
            {"url": 5, "minutes": 3, "note": [1], "at": "2026-11-20T10:00:00Z"},
            {"url": "STRING", "minutes": "FLOAT", "at": "DATETIME"},
        )
        assert seen == {"minutes": 3, "note": [1], "at": datetime(2026, 11, 20, 10, tzinfo=UTC)}
