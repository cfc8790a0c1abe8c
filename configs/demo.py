"""A few-minute run on 2 CPU cores over the bundled demo sample (NORMAL class).

The DCGAN baseline, narrower, with differentiable augmentation: the demo's job
is to show the whole pipeline (data -> training -> grids -> checkpoints ->
sampling) and recognisable chest shapes within minutes, not to make useful data.

  tfds build data_prep/chest_xray_pneumonia --manual_dir=data_prep/demo --data_dir=/tmp/cxrgan_tfds
  python main.py --config=configs/demo.py --config.data_dir=/tmp/cxrgan_tfds --workdir=/tmp/cxrgan_demo
"""

from configs import dcgan_normal


def get_config():
  config = dcgan_normal.get_config()
  config.batch_size = 32
  config.latent_dim = 64
  config.g_channels = 128
  config.d_channels = 128
  config.ema_decay = 0.99
  config.augment.policy = 'translation,cutout'
  config.augment.p = 0.3
  for opt in (config.g_optimizer, config.d_optimizer):
    opt.learning_rate = 5e-4
  config.num_train_steps = 1000
  config.log_every_steps = 50
  config.sample_every_steps = 200
  config.checkpoint_every_steps = 250
  return config
