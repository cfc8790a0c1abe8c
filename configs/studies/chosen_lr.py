r"""Is the chosen setting's learning rate too high for its batch of 16 (issue: studies, b)?

  python -m cxrgan_jax.study --config=configs/studies/chosen_lr.py:bacterial --workdir=studies/chosen_lr_bacterial

At batch 16 a 2-minute run's quality swings from one scored point to the
next (studies/ema_*: normal fd_cxr 7.99, 2.25, 10.9, 0.62, 0.35 over one
run's last five points), and where the budget cuts a run off decides its
final value. Halving the batch from the baseline's 32 kept Adam's 2e-4, so
each update is twice as noisy. This study's base is the chosen setting, and
its arms scale both nets' learning rates by 0.5 and 0.7 at the same
wall-clock budget. Its `default` runs are the chosen setting's runs of the
EMA study (configs/studies/ema.py), the same config and seeds: links to
studies/ema_<class>/default/seed<k> reuse them.
"""

import ml_collections

from configs.studies import ema
from configs.studies import hparams


def get_config(arg: str = 'normal') -> ml_collections.ConfigDict:
  study = ema.get_config(arg)
  study.name = study.name.replace('ema_', 'chosen_lr_')
  study.description = (
    "Both nets' learning rates scaled down on top of the chosen CPU setting, at the same "
    'wall-clock budget.'
  )
  # Seeds and progression='none' at CPU scale come with the EMA study's config.
  study.arms = [{'name': 'default', 'overrides': {}}]
  study.arms += hparams.learning_rate_arms(study.base, (0.5, 0.7))
  return study
