r"""Does the pilot's choice beat the PyTorch DCGAN on fresh seeds (issue: studies, b)?

  python -m cxrgan_jax.study --config=configs/studies/confirm_pilot.py:bacterial --workdir=studies/confirm_pilot_bacterial
  python -m bench.study_peer --study_dir=studies/confirm_pilot_bacterial

The pilot (configs/studies/pilot.py, studies/pilot_bacterial; seeds 200-204)
chose lazy R1 (gamma 1) on top of the chosen bacterial setting by its
committed rule: the lowest mean final `fd_cxr` of its three candidates
(0.596 against 1.26 for the chosen setting alone), with 1-NN within 0.02
(0.648 against 0.645). This study tests it against the peer at the same wall-clock
budget on seeds no study has used (300 onwards), as configs/studies/confirm.py
did for the setting before it. The hypothesis, committed before these runs:
the chosen arm has lower final `fd_cxr` and 1-NN accuracy than the peer, each
difference's 95% interval excluding 0. 16 seeds: what the time left allows.
(It tied on `fd_cxr`, so configs/cpu_best.py kept batch 16 alone.)
"""

import ml_collections

from configs.studies import confirm
from configs.studies import pilot

CHOSEN_ARM = 'chosen+r1_gamma=1'  # The pilot's pick by its rule.
FIRST_SEED = 300
NUM_SEEDS = 16


def get_config(arg: str = 'bacterial') -> ml_collections.ConfigDict:
  return confirm.of_pilot_pick(
    arg,
    pilot.get_config(arg),
    CHOSEN_ARM,
    name='pilot',
    description=(
      "The pilot's choice (the chosen CPU setting plus lazy R1) against the PyTorch DCGAN at "
      'the same wall-clock budget, on fresh seeds.'
    ),
    first_seed=FIRST_SEED,
    num_seeds=NUM_SEEDS,
  )
