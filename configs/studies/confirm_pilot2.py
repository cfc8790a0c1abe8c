r"""Does the second pilot's choice beat the PyTorch DCGAN on fresh seeds (issue: studies, b)?

  python -m cxrgan_jax.study --config=configs/studies/confirm_pilot2.py:bacterial --workdir=studies/confirm_pilot2_bacterial
  python -m bench.study_peer --study_dir=studies/confirm_pilot2_bacterial

The second pilot (configs/studies/pilot2.py, studies/pilot2_bacterial; seeds
500-504) chose twice the width on top of the chosen bacterial setting by its
committed rule: the lowest mean final `fd_cxr` of its three candidates (0.894
against 0.936 for the chosen setting alone), with 1-NN within 0.02 (0.653
against 0.644). No arm there differed from the control beyond noise (width
x2: -0.043 [-0.78, 0.70]), so this is the rule's pick, not a measured gain.
This study tests it against the peer at the same wall-clock budget on seeds
no study has used (600 onwards), as configs/studies/confirm_pilot.py did for
the first pilot's pick. The hypothesis, committed before these runs: the
chosen arm has lower final `fd_cxr` and 1-NN accuracy than the peer, each
difference's 95% interval excluding 0. 12 seeds: what the time left allows,
with the chosen arm on one core and the peer on the other.
(It tied on `fd_cxr`, 0.664 against 0.815, so configs/cpu_best.py kept
batch 16 alone.)
"""

import ml_collections

from configs.studies import confirm
from configs.studies import pilot2

CHOSEN_ARM = 'chosen+width=x2'  # The second pilot's pick by its rule.
FIRST_SEED = 600
NUM_SEEDS = 12


def get_config(arg: str = 'bacterial') -> ml_collections.ConfigDict:
  return confirm.of_pilot_pick(
    arg,
    pilot2.get_config(arg),
    CHOSEN_ARM,
    name='pilot2',
    description=(
      "The second pilot's choice (the chosen CPU setting at twice the width) against the "
      'PyTorch DCGAN at the same wall-clock budget, on fresh seeds.'
    ),
    first_seed=FIRST_SEED,
    num_seeds=NUM_SEEDS,
  )
