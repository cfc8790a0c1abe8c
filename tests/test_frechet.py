"""Fréchet distance: closed forms, pytorch-fid's eps and imaginary rules."""

import warnings

import numpy as np
import pytest
import scipy.linalg

from cxrgan_jax.metrics import frechet


def test_analytic_unit_shift_in_2048d():
  # Same covariance, means differ by 1 in every one of 2048 coordinates.
  d = 2048
  eye = np.eye(d)
  fd = frechet.frechet_distance(np.zeros(d), eye, np.ones(d), eye)
  assert fd == pytest.approx(2048.0, abs=1e-6)


def test_set_with_itself_is_zero():
  x = np.random.default_rng(0).normal(size=(400, 32)) @ np.diag(np.linspace(0.1, 3.0, 32))
  stats = frechet.feature_statistics(x)
  assert frechet.frechet_distance_from_stats(stats, stats) == pytest.approx(0.0, abs=1e-8)
  assert frechet.frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-8)


def test_two_dimensional_closed_form():
  # For 2x2 M with positive eigenvalues,
  # tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)).
  # The covariances do not commute, so sqrtm(Σ1 Σ2) is not symmetric.
  mu1, mu2 = np.array([0.5, -1.0]), np.array([2.0, 1.0])
  s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
  s2 = np.array([[1.0, -0.3], [-0.3, 0.5]])
  tr_sqrt = np.sqrt(np.trace(s1 @ s2) + 2.0 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
  want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt
  assert frechet.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-10)


def test_commuting_gaussians_reduce_to_per_axis_sums():
  a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
  fd = frechet.frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b))
  assert fd == pytest.approx(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


def test_singular_covariances_use_eps():
  # Three samples in four dimensions: both covariances are singular and the
  # product's sqrtm is not finite (SciPy returns inf/nan).
  x = np.array([[0, 1, 1, 0], [1, 1, 1, 0], [0, 1, 0, 1]], np.float64)
  y = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 1]], np.float64)
  sx, sy = frechet.feature_statistics(x), frechet.feature_statistics(y)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    raw = scipy.linalg.sqrtm(sx.sigma @ sy.sigma)
  assert not np.isfinite(raw).all(), 'fixture no longer exercises the eps path'

  eps = 1e-6
  fd = frechet.frechet_distance(sx.mu, sx.sigma, sy.mu, sy.sigma, eps=eps)
  assert np.isfinite(fd)
  offset = eps * np.eye(4)
  covmean = scipy.linalg.sqrtm((sx.sigma + offset) @ (sy.sigma + offset))
  want = (
    np.sum((sx.mu - sy.mu) ** 2)
    + np.trace(sx.sigma)
    + np.trace(sy.sigma)
    - 2.0 * np.trace(covmean.real)
  )
  assert fd == pytest.approx(want, rel=1e-9)


def test_large_imaginary_component_raises():
  # Not a covariance: Σ2 has a negative eigenvalue, sqrtm has diagonal i.
  with pytest.raises(ValueError, match='imaginary component'):
    frechet.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))


def test_shape_mismatch_raises():
  with pytest.raises(ValueError):
    frechet.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_feature_statistics_float64_unbiased_and_saved(tmp_path):
  x = np.random.default_rng(1).normal(size=(50, 5)).astype(np.float32)
  stats = frechet.feature_statistics(x)
  assert stats.mu.dtype == np.float64 and stats.sigma.dtype == np.float64
  x64 = x.astype(np.float64)
  centred = x64 - x64.mean(0)
  np.testing.assert_allclose(stats.sigma, centred.T @ centred / 49, rtol=1e-12)
  path = str(tmp_path / 'stats.npz')
  stats.save(path)
  loaded = frechet.FeatureStats.load(path)
  np.testing.assert_array_equal(loaded.mu, stats.mu)
  np.testing.assert_array_equal(loaded.sigma, stats.sigma)
  assert loaded.num_samples == 50
  with pytest.raises(ValueError):
    frechet.feature_statistics(x[:1])


def test_matches_pytorch_fid():
  fid_score = pytest.importorskip('pytorch_fid.fid_score')
  rng = np.random.default_rng(2)
  x = rng.normal(size=(300, 16))
  y = rng.normal(size=(300, 16)) * 1.3 + 0.2
  sx, sy = frechet.feature_statistics(x), frechet.feature_statistics(y)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # Its sqrtm(disp=False) is deprecated.
    want = fid_score.calculate_frechet_distance(sx.mu, sx.sigma, sy.mu, sy.sigma)
  assert frechet.frechet_distance_from_stats(sx, sy) == pytest.approx(want, rel=1e-10)
