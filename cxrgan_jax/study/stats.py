"""Intervals over seeds and the helps / hurts / negligible verdict of an arm.

Seeds are few (2-5), so intervals use Student's t with Welch's degrees of
freedom, not a normal approximation; with one seed on a side there is no
interval and the verdict says so rather than guessing.
"""

from collections.abc import Sequence
import dataclasses
import math

import numpy as np
from scipy import stats as scipy_stats


@dataclasses.dataclass(frozen=True)
class Interval:
  mean: float
  low: float
  high: float
  n: int

  def format(self, digits: int = 3) -> str:
    if not math.isfinite(self.low):
      return f'{self.mean:.{digits}g} (n={self.n})'
    return f'{self.mean:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]'


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
  """Mean and its t interval; (-inf, inf) when n < 2."""
  x = np.asarray(values, np.float64)
  n = x.size
  if n == 0:
    raise ValueError('mean_interval of no values')
  mean = float(x.mean())
  if n < 2:
    return Interval(mean, -math.inf, math.inf, n)
  half = scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
  return Interval(mean, mean - half, mean + half, n)


def difference_interval(
  arm: Sequence[float], control: Sequence[float], confidence: float = 0.95
) -> Interval:
  """mean(arm) - mean(control) with a Welch t interval (unequal variances)."""
  a, c = np.asarray(arm, np.float64), np.asarray(control, np.float64)
  if a.size == 0 or c.size == 0:
    raise ValueError('difference_interval needs values on both sides')
  diff = float(a.mean() - c.mean())
  n = min(a.size, c.size)
  if a.size < 2 or c.size < 2:
    return Interval(diff, -math.inf, math.inf, n)
  va, vc = a.var(ddof=1) / a.size, c.var(ddof=1) / c.size
  se = math.sqrt(va + vc)
  if se == 0.0:
    return Interval(diff, diff, diff, n)
  dof = (va + vc) ** 2 / (va**2 / (a.size - 1) + vc**2 / (c.size - 1))
  half = scipy_stats.t.ppf(0.5 + confidence / 2, dof) * se
  return Interval(diff, diff - half, diff + half, n)


HELPS, HURTS, NEGLIGIBLE, INCONCLUSIVE = 'helps', 'hurts', 'negligible', 'inconclusive'


def verdict(diff: Interval, control_mean: float, *, lower_is_better: bool, margin: float) -> str:
  """helps / hurts when the interval excludes 0; negligible when it lies within
  +-margin x |control mean|; inconclusive when it contains 0 but is wider.

  `margin` is the relative change the study calls too small to matter (e.g.
  0.1 = 10%); it keeps "we could not tell" apart from "it makes no difference".
  """
  if diff.low > 0 or diff.high < 0:
    better = diff.high < 0 if lower_is_better else diff.low > 0
    return HELPS if better else HURTS
  bound = margin * abs(control_mean)
  if -bound <= diff.low and diff.high <= bound:
    return NEGLIGIBLE
  return INCONCLUSIVE
