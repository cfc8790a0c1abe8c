"""The chosen CPU setting: best quality for a few minutes of training on 2 cores.

  python main.py --config=configs/cpu_best.py:bacterial --workdir=DIR

Chosen by the hyper-parameter study (studies/hparams_<class>): the CPU-scale
DCGAN (64^2, width 64, Adam 2e-4/0.5, non-saturating loss) with batch 16
instead of 32. At an equal wall-clock budget the smaller batch buys about
twice the updates, which this slower-per-image model needs most; no other
single change did better on both classes.

Normal also decays both learning rates linearly to 0 over the second half of
2,400 steps. At a constant rate, normal's samples swing in overall lung
opacity from one scored point to the next, so where the clock stops decides
the score; in studies/cooldown_normal the cooldown settled them and beat the
PyTorch DCGAN on 1-NN with significance, while for bacterial it raised
`fd_cxr` (studies/cooldown_bacterial), so bacterial keeps a constant rate.
That per-class choice was made on those runs' seeds, so it was committed
before its confirmation on fresh seeds (configs/studies/confirm.py,
studies/confirm_<class>), whose numbers the README reports.

There bacterial tied with the PyTorch DCGAN on `fd_cxr`. A pilot
(configs/studies/pilot.py) then picked lazy R1 (gamma 1) of three candidate
additions, and on fresh seeds (configs/studies/confirm_pilot.py) it tied
with the peer on `fd_cxr` too, and matched batch 16 alone on every measure
while training about 9% fewer images/s, so bacterial keeps batch 16 alone.
A second pilot (configs/studies/pilot2.py) picked twice the width, which on
fresh seeds (configs/studies/confirm_pilot2.py) tied with the peer on
`fd_cxr` once more at about 30% fewer images/s than batch 16 alone, so
bacterial still keeps batch 16 alone.

The choice is for its 2-minute budget. At 10 minutes (configs/studies/longer.py,
studies/longer_bacterial) the PyTorch DCGAN beat batch 16 on bacterial 1-NN,
and the baseline's batch of 32 tied with it: for longer bacterial runs, add
`--config.batch_size=32` (the baseline again). Normal was not measured at 10
minutes.
"""

import ml_collections

from configs.studies import common

# The study-chosen changes to the CPU-scale DCGAN baseline (configs/studies/common.py).
OVERRIDES = {'batch_size': 16}
# Per-class additions: the `chosen+cooldown` arm of configs/studies/cooldown.py.
CLASS_OVERRIDES = {'normal': {'lr_cooldown_fraction': 0.5, 'num_train_steps': 2_400}}
TRAIN_MINUTES = 2.0  # The budget the choice was measured at.


def overrides(class_name: str) -> dict:
  """The chosen setting's changes to the baseline for `class_name`."""
  return {**OVERRIDES, **CLASS_OVERRIDES.get(class_name, {})}


def get_config(arg: str = 'normal') -> ml_collections.ConfigDict:
  class_name, _ = common.parse_arg(arg)
  config = common.run_config(class_name, 'cpu')
  for field, value in overrides(class_name).items():
    config[field] = value
  config.max_train_minutes = TRAIN_MINUTES
  return config
