"""1-NN two-sample test: chance on one law, ~1 on separated laws, ~0 on copies."""

import numpy as np
import pytest

from cxrgan_jax.metrics import neighbours
from cxrgan_jax.metrics import two_sample


def test_nearest_neighbours_matches_brute_force():
  rng = np.random.default_rng(0)
  q, r = rng.normal(size=(37, 5)), rng.normal(size=(53, 5))
  brute = np.sqrt(((q[:, None] - r[None]) ** 2).sum(-1))
  d, i = neighbours.nearest_neighbours(q, r, 3, chunk_size=8)
  np.testing.assert_array_equal(i, np.argsort(brute, axis=1)[:, :3])
  np.testing.assert_allclose(d, np.sort(brute, axis=1)[:, :3], rtol=1e-10)


def test_exclude_self_keeps_exact_duplicates():
  x = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
  d, i = neighbours.nearest_neighbours(x, x, 1, exclude_self=True)
  np.testing.assert_array_equal(i[:, 0], [1, 0, 0])
  assert d[0, 0] == 0.0 and d[2, 0] > 7


def test_same_distribution_is_near_chance():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
  res = two_sample.one_nn_two_sample_test(real, fake, num_permutations=200)
  assert abs(res.accuracy - 0.5) < 0.06
  assert abs(res.knn_same_set - 0.5) < 0.06
  assert res.p_value > 0.01


def test_separated_distributions_are_distinguished():
  rng = np.random.default_rng(2)
  real = rng.normal(size=(300, 16))
  fake = rng.normal(size=(300, 16)) + 4.0
  res = two_sample.one_nn_two_sample_test(real, fake, num_permutations=200)
  assert res.accuracy > 0.98
  assert res.real_accuracy > 0.98 and res.fake_accuracy > 0.98
  assert res.knn_same_set > 0.98
  assert res.p_value < 0.01
  assert set(res.as_dict('_cxr')) >= {'one_nn_accuracy_cxr', 'one_nn_real_accuracy_cxr'}


def test_copies_drive_accuracy_below_chance():
  rng = np.random.default_rng(3)
  real = rng.normal(size=(200, 16))
  res = two_sample.one_nn_two_sample_test(real, real + 1e-9, num_permutations=0)
  assert res.accuracy < 0.05
  assert np.isnan(res.p_value)


def test_dropped_mode_shows_in_real_accuracy():
  rng = np.random.default_rng(4)
  real = np.concatenate([rng.normal(size=(150, 8)), rng.normal(size=(150, 8)) + 10.0])
  fake = rng.normal(size=(300, 8))  # Only the first mode.
  res = two_sample.one_nn_two_sample_test(real, fake, num_permutations=0)
  # Real points of the dropped mode are all classified right; those of the
  # kept mode have twice as many fake neighbours: (150 + 150/3) / 300.
  assert res.real_accuracy == pytest.approx(2 / 3, abs=0.07)
  assert res.accuracy > 0.6


def test_unequal_sizes_rejected():
  with pytest.raises(ValueError, match='equal-size'):
    two_sample.one_nn_two_sample_test(np.zeros((5, 2)), np.zeros((6, 2)))
