"""Shared parts of the study configs: the base run per scale and the scoring settings.

A study config takes `CLASS[,SCALE]` after its file name, e.g.
`--config=configs/studies/noise.py:bacterial,full`:
  cpu    (default) finishes in about 90 minutes on 2 CPU cores: 64^2, narrow
         nets, short budgets, 2 seeds
  full   the accelerator-scale variant: 128^2, the DCGAN's widths, long budgets
  smoke  seconds per run on the bundled demo data: what CI runs
"""

import ml_collections

from configs import dcgan_normal
from configs import eval as eval_config
from configs import tiny

CLASSES = ('normal', 'bacterial', 'viral')
SCALES = ('cpu', 'full', 'smoke')


def parse_arg(arg: str) -> tuple[str, str]:
  """'normal' -> ('normal', 'cpu'); 'bacterial,full' -> ('bacterial', 'full')."""
  class_name, _, scale = arg.partition(',')
  scale = scale or 'cpu'
  if class_name not in CLASSES or scale not in SCALES:
    raise ValueError(
      f'study argument {arg!r}: use CLASS[,SCALE] with CLASS in {CLASSES} and SCALE in {SCALES}'
    )
  return class_name, scale


def run_config(class_name: str, scale: str) -> ml_collections.ConfigDict:
  """The arms' starting point: the DCGAN baseline (configs/dcgan_normal.py) at `scale`."""
  if scale == 'smoke':
    config = tiny.get_config('dcgan')
    config.r1_gamma = 0.0
    config.ema_decay = 0.0
    config.augment.policy = ''
    config.augment.adaptive = False
  else:
    config = dcgan_normal.get_config()
  config.dataset = f'chest_xray_pneumonia/{class_name}'
  if scale == 'cpu':
    config.resolution = 64
    config.batch_size = 32
    config.latent_dim = 64
    config.g_channels = 64
    config.d_channels = 64
    config.num_sample_images = 36
    config.log_every_steps = 25
  elif scale == 'full':
    config.resolution = 128
    config.log_every_steps = 100
  return config


def steps(scale: str, *, cpu: int, full: int, smoke: int = 4) -> int:
  return {'cpu': cpu, 'full': full, 'smoke': smoke}[scale]


def arm_steps(scale: str, study: ml_collections.ConfigDict, cpu: int) -> int:
  """An arm's own num_train_steps (a cooldown needs a known end): `cpu` at CPU
  scale, the base config's length at full scale, and at smoke scale 4, which
  the study's 4-step budget ends first."""
  return steps(scale, cpu=cpu, full=study.base.num_train_steps, smoke=4)


def fresh_seeds(scale: str, study: ml_collections.ConfigDict, first: int, cpu: int) -> list[int]:
  """Seeds no earlier study used, from `first` on: `cpu` of them at CPU scale,
  as many as `study` has at full scale, and the smoke run's own seed."""
  if scale == 'smoke':
    return list(study.seeds)
  return list(range(first, first + (cpu if scale == 'cpu' else len(study.seeds))))


def seeds(scale: str) -> list[int]:
  return {'cpu': [0, 1], 'full': [0, 1, 2], 'smoke': [0]}[scale]


def scoring(scale: str, *, every_steps: int) -> ml_collections.ConfigDict:
  """How runs are scored: configs/eval.py's settings on fixed-seed samples of each
  kept checkpoint, against the real test split (never the training split), with
  the training split for the memorisation audit."""
  config = eval_config.get_config()
  config.every_steps = every_steps  # Also the checkpoint interval of every run.
  config.split = 'test'
  config.train_split = 'train'
  config.num_samples = {'cpu': 500, 'full': 2000, 'smoke': 16}[scale]
  # 'cxr' needs a cxrgan_jax.classifier workdir (config.classifier_workdir); add
  # 'inception' with inception_weights for FID and IS.
  config.features = 'pixels' if scale == 'smoke' else 'cxr,pixels'
  config.num_permutations = 200
  config.ms_ssim_pairs = 200
  # Random sets of `num_samples` real training images scored the same way: the
  # floor each arm is read against (cxrgan_jax/study/reference.py).
  config.reference_subsets = {'cpu': 5, 'full': 3, 'smoke': 1}[scale]
  return config


def report(scale: str, threshold: float) -> ml_collections.ConfigDict:
  """Metrics the report tabulates (name, lower is better); the first is primary.

  The X-ray classifier's space at CPU and full scale; pixels for smoke runs,
  which have no classifier.
  """
  space = 'pixels' if scale == 'smoke' else 'cxr'
  return ml_collections.ConfigDict(
    dict(
      metrics=[
        (f'fd_{space}', True),
        *([('fd_pixels', True)] if space != 'pixels' else []),
        (f'one_nn_accuracy_{space}', True),  # 0.5 is ideal; runs here sit above it.
        (f'precision_{space}', False),
        (f'recall_{space}', False),
        (f'memorization_copy_fraction_{space}', True),  # Chance is 0.05.
      ],
      threshold=(f'fd_{space}', threshold),
      margin=0.1,
      # Progression strip + GIF for 'all' runs or each arm's 'first_seed' (the
      # committed CPU-scale results, to stay small).
      progression='first_seed' if scale == 'cpu' else 'all',
    )
  )


# In-training evaluation of a run that keeps its best checkpoint: samples per
# FD (about 0.5 s at CPU scale).
EVAL_SAMPLES = 500


def keep_best(scale: str, *, every: int, full_steps: int = 0) -> dict:
  """Overrides that evaluate every `every` steps on the validation split and
  keep the best checkpoint, from about half a run on (`full_steps`: the run's
  length at full scale)."""
  return {
    'eval_every_steps': every,
    'eval_start_step': steps(scale, cpu=1_200, full=full_steps // 2, smoke=2),
    'eval.features': 'pixels' if scale == 'smoke' else 'cxr',
    'eval.split': 'validation',
    'eval.num_samples': steps(scale, cpu=EVAL_SAMPLES, full=2 * EVAL_SAMPLES, smoke=16),
  }
