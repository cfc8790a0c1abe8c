"""One interface for every feature space the evaluation computes metrics in.

FID/KID/precision-recall style metrics only need "images -> [N, d] features";
which network gives the features (the FID Inception, raw pixels, or the chest
X-ray classifier) is chosen by name in `cxrgan_jax.evaluation.extractors`. Extraction is
jitted on a fixed batch shape, with the last batch zero-padded and the padding
dropped, so each input size compiles exactly once.
"""

from collections.abc import Callable
import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from cxrgan_jax import batching
from cxrgan_jax.metrics import inception
from cxrgan_jax.metrics import inception_weights


class FeatureExtractor(Protocol):
  """uint8 images [N, H, W, 1|3] -> float32 features [N, dim]."""

  name: str
  dim: int

  def __call__(
    self, images: np.ndarray, *, batch_size: int = 64, progress: bool = False
  ) -> np.ndarray: ...


# (variables, uint8 batch [B, H, W, C]) -> tuple of [B, ...] outputs.
BatchFn = Callable[[Any, jax.Array], tuple[jax.Array, ...]]


def _check_images(images: np.ndarray) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f'expected [N, H, W, 1|3] images, got {images.shape}')
  if images.dtype != np.uint8:
    raise ValueError(
      f'expected uint8 images in [0, 255], got {images.dtype}; '
      'quantise generator output as it would be saved'
    )
  return images


@dataclasses.dataclass
class BatchedExtractor:
  """Runs a jitted batch function over fixed-size, zero-padded batches.

  `batch_fn` may return several outputs; the first one is the feature vector
  of width `dim`, the others (e.g. Inception logits) are reachable through
  `run_all`.
  """

  name: str
  dim: int
  batch_fn: BatchFn
  variables: Any = None

  def __post_init__(self):
    self._jitted = jax.jit(self.batch_fn)

  def run_all(
    self, images: np.ndarray, *, batch_size: int = 64, progress: bool = False
  ) -> tuple[np.ndarray, ...]:
    """All outputs of `batch_fn` for all images, as float32 NumPy arrays."""
    outputs = batching.map_batches(
      lambda batch: self._jitted(self.variables, batch),
      _check_images(images),
      batch_size=batch_size,
      progress=progress,
      desc=f'{self.name} features',
    )
    return tuple(np.asarray(out, np.float32) for out in outputs)

  def __call__(
    self, images: np.ndarray, *, batch_size: int = 64, progress: bool = False
  ) -> np.ndarray:
    return self.run_all(images, batch_size=batch_size, progress=progress)[0]


class InceptionExtractor(BatchedExtractor):
  """pool3 features [N, 2048]; `logits` / `features_and_logits` for IS."""

  def logits(
    self, images: np.ndarray, *, batch_size: int = 64, progress: bool = False
  ) -> np.ndarray:
    """[N, 1008] float32 logits of the FID Inception."""
    return self.run_all(images, batch_size=batch_size, progress=progress)[1]

  def features_and_logits(
    self, images: np.ndarray, *, batch_size: int = 64, progress: bool = False
  ) -> tuple[np.ndarray, np.ndarray]:
    """pool3 [N, 2048] and logits [N, 1008] from one pass over the images."""
    pool3, logits = self.run_all(images, batch_size=batch_size, progress=progress)
    return pool3, logits


def _inception_batch(variables: Any, batch: jax.Array) -> tuple[jax.Array, jax.Array]:
  x = inception.preprocess(batch.astype(jnp.float32) / 255.0)
  with jax.default_matmul_precision('float32'):
    return inception.InceptionV3().apply(variables, x)


def inception_extractor(
  weights_path: str | None = None, *, variables: Any = None, allow_download: bool = True
) -> InceptionExtractor:
  """The FID Inception (pytorch-fid weights) as a feature extractor.

  Args:
    weights_path: pytorch-fid .pth or converted .npz; None looks in the cache
      and then downloads (see `inception_weights.load_inception_variables`).
    variables: use these Flax variables instead of loading weights (tests and
      benchmarks only; metrics need the real weights).
    allow_download: whether a missing file may be downloaded.
  """
  if variables is None:
    variables = inception_weights.load_inception_variables(
      weights_path, allow_download=allow_download
    )
  variables = jax.device_put(jax.tree_util.tree_map(jnp.asarray, variables))
  return InceptionExtractor('inception', inception.POOL3_DIM, _inception_batch, variables)


def pixel_extractor(size: int = 64) -> BatchedExtractor:
  """Raw pixels: grayscale, resized to size x size, in [0, 1], flattened.

  RGB input is averaged to gray so that dim = size² whatever the input. The
  resize is antialiased (area-like on downscale), as a pixel-space distance
  should see the image, not an aliased subsample of it.
  """

  def batch_fn(variables: Any, batch: jax.Array) -> tuple[jax.Array]:
    del variables
    x = batch.astype(jnp.float32) / 255.0
    x = jnp.mean(x, axis=-1, keepdims=True)
    if x.shape[1:3] != (size, size):
      x = jax.image.resize(x, (x.shape[0], size, size, 1), 'linear', antialias=True)
    return (jnp.clip(x, 0.0, 1.0).reshape(x.shape[0], size * size),)

  return BatchedExtractor('pixels', size * size, batch_fn)
