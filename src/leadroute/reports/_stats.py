"""Small statistics, pure and exact enough for reports: Wilson intervals and percentiles.

No numeric library: two formulas do not justify a dependency, and the tests check both against
published values and the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from leadroute.structs import FrozenStruct

__all__ = ["Z95", "Rate", "percentile", "rate"]

Z95: Final = 1.959963984540054
"""The standard normal quantile for a two-sided 95 % interval."""


class Rate(FrozenStruct, frozen=True, kw_only=True):
    """``successes`` of ``n``, the proportion and its Wilson score 95 % interval (None when n = 0)."""

    successes: int
    n: int
    rate: float | None
    low: float | None
    high: float | None


def rate(successes: int, n: int, z: float = Z95) -> Rate:
    """The proportion ``successes / n`` with its Wilson score interval (Wilson 1927).

    Unlike the normal ("Wald") interval it stays inside [0, 1] and is not zero-width at 0 or n,
    which matters for the small counts of a score band or a rarely matching rule::

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1 - p)/n + z²/4n²)
    """
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..n, got {successes} of {n}")
    if n == 0:
        return Rate(successes=0, n=0, rate=None, low=None, high=None)
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Rate(successes=successes, n=n, rate=p, low=max(0.0, centre - half), high=min(1.0, centre + half))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks (the method
    of numpy's default and of ``statistics.quantiles(method="inclusive")``); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
