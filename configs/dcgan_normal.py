"""Baseline: the DCGAN of the proposal (Radford et al. 2015) on NORMAL X-rays.

No augmentation, no R1, no EMA, BatchNorm in both nets, Adam(2e-4, 0.5).
"""

from configs import base


def get_config():
  config = base.get_config()
  config.dataset = 'chest_xray_pneumonia/normal'
  config.model = 'dcgan'
  config.resolution = 64
  config.g_channels = 512
  config.d_channels = 512
  config.latent_dim = 100
  config.r1_gamma = 0.0
  config.ema_decay = 0.0
  config.augment.policy = ''
  config.augment.adaptive = False
  for opt in (config.g_optimizer, config.d_optimizer):
    opt.b1 = 0.5
    opt.b2 = 0.999
  return config
