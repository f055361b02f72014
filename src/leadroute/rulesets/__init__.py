"""Ruleset versions at run time: following the fleet's active version, watching the rules file,
and the ``leadroute rules publish|activate|rollback|list`` commands.

Storage (versions, activations, NOTIFY) is :mod:`leadroute.store.rulesets`; the admin API is
:mod:`leadroute.api.rulesets`.
"""

from leadroute.rulesets.sync import RulesetSync, actor, rules_digest

__all__ = ["RulesetSync", "actor", "rules_digest"]
