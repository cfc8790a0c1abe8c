"""Fréchet distance every `config.eval_every_steps`, to keep the best checkpoint.

FID can collapse late in a GAN run; the loop saves the step with the lowest
value of this metric under `workdir/best/`. It uses the evaluation binary's
code on a small fixed-seed sample of the EMA generator, against the cached
statistics of `config.eval.split`.
"""

import pathlib

import jax
import ml_collections
import numpy as np

from cxrgan_jax import evaluate
from cxrgan_jax import sampling
from cxrgan_jax.state import TrainState


class TrainingEvaluator:
  """Callable (step, state) -> {'eval/fd_<features>': float}."""

  def __init__(self, config: ml_collections.ConfigDict, generator, workdir: pathlib.Path):
    cfg = config.eval
    self.metric_name = f'eval/fd_{cfg.features}'
    self._extractor = evaluate.make_extractor(
      cfg.features,
      inception_weights=cfg.inception_weights,
      classifier_workdir=cfg.classifier_workdir,
    )
    self._real_stats = evaluate.real_split_statistics(
      config.dataset,
      cfg.split,
      config.data_dir,
      config.resolution,
      self._extractor,
      pathlib.Path(workdir) / 'feature_cache',
    )
    num = int(cfg.num_samples)
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0xE7A1)
    self._z = np.asarray(jax.random.normal(key, (num, config.latent_dim)), np.float32)
    self._sampler = sampling.Sampler(config, generator, None, None, 0)

  def __call__(self, step: int, state: TrainState) -> dict[str, float]:
    # The compiled generator is reused; only its weights change.
    self._sampler.params, self._sampler.g_state, self._sampler.step = (
      state.ema_params,
      state.g_state,
      step,
    )
    fakes = self._sampler.images_from(self._z)
    fd = evaluate.frechet_distance_to_split(
      fakes, extractor=self._extractor, real_stats=self._real_stats
    )
    return {self.metric_name: float(fd)}
