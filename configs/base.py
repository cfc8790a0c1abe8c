"""Every knob of a training run, with the defaults of the limited-data model.

Class configs (normal.py, bacterial.py, viral.py) and demo.py import this and
override a few fields, so a reader learns the whole surface from this file.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  # --- Data (TFDS builder in data_prep/chest_xray_pneumonia) ---------------
  # `<builder>/<config>`; one GAN trains on one class config.
  config.dataset = 'chest_xray_pneumonia/normal'
  # TFDS data_dir holding the built records; '' means TFDS's default
  # (~/tensorflow_datasets or $TFDS_DATA_DIR).
  config.data_dir = ''
  config.train_split = 'train'
  config.resolution = 128  # 64, 128 or 256 (square, grayscale).
  config.batch_size = 64  # Global batch over every device of every host.
  # Off by default: a horizontal flip puts the heart on the right (dextrocardia),
  # which would teach the generator an anatomy that almost never occurs.
  config.random_flip = False
  # Persistent Gaussian noise (std in [-1, 1] units) on every training image,
  # fixed per image: the noise study's "noisy data". 0 = clean.
  config.data_noise_std = 0.0
  config.num_data_workers = 0  # grain worker processes; 0 decodes in-process.
  # Keep each decoded, resized training image in memory after its first use
  # (N * R^2 bytes per process): later epochs skip PNG decoding, which costs
  # as much CPU as a small model's step. False decodes every time.
  config.cache_images = True
  config.shuffle_buffer_size = 0  # unused by grain's global shuffle; kept 0.

  # --- Models (cxrgan_jax/models) -------------------------------------------
  config.model = 'resnet'  # 'dcgan' (Radford et al. 2015) or 'resnet'.
  config.latent_dim = 128
  config.g_channels = 256  # Widest generator channel count (at 4x4).
  config.d_channels = 256  # Widest discriminator channel count (at 4x4).
  config.spectral_norm = False  # Spectral norm on D (Miyato et al. 2018).
  # 'bfloat16': layers compute in bf16 (matmuls accumulate in float32);
  # parameters, optimiser state, G's images, D's logits and losses stay float32.
  config.compute_dtype = 'float32'

  # --- Losses and optimisation -------------------------------------------
  config.loss = 'non_saturating'  # 'minimax', 'non_saturating' or 'hinge'.
  config.d_steps = 1  # D updates per G update (Goodfellow et al. 2014, Alg. 1's k).
  config.r1_gamma = 1.0  # R1 gradient penalty on real data (Mescheder 2018); 0 = off.
  config.r1_interval = 4  # Lazy R1: every N steps, scaled by N (Karras 2020b).
  config.g_optimizer = ml_collections.ConfigDict(
    dict(name='adam', learning_rate=2e-4, b1=0.0, b2=0.99, momentum=0.9)
  )
  config.d_optimizer = ml_collections.ConfigDict(
    dict(name='adam', learning_rate=2e-4, b1=0.0, b2=0.99, momentum=0.9)
  )
  config.grad_clip_norm = 0.0  # 0 = no clipping.
  # Both learning rates are held for the first (1 - f) of num_train_steps and
  # decay linearly to 0 over the last f (state.learning_rate); 0 = constant.
  # It counts in steps: under max_train_minutes, set num_train_steps to about
  # the steps that budget allows, or the decay never comes.
  config.lr_cooldown_fraction = 0.0
  config.ema_decay = 0.999  # EMA of G's weights; 0 = no EMA (sample raw G).

  # Differentiable augmentation of real and fake alike (Zhao et al. 2020;
  # Karras et al. 2020 for the adaptive strength).
  config.augment = ml_collections.ConfigDict(
    dict(
      policy='translation,cutout,brightness,contrast',  # '' = off.
      p=0.0,  # Initial (or fixed, if not adaptive) probability per op.
      adaptive=True,
      target=0.6,  # ADA target for r_t = E[sign(D(real))].
      adjust_images=50_000,  # Images over which p can move by 1.
      interval=4,  # Steps between p updates.
    )
  )
  # Instance noise (Sønderby et al. 2016): Gaussian noise on D's inputs whose
  # std decays linearly from `std` to 0 over `anneal_steps`.
  config.instance_noise = ml_collections.ConfigDict(dict(std=0.0, anneal_steps=10_000))

  # --- Loop, logging, checkpoints ------------------------------------------
  config.num_train_steps = 20_000
  # Wall-clock budget over all (re)starts; the run ends at the first log step
  # past it, as if num_train_steps were reached. 0 = none.
  config.max_train_minutes = 0.0
  config.log_every_steps = 50
  config.sample_every_steps = 1_000
  config.num_sample_images = 64  # Fixed-latent grid (8x8).
  config.checkpoint_every_steps = 1_000
  config.keep_checkpoints = 3

  # In-training evaluation: Fréchet distance on a small sample, used to keep
  # the best checkpoint. features: 'pixels', 'cxr' or 'inception'.
  config.eval_every_steps = 0  # 0 = off.
  # No evaluation (so no best checkpoint) before this step: a young
  # generator's blurry average X-ray can score a low FD and be kept as best.
  config.eval_start_step = 0
  config.eval = ml_collections.ConfigDict(
    dict(
      features='pixels',
      split='validation',
      num_samples=1_000,
      inception_weights='',  # Path; needed only for features='inception'.
      classifier_workdir='',  # Workdir of cxrgan_jax.classifier for 'cxr'.
    )
  )
  return config
