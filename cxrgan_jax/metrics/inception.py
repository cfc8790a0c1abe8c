"""InceptionV3 exactly as pytorch-fid's FID network, in Flax.

FID, IS and KID numbers are only comparable across papers when they come from
the same network: the 2015-12-05 TensorFlow Inception graph, which pytorch-fid
(Seitzer, `pytorch_fid.inception.fid_inception_v3`) ports to PyTorch. That
graph differs from torchvision's Inception v3 in four places that change the
features, all reproduced here:

- 1008 output classes (the TF graph has 8 unused ones);
- the average pools inside the A, C and first E blocks do not count padded
  zeros (TF's `avg_pool` semantics, PyTorch's `count_include_pad=False`);
- the last E block (Mixed_7c) pools its fourth branch with a *max* pool;
- inputs are resized to 299x299 with bilinear interpolation and
  `align_corners=False`, *without* antialiasing, then mapped to [-1, 1].

Module and parameter names mirror the PyTorch state dict (`Mixed_5b`,
`branch5x5_1`, `conv`, `bn`) so that `inception_weights` maps the two one to
one. Every tensor is NHWC float32 and every matmul/convolution runs at
`Precision.HIGHEST`, so that features do not depend on the backend's default
(TF32/bfloat16 passes on accelerators).
"""

from collections.abc import Sequence
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

INPUT_SIZE = 299  # Side the network was trained at; pytorch-fid resizes to it.
POOL3_DIM = 2048  # Width of the final average pool ("pool3") features.
NUM_CLASSES = 1008  # Width of the logits of the TF 2015-12-05 graph.
BN_EPSILON = 1e-3  # torchvision's BasicConv2d uses BatchNorm2d(eps=0.001).

_HIGHEST = jax.lax.Precision.HIGHEST
# (kernel_h, kernel_w) or an int for square kernels, as in torchvision.
Size2 = int | tuple[int, int]


def _pair(v: Size2) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv2d(nn.Module):
  """Conv (no bias) -> BatchNorm (running stats, eps 1e-3, affine) -> ReLU."""

  features: int
  kernel_size: Size2
  strides: Size2 = 1
  padding: Size2 = 0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = _pair(self.padding)
    x = nn.Conv(
      self.features,
      _pair(self.kernel_size),
      strides=_pair(self.strides),
      padding=((ph, ph), (pw, pw)),
      use_bias=False,
      precision=_HIGHEST,
      name='conv',
    )(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name='bn')(x)
    return nn.relu(x)


def avg_pool_3x3_exclude_pad(x: jax.Array) -> jax.Array:
  """3x3 stride-1 'same' average that ignores padded cells (TF avg_pool).

  Border outputs are divided by the number of real input cells in their
  window (4 in corners, 6 on edges), not by 9.
  """
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  window, strides = (1, 3, 3, 1), (1, 1, 1, 1)
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pad)
  return total / count


def max_pool_3x3(x: jax.Array, stride: int, padding: int) -> jax.Array:
  """Max pool; padding cells are -inf, so they never win (as in PyTorch)."""
  pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, stride, stride, 1), pad)


class InceptionA(nn.Module):
  """Mixed_5b/5c/5d (`FIDInceptionA`): 35x35 grid, exclude-pad avg pool."""

  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv2d(64, 1, name='branch1x1')(x)
    b5 = BasicConv2d(48, 1, name='branch5x5_1')(x)
    b5 = BasicConv2d(64, 5, padding=2, name='branch5x5_2')(b5)
    b3 = BasicConv2d(64, 1, name='branch3x3dbl_1')(x)
    b3 = BasicConv2d(96, 3, padding=1, name='branch3x3dbl_2')(b3)
    b3 = BasicConv2d(96, 3, padding=1, name='branch3x3dbl_3')(b3)
    bp = avg_pool_3x3_exclude_pad(x)
    bp = BasicConv2d(self.pool_features, 1, name='branch_pool')(bp)
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: grid reduction 35 -> 17 (torchvision's InceptionB, unpatched)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv2d(384, 3, strides=2, name='branch3x3')(x)
    bd = BasicConv2d(64, 1, name='branch3x3dbl_1')(x)
    bd = BasicConv2d(96, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = BasicConv2d(96, 3, strides=2, name='branch3x3dbl_3')(bd)
    bp = max_pool_3x3(x, stride=2, padding=0)
    return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..6e (`FIDInceptionC`): factorised 7x7, exclude-pad avg pool."""

  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.channels_7x7
    b1 = BasicConv2d(192, 1, name='branch1x1')(x)
    b7 = BasicConv2d(c7, 1, name='branch7x7_1')(x)
    b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = BasicConv2d(c7, 1, name='branch7x7dbl_1')(x)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = avg_pool_3x3_exclude_pad(x)
    bp = BasicConv2d(192, 1, name='branch_pool')(bp)
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: grid reduction 17 -> 8 (torchvision's InceptionD, unpatched)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv2d(192, 1, name='branch3x3_1')(x)
    b3 = BasicConv2d(320, 3, strides=2, name='branch3x3_2')(b3)
    b7 = BasicConv2d(192, 1, name='branch7x7x3_1')(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = BasicConv2d(192, 3, strides=2, name='branch7x7x3_4')(b7)
    bp = max_pool_3x3(x, stride=2, padding=0)
    return jnp.concatenate([b3, b7, bp], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (`FIDInceptionE_1`, avg pool) / 7c (`FIDInceptionE_2`, max).

  `max_pool=True` reproduces the TF graph's Mixed_7c, whose pool branch takes a
  3x3 stride-1 max (the paper says average; FID numbers depend on the max).
  """

  max_pool: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv2d(320, 1, name='branch1x1')(x)
    b3 = BasicConv2d(384, 1, name='branch3x3_1')(x)
    b3 = jnp.concatenate(
      [
        BasicConv2d(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
        BasicConv2d(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3),
      ],
      axis=-1,
    )
    bd = BasicConv2d(448, 1, name='branch3x3dbl_1')(x)
    bd = BasicConv2d(384, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate(
      [
        BasicConv2d(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
        BasicConv2d(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd),
      ],
      axis=-1,
    )
    if self.max_pool:
      bp = max_pool_3x3(x, stride=1, padding=1)
    else:
      bp = avg_pool_3x3_exclude_pad(x)
    bp = BasicConv2d(192, 1, name='branch_pool')(bp)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """pytorch-fid's FID Inception, from network input to (pool3, logits).

  Input: [N, H, W, 3] float32 already in the network's range [-1, 1] (see
  `preprocess`); H, W >= 75 (299 for the published numbers).
  Returns pool3 features [N, 2048] and logits [N, 1008], both float32.
  Variables: 'params' and 'batch_stats' (BatchNorm running mean/var).
  """

  num_classes: int = NUM_CLASSES

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = BasicConv2d(32, 3, strides=2, name='Conv2d_1a_3x3')(x)
    x = BasicConv2d(32, 3, name='Conv2d_2a_3x3')(x)
    x = BasicConv2d(64, 3, padding=1, name='Conv2d_2b_3x3')(x)
    x = max_pool_3x3(x, stride=2, padding=0)
    x = BasicConv2d(80, 1, name='Conv2d_3b_1x1')(x)
    x = BasicConv2d(192, 3, name='Conv2d_4a_3x3')(x)
    x = max_pool_3x3(x, stride=2, padding=0)
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)
    x = InceptionC(128, name='Mixed_6b')(x)
    x = InceptionC(160, name='Mixed_6c')(x)
    x = InceptionC(160, name='Mixed_6d')(x)
    x = InceptionC(192, name='Mixed_6e')(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = InceptionE(max_pool=False, name='Mixed_7b')(x)
    x = InceptionE(max_pool=True, name='Mixed_7c')(x)
    pool3 = jnp.mean(x, axis=(1, 2))  # AdaptiveAvgPool2d((1, 1)).
    logits = nn.Dense(self.num_classes, precision=_HIGHEST, name='fc')(pool3)
    return pool3, logits


@functools.lru_cache(maxsize=64)
def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out, in] float32 rows of PyTorch's bilinear, align_corners=False weights.

  PyTorch (`area_pixel_compute_source_index`) samples output pixel i at source
  coordinate (i + 0.5) * in/out - 0.5, clamped below at 0, and blends the two
  nearest source pixels (the upper one clamped to the last). Only two taps per
  output, whatever the ratio, i.e. no antialiasing on downscale, unlike
  `jax.image.resize`. The scale is computed in float32 like PyTorch does for
  float32 tensors.
  """
  scale = np.float32(in_size) / np.float32(out_size)
  src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale
  src = np.maximum(src - np.float32(0.5), np.float32(0.0))
  lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  hi = np.minimum(lo + 1, in_size - 1)
  w_hi = (src - lo.astype(np.float32)).astype(np.float32)
  w_lo = np.float32(1.0) - w_hi
  m = np.zeros((out_size, in_size), np.float32)
  rows = np.arange(out_size)
  np.add.at(m, (rows, lo), w_lo)
  np.add.at(m, (rows, hi), w_hi)
  return m


def resize_bilinear(x: jax.Array, size: Sequence[int]) -> jax.Array:
  """F.interpolate(mode='bilinear', align_corners=False) of NHWC float x.

  Separable: two dense matmuls with the fixed interpolation matrices at full
  float32 precision, which on every backend is cheaper than a gather.
  """
  out_h, out_w = size
  _, in_h, in_w, _ = x.shape
  if (in_h, in_w) != (out_h, out_w):
    mh = jnp.asarray(bilinear_matrix(in_h, out_h))
    mw = jnp.asarray(bilinear_matrix(in_w, out_w))
    x = jnp.einsum('oh,nhwc->nowc', mh, x, precision=_HIGHEST)
    x = jnp.einsum('pw,nowc->nopc', mw, x, precision=_HIGHEST)
  return x


def preprocess(images: jax.Array) -> jax.Array:
  """[N, H, W, 1|3] floats in [0, 1] -> [N, 299, 299, 3] network input.

  Same order as pytorch-fid: resize, then 2x - 1. Grayscale is replicated to
  three channels after resizing (identical result, a third of the work).
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f'expected [N, H, W, 1|3] images, got {images.shape}')
  x = resize_bilinear(images.astype(jnp.float32), (INPUT_SIZE, INPUT_SIZE))
  x = 2.0 * x - 1.0
  if x.shape[-1] == 1:
    x = jnp.broadcast_to(x, x.shape[:-1] + (3,))
  return x


def init_variables(seed: int = 0, *, scale: float = 0.9) -> dict:
  """Random variables with the real network's structure (tests, benchmarks).

  Convolutions and the classifier get He-normal weights times `scale` (0.9
  keeps pool3 features O(1) like the real network's), the BatchNorm
  scale/bias/mean/var get values around (1, 0, 0, 1) so that every term of
  the BN formula is exercised. Drawn with NumPy: per-shape jax.random calls
  would compile ~100 kernels. These are *not* Inception weights: never use
  them for metrics. Returns float32 NumPy arrays.
  """
  shapes = jax.eval_shape(
    InceptionV3().init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, 75, 75, 3), jnp.float32)
  )
  leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  rng = np.random.default_rng(seed)
  out = []
  for path, leaf in leaves:
    name = path[-1].key
    if name == 'kernel':
      fan_in = int(np.prod(leaf.shape[:-1]))
      value = rng.normal(0.0, scale * np.sqrt(2.0 / fan_in), leaf.shape)
    elif name in ('scale', 'var'):
      value = rng.uniform(0.5, 1.5, leaf.shape)
    else:  # 'bias', 'mean'.
      value = rng.normal(0.0, 0.1, leaf.shape)
    out.append(value.astype(np.float32))
  return jax.tree_util.tree_unflatten(treedef, out)
