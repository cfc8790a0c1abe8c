"""DiffAugment: identity at p=0, per-op semantics, determinism, gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cxrgan_jax import augment as aug

ALL = aug.POLICY_OPS
IMAGES = jnp.tanh(jax.random.normal(jax.random.PRNGKey(0), (6, 16, 16, 1)))


@functools.partial(jax.jit, static_argnames='policy')
def run(rng, images, p, policy):
  return aug.augment(rng, images, p=p, policy=policy)


def test_parse_policy():
  assert aug.parse_policy('') == ()
  assert aug.parse_policy('translation,cutout') == ('translation', 'cutout')
  assert aug.parse_policy(' contrast , brightness,') == ('contrast', 'brightness')
  assert aug.parse_policy(','.join(ALL)) == ALL
  with pytest.raises(ValueError, match=r'config\.augment\.policy.*flip'):
    aug.parse_policy('translation,flip')
  with pytest.raises(ValueError, match=r'config\.augment\.policy'):
    aug.parse_policy('cutout,cutout')


def test_p_zero_is_exact_identity():
  # p traced under jit, as with ADA's adaptive p.
  out = run(jax.random.PRNGKey(1), IMAGES, jnp.float32(0.0), ALL)
  np.testing.assert_array_equal(out, IMAGES)
  np.testing.assert_array_equal(
    aug.augment(jax.random.PRNGKey(1), IMAGES, p=0.5, policy=()), IMAGES
  )


@pytest.mark.parametrize('op', ALL)
def test_p_one_changes_every_image(op):
  out = np.asarray(run(jax.random.PRNGKey(2), IMAGES, 1.0, (op,)))
  assert out.shape == IMAGES.shape and out.dtype == np.float32
  assert np.all(np.isfinite(out))
  changed = np.any(out != np.asarray(IMAGES), axis=(1, 2, 3))
  # A translation may draw a zero shift for a sample; 17**-2 per sample.
  assert changed.sum() >= (5 if op == 'translation' else 6)


def test_deterministic_per_rng():
  a = run(jax.random.PRNGKey(3), IMAGES, 1.0, ALL)
  b = run(jax.random.PRNGKey(3), IMAGES, 1.0, ALL)
  c = run(jax.random.PRNGKey(4), IMAGES, 1.0, ALL)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)


@pytest.mark.parametrize('p', [1.0, 0.5])
def test_gradient_flows(p):
  weights = jax.random.normal(jax.random.PRNGKey(5), IMAGES.shape)
  grad = jax.jit(
    jax.grad(lambda x: jnp.sum(weights * aug.augment(jax.random.PRNGKey(6), x, p=p, policy=ALL)))
  )(IMAGES)
  grad = np.asarray(grad)
  assert np.all(np.isfinite(grad)) and np.any(grad != 0.0)


def test_translation_is_a_zero_filled_shift():
  x = np.asarray(IMAGES)
  out = np.asarray(run(jax.random.PRNGKey(7), IMAGES, 1.0, ('translation',)))
  limit = 2  # 16 / 8.
  for got, image in zip(out, x):
    matches = []
    for dy in range(-limit, limit + 1):
      for dx in range(-limit, limit + 1):
        want = np.zeros_like(image)
        src = image[max(-dy, 0) : 16 - max(dy, 0), max(-dx, 0) : 16 - max(dx, 0)]
        want[max(dy, 0) : max(dy, 0) + src.shape[0], max(dx, 0) : max(dx, 0) + src.shape[1]] = src
        matches.append(np.array_equal(got, want))
    assert any(matches)


def test_cutout_zeroes_a_clipped_half_size_square():
  x = np.asarray(IMAGES)
  out = np.asarray(run(jax.random.PRNGKey(8), IMAGES, 1.0, ('cutout',)))
  for got, image in zip(out, x):
    hole = (got != image)[..., 0]
    np.testing.assert_array_equal(got[hole], 0.0)
    rows, cols = np.nonzero(hole)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    assert 0 < height <= 8 and 0 < width <= 8
    # The hole is a full rectangle (the square, clipped at the border).
    assert hole.sum() == height * width


def test_brightness_and_contrast_semantics():
  x = np.asarray(IMAGES)
  bright = np.asarray(run(jax.random.PRNGKey(9), IMAGES, 1.0, ('brightness',)))
  delta = (bright - x).reshape(len(x), -1)
  np.testing.assert_allclose(delta, delta[:, :1] * np.ones_like(delta), atol=1e-6)
  assert np.all(np.abs(delta) <= 0.5)
  contrast = np.asarray(run(jax.random.PRNGKey(9), IMAGES, 1.0, ('contrast',)))
  np.testing.assert_allclose(contrast.mean(axis=(1, 2, 3)), x.mean(axis=(1, 2, 3)), atol=1e-5)
  ratio = contrast.std(axis=(1, 2, 3)) / x.std(axis=(1, 2, 3))
  assert np.all((ratio >= 0.5 - 1e-4) & (ratio <= 1.5 + 1e-4))


def test_probability_is_per_sample():
  images = jnp.zeros((2000, 4, 4, 1))
  out = np.asarray(run(jax.random.PRNGKey(10), images, 0.3, ('brightness',)))
  fraction = np.mean(np.any(out != 0.0, axis=(1, 2, 3)))
  assert 0.25 < fraction < 0.35
