"""Inception Score and KID: closed-form cases and direct re-computations."""

import numpy as np
import pytest

from cxrgan_jax.metrics import scores


def test_is_uniform_predictions_is_one():
  result = scores.inception_score(np.zeros((100, 1008)))
  assert result.mean == pytest.approx(1.0, abs=1e-12)
  assert result.std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize('num_classes', [1, 5, 37])
def test_is_confident_distinct_classes_is_num_classes(num_classes):
  # Every split sees each class once, with (numerically) one-hot softmax.
  labels = np.tile(np.arange(num_classes), 10)
  logits = np.zeros((labels.size, 1008))
  logits[np.arange(labels.size), labels] = 60.0
  result = scores.inception_score(logits)
  assert result.mean == pytest.approx(num_classes, rel=1e-9)
  assert result.std == pytest.approx(0.0, abs=1e-9)


def test_is_matches_direct_formula_on_uneven_splits():
  rng = np.random.default_rng(0)
  logits = rng.normal(scale=3.0, size=(103, 20))
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  want = []
  for i in range(10):
    part = p[i * 103 // 10 : (i + 1) * 103 // 10]
    py = part.mean(0)
    want.append(np.exp(np.mean(np.sum(part * np.log(part / py), 1))))
  result = scores.inception_score(logits)
  assert result.mean == pytest.approx(np.mean(want), rel=1e-10)
  assert result.std == pytest.approx(np.std(want), rel=1e-8)
  with pytest.raises(ValueError):
    scores.inception_score(logits[:9])


def _mmd2_loops(x, y):
  """Unbiased MMD², (x.y/d + 1)^3 kernel, written pair by pair."""
  d = x.shape[1]
  k = lambda a, b: (a @ b / d + 1.0) ** 3
  m, n = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
  yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
  return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2.0 * xy / (m * n)


def test_mmd2_unbiased_matches_pairwise_definition():
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=(7, 4)), rng.normal(size=(9, 4)) + 0.5
  assert scores.mmd2_unbiased(x, y) == pytest.approx(_mmd2_loops(x, y), rel=1e-10)


def test_kid_same_distribution_near_zero_and_shift_positive():
  rng = np.random.default_rng(2)
  d = 64
  real = rng.normal(size=(600, d))
  same = rng.normal(size=(600, d))
  shifted = rng.normal(size=(600, d)) + 0.5
  kid_same = scores.kernel_inception_distance(real, same, num_subsets=20, subset_size=200)
  kid_shift = scores.kernel_inception_distance(real, shifted, num_subsets=20, subset_size=200)
  # A 0.5 shift on every axis is far outside the same-law spread.
  assert kid_shift.mean > 0.1
  assert abs(kid_same.mean) < 0.01 * kid_shift.mean
  assert kid_same.std > 0.0


def test_kid_is_unbiased():
  # Averaged over many subsets, an unbiased estimator centres on 0 for a
  # shared law, so it takes both signs; a biased (V-statistic) one would not.
  rng = np.random.default_rng(3)
  values = [
    scores.mmd2_unbiased(rng.normal(size=(20, 8)), rng.normal(size=(20, 8))) for _ in range(300)
  ]
  assert min(values) < 0.0 < max(values)
  assert abs(np.mean(values)) < 3.0 * np.std(values) / np.sqrt(len(values))


def test_kid_subsets_and_seed():
  rng = np.random.default_rng(4)
  x, y = rng.normal(size=(50, 3)), rng.normal(size=(30, 3)) + 1.0
  a = scores.kernel_inception_distance(x, y, num_subsets=5, seed=7)
  b = scores.kernel_inception_distance(x, y, num_subsets=5, seed=7)
  assert a == b
  # subset_size larger than the sets: min(1000, 50, 30) = 30 rows, and the
  # whole of y each time.
  with pytest.raises(ValueError):
    scores.kernel_inception_distance(x, y[:, :2])
  full = scores.kernel_inception_distance(x[:30], y, num_subsets=3)
  assert full.mean == pytest.approx(scores.mmd2_unbiased(x[:30], y))
  assert full.std == pytest.approx(0.0, abs=1e-12)
