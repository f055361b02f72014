"""Rule evaluation cost: compiled vs rule-engine vs hand-written Python, in one run.

    .venv/bin/python benchmarks/bench_rules.py [--leads 300] [--repeat 7]

Two rule sets: the default ``rules/inbound.yaml`` (its lead scoring, qualification and routing
rules; ``on_activity`` rules are not timed) and 50 realistic scoring rules (below). Each is
evaluated over the same generated leads by rule-engine's tree walker, by the compiled
evaluator, and by Python written by hand for the same rules. Every timing is the minimum of
``--repeat`` runs over all leads (timeit-style: the minimum is the run least disturbed by other
processes), divided by the number of leads, and the ratios compare numbers from this run only.
Before timing, all three are checked to give the same result for every rule and lead, so the
hand-written code is a fair equivalent.

Not a test: nothing fails on a slow machine. Results and the machine they came from:
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import sys
import time
import timeit
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import rule_engine
import yaml

from leadroute.models import NormalizedLead
from leadroute.rules import Ruleset, parse_ruleset
from leadroute.rules.compiler import CompiledEvaluator, compiled_section
from leadroute.rules.evaluator import RuleEngineEvaluator
from leadroute.scoring import evaluate

ROOT = Path(__file__).resolve().parent.parent
Facts = Mapping[str, Any]
Section = Callable[[Facts], Sequence[object]]

# -- generated leads --------------------------------------------------------------------------

TITLES = [
    "VP Sales", "Chief Executive Officer", "IT Manager", "Student", "Head of Operations", "Analyst",
    "Director of Marketing", "Software Engineer", "Founder & CEO", "Team Lead, Data", "Intern", None,
]  # fmt: skip
COUNTRIES = ["US", "CA", "DE", "GB", "FR", "BR", "IN", "NL", "SE", "JP", None]
DOMAINS = ["acme.example", "gmail.com", "mit.edu", "kraftwerk.example", "ox.ac.uk", "test.com", None]
INDUSTRIES = ["Software", "SaaS", "Retail", "Financial Services", "Healthcare", "Education", None]
MEDIUMS = ["cpc", "email", "organic", "referral", "partner", "social", None]
FORMS = ["demo", "contact", "pricing", "ebook", "webinar", "newsletter", None]


def make_leads(count: int, seed: int = 7) -> list[NormalizedLead]:
    rng = random.Random(seed)
    leads = []
    for _ in range(count):
        domain = rng.choice(DOMAINS)
        form = rng.choice(FORMS)
        leads.append(
            NormalizedLead(
                source=rng.choice(["web_form", "crm", "import", None]),
                email=f"someone@{domain}" if domain else None,
                email_domain=domain,
                is_free_email=domain == "gmail.com",
                first_name=rng.choice(["Jane", "Test", "Max", "asdf", None]),
                last_name=rng.choice(["Doe", "Tester", "Kim", None]),
                phone_e164=rng.choice(["+14155550100", None]),
                title=rng.choice(TITLES),
                website=rng.choice(["https://acme.example", None]),
                company_domain=rng.choice(["acme.example", "rivalsoft.example", None]),
                country=rng.choice(COUNTRIES),
                employees=rng.choice([None, 5, 40, 120, 450, 2500, 12000]),
                annual_revenue=rng.choice([None, 2e6, 3.5e7, 2.5e8]),
                industry=rng.choice(INDUSTRIES),
                utm_medium=rng.choice(MEDIUMS),
                attributes={"form": form} if form else {},
            )
        )
    return leads


# -- the default ruleset, written by hand ---------------------------------------------------------

C_LEVEL = re.compile(r"(?i)\b(chief|ceo|cto|cfo|coo|cmo|cio|cro|founder|president)\b")
VP_DIRECTOR = re.compile(r"(?i)\b(vp|svp|evp|vice president|director|head of)\b")
MANAGER = re.compile(r"(?i)\b(manager|team lead|lead)\b")
STUDENT = re.compile(r"(?i)\b(student|intern|trainee)\b")
TARGET_INDUSTRY = re.compile(
    r"(?i)(software|saas|fintech|financial services|insurance|healthcare|manufacturing)"
)
STUDENT_EMAIL = re.compile(r"[.](edu|ac[.][a-z]{2})$")
TEST_NAME = re.compile(r"(?i)^test")
JUNK_NAME = re.compile(r"(?i)^(asdf|qwerty|xxx+|test)$")
TARGET_COUNTRIES = frozenset(
    ["US", "CA", "GB", "IE", "DE", "FR", "NL", "BE", "SE", "DK", "NO", "FI", "ES", "IT", "CH", "AT"]
)
EMEA = frozenset(
    [
        "GB",
        "IE",
        "DE",
        "FR",
        "NL",
        "BE",
        "LU",
        "SE",
        "DK",
        "NO",
        "FI",
        "ES",
        "PT",
        "IT",
        "CH",
        "AT",
        "PL",
        "CZ",
    ]
)
COMPETITORS = frozenset(["competitor.example", "rivalsoft.example"])
TEST_DOMAINS = frozenset(["example.com", "example.org", "example.net", "test.com", "mailinator.com"])


def _search(pattern: re.Pattern[str], value: str | None) -> bool:
    return value is not None and pattern.search(value) is not None


def hand_inbound_scoring(f: Facts) -> list[bool]:
    title, employees, revenue = f.get("title"), f.get("employees") or 0, f.get("annual_revenue") or 0
    form, medium = f["attributes"].get("form"), f.get("utm_medium")
    email_domain, free = f.get("email_domain"), f.get("is_free_email")
    return [
        title is not None and C_LEVEL.search(title) is not None,
        title is not None and VP_DIRECTOR.search(title) is not None,
        title is not None and MANAGER.search(title) is not None,
        title is not None and STUDENT.search(title) is not None,
        employees >= 1000,
        200 <= employees < 1000,
        50 <= employees < 200,
        1 <= employees < 10,
        revenue >= 100_000_000,
        10_000_000 <= revenue < 100_000_000,
        _search(TARGET_INDUSTRY, f.get("industry")),
        f.get("country") in TARGET_COUNTRIES,
        email_domain is not None and not free,
        free is True,
        email_domain is not None and STUDENT_EMAIL.search(email_domain) is not None,
        _search(TEST_NAME, f.get("first_name")) or _search(TEST_NAME, f.get("last_name")),
        f.get("phone_e164") is not None,
        f.get("website") is not None,
        form == "demo",
        form in ("contact", "pricing"),
        form in ("ebook", "whitepaper", "webinar"),
        form == "newsletter",
        f.get("source") == "web_form",
        medium in ("cpc", "ppc", "paid_search"),
        medium == "email",
        medium == "organic",
        medium in ("referral", "partner"),
    ]


def hand_inbound_qualification(f: Facts) -> list[bool]:
    email_domain, score, fit = f.get("email_domain"), f["score"], f["groups"]["fit"]
    return [
        email_domain in COMPETITORS or f.get("company_domain") in COMPETITORS,
        email_domain in TEST_DOMAINS,
        _search(JUNK_NAME, f.get("first_name")) and _search(JUNK_NAME, f.get("last_name")),
        score >= 70 and fit >= 30,
        score >= 40,
        True,
    ]


def hand_inbound_routing(f: Facts) -> list[bool]:
    country, stage = f.get("country"), f["stage"]
    return [
        stage != "disqualified",
        stage in ("sql", "mql") and (f.get("employees") or 0) >= 1000 and country in ("US", "CA"),
        country in EMEA,
        True,
    ]


# -- 50 realistic scoring rules, and the same written by hand ---------------------------------------

RULES_50 = [
    r'title =~~ "(?i)\\b(chief|ceo|cto|cfo|coo|cmo|cio|cro)\\b"',
    r'title =~~ "(?i)\\b(founder|co-founder|owner|president)\\b"',
    r'title =~~ "(?i)\\b(vp|svp|evp|vice president)\\b"',
    r'title =~~ "(?i)\\b(director|head of)\\b"',
    r'title =~~ "(?i)\\b(manager|team lead)\\b"',
    r'title =~~ "(?i)\\b(engineer|developer|architect)\\b"',
    r'title =~~ "(?i)\\b(analyst|specialist|coordinator)\\b"',
    r'title =~~ "(?i)\\b(student|intern|trainee)\\b"',
    r'title =~~ "(?i)\\b(sales|revenue|growth)\\b"',
    r'title =~~ "(?i)\\b(marketing|demand gen)\\b"',
    r'title =~~ "(?i)\\b(it|information technology|security)\\b"',
    "title == null",
    "(employees ?? 0) >= 10000",
    "(employees ?? 0) >= 1000 and (employees ?? 0) < 10000",
    "(employees ?? 0) >= 200 and (employees ?? 0) < 1000",
    "(employees ?? 0) >= 50 and (employees ?? 0) < 200",
    "(employees ?? 0) >= 10 and (employees ?? 0) < 50",
    "(employees ?? 0) >= 1 and (employees ?? 0) < 10",
    "employees == null",
    "(annual_revenue ?? 0) >= 1000000000",
    "(annual_revenue ?? 0) >= 100000000 and (annual_revenue ?? 0) < 1000000000",
    "(annual_revenue ?? 0) >= 10000000 and (annual_revenue ?? 0) < 100000000",
    "(annual_revenue ?? 0) > 0 and (annual_revenue ?? 0) < 10000000",
    'industry =~~ "(?i)(software|saas|cloud)"',
    'industry =~~ "(?i)(fintech|financial services|banking|insurance)"',
    'industry =~~ "(?i)(healthcare|pharma|biotech)"',
    'industry =~~ "(?i)(education|non-profit|government)"',
    'country in ["US", "CA"]',
    'country in ["GB", "IE", "DE", "FR", "NL", "BE", "LU", "CH", "AT"]',
    'country in ["SE", "DK", "NO", "FI", "IS"]',
    'country in ["ES", "PT", "IT", "PL", "CZ"]',
    'country in ["AU", "NZ", "SG", "JP"]',
    "country == null",
    "email_domain != null and not is_free_email",
    "is_free_email",
    'email_domain =~~ "[.](edu|ac[.][a-z]{2})$"',
    'email_domain in ["competitor.example", "rivalsoft.example"]',
    'first_name =~~ "(?i)^test" or last_name =~~ "(?i)^test"',
    "phone_e164 != null",
    "website != null",
    'attributes.form == "demo"',
    'attributes.form in ["contact", "pricing"]',
    'attributes.form in ["ebook", "whitepaper", "webinar"]',
    'attributes.form == "newsletter"',
    'source == "web_form"',
    'source in ["crm", "import"]',
    'utm_medium in ["cpc", "ppc", "paid_search"]',
    'utm_medium == "email"',
    'utm_medium in ["referral", "partner"]',
    'utm_medium == "organic" and source == "web_form"',
]

(
    T0,
    T1,
    T2,
    T3,
    T4,
    T5,
    T6,
    T7,
    T8,
    T9,
    T10,
) = (
    re.compile(r"(?i)\b(chief|ceo|cto|cfo|coo|cmo|cio|cro)\b"),
    re.compile(r"(?i)\b(founder|co-founder|owner|president)\b"),
    re.compile(r"(?i)\b(vp|svp|evp|vice president)\b"),
    re.compile(r"(?i)\b(director|head of)\b"),
    re.compile(r"(?i)\b(manager|team lead)\b"),
    re.compile(r"(?i)\b(engineer|developer|architect)\b"),
    re.compile(r"(?i)\b(analyst|specialist|coordinator)\b"),
    re.compile(r"(?i)\b(student|intern|trainee)\b"),
    re.compile(r"(?i)\b(sales|revenue|growth)\b"),
    re.compile(r"(?i)\b(marketing|demand gen)\b"),
    re.compile(r"(?i)\b(it|information technology|security)\b"),
)
I0, I1, I2, I3 = (
    re.compile(r"(?i)(software|saas|cloud)"),
    re.compile(r"(?i)(fintech|financial services|banking|insurance)"),
    re.compile(r"(?i)(healthcare|pharma|biotech)"),
    re.compile(r"(?i)(education|non-profit|government)"),
)
NA = frozenset(["US", "CA"])
WEST_EU = frozenset(["GB", "IE", "DE", "FR", "NL", "BE", "LU", "CH", "AT"])
NORDICS = frozenset(["SE", "DK", "NO", "FI", "IS"])
SOUTH_EU = frozenset(["ES", "PT", "IT", "PL", "CZ"])
APAC = frozenset(["AU", "NZ", "SG", "JP"])


def hand_50(f: Facts) -> list[bool]:
    title, industry, country = f.get("title"), f.get("industry"), f.get("country")
    employees, revenue = f.get("employees"), f.get("annual_revenue")
    e, r = employees or 0, revenue or 0
    email_domain, free = f.get("email_domain"), f.get("is_free_email")
    form, source, medium = f["attributes"].get("form"), f.get("source"), f.get("utm_medium")
    return [
        title is not None and T0.search(title) is not None,
        title is not None and T1.search(title) is not None,
        title is not None and T2.search(title) is not None,
        title is not None and T3.search(title) is not None,
        title is not None and T4.search(title) is not None,
        title is not None and T5.search(title) is not None,
        title is not None and T6.search(title) is not None,
        title is not None and T7.search(title) is not None,
        title is not None and T8.search(title) is not None,
        title is not None and T9.search(title) is not None,
        title is not None and T10.search(title) is not None,
        title is None,
        e >= 10000,
        1000 <= e < 10000,
        200 <= e < 1000,
        50 <= e < 200,
        10 <= e < 50,
        1 <= e < 10,
        employees is None,
        r >= 1_000_000_000,
        100_000_000 <= r < 1_000_000_000,
        10_000_000 <= r < 100_000_000,
        0 < r < 10_000_000,
        industry is not None and I0.search(industry) is not None,
        industry is not None and I1.search(industry) is not None,
        industry is not None and I2.search(industry) is not None,
        industry is not None and I3.search(industry) is not None,
        country in NA,
        country in WEST_EU,
        country in NORDICS,
        country in SOUTH_EU,
        country in APAC,
        country is None,
        email_domain is not None and not free,
        free is True,
        email_domain is not None and STUDENT_EMAIL.search(email_domain) is not None,
        email_domain in COMPETITORS,
        _search(TEST_NAME, f.get("first_name")) or _search(TEST_NAME, f.get("last_name")),
        f.get("phone_e164") is not None,
        f.get("website") is not None,
        form == "demo",
        form in ("contact", "pricing"),
        form in ("ebook", "whitepaper", "webinar"),
        form == "newsletter",
        source == "web_form",
        source in ("crm", "import"),
        medium in ("cpc", "ppc", "paid_search"),
        medium == "email",
        medium in ("referral", "partner"),
        medium == "organic" and source == "web_form",
    ]


def ruleset_50() -> str:
    rules = [
        {"id": f"r{i:02d}", "group": "fit", "when": when, "points": 5 if i % 3 else -5}
        for i, when in enumerate(RULES_50)
    ]
    document = {
        "version": 1,
        "description": "50 scoring rules (benchmark)",
        "fields": {"attributes.form": "STRING"},
        "scoring": {"groups": {"fit": {"max": 100, "min": 0}}, "rules": rules},
        "qualification": [{"stage": "lead"}],
        "routing": {"rules": [{"id": "all", "when": "true", "pool": "inbound"}], "fallback": "unassigned"},
    }
    return yaml.safe_dump(document, sort_keys=False)


# -- measuring ------------------------------------------------------------------------------------


def per_lead_us(
    functions: Mapping[str, Callable[[Any], object]], inputs: Sequence[Any], repeat: int
) -> dict[str, float]:
    """Per function, the minimum over ``repeat`` runs of the time per input, in microseconds.

    The runs are interleaved (a, b, c, a, b, c, ...) so that a burst of load from other processes
    slows all of them, not just one; the minimum keeps the least disturbed run of each. Each
    timed run follows an untimed one over the first inputs, so no function pays for the caches
    the one before it (rule-engine, mostly) left cold.
    """
    best = dict.fromkeys(functions, float("inf"))
    warm = inputs[:50]
    for _ in range(repeat):
        for name, function in functions.items():
            for one in warm:
                function(one)
            gc.collect()
            gc.disable()  # as timeit does: no collection of another function's garbage mid-run
            try:
                started = timeit.default_timer()
                for one in inputs:
                    function(one)
                elapsed = timeit.default_timer() - started
            finally:
                gc.enable()
            best[name] = min(best[name], elapsed)
    return {name: seconds / len(inputs) * 1e6 for name, seconds in best.items()}


def check_same(name: str, sections: Mapping[str, Section], facts: Sequence[Facts]) -> None:
    """Every evaluator gives the same result for every rule on every lead (exceptions as raised)."""
    for one in facts:
        answers = {
            label: [r if isinstance(r, bool) else "raised" for r in section(one)]
            for label, section in sections.items()
        }
        first = next(iter(answers.values()))
        if any(answer != first for answer in answers.values()):
            sys.exit(f"{name}: evaluators disagree on {dict(one)!r}: {answers!r}")


def load(text: str) -> tuple[Ruleset, Ruleset]:
    return parse_ruleset(text, evaluator=CompiledEvaluator()), parse_ruleset(
        text, evaluator=RuleEngineEvaluator()
    )


def section_facts(compiled: Ruleset, leads: Sequence[NormalizedLead]) -> dict[str, list[dict[str, Any]]]:
    """Facts each section sees, taken from real evaluations (score, groups, stage included)."""
    result: dict[str, list[dict[str, Any]]] = {"scoring": [], "qualification": [], "routing": []}
    for lead in leads:
        facts = lead.facts()
        decision = evaluate(compiled, lead)
        groups = {name: group.score for name, group in decision.groups.items()}
        result["scoring"].append(facts)
        result["qualification"].append({**facts, "score": decision.score, "groups": groups})
        result["routing"].append(
            {**facts, "score": decision.score, "groups": groups, "stage": decision.stage}
        )
    return result


def rule_count(evaluator: object) -> int:
    section = compiled_section(evaluator)
    assert section is not None
    return len(section.rules)


def decide(ruleset: Ruleset) -> Callable[[Any], object]:
    """The whole decision for one lead (score, qualify, route) with ``ruleset``."""
    return lambda lead: evaluate(ruleset, lead)


def row(label: str, rule_count: int, times: Mapping[str, float]) -> str:
    compiled, engine, hand = times["compiled"], times["rule-engine"], times["hand-written"]
    return (
        f"{label:<28} {rule_count:>5} {engine:>12.2f} {compiled:>10.2f} {hand:>12.2f}"
        f" {hand / compiled:>14.2f} {engine / compiled:>12.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=300, help="generated leads per run (default 300)")
    parser.add_argument(
        "--repeat", type=int, default=7, help="runs per measurement, minimum kept (default 7)"
    )
    args = parser.parse_args()
    leads = make_leads(args.leads)

    started = time.perf_counter()
    inbound_compiled, inbound_engine = load((ROOT / "rules" / "inbound.yaml").read_text())
    load_seconds = time.perf_counter() - started
    fifty_compiled, fifty_engine = load(ruleset_50())
    facts = section_facts(inbound_compiled, leads)

    cases: list[tuple[str, int, dict[str, Section], list[dict[str, Any]]]] = [
        (
            "inbound.yaml scoring",
            rule_count(inbound_compiled.scoring_evaluator),
            {
                "compiled": inbound_compiled.scoring_evaluator,
                "rule-engine": inbound_engine.scoring_evaluator,
                "hand-written": hand_inbound_scoring,
            },
            facts["scoring"],
        ),
        (
            "inbound.yaml qualification",
            rule_count(inbound_compiled.qualification_evaluator),
            {
                "compiled": inbound_compiled.qualification_evaluator,
                "rule-engine": inbound_engine.qualification_evaluator,
                "hand-written": hand_inbound_qualification,
            },
            facts["qualification"],
        ),
        (
            "inbound.yaml routing",
            rule_count(inbound_compiled.routing_evaluator),
            {
                "compiled": inbound_compiled.routing_evaluator,
                "rule-engine": inbound_engine.routing_evaluator,
                "hand-written": hand_inbound_routing,
            },
            facts["routing"],
        ),
        (
            "50 scoring rules",
            rule_count(fifty_compiled.scoring_evaluator),
            {
                "compiled": fifty_compiled.scoring_evaluator,
                "rule-engine": fifty_engine.scoring_evaluator,
                "hand-written": hand_50,
            },
            facts["scoring"],
        ),
    ]
    load_average = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"python {sys.version.split()[0]}, rule-engine {rule_engine.__version__}, {os.cpu_count()} CPUs,")
    print(f"load average {load_average} (other processes add noise), {len(leads)} leads,")
    print(f"min of {args.repeat} runs; times are microseconds per lead (all rules of the section)\n")
    header = f"{'section':<28} {'rules':>5} {'rule-engine':>12} {'compiled':>10} {'hand-written':>12}"
    print(header + f" {'compiled/hand':>14} {'engine/comp':>12}")
    print(f"{'':<34} {'µs':>12} {'µs':>10} {'µs':>12} {'(speed, ≥0.5)':>14} {'(speed-up)':>12}")
    for label, count, sections, section_input in cases:
        check_same(label, sections, section_input)
        times = per_lead_us(sections, section_input, args.repeat)
        print(row(label, count, times))

    whole = per_lead_us(
        {"compiled": decide(inbound_compiled), "rule-engine": decide(inbound_engine)}, leads, args.repeat
    )
    print(
        f"\nscoring.evaluate(inbound.yaml), whole decision: rule-engine {whole['rule-engine']:.1f} µs,"
        f" compiled {whole['compiled']:.1f} µs per lead ({whole['rule-engine'] / whole['compiled']:.1f}x)"
    )

    rules = []
    for section in (
        inbound_compiled.scoring_evaluator,
        inbound_compiled.qualification_evaluator,
        inbound_compiled.routing_evaluator,
    ):
        compiled = compiled_section(section)
        assert compiled is not None
        rules.append(compiled.rules)
    compile_ms = min(
        timeit.repeat(lambda: [CompiledEvaluator().compile(r) for r in rules], number=1, repeat=args.repeat)
    )
    print(
        f"compile of inbound.yaml's three sections: {compile_ms * 1e3:.1f} ms"
        f" (the whole load, parse and type checks included, took {load_seconds * 1e3:.0f} ms, first load)"
    )


if __name__ == "__main__":
    main()
