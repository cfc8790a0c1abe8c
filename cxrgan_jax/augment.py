"""Differentiable augmentation of D's inputs, real and fake alike.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient
GAN Training") augments both branches with transforms differentiable in the
image, so G learns through them and D cannot overfit ~1,000 training X-rays,
while the augmentations do not leak into G's samples. As in ADA (Karras et al.
2020, "Training Generative Adversarial Networks with Limited Data"), each op is
applied to each sample independently with probability p, which the training
loop may adapt.

Only anatomy-preserving, grayscale ops: no flips (dextrocardia), no rotations
beyond what translation implies, no colour ops. Every op is gather-free
(one-hot matmuls, broadcast masks), so the backward pass on CPU is cheap.
"""

import jax
import jax.numpy as jnp

POLICY_OPS = ('translation', 'cutout', 'brightness', 'contrast')
# Maximum shift as a fraction of the side, and cutout side as a fraction of
# the side (DiffAugment's defaults).
TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def parse_policy(policy: str) -> tuple[str, ...]:
  """'translation,cutout' -> ('translation', 'cutout'); '' -> ()."""
  ops = tuple(op.strip() for op in policy.split(',') if op.strip())
  for op in ops:
    if op not in POLICY_OPS:
      raise ValueError(
        f'config.augment.policy={policy!r}: unknown op {op!r}; use a '
        f'comma-separated subset of {", ".join(POLICY_OPS)}'
      )
  if len(set(ops)) != len(ops):
    raise ValueError(f'config.augment.policy={policy!r} repeats an op')
  return ops


def _translate(rng: jax.Array, x: jax.Array) -> jax.Array:
  """Integer shift of up to 1/8 of each side, zero fill (DiffAugment).

  Shifting is a product with one-hot shift matrices, out = S_y @ x @ S_x^T per
  sample: exact, gather-free, and its gradient is the transposed shift.
  """
  b, h, w, _ = x.shape
  ky, kx = jax.random.split(rng)

  def shift_matrices(key, n):
    s = int(n * TRANSLATION_RATIO + 0.5)
    shift = jax.random.randint(key, (b,), -s, s + 1)
    # m[b, i, k] = 1 iff output row i reads input row k = i - shift[b].
    i = jnp.arange(n)[None, :, None]
    k = jnp.arange(n)[None, None, :]
    return (k == i - shift[:, None, None]).astype(x.dtype)

  sy, sx = shift_matrices(ky, h), shift_matrices(kx, w)
  return jnp.einsum('bik,bklc,bjl->bijc', sy, x, sx, precision=jax.lax.Precision.HIGHEST)


def _cutout(rng: jax.Array, x: jax.Array) -> jax.Array:
  """Zeroes a square of half the side at a uniform centre (DeVries & Taylor
  2017 via DiffAugment); squares near the border are clipped."""
  b, h, w, _ = x.shape
  ky, kx = jax.random.split(rng)

  def inside(key, n):
    size = int(n * CUTOUT_RATIO + 0.5)
    centre = jax.random.randint(key, (b, 1), 0, n)
    start = centre - size // 2
    pos = jnp.arange(n)[None, :]
    return (pos >= start) & (pos < start + size)  # [B, n]

  hole = inside(ky, h)[:, :, None] & inside(kx, w)[:, None, :]
  return x * (~hole)[..., None].astype(x.dtype)


def _brightness(rng: jax.Array, x: jax.Array) -> jax.Array:
  """Adds U(-0.5, 0.5) per image (a quarter of the [-1, 1] range)."""
  delta = jax.random.uniform(rng, (x.shape[0], 1, 1, 1), x.dtype, -0.5, 0.5)
  return x + delta


def _contrast(rng: jax.Array, x: jax.Array) -> jax.Array:
  """Scales deviations from each image's mean by U(0.5, 1.5)."""
  factor = jax.random.uniform(rng, (x.shape[0], 1, 1, 1), x.dtype, 0.5, 1.5)
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * factor + mean


_OPS = {
  'translation': _translate,
  'cutout': _cutout,
  'brightness': _brightness,
  'contrast': _contrast,
}


def augment(
  rng: jax.Array, images: jax.Array, *, p: jax.Array | float, policy: tuple[str, ...]
) -> jax.Array:
  """Applies each op of `policy`, in order, to each image with probability p.

  Args:
    rng: PRNG key; the same key gives the same augmentation.
    images: f32 [B, H, W, 1], values in about [-1, 1].
    p: scalar probability (may be traced, e.g. ADA's adaptive p). With p = 0
      the images come back exactly unchanged.
    policy: ops from `parse_policy`.

  Returns:
    Augmented images, same shape and dtype; differentiable in `images`.
  """
  x = images
  p = jnp.asarray(p, jnp.float32)
  for op, key in zip(policy, jax.random.split(rng, max(len(policy), 1))):
    if op not in _OPS:
      raise ValueError(f'unknown augmentation op {op!r}; use parse_policy')
    k_apply, k_op = jax.random.split(key)
    # uniform is in [0, 1), so p = 0 never applies and p = 1 always does.
    apply = jax.random.uniform(k_apply, (x.shape[0], 1, 1, 1)) < p
    x = jnp.where(apply, _OPS[op](k_op, x), x)
  return x
