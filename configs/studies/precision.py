r"""What does bfloat16 compute cost in quality at a fixed budget (issue: train-step speed)?

  python -m cxrgan_jax.study --config=configs/studies/precision.py:normal --workdir=studies/precision_normal

The noise study's control run (the CPU-scale DCGAN, 800 steps, 3 seeds)
against the same run with `compute_dtype='bfloat16'` (bf16 matmuls with f32
accumulation, f32 master weights and loss). The control arm is the noise
study's `default`: a link to studies/noise_<class>/default reuses its runs.
"""

import ml_collections

from configs.studies import noise


def get_config(arg: str = 'normal') -> ml_collections.ConfigDict:
  study = noise.get_config(arg)
  study.name = study.name.replace('noise_', 'precision_')
  study.description = 'float32 vs bfloat16 compute at the same step budget.'
  study.arms = [
    {'name': 'default', 'overrides': {}},
    {'name': 'compute_dtype=bfloat16', 'overrides': {'compute_dtype': 'bfloat16'}},
  ]
  return study
