"""Sampling with a BatchNorm generator: running averages or batch statistics."""

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
  with pytest.raises(ValueError, match="'running', 'batch'"):
    sampling.Sampler(config, generator, params, g_state, 0, batchnorm='eval')
