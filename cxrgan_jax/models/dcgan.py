"""DCGAN (Radford et al. 2015, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks"), grayscale, 64-256 px.

Follows the paper's guidelines: no pooling or fully connected hidden layers,
BatchNorm in G (all but the output) and D (all but the input layer), ReLU + tanh
in G, LeakyReLU(0.2) in D, weights ~ N(0, 0.02). Resolution changes use 4x4
kernels with stride 2, as `layers.ConvTranspose4x4` (G) and
`layers.Conv4x4Down` (D): the same functions, with forward and backward
passes that avoid XLA CPU's slow input-dilated convolutions (see layers.py).

Widths: `channels` at 4x4, halved per doubling of resolution and floored at
`min_channels` (e.g. 256 -> 128 -> 64 -> 32 -> 32 at 64 px).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cxrgan_jax.models import layers

# Floor of the per-layer width; keeps the 128/256 px layers affordable on CPU.
MIN_CHANNELS = 32
# PyTorch's BatchNorm2d defaults (momentum 0.1 there = 0.9 here, eps 1e-5),
# the setting the DCGAN reference code trains with.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def _bn_scale_init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """BatchNorm gamma ~ N(1, 0.02), as in the DCGAN reference code."""
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _batch_norm(train: bool, axis_name: str | None, dtype: Any) -> nn.BatchNorm:
  """The DCGAN's BatchNorm (PyTorch's settings); built inside the caller's compact scope."""
  return nn.BatchNorm(
    use_running_average=not train,
    momentum=BN_MOMENTUM,
    epsilon=BN_EPSILON,
    scale_init=_bn_scale_init,
    axis_name=axis_name,
    dtype=dtype,
  )


class Generator(nn.Module):
  """z [B, latent] -> images [B, R, R, 1] in [-1, 1].

  Attributes:
    resolution: output side R (a power of two >= 8).
    channels: width at 4x4 (the widest layer).
    axis_name: pmap axis over which BatchNorm averages batch statistics.
    min_channels: floor of the per-layer width.
    dtype: compute dtype (None: float32); parameters and output stay float32.
  """

  resolution: int
  channels: int
  axis_name: str | None = None
  min_channels: int = MIN_CHANNELS
  dtype: Any = None

  @nn.compact
  def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
    def bn(h):
      return _batch_norm(train, self.axis_name, self.dtype)(h)

    doublings = layers.num_doublings(self.resolution)
    width = self.channels
    # "Project and reshape" (the paper's Fig. 1): a matmul to 4x4xC.
    h = nn.Dense(4 * 4 * width, use_bias=False, kernel_init=layers.dcgan_init, dtype=self.dtype)(
      z.astype(jnp.float32)
    )
    h = nn.relu(bn(h.reshape(z.shape[0], 4, 4, width)))
    for level in range(1, doublings):
      width = layers.channels_at(self.channels, level, self.min_channels)
      h = layers.ConvTranspose4x4(width, use_bias=False, dtype=self.dtype)(h)
      h = nn.relu(bn(h))
    h = layers.ConvTranspose4x4(1, dtype=self.dtype)(h)
    return jnp.tanh(h.astype(jnp.float32))


class Discriminator(nn.Module):
  """images [B, R, R, 1] -> logits [B] (pre-sigmoid).

  Attributes:
    resolution: input side R.
    channels: width at 4x4 (the widest layer).
    spectral_norm: spectrally normalise every weight (Miyato et al. 2018).
    axis_name: pmap axis over which BatchNorm averages batch statistics.
    min_channels: floor of the per-layer width.
    dtype: compute dtype (None: float32); parameters and logits stay float32.
  """

  resolution: int
  channels: int
  spectral_norm: bool = False
  axis_name: str | None = None
  min_channels: int = MIN_CHANNELS
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    def conv(h, width, use_bias, index):
      # Named as the nn.Conv it replaced, so older checkpoints still restore.
      layer = layers.Conv4x4Down(width, use_bias=use_bias, dtype=self.dtype, name=f'Conv_{index}')
      return layers.maybe_spectral_norm(layer, self.spectral_norm)(h, train)

    doublings = layers.num_doublings(self.resolution)
    h = x.astype(self.dtype or jnp.float32)
    for level in reversed(range(doublings)):
      width = layers.channels_at(self.channels, level, self.min_channels)
      first = level == doublings - 1
      h = conv(h, width, use_bias=first, index=doublings - 1 - level)
      if not first:  # No BatchNorm on D's input layer (paper, §3).
        h = _batch_norm(train, self.axis_name, self.dtype)(h)
      h = nn.leaky_relu(h, 0.2)
    # A 4x4 valid conv to one channel, written as its equal: flatten + dense.
    h = h.reshape(h.shape[0], -1)
    dense = nn.Dense(1, kernel_init=layers.dcgan_init, dtype=self.dtype)
    logits = layers.maybe_spectral_norm(dense, self.spectral_norm)(h, train)
    return logits[:, 0].astype(jnp.float32)
