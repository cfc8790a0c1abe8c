"""The smallest run that still exercises every part: tests and quick command-line checks.

configs/base.py's model (or `configs/tiny.py:dcgan`) at 64 px, narrow, R1 on
every step (one compiled step), 8 steps with a checkpoint and a sample grid
every 4:

  python main.py --config=configs/tiny.py --config.data_dir=TFDS --workdir=/tmp/tiny
"""

from configs import base


def get_config(model: str = 'resnet'):
  config = base.get_config()
  config.model = model
  config.resolution = 64
  config.latent_dim = 16
  config.g_channels = 32
  config.d_channels = 32
  config.batch_size = 8
  config.r1_interval = 1
  config.num_train_steps = 8
  config.log_every_steps = 2
  config.sample_every_steps = 4
  config.checkpoint_every_steps = 4
  config.num_sample_images = 16
  config.eval.num_samples = 16
  return config
