"""Generator/discriminator pairs chosen by `config.model`.

Both families share one calling convention, so the training step is model
agnostic:

  images = G.apply(g_vars, z, train=..., mutable=[...])  # [B, R, R, 1], [-1, 1]
  logits = D.apply(d_vars, x, train=..., mutable=[...])  # [B]

Variables are 'params' plus, where a model has them, 'batch_stats' (BatchNorm
running statistics and nn.SpectralNorm's power-iteration state).
"""

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from cxrgan_jax.models import dcgan
from cxrgan_jax.models import resnet

MODELS = ('dcgan', 'resnet')
RESOLUTIONS = (64, 128, 256)
COMPUTE_DTYPES = ('float32', 'bfloat16')


def compute_dtype(config: ml_collections.ConfigDict):
  """The layers' compute dtype: None (float32) or jnp.bfloat16.

  Configs saved before the field existed mean float32.
  """
  name = config.get('compute_dtype', 'float32')
  if name not in COMPUTE_DTYPES:
    raise ValueError(
      f'config.compute_dtype={name!r} is unknown; use one of {", ".join(map(repr, COMPUTE_DTYPES))}'
    )
  return None if name == 'float32' else jnp.bfloat16


def validate_model_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first model field that cannot be built."""
  if config.model not in MODELS:
    raise ValueError(
      f'config.model={config.model!r} is unknown; use one of {", ".join(repr(m) for m in MODELS)}'
    )
  if config.resolution not in RESOLUTIONS:
    raise ValueError(
      f'config.resolution={config.resolution!r} is not supported; use 64, 128 or 256'
    )
  for field in ('latent_dim', 'g_channels', 'd_channels'):
    value = config[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f'config.{field}={value!r} must be a positive integer')
  if not isinstance(config.spectral_norm, bool):
    raise ValueError(f'config.spectral_norm={config.spectral_norm!r} must be True or False')
  compute_dtype(config)


def create_models(
  config: ml_collections.ConfigDict, *, axis_name: str | None = None
) -> tuple[nn.Module, nn.Module]:
  """Returns (generator, discriminator) for `config`.

  Args:
    config: run config (see configs/base.py); reads model, resolution,
      g_channels, d_channels, spectral_norm and compute_dtype.
    axis_name: pmap axis name; when set, BatchNorm layers average their batch
      statistics across devices, so a data-parallel step equals a single-device
      step on the same global batch.
  """
  validate_model_config(config)
  module = dcgan if config.model == 'dcgan' else resnet
  dtype = compute_dtype(config)
  generator = module.Generator(
    resolution=config.resolution, channels=config.g_channels, axis_name=axis_name, dtype=dtype
  )
  if config.model == 'dcgan':
    discriminator = dcgan.Discriminator(
      resolution=config.resolution,
      channels=config.d_channels,
      spectral_norm=config.spectral_norm,
      axis_name=axis_name,
      dtype=dtype,
    )
  else:
    discriminator = resnet.Discriminator(
      resolution=config.resolution,
      channels=config.d_channels,
      spectral_norm=config.spectral_norm,
      dtype=dtype,
    )
  return generator, discriminator
