r"""Study a: does noise on the training images help, hurt, or make no difference?

  python -m cxrgan_jax.study --config=configs/studies/noise.py:normal --workdir=studies/noise_normal
  python -m cxrgan_jax.study --config=configs/studies/noise.py:bacterial --workdir=studies/noise_bacterial
  (append ,full for the accelerator-scale variant, ,smoke for CI's seconds-long one)

Arms: persistent Gaussian noise on every training image at sigma in {0.05,
0.1, 0.2} ([-1, 1] units; the GAN never sees a clean image), against the
clean control (`default`, sigma 0), and annealed instance noise on D's inputs
(Sonderby et al. 2016) as a separate arm. Quality is always measured against
clean real test images.
"""

import ml_collections

from configs.studies import common


def get_config(arg: str = 'normal') -> ml_collections.ConfigDict:
  class_name, scale = common.parse_arg(arg)
  study = ml_collections.ConfigDict()
  study.name = f'noise_{class_name}_{scale}'
  study.description = (
    f'Noise on the training images ({class_name}): persistent per-image Gaussian noise vs '
    'clean data vs annealed instance noise on D inputs; scored on clean test images.'
  )
  study.base = common.run_config(class_name, scale)
  # cpu: 800 steps is ~2 min of training at the ~230 img/s of an idle 2-core
  # machine; with scoring, 15 runs take ~45 min per class.
  budget = common.steps(scale, cpu=800, full=20_000)
  study.arms = [
    {'name': 'default', 'overrides': {}},
    {'name': 'data_noise=0.05', 'overrides': {'data_noise_std': 0.05}},
    {'name': 'data_noise=0.1', 'overrides': {'data_noise_std': 0.1}},
    {'name': 'data_noise=0.2', 'overrides': {'data_noise_std': 0.2}},
    {
      'name': 'instance_noise=0.1',
      'overrides': {'instance_noise.std': 0.1, 'instance_noise.anneal_steps': budget},
    },
  ]
  # Three seeds at cpu scale: with two, a 95% t interval is too wide (t=12.7) to
  # call anything but 'inconclusive'.
  study.seeds = [0, 1, 2] if scale == 'cpu' else common.seeds(scale)
  study.budget = ml_collections.ConfigDict(dict(steps=budget, minutes=0.0))
  study.eval = common.scoring(scale, every_steps=max(2, budget // 4))
  study.report = common.report(scale, threshold=20.0)
  return study
