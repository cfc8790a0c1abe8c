r"""A second pilot for bacterial `fd_cxr` against the PyTorch DCGAN (issue: studies, b).

  python -m cxrgan_jax.study --config=configs/studies/pilot2.py:bacterial --workdir=studies/pilot2_bacterial

The first pilot (configs/studies/pilot.py) picked lazy R1 by its rule, and on
fresh seeds R1 tied with the peer on `fd_cxr` (studies/confirm_pilot_bacterial).
Its runner-up, twice the width, had `fd_cxr` close to R1's (0.640 against
0.596) and the lowest 1-NN accuracy of all its arms (0.612 against 0.645 for
the chosen setting): more capacity, where R1 only smooths D. A wider pair
trains fewer images/s, so at an equal clock it trades updates for capacity.
This pilot tries, on top of the chosen setting (batch 16):
  width=x2            twice the width of both nets, again, on new seeds
  width=x2+r1         the two earlier picks together
  ttur                two time-scale learning rates (Heusel et al. 2017):
                      D at twice the rate, G at half (1:4), a common cure for
                      the swings of G's quality between scored points
It only chooses, on seeds 500 onwards, which no study has used; what it
chooses is confirmed against the peer on other new seeds.

The rule, committed before these runs: the candidate with the lowest mean
final `fd_cxr` goes on to a confirmation against the peer if that mean is
below the `chosen` arm's and its mean final 1-NN accuracy is at most 0.02
above the `chosen` arm's; otherwise the chosen setting stays as it is.
It picked width=x2 (0.894 against 0.936, 1-NN 0.653 against 0.644), which
then tied with the peer on `fd_cxr` on fresh seeds (confirm_pilot2.py).
"""

import ml_collections

from configs.studies import common
from configs.studies import confirm
from configs.studies import pilot

FIRST_SEED = 500
NUM_SEEDS = 5


def get_config(arg: str = 'bacterial') -> ml_collections.ConfigDict:
  class_name, scale = common.parse_arg(arg)
  study = pilot.get_config(arg)
  study.name = study.name.replace('pilot_', 'pilot2_')
  study.description = (
    'A second set of candidate changes to the chosen CPU setting, to choose one for a '
    'confirmation against the PyTorch DCGAN.'
  )
  base = confirm.measured_arm(class_name, scale, study)  # The setting to improve.
  width = study.base.g_channels
  lr = study.base.g_optimizer.learning_rate
  wider = {'g_channels': 2 * width, 'd_channels': 2 * width}
  candidates = {
    'width=x2': wider,
    'width=x2+r1_gamma=1': {**wider, 'r1_gamma': 1.0},
    'ttur': {'g_optimizer.learning_rate': lr / 2, 'd_optimizer.learning_rate': 2 * lr},
  }
  study.arms = pilot.candidate_arms(base, candidates)
  study.seeds = common.fresh_seeds(scale, study, FIRST_SEED, cpu=NUM_SEEDS)
  return study
