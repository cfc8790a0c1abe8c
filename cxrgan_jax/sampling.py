"""A run's EMA generator -> images in memory, or a synthetic dataset on disk.

The dataset follows the Kaggle archive's layout (OUT/NORMAL/*.png, or
OUT/PNEUMONIA/*_bacteria_*.png / *_virus_*.png), with OUT/grid.png and
OUT/manifest.json, so folder-based classifier code, the TFDS builder and
`cxrgan_jax.evaluate --samples_dir` read it as they read the real images.
"""

from collections.abc import Callable
import os
import pathlib
import shutil
import tempfile
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from cxrgan_jax import batching
from cxrgan_jax import checkpoints
from cxrgan_jax import files
from cxrgan_jax import images as image_utils
from cxrgan_jax import models
from cxrgan_jax import steps

PyTree = Any
# Kaggle folder and file-name pattern per class config. Synthetic "patients"
# get ids from 900000 up so they never collide with real `personN` ids.
_LAYOUT = {
  'normal': ('NORMAL', 'SYNTH-IM-{i:06d}-0001.png'),
  'bacterial': ('PNEUMONIA', 'person{p}_bacteria_{i}.png'),
  'viral': ('PNEUMONIA', 'person{p}_virus_{i}.png'),
}
_SYNTHETIC_PATIENT_OFFSET = 900_000

# How a generator's BatchNorm layers normalise when sampling:
# 'running': the running averages kept during training (deterministic per
#   image, independent of the batch). An EMA generator (config.ema_decay > 0)
#   has no averages of its own: those in the checkpoint were accumulated by
#   the raw G, whose activations differ from the average's, so for it
#   'running' recomputes them ('standing').
# 'standing': averages recomputed for the weights sampled, from their own
#   batch statistics on STANDING_BATCHES training-size batches of fixed latents
#   (BigGAN's "standing statistics"); deterministic per image as well.
# 'batch': each sampling batch's own statistics, as in training and as the
#   PyTorch DCGAN example samples (G never put in eval mode). Every batch is
#   then a full `batch_size` of genuine latents, since an image depends on its
#   batch-mates.
BATCHNORM_MODES = ('running', 'standing', 'batch')
DEFAULT_BATCHNORM = 'running'
STANDING_BATCHES = 16
_AVERAGED_LEAVES = ('mean', 'var')  # flax BatchNorm's running averages.


def check_batchnorm(batchnorm: str) -> str:
  if batchnorm not in BATCHNORM_MODES:
    raise ValueError(
      f'batchnorm={batchnorm!r} is unknown; use one of {", ".join(map(repr, BATCHNORM_MODES))}'
    )
  return batchnorm


def effective_batchnorm(config: ml_collections.ConfigDict, batchnorm: str) -> str:
  """The mode actually used: 'running' on EMA weights means 'standing' (see above)."""
  if check_batchnorm(batchnorm) == 'running' and config.get('ema_decay', 0.0) > 0:
    return 'standing'
  return batchnorm


def _map_averages(fn: Callable[..., jax.Array], *states: PyTree) -> PyTree:
  """fn over the BatchNorm averages of g_state trees; other leaves from the first."""

  def leaf(path, first, *rest):
    name = getattr(path[-1], 'key', None)
    return fn(first, *rest) if name in _AVERAGED_LEAVES else first

  return jax.tree_util.tree_map_with_path(leaf, *states)


def standing_latents(batch_size: int, latent_dim: int, num_batches: int = STANDING_BATCHES):
  """float32 [num_batches, batch_size, latent_dim]: the fixed latents of 'standing'."""
  key = jax.random.fold_in(jax.random.PRNGKey(0), 0x57A4D)
  return jax.random.normal(key, (num_batches, batch_size, latent_dim))


def make_standing_statistics_fn(
  generator: nn.Module, latents: jax.Array
) -> Callable[[PyTree, PyTree], PyTree]:
  """standing(params, g_state) -> g_state whose BatchNorm averages are those of `params`.

  Each average is the mean, over the batches of `latents` [num_batches, B,
  latent], of what that batch's statistics would add to a running average:
  the quantity training's averages track, for these weights. The BatchNorm
  update ra <- m * ra + (1 - m) * x is read off two probes (ra = 0 gives
  (1 - m) x, ra = 1 gives m + (1 - m) x), so no model's momentum is assumed.
  """
  z = latents
  if getattr(generator, 'axis_name', None) is not None:
    # Training's pmapped generator: here every batch is whole on one device.
    generator = generator.clone(axis_name=None)

  @jax.jit
  def standing(params, g_state):
    if not g_state:
      return g_state

    def batch_statistics(z_batch):
      probe = lambda fill: steps.apply_model(
        generator,
        params,
        _map_averages(lambda x: jnp.full_like(x, fill), g_state),
        z_batch,
        train=True,
      )[1]
      low, high = probe(0.0), probe(1.0)
      return _map_averages(lambda a, b: a / (1.0 - (b - a)), low, high)

    per_batch = jax.lax.map(batch_statistics, z)
    return _map_averages(lambda _, mean: jnp.mean(mean, axis=0), g_state, per_batch)

  return standing


def make_generate_fn(
  generator: nn.Module, batchnorm: str = DEFAULT_BATCHNORM
) -> Callable[[PyTree, PyTree, jax.Array], jax.Array]:
  """generate(params, g_state, z [B, latent]) -> images f32 [B, R, R, 1] in [-1, 1].

  `batchnorm` 'batch' normalises with the statistics of the B latents given
  (the updated running averages are dropped); any other mode with the
  averages in `g_state` (recompute them first for 'standing').
  """
  train = check_batchnorm(batchnorm) == 'batch'

  @jax.jit
  def generate(params, g_state, z):
    images, _ = steps.apply_model(generator, params, g_state, z, train=train)
    return jnp.clip(images, -1.0, 1.0)

  return generate


class Sampler:
  """A generator with its weights: latents -> uint8 images, same seed same images."""

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    generator: nn.Module,
    params: PyTree,
    g_state: PyTree,
    step: int,
    *,
    batchnorm: str = DEFAULT_BATCHNORM,
  ):
    self.config = config
    self.step = int(step)
    self.batchnorm = check_batchnorm(batchnorm)
    self.effective_batchnorm = effective_batchnorm(config, batchnorm)
    self._standing = None
    if self.effective_batchnorm == 'standing':
      self._standing = make_standing_statistics_fn(
        generator, standing_latents(config.batch_size, config.latent_dim)
      )
    self.params, self.g_state = None, None
    if params is not None:
      self.set_weights(params, g_state)
    generate = make_generate_fn(generator, batchnorm)
    # Quantised on device, as image_utils.to_uint8 does on the host.
    self._generate_uint8 = jax.jit(
      lambda p, s, z: jnp.clip(jnp.rint((generate(p, s, z) + 1.0) * 127.5), 0, 255).astype(
        jnp.uint8
      )
    )

  def set_weights(self, params: PyTree, g_state: PyTree) -> None:
    """New weights for the compiled generator; 'standing' recomputes their averages."""
    if self._standing is not None:
      g_state = self._standing(params, g_state)
    self.params, self.g_state = params, g_state

  def latents(self, num: int, seed: int) -> np.ndarray:
    """float32 [num, latent_dim] standard normal latents of `seed`."""
    key = jax.random.PRNGKey(seed)
    return np.asarray(jax.random.normal(key, (num, self.config.latent_dim)), np.float32)

  def images_from(
    self, z: np.ndarray, *, batch_size: int = 64, progress: bool = False
  ) -> np.ndarray:
    """uint8 [N, R, R, 1] from latents z [N, latent] in fixed-size batches (one compile).

    With batchnorm='batch' the last batch is filled up with extra latents (of
    a fixed key), not zeros, so that every image has `batch_size` genuine
    batch-mates; image i then depends on z[i - i % batch_size:][:batch_size].
    """
    z = np.asarray(z, np.float32)
    n = len(z)
    if self.batchnorm == 'batch' and n % batch_size:
      key = jax.random.fold_in(jax.random.PRNGKey(0), 0xB47C)
      extra = jax.random.normal(key, (batch_size - n % batch_size, z.shape[1]))
      z = np.concatenate([z, np.asarray(extra, np.float32)])
    images = batching.map_batches(
      lambda chunk: self._generate_uint8(self.params, self.g_state, chunk),
      z,
      batch_size=batch_size,
      progress=progress,
      desc='sampling',
    )
    return images[:n]

  def images(
    self, num_images: int, *, seed: int = 0, batch_size: int = 64, progress: bool = False
  ) -> np.ndarray:
    """uint8 [num_images, R, R, 1] from the latents of `seed`."""
    if num_images <= 0:
      raise ValueError(f'num_images={num_images} must be positive')
    z = self.latents(num_images, seed)
    return self.images_from(z, batch_size=batch_size, progress=progress)


def restore_sampler(
  workdir: str | os.PathLike,
  *,
  which: str = 'latest',
  step: int | None = None,
  batchnorm: str = DEFAULT_BATCHNORM,
) -> Sampler:
  """The EMA generator of `workdir`'s `which` ('latest' or 'best') checkpoints at `step`.

  `step` None takes the newest step of that kind whose generator restores
  (see checkpoints.restore_generator); a named step that is damaged raises.
  Only the generator's EMA weights and state are read, never the optimisers.
  `batchnorm`: see BATCHNORM_MODES.
  """
  restored = checkpoints.restore_generator(workdir, which=which, step=step)
  config = ml_collections.ConfigDict(restored.config)
  generator, _ = models.create_models(config)
  return Sampler(
    config, generator, restored.ema_params, restored.g_state, restored.step, batchnorm=batchnorm
  )


def generate(
  workdir: str | os.PathLike,
  num_images: int,
  *,
  seed: int = 0,
  which: str = 'latest',
  step: int | None = None,
  batch_size: int = 64,
  progress: bool = False,
  batchnorm: str = DEFAULT_BATCHNORM,
) -> np.ndarray:
  """uint8 [num_images, R, R, 1] from a run's EMA generator; same seed, same images."""
  sampler = restore_sampler(workdir, which=which, step=step, batchnorm=batchnorm)
  return sampler.images(num_images, seed=seed, batch_size=batch_size, progress=progress)


def class_of(config: ml_collections.ConfigDict) -> str:
  name = config.dataset.split('/')[-1]
  if name not in _LAYOUT:
    raise ValueError(
      f'config.dataset={config.dataset!r}: sampling writes one class; '
      f'expected one of {sorted(_LAYOUT)}'
    )
  return name


def export_dataset(
  sampler: Sampler,
  output_dir: str | os.PathLike,
  num_images: int,
  *,
  seed: int = 0,
  batch_size: int = 64,
  progress: bool = True,
) -> pathlib.Path:
  """Writes the images, a grid and a manifest; the folder appears only when complete."""
  output_dir = pathlib.Path(output_dir).absolute()
  if output_dir.exists() and any(output_dir.iterdir()):
    raise FileExistsError(f'--output_dir={output_dir} exists and is not empty; choose a new folder')
  cls = class_of(sampler.config)
  folder, pattern = _LAYOUT[cls]
  output_dir.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f'.{output_dir.name}.'))
  try:
    images = sampler.images(num_images, seed=seed, batch_size=batch_size, progress=progress)
    for i, image in enumerate(tqdm.tqdm(images, disable=not progress, desc='writing', unit='img')):
      name = pattern.format(i=i, p=_SYNTHETIC_PATIENT_OFFSET + i)
      image_utils.write_png(tmp / folder / name, image)
    image_utils.write_png(tmp / 'grid.png', image_utils.make_grid(images[:64]))
    manifest = dict(
      num_images=num_images,
      seed=seed,
      step=sampler.step,
      class_name=cls,
      folder=folder,
      resolution=sampler.config.resolution,
      weights='ema',
      batchnorm=sampler.effective_batchnorm,
      config=sampler.config.to_dict(),
    )
    files.write_json(tmp / 'manifest.json', manifest)
    if output_dir.exists():
      output_dir.rmdir()
    os.replace(tmp, output_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return output_dir
