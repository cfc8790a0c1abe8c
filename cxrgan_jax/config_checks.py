"""Fail at start, naming the field, for a config that cannot work."""

import jax
import ml_collections

from cxrgan_jax import augment
from cxrgan_jax import losses
from cxrgan_jax import models
from cxrgan_jax.evaluation import extractors

OPTIMIZERS = ('adam', 'sgd')


class ConfigError(ValueError):
  pass


def check_config(
  config: ml_collections.ConfigDict, *, devices: int | None = None, processes: int | None = None
) -> None:
  """Raises ConfigError for the first field that makes the run impossible."""
  devices = jax.local_device_count() if devices is None else devices
  processes = jax.process_count() if processes is None else processes
  try:
    models.validate_model_config(config)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  if config.loss not in losses.LOSSES:
    raise ConfigError(f'config.loss={config.loss!r} is unknown; use one of {losses.LOSSES}')
  total = devices * processes
  if config.batch_size <= 0 or config.batch_size % total:
    raise ConfigError(
      f'config.batch_size={config.batch_size} must be a positive multiple of the '
      f'number of devices ({total} = {processes} process(es) x {devices} local); '
      f'try {max(total, config.batch_size // total * total)}'
    )
  if config.d_steps < 1:
    raise ConfigError(f'config.d_steps={config.d_steps} must be >= 1')
  for name in ('g_optimizer', 'd_optimizer'):
    opt = config[name]
    if opt.name not in OPTIMIZERS:
      raise ConfigError(f'config.{name}.name={opt.name!r} is unknown; use one of {OPTIMIZERS}')
    if opt.learning_rate <= 0:
      raise ConfigError(f'config.{name}.learning_rate must be > 0')
  if not 0.0 <= config.get('lr_cooldown_fraction', 0.0) <= 1.0:
    raise ConfigError(
      f'config.lr_cooldown_fraction={config.lr_cooldown_fraction} must be in [0, 1] (0 = off)'
    )
  if not 0.0 <= config.ema_decay < 1.0:
    raise ConfigError(f'config.ema_decay={config.ema_decay} must be in [0, 1)')
  try:
    augment.parse_policy(config.augment.policy)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  if not 0.0 <= config.augment.p <= 1.0:
    raise ConfigError(f'config.augment.p={config.augment.p} must be in [0, 1]')
  if config.r1_gamma < 0 or config.r1_interval < 1:
    raise ConfigError('config.r1_gamma must be >= 0 and config.r1_interval >= 1')
  if config.get('max_train_minutes', 0.0) < 0:
    raise ConfigError(f'config.max_train_minutes={config.max_train_minutes} must be >= 0')
  if config.get('data_noise_std', 0.0) < 0:
    raise ConfigError(f'config.data_noise_std={config.data_noise_std} must be >= 0')
  if config.instance_noise.std < 0:
    raise ConfigError('config.instance_noise.std must be >= 0')
  for name in (
    'num_train_steps',
    'log_every_steps',
    'sample_every_steps',
    'checkpoint_every_steps',
    'keep_checkpoints',
    'num_sample_images',
  ):
    if config[name] < 1:
      raise ConfigError(f'config.{name}={config[name]} must be >= 1')
  if config.eval_every_steps < 0:
    raise ConfigError(f'config.eval_every_steps={config.eval_every_steps} must be >= 0 (0 = off)')
  if config.get('eval_start_step', 0) < 0:
    raise ConfigError(f'config.eval_start_step={config.eval_start_step} must be >= 0')
  if config.eval_every_steps and config.eval.num_samples < 2:
    raise ConfigError(f'config.eval.num_samples={config.eval.num_samples} must be >= 2')
  if config.eval_every_steps and config.eval.features not in extractors.NAMES:
    raise ConfigError(
      f'config.eval.features={config.eval.features!r} is unknown; use one of {extractors.NAMES}'
    )
  if (
    config.eval_every_steps and config.eval.features == 'cxr' and not config.eval.classifier_workdir
  ):
    raise ConfigError(
      "config.eval.features='cxr' needs config.eval.classifier_workdir: train the X-ray "
      'classifier once (`python -m cxrgan_jax.classifier --workdir=runs/classifier '
      '--data_dir=...`), then pass --config.eval.classifier_workdir=runs/classifier'
    )
  if (
    config.eval_every_steps
    and config.eval.features == 'inception'
    and not config.eval.inception_weights
  ):
    raise ConfigError(
      "config.eval.features='inception' needs config.eval.inception_weights (see README, "
      'Evaluation), or use eval.features=pixels or cxr'
    )
