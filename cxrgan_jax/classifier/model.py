"""A small chest X-ray CNN: the classifier and its 'cxr' embedding."""

from collections.abc import Sequence
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections


class CxrNet(nn.Module):
  """Stride-2 stem, conv stages with average pooling, global average pool.

  Input float32 [B, R, R, 1] in [-1, 1]; returns (logits [B, 3], features
  [B, widths[-1]]), where features are the post-ReLU global average pool that
  feeds the classification layer (the 'cxr' embedding).
  """

  widths: Sequence[int] = (16, 32, 64, 128)
  num_classes: int = 3
  dropout: float = 0.3

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
    norm = functools.partial(nn.GroupNorm, num_groups=8)
    x = nn.Conv(self.widths[0], (5, 5), strides=(2, 2), name='stem')(x)
    x = nn.relu(norm(name='stem_norm')(x))
    for i, width in enumerate(self.widths):
      for j in range(2):
        x = nn.Conv(width, (3, 3), name=f'stage{i}_conv{j}')(x)
        x = nn.relu(norm(name=f'stage{i}_norm{j}')(x))
      if i < len(self.widths) - 1:
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    features = x.mean(axis=(1, 2))
    h = nn.Dropout(self.dropout, deterministic=not train)(features)
    logits = nn.Dense(self.num_classes, name='head')(h)
    return logits, features


def make_model(config: ml_collections.ConfigDict) -> CxrNet:
  return CxrNet(
    widths=tuple(config.widths), num_classes=len(config.class_names), dropout=config.dropout
  )


def to_model_input(images: jax.Array, resolution: int) -> jax.Array:
  """uint8 [B, H, W, 1|3] -> float32 [B, R, R, 1] in [-1, 1].

  RGB is averaged to gray; other sizes get an antialiased bilinear resize.
  """
  x = images.astype(jnp.float32).mean(axis=-1, keepdims=True) / 127.5 - 1.0
  if x.shape[1:3] != (resolution, resolution):
    x = jax.image.resize(x, (x.shape[0], resolution, resolution, 1), 'linear', antialias=True)
  return x


def augment(rng: jax.Array, x: jax.Array, max_shift: int) -> jax.Array:
  """Random translation (edge padding) and brightness/contrast of [B,R,R,1].

  No flips: a mirrored chest X-ray shows dextrocardia, not a normal variant.
  """
  b, r = x.shape[0], x.shape[1]
  k_shift, k_con, k_bri = jax.random.split(rng, 3)
  if max_shift > 0:
    padded = jnp.pad(x, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)), mode='edge')
    offsets = jax.random.randint(k_shift, (b, 2), 0, 2 * max_shift + 1)
    x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (r, r, 1)))(
      padded, offsets
    )
  contrast = jax.random.uniform(k_con, (b, 1, 1, 1), minval=0.8, maxval=1.2)
  bright = jax.random.uniform(k_bri, (b, 1, 1, 1), minval=-0.1, maxval=0.1)
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  return jnp.clip((x - mean) * contrast + mean + bright, -1.0, 1.0)
