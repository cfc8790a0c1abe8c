r"""The keep-best confirmation once more, on 12 other fresh seeds (issue: studies, b).

  python -m cxrgan_jax.study --config=configs/studies/replicate_best.py:bacterial --workdir=studies/replicate_best_bacterial
  python -m bench.study_peer --study_dir=studies/replicate_best_bacterial

configs/studies/confirm_best.py (seeds 700-711) met its hypothesis: the
chosen setting keeping its best checkpoint beat the peer on bacterial
`fd_cxr` (-0.335 [-0.633, -0.036]) and 1-NN (-0.049 [-0.081, -0.017]). The
`fd_cxr` win is not robust: the peer's first run (seed 700) trained at 202
img/s against 217-291 for its others, as the first peer run of
confirm_pilot2 did (191), and without seed 700 the difference is -0.249
[-0.527, 0.030]. It was also the fourth fresh-seed test of bacterial
`fd_cxr` against the peer, after three ties. This study repeats it exactly,
on seeds 712-723, which no study has used. The hypothesis, committed before
these runs: the same as confirm_best.py's, on these 12 seeds alone; the 24
seeds of the two studies are also reported together.
(Here `fd_cxr` won, -0.477 [-0.733, -0.220], and 1-NN tied, -0.026 [-0.066,
0.014]; over the 24 seeds both won: -0.406 [-0.592, -0.219] and -0.038
[-0.062, -0.013].)
"""

import ml_collections

from configs.studies import common
from configs.studies import confirm_best

FIRST_SEED = 712
NUM_SEEDS = 12


def get_config(arg: str = 'bacterial') -> ml_collections.ConfigDict:
  _, scale = common.parse_arg(arg)
  study = confirm_best.get_config(arg)
  study.name = study.name.replace('confirm_best_', 'replicate_best_')
  study.seeds = common.fresh_seeds(scale, study, FIRST_SEED, cpu=NUM_SEEDS)
  return study
