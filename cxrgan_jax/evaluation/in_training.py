"""Fréchet distance every `config.eval_every_steps`, to keep the best checkpoint.

FID can collapse late in a GAN run; the loop saves the step with the lowest
value of this metric under `workdir/best/`. It uses the same extractors and
real-feature cache as `cxrgan_jax.evaluate`, on a small fixed-seed sample of
the EMA generator, against the cached statistics of `config.eval.split`.
"""

import pathlib

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from cxrgan_jax import sampling
from cxrgan_jax.evaluation import extractors
from cxrgan_jax.evaluation import real_cache
from cxrgan_jax.metrics import features as features_lib
from cxrgan_jax.metrics import frechet
from cxrgan_jax.state import TrainState


def frechet_distance_to_split(
  fake_images: np.ndarray,
  *,
  extractor: features_lib.FeatureExtractor,
  real_stats: frechet.FeatureStats,
  batch_size: int = 64,
) -> float:
  """FD between uint8 [N, R, R, 1] generated images and precomputed real stats.

  Compute `real_stats` once with `real_cache.real_split_statistics`, then call
  this every N steps on a small sample (FD is biased upwards for small N;
  compare only runs with equal N).
  """
  feats = extractor(fake_images, batch_size=batch_size)
  return frechet.frechet_distance_from_stats(frechet.feature_statistics(feats), real_stats)


class TrainingEvaluator:
  """Callable (step, state) -> {'eval/fd_<features>': float}."""

  def __init__(
    self, config: ml_collections.ConfigDict, generator: nn.Module, workdir: pathlib.Path
  ):
    cfg = config.eval
    self.metric_name = f'eval/fd_{cfg.features}'
    self._extractor = extractors.make_extractor(
      cfg.features,
      inception_weights=cfg.inception_weights,
      classifier_workdir=cfg.classifier_workdir,
    )
    spec = real_cache.SplitSpec(config.dataset, cfg.split, config.data_dir, config.resolution)
    self._real_stats = real_cache.real_split_statistics(
      spec, self._extractor, pathlib.Path(workdir) / 'feature_cache'
    )
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0xE7A1)
    self._z = np.asarray(jax.random.normal(key, (int(cfg.num_samples), config.latent_dim)))
    self._sampler = sampling.Sampler(config, generator, None, None, 0)

  def __call__(self, step: int, state: TrainState) -> dict[str, float]:
    # The compiled generator is reused; only its weights change.
    self._sampler.set_weights(state.ema_params, state.g_state)
    self._sampler.step = step
    fakes = self._sampler.images_from(self._z)
    fd = frechet_distance_to_split(fakes, extractor=self._extractor, real_stats=self._real_stats)
    return {self.metric_name: float(fd)}
