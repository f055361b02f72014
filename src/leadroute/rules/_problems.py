"""What goes wrong in a rule file, said so that sales ops can fix it.

Every problem carries the file, a 1-based line and column and, when known, the rule id, and
renders like a compiler message::

    rules/inbound.yaml:12:7: rule 'senior-title': unknown field 'titel' (did you mean 'title'?)

The loader collects every problem it can find before raising one :class:`RulesetError`, so a
broken file is fixed in one round trip, not one error at a time.
"""

from __future__ import annotations

# Defined in leadroute.errors (the one error tree); the rules package re-exports them.
from leadroute.errors import RuleProblem, RulesetError

__all__ = ["RuleProblem", "RulesetError"]
