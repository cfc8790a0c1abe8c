"""A few-minute run on 2 CPU cores over the bundled demo sample (NORMAL class).

Build the demo records first (see README), then
  python main.py --config=configs/demo.py --workdir=/tmp/cxrgan_demo
"""

from configs import base


def get_config():
  config = base.get_config()
  config.dataset = 'chest_xray_pneumonia/normal'
  config.resolution = 64
  config.batch_size = 32
  config.latent_dim = 64
  config.g_channels = 128
  config.d_channels = 128
  config.num_train_steps = 600
  config.log_every_steps = 50
  config.sample_every_steps = 100
  config.checkpoint_every_steps = 200
  config.augment.target = 0.6
  config.augment.adjust_images = 10_000
  config.ema_decay = 0.99
  config.g_optimizer.learning_rate = 2e-3
  config.d_optimizer.learning_rate = 2e-3
  return config
