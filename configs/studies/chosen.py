r"""Does the chosen setting beat the PyTorch DCGAN at equal wall-clock (issue: studies, b)?

  python -m cxrgan_jax.study --config=configs/studies/chosen.py:normal --workdir=studies/chosen_normal
  python -m bench.study_peer --study_dir=studies/chosen_normal

The hyper-parameter study's baseline, its chosen setting (configs/cpu_best.py)
and the PyTorch DCGAN peer, at the same wall-clock budget, with 8 seeds
instead of 2: the confirmation of the choice. Seeds 0 and 1 of all three can
reuse the hyper-parameter study's runs when they were made by the same code
(links to studies/hparams_<class>/{default,batch_size=16,peer=torch_dcgan}/seed{0,1});
the published studies/chosen_<class> runs are all new, made after the layer
rewrite that brought the step to PyTorch's speed.
"""

import ml_collections

from configs import cpu_best
from configs.studies import common
from configs.studies import hparams


def get_config(arg: str = 'normal') -> ml_collections.ConfigDict:
  study = hparams.get_config(arg)
  study.name = study.name.replace('hparams_', 'chosen_')
  study.description = 'The chosen CPU setting against the baseline and the PyTorch DCGAN at an equal wall-clock budget.'
  study.arms = [
    {'name': 'default', 'overrides': {}},
    {'name': 'chosen', 'overrides': dict(cpu_best.OVERRIDES)},
  ]
  study.sweep = []
  if common.parse_arg(arg)[1] != 'smoke':
    study.seeds = list(range(8))
  return study
