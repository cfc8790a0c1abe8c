"""Feature spaces by name: one table from name to factory, and their identities.

`make_extractor(name, ...)` is the only way the evaluation builds a feature
net; nothing registers itself on import.
"""

from collections.abc import Callable
import hashlib
from typing import Any

import jax
import numpy as np

from cxrgan_jax.classifier import inference as classifier_inference
from cxrgan_jax.metrics import features as features_lib


def _inception(*, inception_weights: str, **unused) -> features_lib.FeatureExtractor:
  del unused
  return features_lib.inception_extractor(weights_path=inception_weights or None)


def _cxr(*, classifier_workdir: str, **unused) -> features_lib.FeatureExtractor:
  del unused
  if not classifier_workdir:
    raise ValueError(
      "Features 'cxr' need --classifier_workdir (train one with `python -m cxrgan_jax.classifier`)."
    )
  return classifier_inference.cxr_extractor(classifier_workdir)


def _pixels(*, pixel_size: int, **unused) -> features_lib.FeatureExtractor:
  del unused
  return features_lib.pixel_extractor(size=pixel_size)


FACTORIES: dict[str, Callable[..., features_lib.FeatureExtractor]] = {
  'inception': _inception,
  'cxr': _cxr,
  'pixels': _pixels,
}
NAMES = tuple(FACTORIES)


def make_extractor(
  name: str, *, inception_weights: str = '', classifier_workdir: str = '', pixel_size: int = 32
) -> features_lib.FeatureExtractor:
  """The extractor of feature space `name`, with a clear error for what is missing."""
  if name not in FACTORIES:
    raise ValueError(f'Unknown feature space {name!r}; choose from {", ".join(NAMES)}.')
  return FACTORIES[name](
    inception_weights=inception_weights,
    classifier_workdir=classifier_workdir,
    pixel_size=pixel_size,
  )


def parse_names(features: str) -> list[str]:
  """'cxr, pixels' -> ['cxr', 'pixels']; ValueError naming unknown spaces."""
  names = [f.strip() for f in features.split(',') if f.strip()]
  unknown = [f for f in names if f not in FACTORIES]
  if unknown or not names:
    raise ValueError(f'Unknown feature spaces {unknown}; choose from {", ".join(NAMES)}.')
  return names


def _hash_variables(variables: Any) -> str:
  """sha256 over a pytree's leaves (for extractors built from arrays)."""
  h = hashlib.sha256()
  for leaf in jax.tree_util.tree_leaves(variables):
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(str((a.shape, a.dtype)).encode())
    h.update(a.tobytes())
  return h.hexdigest()


def fingerprint(extractor: features_lib.FeatureExtractor) -> str:
  """Identity of a feature net for cache keys: name, dim and weights hash.

  Extractors that hold their weights (`variables`, as every BatchedExtractor
  does) are hashed by value, so retraining the classifier or swapping the
  Inception file invalidates cached real features.
  """
  variables = getattr(extractor, 'variables', None)
  weights = _hash_variables(variables) if variables is not None else 'none'
  return f'{extractor.name}-{extractor.dim}-{weights[:16]}'


def extract(
  extractor: features_lib.FeatureExtractor,
  images: np.ndarray,
  *,
  batch_size: int = 64,
  progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
  """(features [N, dim], Inception logits [N, 1008] or None) in one pass."""
  if isinstance(extractor, features_lib.InceptionExtractor):
    return extractor.features_and_logits(images, batch_size=batch_size, progress=progress)
  return extractor(images, batch_size=batch_size, progress=progress), None
