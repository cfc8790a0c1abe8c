r"""Does the chosen setting beat the PyTorch DCGAN on fresh seeds (issue: studies, b)?

  python -m cxrgan_jax.study --config=configs/studies/confirm.py:normal --workdir=studies/confirm_normal
  python -m bench.study_peer --study_dir=studies/confirm_normal

The per-class chosen setting (then configs/cpu_best.py; ARMS below) was picked on the seeds of
studies/cooldown_<class>, so its comparison with the peer there is biased in
its favour. This study tests it once more, against the peer at the same
wall-clock budget, on seeds that no earlier study used (100 onwards). The
hypothesis, committed before these runs: the chosen arm has lower final
`fd_cxr` and 1-NN accuracy than the peer, each difference's 95% interval
excluding 0. Normal ran 20 seeds. Bacterial runs 10, also set before its
runs: its `fd_cxr` difference from the peer in studies/cooldown_bacterial
was 1.5 times its 95% interval's half-width at 8 seeds (normal's, at 16
seeds in studies/cooldown_normal: a quarter), and 10 seeds fit the time left.
"""

import ml_collections

from configs.studies import chosen
from configs.studies import common

FIRST_SEED = 100
NUM_SEEDS = {'normal': 20, 'bacterial': 10, 'viral': 10}
# What configs/cpu_best.py trained for each class when these runs were made,
# fixed here so that a later change to it cannot change what this study ran.
ARMS = {
  'normal': {'batch_size': 16, 'lr_cooldown_fraction': 0.5, 'num_train_steps': 2_400},
  'bacterial': {'batch_size': 16},
  'viral': {'batch_size': 16},
}


def measured_arm(class_name: str, scale: str, study: ml_collections.ConfigDict) -> dict:
  """ARMS[class_name] at `scale`: a cooldown's step count scaled with the study."""
  arm = dict(ARMS[class_name])
  if 'num_train_steps' in arm:
    arm['num_train_steps'] = common.arm_steps(scale, study, cpu=arm['num_train_steps'])
  return arm


def get_config(arg: str = 'normal') -> ml_collections.ConfigDict:
  class_name, scale = common.parse_arg(arg)
  study = chosen.get_config(arg)
  study.name = study.name.replace('chosen_', 'confirm_')
  study.description = (
    'The chosen CPU setting (configs/cpu_best.py) against the PyTorch DCGAN at the same '
    'wall-clock budget, on fresh seeds.'
  )
  study.arms = [{'name': 'chosen', 'overrides': measured_arm(class_name, scale, study)}]
  study.report.control = 'chosen'
  if scale == 'cpu':
    study.report.progression = 'none'
  study.seeds = common.fresh_seeds(scale, study, FIRST_SEED, cpu=NUM_SEEDS[class_name])
  return study


def of_pilot_pick(
  arg: str,
  pilot_study: ml_collections.ConfigDict,
  pick: str,
  *,
  name: str,
  description: str,
  first_seed: int,
  num_seeds: int,
) -> ml_collections.ConfigDict:
  """This study for the arm `pick` of `pilot_study` alone, renamed `confirm_<name>_...`,
  on `num_seeds` fresh seeds from `first_seed` at CPU scale."""
  _, scale = common.parse_arg(arg)
  study = get_config(arg)
  study.name = study.name.replace('confirm_', f'confirm_{name}_')
  study.description = description
  (arm,) = [a for a in pilot_study.arms if a['name'] == pick]
  study.arms = [{'name': 'chosen', 'overrides': dict(arm['overrides'])}]
  study.seeds = common.fresh_seeds(scale, study, first_seed, cpu=num_seeds)
  return study
