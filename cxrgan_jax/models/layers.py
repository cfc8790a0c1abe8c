"""Layers shared by the GAN families, with gradients on XLA CPU's fast paths.

Every resolution change is a 4x4 stride-2 convolution or its adjoint (the
4x4 stride-2 transposed convolution). Left to autodiff, XLA's CPU backend runs
the transposed conv, and the input gradient of the strided conv, as
input-dilated convolutions that take a slow generic path (jax-ml/jax#31662,
openxla/xla#34273; measured 3.9 s for one 4->8 px, 512->256 channel
transposed-conv layer's forward and backward at batch 64). Undilated convs, and
the kernel gradient of the strided conv (a window-dilated conv), are fast.
So the two layers and the strided conv's kernel gradient are three
`jax.custom_vjp` functions whose forward and backward passes use only fast
forms, each other's:

- `_down`: the strided conv itself, `lax.conv_general_dilated` stride 2.
- `_up`: the transposed conv, as one 2x2 stride-1 conv of the input padded by
  1 to the four output phases ([.., 4 C_out]), then depth-to-space and a
  1-pixel crop. It multiplies (H+1)(W+1)/(HW) times the transposed conv's
  multiply-adds (1.13x at 16x16) instead of the 2.25x of a 3x3 conv +
  depth-to-space. For 1-4 output channels, one matmul to all 16 taps and an
  overlap-add instead (a conv with 4-16 outputs is slow).
- `_kernel_grad`: the strided conv's kernel gradient: autodiff's own
  (a window-dilated conv), or on maps of 32x32 and more one matmul over
  shifted cotangents.

The adjoint of `_down` with kernel k is `_up` with `_adjoint_kernel(k)`, so
input gradients are the other layer and kernel gradients are `_kernel_grad`;
second derivatives (R1) stay within the three. Which form runs where was
chosen by measurement (bench/README.md): forward + backward of the eight
layers of the width-512 DCGAN at batch 64 on 2 cores take 427 ms, against
570 ms for the matmul forms this replaced and 302-369 ms in PyTorch.

The residual family's "nearest 2x upsampling + 3x3 conv" and "3x3 conv + 2x2
average pooling" are also exactly 4x4 stride-2 (transposed) convolutions, with
a 4x4 kernel derived from the 3x3 one, so they reuse the same two functions and
cost 16/36 of the multiply-adds of the plain forms.

Parameters keep the layout of the layers replaced (kernel [kh, kw, C_in,
C_out], bias [C_out]), so checkpoints written by earlier versions restore and
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


_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _accumulator(dtype) -> jnp.dtype:
  """Products of `dtype` accumulate in at least float32."""
  return jnp.promote_types(dtype, jnp.float32)


def _conv(x: jax.Array, kernel: jax.Array, strides, padding) -> jax.Array:
  """An undilated conv in x's dtype."""
  y = jax.lax.conv_general_dilated(
    x,
    kernel.astype(x.dtype),
    strides,
    padding,
    dimension_numbers=_NHWC,
    preferred_element_type=_accumulator(x.dtype),
  )
  return y.astype(x.dtype)


def _dot(x: jax.Array, y: jax.Array, dimension_numbers) -> jax.Array:
  """A `dot_general` in x's dtype."""
  out = jax.lax.dot_general(
    x, y.astype(x.dtype), dimension_numbers, preferred_element_type=_accumulator(x.dtype)
  )
  return out.astype(x.dtype)


def _phase_taps(kernel: jax.Array) -> jax.Array:
  """[4, 4, C, O] -> [a, p, b, q, C, O] holding tap (2a + 1 - p, 2b + 1 - q).

  Output phase p of the transposed conv reads window tap a through kernel tap
  2a + 1 - p (per axis; see `_up_forward_phases`).
  """
  c, o = kernel.shape[2:]
  return kernel.reshape(2, 2, 2, 2, c, o)[:, ::-1, :, ::-1]


def _pad1(x: jax.Array) -> jax.Array:
  return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _adjoint_kernel(kernel: jax.Array) -> jax.Array:
  """[4, 4, C, O] -> [4, 4, O, C] flipped: `_up` with it is `_down`'s adjoint."""
  return kernel[::-1, ::-1].swapaxes(2, 3)


def _down_forward(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _conv(x, kernel, (2, 2), ((1, 1), (1, 1)))


def _up_forward_phases(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Transposed conv as a 2x2 stride-1 conv to the 4 output phases.

  Per axis, output row 2r + p - 1 reads padded input rows r, r + 1 (window tap
  a = 0, 1) through kernel tap 2a + 1 - p, so the [2, 2, C, 4 O] kernel holds
  tap (2a + 1 - p, 2b + 1 - q) at [a, b, c, (p, q, o)].
  """
  n, h, w, c = x.shape
  o = kernel.shape[3]
  phases = _phase_taps(kernel).transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, c, 4 * o)
  z = _conv(x, phases, (1, 1), ((1, 1), (1, 1)))  # [B, H + 1, W + 1, 4 O]
  return depth_to_space(z, 2)[:, 1:-1, 1:-1]


def _up_forward_overlap_add(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Transposed conv as one matmul to all 16 taps, then an overlap-add.

  Output (2r + p - 1, 2t + q - 1) sums tap (2a + 1 - p, 2b + 1 - q) of input
  (r - 1 + a, t - 1 + b): the matmul gives every tap of every input pixel,
  [B, H, W, (a, b, p, q, o)], and shifting window (a, b) by (1 - a, 1 - b)
  adds them up on the [H + 1, W + 1] grid of `_up_forward_phases`.
  """
  n, h, w, c = x.shape
  o = kernel.shape[3]
  taps = _phase_taps(kernel).transpose(4, 0, 2, 1, 3, 5).reshape(c, 16 * o)
  z = _dot(x, taps, (((3,), (0,)), ((), ())))
  z = z.reshape(n, h, w, 2, 2, 4 * o)
  pad = lambda a, b: ((0, 0), (1 - a, a), (1 - b, b), (0, 0))
  s = sum(jnp.pad(z[:, :, :, a, b], pad(a, b)) for a in (0, 1) for b in (0, 1))
  return depth_to_space(s, 2)[:, 1:-1, 1:-1]


# Below this many output channels the phase conv has too few outputs to run
# fast (4 O), and the single matmul + overlap-add wins: measured for the
# 1-channel output layer of G, and for the input gradient of D's first layer.
OVERLAP_ADD_MAX_FEATURES = 4


def _up_forward(x: jax.Array, kernel: jax.Array) -> jax.Array:
  if kernel.shape[3] <= OVERLAP_ADD_MAX_FEATURES:
    return _up_forward_overlap_add(x, kernel)
  return _up_forward_phases(x, kernel)


def _kernel_grad_conv(x: jax.Array, g: jax.Array) -> jax.Array:
  """Autodiff's kernel gradient: a conv with window dilation 2 (a fast path)."""
  kernel = jnp.zeros((4, 4, x.shape[-1], g.shape[-1]), x.dtype)
  return jax.vjp(lambda k: _down_forward(x, k), kernel)[1](g.astype(x.dtype))[0]


def _kernel_grad_matmul(x: jax.Array, g: jax.Array) -> jax.Array:
  """The same gradient as one matmul over (batch, position).

  With s = space-to-depth(pad(x)) [B, H/2+1, W/2+1, 4 C], taps (2a+p, 2b+q)
  are s shifted by window (a, b) against g. Shifting g instead (padding it by
  (a, 1-a), (b, 1-b)) and stacking the four windows in channels gives every
  tap from one [4 C, B (H/2+1)(W/2+1)] x [.., 4 O] product, with no strided
  slice of s (XLA CPU fuses such slices into slow matmul operands).
  """
  n, h, w, c = x.shape
  o = g.shape[-1]
  s = _pad1(x).reshape(n, h // 2 + 1, 2, w // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5)
  shifted = [jnp.pad(g, ((0, 0), (a, 1 - a), (b, 1 - b), (0, 0))) for a in (0, 1) for b in (0, 1)]
  gs = jnp.concatenate(shifted, -1)  # [B, H/2+1, W/2+1, (a, b, o)]
  taps = _dot(s.reshape(-1, 4 * c), gs.reshape(-1, 4 * o), (((0,), (0,)), ((), ())))
  taps = taps.reshape(2, 2, c, 2, 2, o).transpose(3, 0, 4, 1, 2, 5)  # [a, p, b, q, c, o]
  return taps.reshape(4, 4, c, o)


# From which input size and channels `_kernel_grad_matmul` beats the conv:
# measured at batch 64 on 2 cores, 40 against 58 ms for a 32x32, 64 -> 128
# channel layer and 7 against 13 ms at 32x32, 32 -> 32; it loses on small
# maps with many channels (32 against 19 ms at 16x16, 128 -> 256) and on
# C_in = 1 (36 against 4 ms).
MATMUL_KERNEL_GRAD_MIN_PIXELS = 32 * 32
MATMUL_KERNEL_GRAD_MIN_CHANNELS = 16


def _kernel_grad_forward(x: jax.Array, g: jax.Array) -> jax.Array:
  """d<_down(x, k), g>/dk: [4, 4, C, O], by whichever form is faster for the shape."""
  pixels, channels = x.shape[1] * x.shape[2], x.shape[3]
  if pixels >= MATMUL_KERNEL_GRAD_MIN_PIXELS and channels >= MATMUL_KERNEL_GRAD_MIN_CHANNELS:
    return _kernel_grad_matmul(x, g)
  return _kernel_grad_conv(x, g)


def _with_vjp(forward: Callable, backward: Callable) -> Callable:
  """forward(a, b) as a `jax.custom_vjp` with backward(a, b, cotangent) -> (da, db).

  The forward rule calls the custom function itself, not `forward`: under a
  second derivative (R1) the outer differentiation sees the forward pass too,
  and must meet the custom rules there as well.
  """
  f = jax.custom_vjp(forward)
  f.defvjp(lambda a, b: (f(a, b), (a, b)), lambda inputs, ct: backward(*inputs, ct))
  return f


def _down_backward(x, kernel, g):
  return _up(g, _adjoint_kernel(kernel)), _kernel_grad(x, g)


def _up_backward(x, kernel, g):
  # <_up(x, k), g> = <x, _down(g, adj k)>, and adj is its own adjoint.
  return _down(g, _adjoint_kernel(kernel)), _adjoint_kernel(_kernel_grad(g, x))


def _kernel_grad_backward(x, g, k_bar):
  # <_kernel_grad(x, g), k_bar> = <_down(x, k_bar), g> = <x, _up(g, adj k_bar)>.
  return _up(g, _adjoint_kernel(k_bar)), _down(x, k_bar)


_down = _with_vjp(_down_forward, _down_backward)
_up = _with_vjp(_up_forward, _up_backward)
_kernel_grad = _with_vjp(_kernel_grad_forward, _kernel_grad_backward)


def _check_kernel(kernel: jax.Array, channels: int) -> None:
  if kernel.shape[:3] != (4, 4, channels):
    raise ValueError(f'kernel shape {kernel.shape} does not fit input channels {channels}')


def conv4x4_stride2(x: jax.Array, kernel: jax.Array, dtype=None) -> jax.Array:
  """4x4 stride-2 convolution with 1 pixel of zero padding.

  Equals `lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)))`,
  i.e. `nn.Conv(f, (4, 4), (2, 2), padding='SAME')` on even sizes and torch's
  `Conv2d(k=4, s=2, p=1)` (kernel = torch_weight.permute(2, 3, 1, 0)), with
  gradients on XLA CPU's fast paths (module docstring).

  Args:
    x: [B, H, W, C] with H, W even.
    kernel: [4, 4, C, O].
    dtype: compute dtype (None: x's); products accumulate in float32.

  Returns:
    [B, H/2, W/2, O].
  """
  _check_kernel(kernel, x.shape[-1])
  if x.shape[1] % 2 or x.shape[2] % 2:
    raise ValueError(f'spatial size {x.shape[1]}x{x.shape[2]} must be even for a 2x downsampling')
  if dtype is not None:
    x = x.astype(dtype)
  return _down(x, kernel.astype(x.dtype))


def conv_transpose4x4_stride2(x: jax.Array, kernel: jax.Array, dtype=None) -> jax.Array:
  """4x4 stride-2 transposed convolution (2x upsampling).

  Equals `lax.conv_transpose(x, kernel, (2, 2), 'SAME')`, i.e. flax's
  `nn.ConvTranspose(f, (4, 4), (2, 2), padding='SAME')` (no kernel transpose),
  which is torch's `ConvTranspose2d(k=4, s=2, p=1)` with the kernel flipped:
  kernel = torch_weight.permute(2, 3, 0, 1).flip(0, 1) (`from_torch`). Per
  axis: y[2m] = k[0] x[m-1] + k[2] x[m], y[2m+1] = k[1] x[m] + k[3] x[m+1].
  No input-dilated conv in forward or backward (module docstring).

  Args:
    x: [B, H, W, C].
    kernel: [4, 4, C, O].
    dtype: compute dtype (None: x's); products accumulate in float32.

  Returns:
    [B, 2H, 2W, O].
  """
  _check_kernel(kernel, x.shape[-1])
  if dtype is not None:
    x = x.astype(dtype)
  return _up(x, kernel.astype(x.dtype))


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
