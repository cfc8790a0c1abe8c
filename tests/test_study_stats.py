"""Interval and verdict logic of the study reports."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cxrgan_jax.study import stats


def test_mean_interval_matches_textbook_t_interval():
  x = [1.0, 2.0, 4.0]
  iv = stats.mean_interval(x)
  half = scipy_stats.t.ppf(0.975, 2) * np.std(x, ddof=1) / math.sqrt(3)
  assert iv.mean == pytest.approx(7 / 3)
  assert (iv.low, iv.high) == pytest.approx((7 / 3 - half, 7 / 3 + half))


def test_one_seed_has_no_interval():
  iv = stats.mean_interval([3.0])
  assert iv.mean == 3.0 and math.isinf(iv.low) and math.isinf(iv.high)
  assert (
    stats.verdict(stats.difference_interval([1.0], [2.0]), 2.0, lower_is_better=True, margin=0.1)
    == stats.INCONCLUSIVE
  )


def test_welch_interval_agrees_with_scipy_welch_test():
  rng = np.random.default_rng(0)
  a, c = rng.normal(1.0, 1.0, 6), rng.normal(0.0, 3.0, 4)
  iv = stats.difference_interval(a, c)
  # The 95% interval excludes 0 exactly when Welch's two-sided p < 0.05.
  p = scipy_stats.ttest_ind(a, c, equal_var=False).pvalue
  assert (iv.low > 0 or iv.high < 0) == (p < 0.05)
  # And 0 sits on the boundary of the interval at the confidence p gives.
  iv_p = stats.difference_interval(a, c, confidence=1 - p)
  assert min(abs(iv_p.low), abs(iv_p.high)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
  'arm, control, lower_is_better, expected',
  [
    ([1.0, 1.1, 0.9], [5.0, 5.1, 4.9], True, stats.HELPS),  # FD fell: better.
    ([1.0, 1.1, 0.9], [5.0, 5.1, 4.9], False, stats.HURTS),  # accuracy fell: worse.
    ([9.0, 9.1, 8.9], [5.0, 5.1, 4.9], True, stats.HURTS),
    ([5.0, 5.2, 4.8], [5.0, 5.1, 4.9], True, stats.NEGLIGIBLE),  # tight around 0.
    ([1.0, 9.0, 5.0], [5.0, 5.1, 4.9], True, stats.INCONCLUSIVE),  # wide around 0.
  ],
)
def test_verdict(arm, control, lower_is_better, expected):
  diff = stats.difference_interval(arm, control)
  got = stats.verdict(diff, np.mean(control), lower_is_better=lower_is_better, margin=0.1)
  assert got == expected


def test_identical_constant_samples_are_negligible():
  diff = stats.difference_interval([2.0, 2.0], [2.0, 2.0])
  assert (diff.low, diff.high) == (0.0, 0.0)
  assert stats.verdict(diff, 2.0, lower_is_better=True, margin=0.1) == stats.NEGLIGIBLE
