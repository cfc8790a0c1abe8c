"""Layers shared by the GAN families, written as matmuls for fast CPU gradients.

Every resolution change is a 4x4 stride-2 convolution or its adjoint (the
4x4 stride-2 transposed convolution). XLA's CPU backend runs the gradients of
strided and transposed convolutions through input-dilated convolutions that
take a slow generic path (jax-ml/jax#31662, openxla/xla#34273; measured 3.9 s
for one 4->8 px, 512->256 channel transposed-conv layer's gradient at batch 64,
against 0.38 s here). So both are written without any dilated convolution, in
forward or backward:

- `conv4x4_stride2`: pad by 1, space-to-depth by 2, then the four 2x2 shifted
  windows concatenated and one `dot_general` with the kernel rearranged to
  [16 C_in, C_out]. Its gradients are a matmul each, plus slices/pads.
- `conv_transpose4x4_stride2`: one matmul per output phase over the 2x2
  input windows it reads, phases interleaved by a reshape; or, for narrow
  outputs, the exact adjoint of the above: one `dot_general` to
  [.., 16 C_out], an overlap-add of the four windows, depth-to-space, crop.

Both do exactly the multiply-adds of the convolution they replace (the
earlier 3x3 conv + depth-to-space form of the transposed conv did 2.25x).
The residual family's "nearest 2x upsampling + 3x3 conv" and "3x3 conv + 2x2
average pooling" are also exactly 4x4 stride-2 (transposed) convolutions, with
a 4x4 kernel derived from the 3x3 one, so they reuse the same two functions and
cost 16/36 of the multiply-adds of the plain forms.

Parameters keep the layout of the layers replaced (kernel [kh, kw, C_in,
C_out], bias [C_out]), so checkpoints written before this rewrite restore and
compute the same function (tests/test_checkpoint_compat.py).

All tensors are NHWC.
"""

from collections.abc import Callable
import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Initializer = Callable[..., jax.Array]

# DCGAN's weight initialisation (Radford et al. 2015, §4).
dcgan_init = nn.initializers.normal(stddev=0.02)


def depth_to_space(x: jax.Array, block: int = 2) -> jax.Array:
  """[B, H, W, b*b*C] -> [B, H*b, W*b, C]; channel order (row, col, C).

  out[n, b*h + i, b*w + j, c] = x[n, h, w, (i*b + j)*C + c], the same layout as
  `tf.nn.depth_to_space`.
  """
  n, h, w, c = x.shape
  if c % (block * block):
    raise ValueError(f'channels {c} not divisible by block**2={block * block}')
  out_c = c // (block * block)
  x = x.reshape(n, h, w, block, block, out_c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h * block, w * block, out_c)


def upsample_nearest_2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour 2x upsampling by broadcast; gather-free."""
  n, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c))
  return x.reshape(n, 2 * h, 2 * w, c)


def num_doublings(resolution: int) -> int:
  """Number of 2x resolution steps between 4x4 and `resolution`."""
  return int(math.log2(resolution // 4))


def channels_at(widest: int, level: int, floor: int) -> int:
  """Channels `level` doublings of resolution above 4x4: widest / 2**level.

  Clamped below at min(floor, widest) so high-resolution layers keep some
  capacity while their cost (proportional to H*W*C^2) stays bounded.
  """
  return max(widest >> level, min(floor, widest))


def avg_pool_2x(x: jax.Array) -> jax.Array:
  """2x2 mean pooling by reshape; its gradient is a broadcast."""
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def space_to_depth(x: jax.Array, block: int = 2) -> jax.Array:
  """[B, H, W, C] -> [B, H/b, W/b, b*b*C]; the inverse of `depth_to_space`."""
  n, h, w, c = x.shape
  if h % block or w % block:
    raise ValueError(f'spatial size {h}x{w} not divisible by block={block}')
  x = x.reshape(n, h // block, block, w // block, block, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // block, w // block, block * block * c)


def _pad1(x: jax.Array) -> jax.Array:
  return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _matmul_kernel(kernel: jax.Array) -> jax.Array:
  """[4, 4, C, O] -> [16 C, O], rows ordered (a, b, p, q, c) for tap (2a+p, 2b+q).

  (a, b) picks one of the 2x2 shifted windows of the space-to-depth input and
  (p, q, c) a channel of it, matching the patches built in `conv4x4_stride2`.
  """
  c, o = kernel.shape[2:]
  k = kernel.reshape(2, 2, 2, 2, c, o).transpose(0, 2, 1, 3, 4, 5)
  return k.reshape(16 * c, o)


def _dot(x: jax.Array, kernel: jax.Array, dtype) -> jax.Array:
  """x [..., K] @ kernel [K, N]; in `dtype` with float32 accumulation if given."""
  dims = (((x.ndim - 1,), (0,)), ((), ()))
  if dtype is None:
    return jax.lax.dot_general(x, kernel.astype(x.dtype), dims)
  y = jax.lax.dot_general(
    x.astype(dtype), kernel.astype(dtype), dims, preferred_element_type=jnp.float32
  )
  return y.astype(dtype)


def conv4x4_stride2(x: jax.Array, kernel: jax.Array, dtype=None) -> jax.Array:
  """4x4 stride-2 convolution with 1 pixel of zero padding, as one matmul.

  Equals `lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)))`,
  i.e. `nn.Conv(f, (4, 4), (2, 2), padding='SAME')` on even sizes and torch's
  `Conv2d(k=4, s=2, p=1)` (kernel = torch_weight.permute(2, 3, 1, 0)).

  Args:
    x: [B, H, W, C] with H, W even.
    kernel: [4, 4, C, O].
    dtype: compute dtype of the matmul (None: x's); it accumulates in float32.

  Returns:
    [B, H/2, W/2, O].
  """
  n, h, w, c = x.shape
  if kernel.shape[:3] != (4, 4, c):
    raise ValueError(f'kernel shape {kernel.shape} does not fit input channels {c}')
  s = space_to_depth(_pad1(x))  # [B, H/2 + 1, W/2 + 1, 4C]
  h2, w2 = h // 2, w // 2
  patches = jnp.concatenate([s[:, a : a + h2, b : b + w2] for a in (0, 1) for b in (0, 1)], -1)
  return _dot(patches, _matmul_kernel(kernel), dtype)


# Output channels from which `conv_transpose4x4_stride2` runs one matmul per
# output phase instead of the single matmul + overlap-add: measured 1.5-2x
# faster for the 8->16 and 16->32 px layers of the DCGAN (C_out 64-128) on
# 1 CPU core, and 18x slower for the C_out = 1 output layer (matrix-vector).
PHASE_FORM_MIN_FEATURES = 16


def conv_transpose4x4_stride2(x: jax.Array, kernel: jax.Array, dtype=None) -> jax.Array:
  """4x4 stride-2 transposed convolution (2x upsampling) as matmuls.

  Equals `lax.conv_transpose(x, kernel, (2, 2), 'SAME')`, i.e. flax's
  `nn.ConvTranspose(f, (4, 4), (2, 2), padding='SAME')` (no kernel transpose),
  which is torch's `ConvTranspose2d(k=4, s=2, p=1)` with the kernel flipped:
  kernel = torch_weight.permute(2, 3, 0, 1).flip(0, 1) (`from_torch`). Per
  axis: y[2m] = k[0] x[m-1] + k[2] x[m], y[2m+1] = k[1] x[m] + k[3] x[m+1].

  Two exact forms, both with the multiply-adds of the transposed conv and no
  convolution in forward or backward:
  - phase form (C_out >= PHASE_FORM_MIN_FEATURES): for each of the 4 output
    phases (p, q), the 2x2 input windows it reads concatenated and one matmul
    with kernel[p::2, q::2] ([4 C_in, C_out]); phases interleaved by reshape.
  - adjoint form: the adjoint of `conv4x4_stride2` with the kernel
    kernel[::-1, ::-1] transposed in its channel axes: one matmul to 16
    output groups, one per (window, phase), then an overlap-add of the four
    windows; one wide matmul suits a narrow output.

  Args:
    x: [B, H, W, C].
    kernel: [4, 4, C, O].
    dtype: compute dtype of the matmuls (None: x's); they accumulate in float32.

  Returns:
    [B, 2H, 2W, O].
  """
  n, h, w, c = x.shape
  if kernel.shape[:3] != (4, 4, c):
    raise ValueError(f'kernel shape {kernel.shape} does not fit input channels {c}')
  o = kernel.shape[3]
  if o >= PHASE_FORM_MIN_FEATURES:
    xp = _pad1(x)
    rows = []
    for p in (0, 1):
      phases = []
      for q in (0, 1):
        windows = [xp[:, p + i : p + i + h, q + j : q + j + w] for i in (0, 1) for j in (0, 1)]
        k = kernel[p::2, q::2].reshape(4 * c, o)  # Taps (p + 2i, q + 2j), order (i, j, c).
        phases.append(_dot(jnp.concatenate(windows, -1), k, dtype))
      rows.append(jnp.stack(phases, 3))  # [B, H, W, 2 (q), O]
    return jnp.stack(rows, 2).reshape(n, 2 * h, 2 * w, o)  # [B, H, 2 (p), W, 2 (q), O]
  adjoint = kernel[::-1, ::-1].transpose(0, 1, 3, 2)  # The down-conv [4, 4, O, C].
  z = _dot(x, _matmul_kernel(adjoint).T, dtype)  # [B, H, W, 16 O], (a, b, p, q, o).
  z = z.reshape(n, h, w, 2, 2, 4 * o)
  s = sum(
    jnp.pad(z[:, :, :, a, b], ((0, 0), (a, 1 - a), (b, 1 - b), (0, 0)))
    for a in (0, 1)
    for b in (0, 1)
  )  # [B, H + 1, W + 1, 4 O]: the space-to-depth of the padded output.
  return depth_to_space(s, 2)[:, 1:-1, 1:-1]


def from_torch(weight, transposed: bool) -> np.ndarray:
  """A PyTorch 4x4 stride-2 pad-1 kernel as this module's [4, 4, C_in, C_out].

  Args:
    weight: `Conv2d.weight` [C_out, C_in, 4, 4] (transposed=False), or
      `ConvTranspose2d.weight` [C_in, C_out, 4, 4] (transposed=True); a numpy
      array or a CPU tensor.
    transposed: which of the two layers `weight` comes from.
  """
  w = np.asarray(weight)
  if transposed:
    return np.ascontiguousarray(w.transpose(2, 3, 0, 1)[::-1, ::-1])
  return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


# A 3-tap conv followed by 2-tap mean pooling (or preceded by 2x nearest
# upsampling) is, per axis, a 4-tap stride-2 conv (or transposed conv) with
# taps _3_TO_4 @ k3 (times 1/2 for the pooling):
#   pool:    y[m]    = (c[2m] + c[2m+1]) / 2
#                    = (k0 x[2m-1] + (k0+k1) x[2m] + (k1+k2) x[2m+1] + k2 x[2m+2]) / 2
#   nearest: y[2m]   = k0 x[m-1] + (k1+k2) x[m]
#            y[2m+1] = (k0+k1) x[m] + k2 x[m+1]
_3_TO_4 = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]], np.float32)


def kernel3x3_to_4x4(kernel: jax.Array) -> jax.Array:
  """[3, 3, C, O] -> the [4, 4, C, O] kernel with _3_TO_4 applied on both axes."""
  m = jnp.asarray(_3_TO_4, kernel.dtype)
  return jnp.einsum('ut,vs,tsco->uvco', m, m, kernel, precision=jax.lax.Precision.HIGHEST)


class _Strided4x4(nn.Module):
  """Shared fields of the layers below; `kernel` keeps the replaced layer's shape.

  Attributes:
    features: output channels.
    use_bias: add a bias (off when a BatchNorm follows).
    kernel_init: initialiser of the kernel.
    dtype: compute dtype of the matmul (None: the input's); parameters stay
      float32 and products accumulate in float32.
  """

  features: int
  use_bias: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()
  dtype: Any = None

  kernel_size: ClassVar[int] = 4

  def _params(self, c_in: int) -> tuple[jax.Array, jax.Array | None]:
    k = self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (k, k, c_in, self.features), jnp.float32)
    bias = None
    if self.use_bias:
      bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    return kernel, bias

  def _add_bias(self, y: jax.Array, bias: jax.Array | None) -> jax.Array:
    return y if bias is None else y + bias.astype(y.dtype)


class Conv4x4Down(_Strided4x4):
  """2x downsampling; exactly `nn.Conv(f, (4, 4), (2, 2), 'SAME')` on even sizes.

  Same parameters as that layer; torch `Conv2d(k=4, s=2, p=1)` weights convert
  with `from_torch(w, transposed=False)`. DCGAN's N(0, 0.02) init by default.
  """

  kernel_init: Initializer = dcgan_init

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, H, W, C_in] (H, W even) -> [B, H/2, W/2, features]."""
    kernel, bias = self._params(x.shape[-1])
    return self._add_bias(conv4x4_stride2(x, kernel, self.dtype), bias)


class ConvTranspose4x4(_Strided4x4):
  """2x upsampling; exactly `nn.ConvTranspose(f, (4, 4), (2, 2), 'SAME')`.

  Same parameters as that layer; torch `ConvTranspose2d(k=4, s=2, p=1)`
  weights convert with `from_torch(w, transposed=True)` (a spatial flip, see
  `conv_transpose4x4_stride2`). DCGAN's N(0, 0.02) init by default.
  """

  kernel_init: Initializer = dcgan_init

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, H, W, C_in] -> [B, 2H, 2W, features]."""
    kernel, bias = self._params(x.shape[-1])
    return self._add_bias(conv_transpose4x4_stride2(x, kernel, self.dtype), bias)


class UpsampleConv3x3(_Strided4x4):
  """Exactly `nn.Conv(f, (3, 3))(upsample_nearest_2x(x))`, as a transposed conv.

  The parameter is that 3x3 conv's kernel; the 4x4 stride-2 transposed conv
  with the derived kernel (`kernel3x3_to_4x4`) computes the same function with
  16/36 of the multiply-adds and no upsampled input.
  """

  kernel_size: ClassVar[int] = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, H, W, C_in] -> [B, 2H, 2W, features]."""
    kernel, bias = self._params(x.shape[-1])
    y = conv_transpose4x4_stride2(x, kernel3x3_to_4x4(kernel), self.dtype)
    return self._add_bias(y, bias)


class Conv3x3AvgPool(_Strided4x4):
  """Exactly `avg_pool_2x(nn.Conv(f, (3, 3))(x))`, as a strided conv.

  The parameter is that 3x3 conv's kernel; the 4x4 stride-2 conv with the
  derived kernel (kernel3x3_to_4x4 / 4) computes the same function with 16/36
  of the multiply-adds and never forms the full-resolution conv output.
  """

  kernel_size: ClassVar[int] = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, H, W, C_in] (H, W even) -> [B, H/2, W/2, features]."""
    kernel, bias = self._params(x.shape[-1])
    y = conv4x4_stride2(x, 0.25 * kernel3x3_to_4x4(kernel), self.dtype)
    return self._add_bias(y, bias)


def maybe_spectral_norm(layer: nn.Module, enabled: bool) -> Callable[..., Any]:
  """Returns `layer` or its spectrally normalised wrapper as `f(x, train)`.

  Spectral norm (Miyato et al. 2018, "Spectral Normalization for Generative
  Adversarial Networks") divides each kernel, reshaped to [fan_in, fan_out],
  by its largest singular value, estimated by one power-iteration step per
  training call; flax keeps the iteration vector in 'batch_stats'.
  """
  if enabled:
    wrapped = nn.SpectralNorm(layer)
    return lambda x, train: wrapped(x, update_stats=train)
  return lambda x, train: layer(x)
