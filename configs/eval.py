"""One evaluation (`python -m cxrgan_jax.evaluate`): every knob.

Generated side: `workdir` (samples the run's EMA generator, `which` / `step`),
`samples_dir`, or `generated_split` (real images: the floor). Real side: a
TFDS split (`dataset` / `split`) or `real_dir`.
Training side for the memorisation audit: `train_split` of the same dataset
or `train_dir` ('' and '' = no audit).
"""

import ml_collections
from ml_collections import config_dict

from cxrgan_jax import files
from cxrgan_jax import sampling


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.output_dir = ''  # Where metrics.json, report.md and the PNGs go.
  # --- Generated side ------------------------------------------------------
  config.workdir = ''  # GAN run to sample (EMA generator).
  config.which = 'latest'  # 'latest' (checkpoints/) or 'best' (best/, lowest FD).
  config.step = config_dict.placeholder(int)  # Step of `which`; None = the newest.
  config.samples_dir = ''  # Folder of generated PNG/JPEG images (recursive) instead.
  # Or real images as the generated side: `num_samples` random images (`seed`)
  # of this TFDS split of `dataset`, e.g. 'train'. What a generator that
  # reproduced its training data would score: the floor of every measure.
  config.generated_split = ''
  config.num_samples = 1000  # Images to generate; with samples_dir a cap (0 = all).
  config.seed = 0  # Seed of sampling and of every random subset.
  # BatchNorm generators: normalise with the 'running' averages (recomputed
  # for an EMA generator, which has none of its own), 'standing' ones always
  # recomputed for the weights sampled, or each sampling batch's own
  # statistics ('batch', batches of 64, as the PyTorch DCGAN example
  # samples); see cxrgan_jax/sampling.py.
  config.batchnorm = sampling.DEFAULT_BATCHNORM
  # --- Real (held-out) and training sides ----------------------------------
  config.dataset = 'chest_xray_pneumonia/normal'  # TFDS dataset of the real side.
  config.split = 'test'  # Held-out real split.
  config.data_dir = ''  # TFDS data_dir.
  config.real_dir = ''  # Folder of real images instead of TFDS.
  config.max_real = 0  # Cap on real images (0 = all).
  config.train_split = 'train'  # The GAN's training split, for the audit ('' = none).
  config.train_dir = ''  # Folder of training images instead (needed with real_dir).
  config.max_train = 0  # Cap on training images (0 = all).
  # Folder images: short side resized to `resolution` and the centre square
  # kept, as the TFDS builder does; False requires square images of one size.
  config.center_crop = True
  config.resolution = 0  # Image side; 0 = that of the generated images.
  # --- Feature spaces --------------------------------------------------------
  config.features = 'pixels'  # Comma-separated: inception, cxr, pixels.
  config.inception_weights = ''  # pytorch-fid weights (.pth or .npz) for 'inception'.
  config.classifier_workdir = ''  # `python -m cxrgan_jax.classifier` workdir for 'cxr'.
  config.pixel_size = 32  # 'pixels' side; FD's sqrtm is O(side**6): 64 takes minutes.
  # Cache of real-split features ('' disables); see cxrgan_jax/files.py.
  config.cache_dir = str(files.cache_root() / 'real_features')
  config.batch_size = 64  # Feature-extraction batch size.
  # --- Measures --------------------------------------------------------------
  config.ms_ssim_pairs = 1000  # Random pairs per set for MS-SSIM.
  config.num_permutations = 1000  # Draws of the 1-NN permutation test.
  return config
