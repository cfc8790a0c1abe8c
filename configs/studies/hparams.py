r"""Study b: which hyper-parameters give the best quality for a reasonable training time?

  python -m cxrgan_jax.study --config=configs/studies/hparams.py:normal --workdir=studies/hparams_normal

One-at-a-time sweeps around the CPU-scale DCGAN baseline, every run given the
same wall-clock budget, so the Pareto plot of final quality against time and
the table of images/s, time to threshold and quality at the budget compare
like with like. Compound changes (the optimiser of both nets, augmentation
with its strength, the residual model with its own defaults) are named arms.
"""

import ml_collections

from configs.studies import common


def learning_rate_arms(base: ml_collections.ConfigDict, factors) -> list[dict]:
  """Arms that scale both nets' learning rates together, from G's in `base`."""
  lr = base.g_optimizer.learning_rate
  return [
    {
      'name': f'learning_rate=x{factor:g}',
      'overrides': {f'{n}_optimizer.learning_rate': factor * lr for n in 'gd'},
    }
    for factor in factors
  ]


def get_config(arg: str = 'normal') -> ml_collections.ConfigDict:
  class_name, scale = common.parse_arg(arg)
  study = ml_collections.ConfigDict()
  study.name = f'hparams_{class_name}_{scale}'
  study.description = (
    f'One-at-a-time hyper-parameter sweeps ({class_name}) at an equal wall-clock budget per run.'
  )
  study.base = common.run_config(class_name, scale)
  width = study.base.g_channels
  sgd = dict(name='sgd', learning_rate=0.01, momentum=0.9)
  study.arms = [
    {'name': 'default', 'overrides': {}},
    {
      'name': 'optimizer=sgd',
      'overrides': {f'{n}_optimizer.{k}': v for n in 'gd' for k, v in sgd.items()},
    },
    {
      'name': 'width=x2',
      'overrides': {'g_channels': 2 * width, 'd_channels': 2 * width},
    },
    {
      'name': 'augment=diffaug+ada',
      'overrides': {
        'augment.policy': 'translation,cutout,brightness,contrast',
        'augment.adaptive': True,
      },
    },
    {'name': 'ema=0.999', 'overrides': {'ema_decay': 0.999}},
    {'name': 'r1_gamma=1', 'overrides': {'r1_gamma': 1.0}},
    {
      'name': 'model=resnet',
      'overrides': {
        'model': 'resnet',
        'r1_gamma': 1.0,
        'ema_decay': 0.999,
        'augment.policy': 'translation,cutout,brightness,contrast',
        'augment.adaptive': True,
        'g_optimizer.b1': 0.0,
        'g_optimizer.b2': 0.99,
        'd_optimizer.b1': 0.0,
        'd_optimizer.b2': 0.99,
      },
    },
  ]
  study.arms += learning_rate_arms(study.base, (0.5, 2.5))
  study.sweep = [
    ('batch_size', [16, 64]),
    ('d_steps', [2]),
    ('loss', ['minimax', 'hinge']),
  ]
  # The plain PyTorch DCGAN a user would pick instead, on the base config and the
  # same wall-clock: train it with `python -m bench.study_peer --study_dir=DIR`.
  study.peers = ['torch_dcgan']
  study.seeds = common.seeds(scale)
  # cpu: 28 runs of 2 min and 2-3 scored points each. Measured: both classes side
  # by side, each pinned to one of 2 cores (`taskset -c 0` / `-c 1`), 70 min in
  # all; the baseline then runs at ~130 img/s (~500 steps of batch 32).
  minutes = {'cpu': 2.0, 'full': 60.0, 'smoke': 0.0}[scale]
  # A wall-clock budget, so the Pareto plot compares like with like; smoke: 4 steps.
  study.budget = ml_collections.ConfigDict(
    dict(steps=4 if scale == 'smoke' else 0, minutes=minutes)
  )
  study.eval = common.scoring(scale, every_steps=common.steps(scale, cpu=300, full=2_000, smoke=2))
  study.report = common.report(scale, threshold=20.0)
  return study
