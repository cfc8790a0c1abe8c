"""Residual GAN for limited data: the default model of the class configs.

Architecture after Gulrajani et al. 2017 ("Improved Training of Wasserstein
GANs", App. F) and Miyato et al. 2018 ("Spectral Normalization for Generative
Adversarial Networks", App. B.4): G stacks pre-activation residual blocks that
upsample (nearest + 3x3 conv, run as the exactly equal transposed conv of
`layers.UpsampleConv3x3`), with BatchNorm; D stacks residual blocks that
downsample (3x3 convs + 2x2 average pooling, the last conv and the pooling
run as the exactly equal strided conv of `layers.Conv3x3AvgPool`) and has *no*
normalisation of
activations, so each sample's logit depends on that sample only and the R1
penalty on real data (Mescheder et al. 2018, "Which Training Methods for GANs
do actually Converge?") is a clean per-sample gradient. Spectral norm on D's
weights is optional.

Widths: `channels` at 4x4, halved per doubling of resolution and floored at
`min_channels`. The floor is lower than DCGAN's because each residual block
runs two 3x3 convs at full resolution, the dominant CPU cost at 128 px.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cxrgan_jax.models import layers

MIN_CHANNELS = 16
BN_MOMENTUM = 0.9
# He-style scaling for convs followed by ReLU; Glorot (gain 1) for the linear
# shortcuts and the input/output layers (as in Miyato et al.'s code).
_relu_init = nn.initializers.variance_scaling(2.0, 'fan_avg', 'uniform')
_linear_init = nn.initializers.xavier_uniform()


class GBlock(nn.Module):
  """BN-ReLU-up-conv-BN-ReLU-conv + up-conv1x1 shortcut; doubles H and W.

  Attributes:
    features: output channels.
    axis_name: pmap axis over which BatchNorm averages batch statistics.
    dtype: compute dtype (None: float32).
  """

  features: int
  axis_name: str | None = None
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    def bn(h):
      return nn.BatchNorm(
        use_running_average=not train,
        momentum=BN_MOMENTUM,
        axis_name=self.axis_name,
        dtype=self.dtype,
      )(h)

    # = nn.Conv(3x3)(upsample_nearest_2x(h)), as a 4x4 stride-2 transposed conv.
    h = layers.UpsampleConv3x3(self.features, kernel_init=_relu_init, dtype=self.dtype)(
      nn.relu(bn(x))
    )
    h = nn.Conv(self.features, (3, 3), kernel_init=_relu_init, dtype=self.dtype)(nn.relu(bn(h)))
    # A 1x1 conv commutes with nearest upsampling: run it at low resolution.
    s = nn.Conv(self.features, (1, 1), kernel_init=_linear_init, dtype=self.dtype)(x)
    return h + layers.upsample_nearest_2x(s)


class DBlock(nn.Module):
  """(ReLU)-conv-ReLU-conv-avgpool + avgpool-(conv1x1) shortcut; halves H, W.

  Attributes:
    features: output channels.
    spectral_norm: spectrally normalise the convs.
    preactivate: apply ReLU to the input; off for the block that sees images
      (Miyato et al.'s "optimized" first block).
    dtype: compute dtype (None: float32).
  """

  features: int
  spectral_norm: bool = False
  preactivate: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    def conv(layer, h):
      return layers.maybe_spectral_norm(layer, self.spectral_norm)(h, train)

    # Explicit names: those of the plain nn.Conv layers of older checkpoints.
    dt = self.dtype
    h = nn.relu(x) if self.preactivate else x
    h = conv(nn.Conv(self.features, (3, 3), kernel_init=_relu_init, dtype=dt, name='Conv_0'), h)
    # = avg_pool_2x(nn.Conv(3x3)(h)), as one 4x4 stride-2 conv.
    h = conv(
      layers.Conv3x3AvgPool(self.features, kernel_init=_relu_init, name='Conv_1'), nn.relu(h)
    )
    # Pooling and a 1x1 conv commute; pooling first is 4x cheaper.
    s = layers.avg_pool_2x(x)
    if x.shape[-1] != self.features:
      s = conv(nn.Conv(self.features, (1, 1), kernel_init=_linear_init, dtype=dt, name='Conv_2'), s)
    return h + s


class Generator(nn.Module):
  """z [B, latent] -> images [B, R, R, 1] in [-1, 1].

  Attributes:
    resolution: output side R (a power of two >= 8).
    channels: width at 4x4 (the widest layer).
    axis_name: pmap axis over which BatchNorm averages batch statistics.
    min_channels: floor of the per-block width.
    dtype: compute dtype (None: float32); parameters and output stay float32.
  """

  resolution: int
  channels: int
  axis_name: str | None = None
  min_channels: int = MIN_CHANNELS
  dtype: Any = None

  @nn.compact
  def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
    dt = self.dtype
    h = nn.Dense(4 * 4 * self.channels, kernel_init=_linear_init, dtype=dt)(z.astype(jnp.float32))
    h = h.reshape(z.shape[0], 4, 4, self.channels)
    for level in range(1, layers.num_doublings(self.resolution) + 1):
      width = layers.channels_at(self.channels, level, self.min_channels)
      h = GBlock(width, axis_name=self.axis_name, dtype=dt)(h, train=train)
    h = nn.BatchNorm(
      use_running_average=not train, momentum=BN_MOMENTUM, axis_name=self.axis_name, dtype=dt
    )(h)
    h = nn.Conv(1, (3, 3), kernel_init=_linear_init, dtype=dt)(nn.relu(h))
    return jnp.tanh(h.astype(jnp.float32))


class Discriminator(nn.Module):
  """images [B, R, R, 1] -> logits [B]; no BatchNorm (see module docstring).

  Attributes:
    resolution: input side R.
    channels: width at 4x4 (the widest layer).
    spectral_norm: spectrally normalise every weight (Miyato et al. 2018).
    min_channels: floor of the per-block width.
    dtype: compute dtype (None: float32); parameters and logits stay float32.
  """

  resolution: int
  channels: int
  spectral_norm: bool = False
  min_channels: int = MIN_CHANNELS
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    doublings = layers.num_doublings(self.resolution)
    h = x.astype(self.dtype or jnp.float32)
    for level in reversed(range(doublings)):
      width = layers.channels_at(self.channels, level, self.min_channels)
      h = DBlock(
        width,
        spectral_norm=self.spectral_norm,
        preactivate=level != doublings - 1,
        dtype=self.dtype,
      )(h, train=train)
    # Global sum pooling (Miyato et al. 2018) over the final 4x4 features, in float32.
    h = jnp.sum(nn.relu(h).astype(jnp.float32), axis=(1, 2))
    dense = nn.Dense(1, kernel_init=_linear_init)
    logits = layers.maybe_spectral_norm(dense, self.spectral_norm)(h, train)
    return logits[:, 0]
