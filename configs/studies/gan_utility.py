r"""Study d: how do the GAN's settings change a classifier trained on its samples?

  python -m cxrgan_jax.study --config=configs/studies/gan_utility.py:noise \
      --config.classifier.data_dir=OUT --workdir=studies/gan_utility_noise

For every arm of a GAN study run once per class (same arm names, e.g.
studies/noise_normal and studies/noise_bacterial, or the hyper-parameter
study's), one normal-vs-bacterial classifier per seed trained only on that
arm's samples (TSTR) and scored on the real test split, set against the arm's
fd_cxr: a table, a scatter plot, and the correlation (does the metric predict
usefulness?). The argument is the GAN study's name and scale, `NAME[,SCALE]`;
the GAN study folders default to studies/<NAME>_<class>
(--config.gan_studies.<class>=DIR to change).
"""

import ml_collections

from configs.studies import utility

GAN_CLASSES = ('normal', 'bacterial')


def get_config(arg: str = 'noise') -> ml_collections.ConfigDict:
  name, _, scale = arg.partition(',')
  scale = scale or 'cpu'
  if not name or scale not in utility.SCALES:
    raise ValueError(f'study argument {arg!r}: use GAN_STUDY[,SCALE], SCALE in {utility.SCALES}')
  study = ml_collections.ConfigDict()
  study.kind = 'gan_utility'
  study.name = f'gan_utility_{name}_{scale}'
  study.description = (
    f'TSTR accuracy of a normal-vs-bacterial classifier trained on the samples of each arm '
    f"of the {name} study, against the arm's fd_cxr."
  )
  study.gan_studies = ml_collections.ConfigDict({c: f'studies/{name}_{c}' for c in GAN_CLASSES})
  study.num_synthetic = {'cpu': 1000, 'full': 2000, 'smoke': 48}[scale]
  # The distance set against usefulness; the smoke studies score pixels only.
  study.fd_metric = 'fd_pixels' if scale == 'smoke' else 'fd_cxr'
  study.classifier = utility.utility_classifier(scale)
  return study
