r"""Study c: does a classifier trained on synthetic X-rays do as well as one trained on real ones?

  python -m cxrgan_jax.study --config=configs/studies/utility.py \
      --config.classifier.data_dir=OUT --workdir=studies/utility
  (append :full for the accelerator-scale variant, :smoke for CI's seconds-long one)

For normal vs bacterial (one GAN each) and for the 3 classes (with the viral
GAN): a classifier trained on real data only, on synthetic data only (TSTR),
and on real + synthetic, each at real-data fractions of 10%, 25% and 100%
(patients subsampled), over seeds; scored on the real patient-disjoint test
split. The GANs are the noise study's control runs when
`--config.gan.workdirs.<class>=DIR/seed{seed}` points at them (any training
workdirs will do); a class without one is trained here with the same base
config, budget and seed.
"""

import ml_collections

from configs import classifier
from configs.studies import common

SCALES = ('cpu', 'full', 'smoke')


def get_config(arg: str = 'cpu') -> ml_collections.ConfigDict:
  if arg not in SCALES:
    raise ValueError(f'study argument {arg!r}: use one of {SCALES}')
  scale = arg
  study = ml_collections.ConfigDict()
  study.kind = 'utility'
  study.name = f'utility_{scale}'
  study.description = (
    'Classifier utility of the GANs: real only vs synthetic only (TSTR) vs real + synthetic, '
    'at real-data fractions, for normal vs bacterial and for the 3 classes.'
  )
  study.gan = ml_collections.ConfigDict()
  study.gan.base = common.run_config('normal', scale)  # Dataset set per class.
  study.gan.steps = common.steps(scale, cpu=800, full=20_000)  # The noise study's budget.
  study.gan.workdirs = ml_collections.ConfigDict({c: '' for c in common.CLASSES})
  study.class_sets = (
    ['normal,bacterial'] if scale == 'smoke' else ['normal,bacterial', 'normal,bacterial,viral']
  )
  study.arms = ['real', 'synthetic', 'mixed']
  study.real_fractions = [1.0] if scale == 'smoke' else [0.1, 0.25, 1.0]
  # Per class: enough for the mixed arm at 100% (bacterial has ~1,750 training images).
  study.num_synthetic = {'cpu': 2000, 'full': 2000, 'smoke': 80}[scale]
  study.synthetic_per_real = 1.0
  study.seeds = [0] if scale == 'smoke' else [0, 1, 2]
  study.margin = 0.02  # Accuracy changes within +-2% of real-only count as negligible.
  study.classifier = utility_classifier(scale)
  return study


def utility_classifier(scale: str) -> ml_collections.ConfigDict:
  """configs/classifier.py, shorter at cpu scale (~30 s a run on 2 cores) and tiny for smoke."""
  config = classifier.get_config()
  if scale == 'cpu':
    config.num_steps = 400
    config.eval_every_steps = 50
  elif scale == 'smoke':
    config.num_steps = 4
    config.eval_every_steps = 2
    config.batch_size = 8
    config.widths = (8, 16)
  return config
