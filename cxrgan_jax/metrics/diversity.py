"""Diversity within a set, and precision/recall between sets.

- Mean pairwise feature distance: a generator that collapses onto few modes
  has a smaller spread than real data; compare fake against real.
- MS-SSIM between random pairs of one set (Wang, Simoncelli & Bovik 2003; used
  for GAN diversity by Odena et al. 2017): structurally similar pairs score
  near 1, so a mean MS-SSIM of generated pairs above that of real pairs means
  too little diversity.
- Precision and recall (Kynkäänniemi et al. 2019): the real manifold is the
  union of balls around real points with radius the distance to their k-th
  nearest real neighbour (k=3); precision is the fraction of generated points
  inside it (fidelity); recall swaps the roles (coverage of the real
  distribution). Both depend on the set sizes; compare only runs with equal n.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cxrgan_jax.metrics import neighbours

# Wang et al. 2003, Table/Eq. 7: exponents of scales 1 (finest) ... 5.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def mean_pairwise_distance(
  features: np.ndarray, *, chunk_size: int = neighbours.DEFAULT_CHUNK_SIZE
) -> float:
  """Mean Euclidean distance over all unordered pairs i != j of [N, D] features."""
  features = np.asarray(features)
  n = features.shape[0]
  if n < 2:
    raise ValueError('Need at least 2 points for a pairwise distance.')
  total = 0.0
  for _, d in neighbours.distance_chunks(features, features, chunk_size=chunk_size):
    total += float(d.sum())  # The diagonal is ~0 and adds nothing.
  return total / (n * (n - 1))


def ms_ssim_num_scales(size: int, window: int = SSIM_WINDOW) -> int:
  """Most scales (<= 5) whose coarsest image is still >= the window.

  The standard 5 scales need >= 176 px for an 11-px window (coarsest 11 px);
  a 128-px image gets 4 scales (coarsest 16 px), 64 px gets 3, 32 px gets 2.
  Dropping the coarsest scales instead of shrinking the window keeps every
  SSIM term the standard one; the weights of the kept scales are renormalised.
  """
  scales = 1
  while scales < len(MS_SSIM_WEIGHTS) and size // 2**scales >= window:
    scales += 1
  if size < window:
    raise ValueError(f'MS-SSIM needs images of at least {window} px, got {size}.')
  return scales


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2
  g = np.exp(-0.5 * (x / sigma) ** 2)
  return (g / g.sum()).astype(np.float32)


def _filter(x: jax.Array, g: jax.Array) -> jax.Array:
  """'valid' separable Gaussian filter of [B, H, W] images."""
  k = g.shape[0]
  x = x[:, None]  # [B, 1, H, W] for NCHW convolution.
  x = jax.lax.conv_general_dilated(x, g.reshape(1, 1, k, 1), (1, 1), 'VALID')
  x = jax.lax.conv_general_dilated(x, g.reshape(1, 1, 1, k), (1, 1), 'VALID')
  return x[:, 0]


def _ssim_terms(x: jax.Array, y: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean luminance and contrast-structure terms, each float32 [B]."""
  c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
  mx, my = _filter(x, g), _filter(y, g)
  sxx = _filter(x * x, g) - mx * mx
  syy = _filter(y * y, g) - my * my
  sxy = _filter(x * y, g) - mx * my
  lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
  cs = (2 * sxy + c2) / (sxx + syy + c2)
  return lum.mean(axis=(1, 2)), cs.mean(axis=(1, 2))


@functools.partial(jax.jit, static_argnames=('num_scales',))
def _ms_ssim(x: jax.Array, y: jax.Array, num_scales: int) -> jax.Array:
  g = jnp.asarray(_gaussian_window(SSIM_WINDOW, SSIM_SIGMA))
  w = jnp.asarray(MS_SSIM_WEIGHTS[:num_scales], jnp.float32)
  w = w / w.sum()
  result = jnp.ones(x.shape[0], jnp.float32)
  for scale in range(num_scales):
    lum, cs = _ssim_terms(x, y, g)
    # Negative cs (anti-correlated structure) is clipped to 0, as in
    # TensorFlow's tf.image.ssim_multiscale, so the product stays real.
    cs = jnp.maximum(cs, 0.0)
    if scale == num_scales - 1:
      result *= (jnp.maximum(lum, 0.0) * cs) ** w[scale]
    else:
      result *= cs ** w[scale]
      b, h, wd = x.shape
      x = x[:, : h // 2 * 2, : wd // 2 * 2].reshape(b, h // 2, 2, wd // 2, 2)
      y = y[:, : h // 2 * 2, : wd // 2 * 2].reshape(b, h // 2, 2, wd // 2, 2)
      x, y = x.mean(axis=(2, 4)), y.mean(axis=(2, 4))
  return result


def ms_ssim(
  x: np.ndarray, y: np.ndarray, *, num_scales: int | None = None, batch_size: int = 64
) -> np.ndarray:
  """MS-SSIM of image pairs.

  Args:
    x: uint8 [B, H, W, 1] (or [B, H, W]) images, dynamic range 255.
    y: same shape as x; pair i is (x[i], y[i]).
    num_scales: default `ms_ssim_num_scales(min(H, W))`.
    batch_size: pairs per jitted call (the last batch is padded, not recompiled).

  Returns:
    float32 [B] in [0, 1]; 1 for identical images.
  """
  x, y = np.asarray(x), np.asarray(y)
  if x.shape != y.shape:
    raise ValueError(f'MS-SSIM pairs need equal shapes: {x.shape} vs {y.shape}.')
  if x.ndim == 4:
    if x.shape[-1] != 1:
      raise ValueError(f'Expected grayscale [B, H, W, 1], got {x.shape}.')
    x, y = x[..., 0], y[..., 0]
  if x.ndim != 3:
    raise ValueError(f'Expected [B, H, W(, 1)] images, got {x.shape}.')
  scales = num_scales or ms_ssim_num_scales(min(x.shape[1:]))
  out = []
  for start in range(0, x.shape[0], batch_size):
    xb = x[start : start + batch_size].astype(np.float32)
    yb = y[start : start + batch_size].astype(np.float32)
    valid = xb.shape[0]
    if valid < batch_size:
      pad = ((0, batch_size - valid), (0, 0), (0, 0))
      xb, yb = np.pad(xb, pad), np.pad(yb, pad)
    out.append(np.asarray(_ms_ssim(xb, yb, scales))[:valid])
  return np.concatenate(out)


def mean_ms_ssim(
  images: np.ndarray, *, num_pairs: int = 1000, seed: int = 0, num_scales: int | None = None
) -> float:
  """Mean MS-SSIM over `num_pairs` random pairs (i != j) of one set."""
  images = np.asarray(images)
  n = images.shape[0]
  if n < 2:
    raise ValueError('Need at least 2 images for MS-SSIM pairs.')
  rng = np.random.default_rng(seed)
  i = rng.integers(0, n, num_pairs)
  j = (i + rng.integers(1, n, num_pairs)) % n  # Uniform over j != i.
  return float(ms_ssim(images[i], images[j], num_scales=num_scales).mean())


def precision_recall(
  real: np.ndarray, fake: np.ndarray, *, k: int = 3, chunk_size: int = neighbours.DEFAULT_CHUNK_SIZE
) -> tuple[float, float]:
  """Improved precision and recall (Kynkäänniemi et al. 2019).

  Args:
    real: [N, D] real features.
    fake: [M, D] generated features.
    k: neighbour defining each ball's radius (the paper's k=3).
    chunk_size: rows per distance block.

  Returns:
    (precision, recall), each in [0, 1].
  """
  return (_coverage(real, fake, k, chunk_size), _coverage(fake, real, k, chunk_size))


def _coverage(manifold: np.ndarray, query: np.ndarray, k: int, chunk_size: int) -> float:
  """Fraction of query points inside a k-NN ball of some manifold point."""
  radii, _ = neighbours.nearest_neighbours(
    manifold, manifold, k, exclude_self=True, chunk_size=chunk_size
  )
  radii = radii[:, -1]
  inside = []
  for _, d in neighbours.distance_chunks(query, manifold, chunk_size=chunk_size):
    inside.append(np.any(d <= radii[None, :], axis=1))
  return float(np.concatenate(inside).mean())
