"""Memorisation audit: copies are flagged, fresh samples are flagged at ~q%."""

import numpy as np
from PIL import Image

from cxrgan_jax.metrics import memorization


def _data(seed=0, n_train=300, n_test=200, dim=32):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n_train, dim)), rng.normal(size=(n_test, dim)), rng)


def test_copies_are_all_flagged():
  train, test, rng = _data()
  copied = rng.choice(len(train), 50, replace=False)
  fake = train[copied] + rng.normal(scale=1e-3, size=(50, 32))
  res = memorization.memorization_audit(fake, train, test)
  assert res.copy_fractions[5.0] == 1.0 and res.copy_fractions[1.0] == 1.0
  np.testing.assert_array_equal(res.fake_nn_index, copied)
  assert res.median_distance_ratio < 0.01
  assert len(res.suspected_copies()) == 50
  d = res.as_dict('_pixels')
  assert d['memorization_copy_fraction_pixels'] == 1.0
  assert 'memorization_copy_fraction_p1_pixels' in d


def test_fresh_samples_flagged_at_chance_rate():
  train, test, rng = _data(1, n_test=1000)
  fake = rng.normal(size=(1000, 32))
  res = memorization.memorization_audit(fake, train, test)
  assert abs(res.copy_fractions[5.0] - 0.05) < 0.03
  assert 0.9 < res.median_distance_ratio < 1.1


def test_mixed_set_flags_exactly_the_copies():
  train, test, rng = _data(2)
  fake = np.concatenate([train[:10], rng.normal(size=(90, 32))])
  res = memorization.memorization_audit(fake, train, test, percentiles=(1.0,))
  flagged = set(res.suspected_copies(1.0).tolist())
  assert set(range(10)) <= flagged and len(flagged) < 15


def test_closest_pairs_png(tmp_path):
  rng = np.random.default_rng(3)
  train_img = rng.integers(0, 256, (20, 16, 16, 1), dtype=np.uint8)
  fake_img = np.concatenate([train_img[:3], rng.integers(0, 256, (5, 16, 16, 1), np.uint8)])
  flat = lambda x: x.reshape(len(x), -1).astype(np.float64)
  test_img = rng.integers(0, 256, (10, 16, 16, 1), dtype=np.uint8)
  res = memorization.memorization_audit(flat(fake_img), flat(train_img), flat(test_img))
  path = memorization.save_closest_pairs_png(
    tmp_path / 'pairs.png', fake_img, train_img, res, num_pairs=4, tile_size=32, space='pixels'
  )
  with Image.open(path) as im:
    assert im.size[1] > 4 * 32
    pixels = np.asarray(im.convert('RGB'))
  # The first row is gen #0 next to train #0, the same picture.
  left = pixels[22 : 22 + 32, 4 : 4 + 32, 0]
  right = pixels[22 : 22 + 32, 8 + 32 : 8 + 64, 0]
  np.testing.assert_array_equal(left, right)
