"""GAN #1: NORMAL chest X-rays with the limited-data residual model at 128^2."""

from configs import base


def get_config():
  config = base.get_config()
  config.dataset = 'chest_xray_pneumonia/normal'
  return config
