"""MS-SSIM, pairwise spread and precision/recall on cases with known answers."""

import numpy as np
import pytest

from cxrgan_jax.metrics import diversity


def _smooth_images(n, size, seed):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size] / size
  out = []
  for _ in range(n):
    a, b, c = rng.uniform(0.5, 3, 3)
    img = 128 + 100 * np.sin(a * np.pi * xx + c) * np.cos(b * np.pi * yy)
    out.append(img)
  return np.clip(np.stack(out), 0, 255).astype(np.uint8)[..., None]


def test_num_scales_rule():
  assert diversity.ms_ssim_num_scales(256) == 5
  assert diversity.ms_ssim_num_scales(128) == 4
  assert diversity.ms_ssim_num_scales(64) == 3
  with pytest.raises(ValueError):
    diversity.ms_ssim_num_scales(8)


def test_ms_ssim_identity_and_noise():
  smooth = _smooth_images(3, 64, 0)
  np.testing.assert_allclose(diversity.ms_ssim(smooth, smooth), 1.0, atol=1e-5)
  noise = np.random.default_rng(1).integers(0, 256, smooth.shape, np.uint8)
  assert np.all(diversity.ms_ssim(smooth, noise) < 0.2)
  # Slightly perturbed copies stay high, and the score is symmetric.
  noisy = np.clip(smooth + np.random.default_rng(2).normal(0, 5, smooth.shape), 0, 255).astype(
    np.uint8
  )
  s = diversity.ms_ssim(smooth, noisy)
  assert np.all(s > 0.8) and np.all(s < 1.0)
  np.testing.assert_allclose(s, diversity.ms_ssim(noisy, smooth), rtol=1e-5)


def test_mean_ms_ssim_detects_collapse():
  varied = _smooth_images(40, 64, 3)
  collapsed = np.repeat(varied[:1], 40, axis=0)
  assert diversity.mean_ms_ssim(collapsed, num_pairs=50) > 0.999
  assert diversity.mean_ms_ssim(varied, num_pairs=50) < 0.9


def test_mean_pairwise_distance():
  x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
  # Pairs: 5, 0, 5 (each counted twice) -> 10 / 3.
  assert diversity.mean_pairwise_distance(x) == pytest.approx(10 / 3)


def test_precision_recall_identical_and_disjoint():
  rng = np.random.default_rng(4)
  real, fake = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
  p, r = diversity.precision_recall(real, fake)
  assert p > 0.6 and r > 0.6
  p, r = diversity.precision_recall(real, fake + 20.0)
  assert p == 0.0 and r == 0.0
  # A collapsed generator: faithful (high precision) but low recall.
  p, r = diversity.precision_recall(real, 0.05 * fake)
  assert p > 0.9 and r < 0.3
