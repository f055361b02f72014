"""Trying a rule change before it goes live: rule-file test diffs, one-lead dry runs, replays.

Public API::

    run_file(path) -> FileResult                  ``leadroute rules test``: tests with diffs
    parse_simulation(body) / simulate(rt, body)   ``POST /v1/simulate``: one lead, nothing written
    parse_replay(body) / replay_request(rt, body) ``POST /v1/rulesets/replay``
    replay_stored(conn, baseline=, candidate=, as_of=, since=, limit=) -> ReplayReport
                                                  ``leadroute rules replay`` and its endpoint
    ReplayAccumulator, outcome_of, score_stats    the pure diff core replay is built on
    format_report(report), report_json(report)    the report for people, and for scripts

Nothing here writes to PostgreSQL or touches Redis: routing state is never read or claimed.
"""

from leadroute.replay._progress import ProgressBar
from leadroute.replay._report import (
    STAGES,
    Outcome,
    ReplayAccumulator,
    ReplayReport,
    ReplayWarning,
    RulesetInfo,
    ScoreStats,
    outcome_of,
    report_dict,
    report_json,
    score_stats,
)
from leadroute.replay._ruletests import FileResult, format_file_result, format_summary, rule_files, run_file
from leadroute.replay._run import (
    DEFAULT_BATCH,
    ReplayIn,
    Side,
    parse_replay,
    parse_since,
    replay_leads,
    replay_request,
    replay_stored,
    unknown_pools,
)
from leadroute.replay._simulate import (
    InvalidBody,
    RoutingView,
    SimulateIn,
    SimulationAnswer,
    parse_simulation,
    routing_view,
    simulate,
    simulation_answer,
)
from leadroute.replay._source import (
    StoredLead,
    UnknownRulesetVersion,
    active_side,
    chosen_ruleset,
    stored_lead,
)
from leadroute.replay._text import format_report

__all__ = [
    "DEFAULT_BATCH",
    "STAGES",
    "FileResult",
    "InvalidBody",
    "Outcome",
    "ProgressBar",
    "ReplayAccumulator",
    "ReplayIn",
    "ReplayReport",
    "ReplayWarning",
    "RoutingView",
    "RulesetInfo",
    "ScoreStats",
    "Side",
    "SimulateIn",
    "SimulationAnswer",
    "StoredLead",
    "UnknownRulesetVersion",
    "active_side",
    "chosen_ruleset",
    "format_file_result",
    "format_report",
    "format_summary",
    "outcome_of",
    "parse_replay",
    "parse_simulation",
    "parse_since",
    "replay_leads",
    "replay_request",
    "replay_stored",
    "report_dict",
    "report_json",
    "routing_view",
    "rule_files",
    "run_file",
    "score_stats",
    "simulate",
    "simulation_answer",
    "stored_lead",
    "unknown_pools",
]
