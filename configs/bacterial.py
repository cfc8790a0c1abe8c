"""GAN #2: bacterial pneumonia X-rays with the limited-data residual model at 128^2."""

from configs import base


def get_config():
  config = base.get_config()
  config.dataset = 'chest_xray_pneumonia/bacterial'
  return config
