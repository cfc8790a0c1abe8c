"""The chosen CPU setting: best quality for a few minutes of training on 2 cores.

  python main.py --config=configs/cpu_best.py:normal --workdir=DIR   # bacterial: below

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

There bacterial tied with the PyTorch DCGAN on `fd_cxr`, and two pilots'
picks (lazy R1, twice the width; configs/studies/pilot.py, pilot2.py) tied
with it again on fresh seeds (confirm_pilot.py, confirm_pilot2.py) while
training fewer images/s, so neither was kept.

Bacterial also keeps its best checkpoint: an in-training FD (500 samples,
the X-ray classifier's features, the validation split) every 300 steps from
step 1,200 on, inside the 2-minute clock; sample it with `--which=best`.
Where the clock stops had decided bacterial `fd_cxr`; keeping the best
checkpoint lowered it by 0.36 after the fact on 22 earlier runs, and by 0.15
on the confirmations' own runs (24 seeds), 1-NN unchanged. Over those 24
fresh seeds (configs/studies/confirm_best.py, replicate_best.py) it beat the
PyTorch DCGAN on both numbers; each study alone missed one (README). It
needs the X-ray classifier:

  python main.py --config=configs/cpu_best.py:bacterial --workdir=DIR \
      --config.eval.classifier_workdir=runs/classifier
  python -m cxrgan_jax.sample --workdir=DIR --which=best --num_images=1000 --output_dir=OUT

The choice is for its 2-minute budget. At 10 minutes (configs/studies/longer.py,
studies/longer_bacterial) the PyTorch DCGAN beat batch 16 on bacterial 1-NN,
and the baseline's batch of 32 tied with it: for longer bacterial runs, add
`--config.batch_size=32` (the baseline again). Normal was not measured at 10
minutes, nor with a kept best checkpoint.
"""

import ml_collections

from configs.studies import common

# The study-chosen changes to the CPU-scale DCGAN baseline (configs/studies/common.py).
OVERRIDES = {'batch_size': 16}
# Per-class additions: normal, the `chosen+cooldown` arm of
# configs/studies/cooldown.py; bacterial, the kept best checkpoint of
# configs/studies/confirm_best.py (every 300 steps: its scoring interval).
CLASS_OVERRIDES = {
  'normal': {'lr_cooldown_fraction': 0.5, 'num_train_steps': 2_400},
  'bacterial': common.keep_best('cpu', every=300),
}
TRAIN_MINUTES = 2.0  # The budget the choice was measured at.


def overrides(class_name: str) -> dict:
  """The chosen setting's changes to the baseline for `class_name`."""
  return {**OVERRIDES, **CLASS_OVERRIDES.get(class_name, {})}


def get_config(arg: str = 'normal') -> ml_collections.ConfigDict:
  class_name, _ = common.parse_arg(arg)
  config = common.run_config(class_name, 'cpu')
  for field, value in overrides(class_name).items():
    *parents, name = field.split('.')
    node = config
    for parent in parents:
      node = node[parent]
    node[name] = value
  config.max_train_minutes = TRAIN_MINUTES
  return config
