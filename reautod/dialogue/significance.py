"""Is one variant's conversion different from the control's? Two small, standard tests.

- Two-proportion z-test (pooled), two-sided: z = (p2 - p1) / sqrt(p (1 - p) (1/n1 + 1/n2)),
  p-value = erfc(|z| / sqrt 2). Its square is Pearson's chi-square on the 2x2 table (no
  continuity correction), so this is also that test.
- Fisher's exact test, two-sided, for small samples (any expected cell below 5), where the
  normal approximation is poor: the sum of the probabilities of every table with the same
  margins that is no more likely than the one observed (hypergeometric; exact integers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

# Tables as likely as the observed one, up to float noise, count as "no more likely" (R and
# SciPy use the same relative tolerance).
_REL_TOL = 1e-7


@dataclass(frozen=True)
class TestResult:
    method: Literal["z-test", "fisher-exact", "none"]
    p_value: float | None
    statistic: float | None  # z for the z-test, the odds ratio for Fisher's
    note: str = ""


def z_test(success_a: int, n_a: int, success_b: int, n_b: int) -> TestResult:
    """Two-sided pooled two-proportion z-test (statistic: z of b against a)."""
    _check(success_a, n_a, success_b, n_b)
    pooled = (success_a + success_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance == 0:
        return TestResult("z-test", 1.0, 0.0, "no variation: every call had the same result")
    z = (success_b / n_b - success_a / n_a) / math.sqrt(variance)
    return TestResult("z-test", math.erfc(abs(z) / math.sqrt(2)), z)


def fisher_exact(success_a: int, n_a: int, success_b: int, n_b: int) -> TestResult:
    """Two-sided Fisher exact test on [[success_a, fail_a], [success_b, fail_b]]."""
    _check(success_a, n_a, success_b, n_b)
    successes = success_a + success_b
    total = n_a + n_b
    low, high = max(0, successes - n_b), min(successes, n_a)

    def weight(x: int) -> int:  # tables with x successes in a, up to the common denominator
        return math.comb(n_a, x) * math.comb(n_b, successes - x)

    observed = weight(success_a)
    weights = [weight(x) for x in range(low, high + 1)]
    tail = sum(w for w in weights if w <= observed * (1 + _REL_TOL))
    p = float(Fraction(tail, math.comb(total, successes)))
    fail_a, fail_b = n_a - success_a, n_b - success_b
    odds = (success_a * fail_b) / (fail_a * success_b) if fail_a * success_b else math.inf
    return TestResult("fisher-exact", min(1.0, p), odds)


def compare(success_a: int, n_a: int, success_b: int, n_b: int) -> TestResult:
    """The right test for these counts: Fisher's when any expected cell is below 5."""
    if n_a == 0 or n_b == 0:
        return TestResult("none", None, None, "a variant has no calls yet")
    successes, total = success_a + success_b, n_a + n_b
    expected = [n * k / total for n in (n_a, n_b) for k in (successes, total - successes)]
    if min(expected) < 5:
        return fisher_exact(success_a, n_a, success_b, n_b)
    return z_test(success_a, n_a, success_b, n_b)


def _check(*counts: int) -> None:
    sa, na, sb, nb = counts
    if min(counts) < 0 or sa > na or sb > nb or na == 0 or nb == 0:
        raise ValueError("counts must be 0 <= successes <= calls, with calls > 0")
