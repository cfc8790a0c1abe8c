"""Shared parts of the study configs: the CPU-scale base run and the scoring settings.

CPU scale means a study finishes in about 90 minutes on 2 CPU cores: 64^2,
narrow nets, a few thousand images per run. `full=True` gives the
accelerator-scale variant (128^2, the class configs' widths, long budgets).
"""

import ml_collections

from configs import base
from configs import dcgan_normal

CLASSES = ('normal', 'bacterial', 'viral')


def run_config(class_name: str, *, full: bool = False) -> ml_collections.ConfigDict:
  """The arms' starting point: the DCGAN baseline, narrowed at CPU scale."""
  if class_name not in CLASSES:
    raise ValueError(f'study class {class_name!r} is unknown; use one of {CLASSES}')
  config = dcgan_normal.get_config() if not full else base.get_config()
  config.dataset = f'chest_xray_pneumonia/{class_name}'
  if not full:
    config.resolution = 64
    config.batch_size = 32
    config.latent_dim = 64
    config.g_channels = 64
    config.d_channels = 64
    config.num_sample_images = 36
    config.log_every_steps = 25
  return config


def scoring(*, every_steps: int, full: bool = False) -> ml_collections.ConfigDict:
  """When and how runs are scored: fixed-seed samples against the real test split."""
  return ml_collections.ConfigDict(
    dict(
      every_steps=every_steps,
      split='test',  # Never the training split.
      train_split='train',  # For the memorisation audit.
      num_samples=2000 if full else 500,
      features='cxr,pixels',
      classifier_workdir='',  # Required for 'cxr': a cxrgan_jax.classifier workdir.
      inception_weights='',  # Adds FID and IS when given.
      seed=0,
    )
  )


def report(threshold: float) -> ml_collections.ConfigDict:
  """Metrics the report tabulates (name, lower is better); the first is primary."""
  return ml_collections.ConfigDict(
    dict(
      metrics=[
        ('fd_cxr', True),
        ('fd_pixels', True),
        ('one_nn_accuracy_cxr', True),  # 0.5 is ideal; runs here sit above it.
        ('precision_cxr', False),
        ('recall_cxr', False),
        ('memorization_copy_fraction_cxr', True),  # Chance is 0.05.
      ],
      threshold=('fd_cxr', threshold),
      margin=0.1,
    )
  )
