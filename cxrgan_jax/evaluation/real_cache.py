"""Features of real TFDS splits, cached on disk.

Keyed by dataset, split, data_dir, resolution, number of images and the
feature net's identity (name, dim, hash of its weights), so re-evaluating
another checkpoint, or evaluating every N training steps, only extracts
features of the generated images.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Any

from absl import logging
import numpy as np

from cxrgan_jax import files
from cxrgan_jax import input_pipeline
from cxrgan_jax.evaluation import extractors
from cxrgan_jax.metrics import features as features_lib
from cxrgan_jax.metrics import frechet

CACHE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """A TFDS split as the evaluation loads it (see input_pipeline.load_images)."""

  dataset: str
  split: str
  data_dir: str
  resolution: int
  max_images: int | None = None  # A `seed`ed subset of this many images; None = all.
  seed: int = 0

  def load(self) -> np.ndarray:
    """uint8 [N, R, R, 1]."""
    return input_pipeline.load_images(
      self.dataset,
      self.split,
      data_dir=self.data_dir,
      resolution=self.resolution,
      max_images=self.max_images,
      seed=self.seed,
    )['image']


def _cache_key(spec: SplitSpec, extractor: features_lib.FeatureExtractor) -> dict[str, Any]:
  # The split's size is part of the key so a rebuilt, different-size dataset
  # misses; the seed only matters when it picks a subset.
  return dict(
    version=CACHE_VERSION,
    dataset=spec.dataset,
    split=spec.split,
    data_dir=os.path.abspath(spec.data_dir) if spec.data_dir else '',
    num_examples=input_pipeline.num_examples(spec.dataset, spec.split, spec.data_dir),
    resolution=int(spec.resolution),
    max_images=spec.max_images,
    seed=spec.seed if spec.max_images is not None else None,
    extractor=extractor.name,
    fingerprint=extractors.fingerprint(extractor),
  )


def _cache_path(cache_dir: str | pathlib.Path, key: dict[str, Any]) -> pathlib.Path:
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
  dataset = key['dataset'].replace('/', '_')
  return (
    pathlib.Path(cache_dir) / f'{dataset}-{key["split"]}-r{key["resolution"]}-{key["extractor"]}-'
    f'{digest[:12]}.npz'
  )


def _read_cache(path: pathlib.Path, key: dict[str, Any]):
  """(features, extra or None) if `path` holds features for `key`, else None."""
  if not path.is_file():
    return None
  try:
    with np.load(path, allow_pickle=False) as f:
      if json.loads(str(f['key'])) == key:
        logging.info('Real features from cache %s', path)
        return f['features'], (f['extra'] if 'extra' in f.files else None)
  except (OSError, ValueError, KeyError) as err:
    logging.warning('Ignoring unreadable cache %s: %s', path, err)
  return None


def real_split_features(
  spec: SplitSpec,
  extractor: features_lib.FeatureExtractor,
  cache_dir: str | pathlib.Path | None,
  *,
  images: np.ndarray | None = None,
  batch_size: int = 64,
  progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, bool]:
  """Features of a TFDS split, from the cache when possible.

  Args:
    spec: the split, its resolution and subset (all part of the cache key).
    extractor: feature net.
    cache_dir: where cached features live; None disables the cache.
    images: the split's images if already loaded (skips loading on a miss).
    batch_size, progress: passed to the extractor.

  Returns:
    (features float32 [N, dim], extra outputs or None (Inception logits
    [N, 1008] when the extractor has them), cache hit?).
  """
  key = _cache_key(spec, extractor)
  path = _cache_path(cache_dir, key) if cache_dir else None
  cached = _read_cache(path, key) if path is not None else None
  if cached is not None:
    return (*cached, True)
  images = spec.load() if images is None else images
  feats, extra = extractors.extract(extractor, images, batch_size=batch_size, progress=progress)
  if path is not None:
    arrays = dict(features=feats, key=np.asarray(json.dumps(key)))
    if extra is not None:
      arrays['extra'] = extra
    with files.atomic_write(path) as f:
      np.savez(f, **arrays)
  return feats, extra, False


def real_split_statistics(
  spec: SplitSpec, extractor: features_lib.FeatureExtractor, cache_dir: str | pathlib.Path | None
) -> frechet.FeatureStats:
  """Gaussian fit (float64 mu [d], sigma [d, d]) of a split's features, cached."""
  feats, _, _ = real_split_features(spec, extractor, cache_dir)
  return frechet.feature_statistics(feats)
