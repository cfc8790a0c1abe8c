"""A trained classifier from its workdir: predictions and 'cxr' features.

Workdir layout (written by `classifier.train`): `checkpoint/` (Orbax, params
of the best validation step), `classifier_config.json`, `metrics.json`.
"""

import dataclasses
import functools
import json
import pathlib
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from cxrgan_jax import batching
from cxrgan_jax.classifier.model import CxrNet
from cxrgan_jax.classifier.model import make_model
from cxrgan_jax.classifier.model import to_model_input
from cxrgan_jax.metrics import features as features_lib

CHECKPOINT_DIR = 'checkpoint'
CONFIG_FILE = 'classifier_config.json'
METRICS_FILE = 'metrics.json'


@functools.partial(jax.jit, static_argnames=('model', 'resolution'))
def _forward(
  model: CxrNet, params: Any, images: jax.Array, resolution: int
) -> tuple[jax.Array, jax.Array]:
  return model.apply({'params': params}, to_model_input(images, resolution))


def batched_forward(
  model: CxrNet,
  params: Any,
  images: np.ndarray,
  resolution: int,
  *,
  batch_size: int = 128,
  progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
  """(logits float32 [N, classes], features float32 [N, F]) of uint8 [N, H, W, 1]."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 1 or images.dtype != np.uint8:
    raise ValueError(f'Expected uint8 [N, H, W, 1] images, got {images.dtype} {images.shape}.')
  return batching.map_batches(
    lambda batch: _forward(model, params, batch, resolution),
    images,
    batch_size=batch_size,
    progress=progress,
    desc='cxr features',
  )


LEGACY_CLASS_NAMES = ('normal', 'bacterial', 'viral')


@dataclasses.dataclass(frozen=True)
class LoadedClassifier:
  """A trained CxrNet ready for inference on uint8 images of any size."""

  config: ml_collections.ConfigDict
  model: CxrNet
  params: Any
  workdir: pathlib.Path

  def logits_and_features(
    self, images: np.ndarray, *, batch_size: int = 128, progress: bool = False
  ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, H, W, 1] -> (logits [N, classes], features [N, feature_dim])."""
    return batched_forward(
      self.model,
      self.params,
      images,
      self.config.resolution,
      batch_size=batch_size,
      progress=progress,
    )

  def predict(self, images: np.ndarray, **kw) -> np.ndarray:
    """int64 [N] class ids (index into config.class_names)."""
    return self.logits_and_features(images, **kw)[0].argmax(-1)

  def features(self, images: np.ndarray, **kw) -> np.ndarray:
    """float32 [N, feature_dim] penultimate (global-average-pool) features."""
    return self.logits_and_features(images, **kw)[1]


def load_classifier(workdir: str | pathlib.Path) -> LoadedClassifier:
  """Restores the best checkpoint written by `train_and_evaluate`."""
  workdir = pathlib.Path(workdir).absolute()
  config_path = workdir / CONFIG_FILE
  if not config_path.is_file() or not (workdir / CHECKPOINT_DIR).is_dir():
    raise FileNotFoundError(
      f'No trained classifier in {workdir} (need {CONFIG_FILE} and '
      f'{CHECKPOINT_DIR}/); train one with `python -m cxrgan_jax.classifier '
      f'--workdir={workdir} --data_dir=...`.'
    )
  config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
  if 'class_names' not in config:
    # Workdirs written before class names were saved: that classifier was
    # always the 3-class one, in label order.
    logging.warning(
      '%s has no class_names (an older classifier): assuming %s', config_path, LEGACY_CLASS_NAMES
    )
    config.class_names = list(LEGACY_CLASS_NAMES)
  model = make_model(config)
  dummy = jnp.zeros((1, config.resolution, config.resolution, 1))
  abstract = jax.eval_shape(lambda: {'params': model.init(jax.random.key(0), dummy)['params']})
  with ocp.StandardCheckpointer() as ckptr:
    restored = ckptr.restore(workdir / CHECKPOINT_DIR, abstract)
  return LoadedClassifier(config, model, restored['params'], workdir)


def cxr_extractor(workdir: str | pathlib.Path) -> features_lib.BatchedExtractor:
  """'cxr' features: the classifier's global-average-pool embedding.

  Outputs (features float32 [N, feature_dim], logits [N, classes]) via `run_all`.
  """
  clf = load_classifier(workdir)

  def batch_fn(params: Any, batch: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits, feats = clf.model.apply(
      {'params': params}, to_model_input(batch, clf.config.resolution)
    )
    return feats, logits

  return features_lib.BatchedExtractor('cxr', clf.config.widths[-1], batch_fn, clf.params)
