"""GAN losses against hand-computed values, optima and gradient behaviour."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cxrgan_jax import losses


def log_sigmoid(x):
  return -np.log1p(np.exp(-np.asarray(x, np.float64)))


def log_one_minus_sigmoid(x):
  return -np.log1p(np.exp(np.asarray(x, np.float64)))


REAL = jnp.array([0.0, 2.0, -0.5])
FAKE = jnp.array([-1.0, 0.0, 3.0])


@pytest.mark.parametrize('kind', ['minimax', 'non_saturating'])
def test_discriminator_cross_entropy_by_hand(kind):
  want = -(np.mean(log_sigmoid(REAL)) + np.mean(log_one_minus_sigmoid(FAKE)))
  got = losses.discriminator_loss(REAL, FAKE, kind)
  assert got.shape == () and got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize('kind', ['minimax', 'non_saturating'])
def test_discriminator_at_equilibrium_is_two_log_two(kind):
  # D = 1/2 everywhere (logit 0): -log(1/2) - log(1/2) (Goodfellow et al. 2014).
  zeros = jnp.zeros(5)
  np.testing.assert_allclose(
    losses.discriminator_loss(zeros, zeros, kind), 2 * math.log(2), rtol=1e-6
  )


def test_generator_losses_by_hand():
  np.testing.assert_allclose(
    losses.generator_loss(FAKE, 'minimax'), np.mean(log_one_minus_sigmoid(FAKE)), rtol=1e-6
  )
  np.testing.assert_allclose(
    losses.generator_loss(FAKE, 'non_saturating'), -np.mean(log_sigmoid(FAKE)), rtol=1e-6
  )
  np.testing.assert_allclose(losses.generator_loss(FAKE, 'hinge'), -np.mean(FAKE), rtol=1e-6)
  # At D = 1/2: minimax G loss is log(1/2), non-saturating is -log(1/2).
  zeros = jnp.zeros(3)
  np.testing.assert_allclose(losses.generator_loss(zeros, 'minimax'), -math.log(2), rtol=1e-6)
  np.testing.assert_allclose(losses.generator_loss(zeros, 'non_saturating'), math.log(2), rtol=1e-6)


def test_hinge_by_hand():
  real = jnp.array([0.5, 2.0])
  fake = jnp.array([-2.0, 0.5])
  # mean(relu(1 - [0.5, 2])) + mean(relu(1 + [-2, 0.5])) = 0.25 + 0.75.
  np.testing.assert_allclose(losses.discriminator_loss(real, fake, 'hinge'), 1.0, rtol=1e-6)
  # A margin-satisfying D gets zero loss.
  np.testing.assert_allclose(
    losses.discriminator_loss(jnp.array([1.0, 3.0]), jnp.array([-1.0, -5.0]), 'hinge'), 0.0
  )


@pytest.mark.parametrize('kind', losses.LOSSES)
def test_stable_for_extreme_logits(kind):
  big = jnp.array([-1e4, -100.0, 100.0, 1e4])
  d_loss, d_grads = jax.value_and_grad(lambda r, f: losses.discriminator_loss(r, f, kind), (0, 1))(
    big, big
  )
  g_loss, g_grad = jax.value_and_grad(lambda f: losses.generator_loss(f, kind))(big)
  for value in (d_loss, g_loss, *d_grads, g_grad):
    assert np.all(np.isfinite(np.asarray(value)))
  if kind != 'hinge':
    # softplus(1e4) = 1e4 exactly in f32; a naive log(sigmoid) gives inf.
    np.testing.assert_allclose(
      losses.discriminator_loss(jnp.array([-1e4]), jnp.array([-1e4]), kind), 1e4, rtol=1e-6
    )


def test_minimax_saturates_where_non_saturating_does_not():
  # A confident D (fake logit -10): log(1 - D) has a vanishing gradient,
  # -log D keeps a gradient near -1 (Goodfellow et al. 2014, §3).
  fake = jnp.array([-10.0])
  minimax = jax.grad(lambda f: losses.generator_loss(f, 'minimax'))(fake)
  non_sat = jax.grad(lambda f: losses.generator_loss(f, 'non_saturating'))(fake)
  assert abs(float(minimax[0])) < 1e-4
  np.testing.assert_allclose(non_sat, [-1.0], atol=1e-4)


def test_unknown_kind_names_config_field():
  with pytest.raises(ValueError, match=r"config\.loss='wasserstein'.*minimax"):
    losses.discriminator_loss(REAL, FAKE, 'wasserstein')
  with pytest.raises(ValueError, match=r'config\.loss'):
    losses.generator_loss(FAKE, 'lsgan')
