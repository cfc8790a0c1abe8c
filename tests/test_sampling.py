"""Sampling with a BatchNorm generator: running averages, standing ones or batch statistics."""

import jax
import numpy as np
import pytest

from configs import dcgan_normal
from cxrgan_jax import sampling
from cxrgan_jax import state as state_lib
from cxrgan_jax import steps


@pytest.fixture(scope='module')
def dcgan():
  """(generator, state, z [12, latent]) of a tiny DCGAN whose running stats are not the init's."""
  config = dcgan_normal.get_config()
  config.latent_dim, config.g_channels, config.d_channels = 16, 32, 32
  generator, _, _, _, state = state_lib.build(config)
  z = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (12, 16)), np.float32)
  # One training-mode pass moves the running averages away from (0, 1).
  _, g_state = steps.apply_model(generator, state.g_params, state.g_state, 3.0 * z, train=True)
  return config, generator, state.g_params, g_state, z


def test_batch_mode_uses_the_batch_statistics(dcgan):
  config, generator, params, g_state, z = dcgan
  running = sampling.make_generate_fn(generator, 'running')
  batch = sampling.make_generate_fn(generator, 'batch')
  # Running averages: an image does not depend on its batch-mates.
  np.testing.assert_allclose(running(params, g_state, z)[:4], running(params, g_state, z[:4]))
  # Batch statistics: it does, exactly as in a training-mode forward pass.
  a, b = batch(params, g_state, z)[:4], batch(params, g_state, z[:4])
  assert float(np.max(np.abs(a - b))) > 1e-3
  want, _ = steps.apply_model(generator, params, g_state, z[:4], train=True)
  np.testing.assert_allclose(b, np.clip(want, -1, 1), atol=1e-6)
  assert float(np.max(np.abs(running(params, g_state, z) - batch(params, g_state, z)))) > 1e-3


def test_batch_mode_fills_the_last_batch_with_genuine_latents(dcgan):
  config, generator, params, g_state, z = dcgan
  sampler = sampling.Sampler(config, generator, params, g_state, 0, batchnorm='batch')
  images = sampler.images_from(z[:10], batch_size=8)
  assert images.shape == (10, 64, 64, 1)
  np.testing.assert_array_equal(images[:8], sampler.images_from(z[:8], batch_size=8))
  # Zero padding would normalise the last 2 images with 6 zero latents' statistics.
  zero_padded = np.concatenate([z[8:10], np.zeros((6, 16), np.float32)])
  assert np.any(images[8:] != sampler.images_from(zero_padded, batch_size=8)[:2])
  # Running-average mode is independent of batching.
  sampler = sampling.Sampler(config, generator, params, g_state, 0, batchnorm='running')
  np.testing.assert_array_equal(
    sampler.images_from(z[:10], batch_size=8)[8:], sampler.images_from(z[8:10], batch_size=2)
  )


def test_unknown_mode_fails_naming_the_choices(dcgan):
  config, generator, params, g_state, _ = dcgan
  with pytest.raises(ValueError, match="'running', 'standing', 'batch'"):
    sampling.Sampler(config, generator, params, g_state, 0, batchnorm='eval')


def test_standing_statistics_are_the_weights_own_batch_statistics(dcgan):
  config, generator, params, g_state, z = dcgan
  latents = z[None, :8]  # One batch of 8.
  standing = sampling.make_standing_statistics_fn(generator, latents)(params, g_state)

  # Training-mode passes over that one batch, repeated, converge the running
  # averages to its statistics (m^400 ~ 0): what 'standing' must return.
  def one_pass(_, state):
    return steps.apply_model(generator, params, state, latents[0], train=True)[1]

  converged = jax.jit(lambda s: jax.lax.fori_loop(0, 400, one_pass, s))(g_state)
  leaves = jax.tree_util.tree_leaves_with_path(standing)
  assert {path[-1].key for path, _ in leaves} == {'mean', 'var'}
  for want, got in zip(jax.tree.leaves(converged), jax.tree.leaves(standing)):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)
  # Not the stored averages, which one pass over other latents left behind.
  stored, new = jax.tree.leaves(g_state), jax.tree.leaves(standing)
  assert max(float(np.max(np.abs(a - b))) for a, b in zip(stored, new)) > 1e-2


def test_an_ema_generator_samples_with_its_own_statistics(dcgan):
  config, generator, params, g_state, z = dcgan
  raw = sampling.Sampler(config, generator, params, g_state, 0)
  assert raw.effective_batchnorm == 'running' and raw.g_state is g_state
  # EMA weights never ran in training: the checkpoint's averages are the raw
  # G's, so 'running' recomputes them, exactly as 'standing' does.
  ema_config = config.copy_and_resolve_references()
  ema_config.ema_decay = 0.99
  ema = sampling.Sampler(ema_config, generator, params, g_state, 0)
  standing = sampling.Sampler(config, generator, params, g_state, 0, batchnorm='standing')
  assert ema.effective_batchnorm == standing.effective_batchnorm == 'standing'
  want = sampling.make_standing_statistics_fn(
    generator, sampling.standing_latents(config.batch_size, config.latent_dim)
  )(params, g_state)
  for a, b in zip(jax.tree.leaves(ema.g_state), jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(ema.images_from(z), standing.images_from(z))
  assert np.any(ema.images_from(z) != raw.images_from(z))
