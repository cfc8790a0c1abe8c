"""Checkpoint -> synthetic X-ray dataset on disk, in the Kaggle archive's layout.

  python -m cxrgan_jax.sample --workdir=DIR --num_images=1000 --output_dir=OUT

writes OUT/NORMAL/*.png (or OUT/PNEUMONIA/*_bacteria_*.png / *_virus_*.png),
OUT/grid.png and OUT/manifest.json, so the output can be packaged by the TFDS
builder or fed to a classifier exactly like the real archive.
"""

import json
import os
import pathlib
import shutil
import tempfile

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
import numpy as np
import tqdm

from cxrgan_jax import checkpoints
from cxrgan_jax import images as image_utils
from cxrgan_jax import state as state_lib
from cxrgan_jax import steps

# Kaggle folder and file-name pattern per class config. Synthetic "patients"
# get ids from 900000 up so they never collide with real `personN` ids.
_LAYOUT = {
  'normal': ('NORMAL', 'SYNTH-IM-{i:06d}-0001.png'),
  'bacterial': ('PNEUMONIA', 'person{p}_bacteria_{i}.png'),
  'viral': ('PNEUMONIA', 'person{p}_virus_{i}.png'),
}
_SYNTHETIC_PATIENT_OFFSET = 900_000


class Generator:
  """An EMA generator restored from a run's checkpoint, ready to sample."""

  def __init__(self, config: ml_collections.ConfigDict, generator, state: state_lib.TrainState):
    self.config = config
    self.step = int(state.step)
    self.generate = steps.make_generate_fn(generator)
    self.params = state.ema_params
    self.g_state = state.g_state

  def latents(self, num: int, seed: int) -> np.ndarray:
    key = jax.random.PRNGKey(seed)
    return np.asarray(jax.random.normal(key, (num, self.config.latent_dim)), np.float32)


def restore_generator(workdir: str | os.PathLike, step: int | None = None) -> Generator:
  """Restores the EMA generator of `workdir` at `step` (default: latest)."""
  ckpt_dir = pathlib.Path(workdir).absolute() / 'checkpoints'
  steps_here = (
    sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) if ckpt_dir.is_dir() else []
  )
  if not steps_here:
    raise checkpoints.CheckpointError(
      f'no checkpoint found in {ckpt_dir}; train first with '
      f'`python main.py --config=... --workdir={workdir}`'
    )
  if step is not None and step not in steps_here:
    raise checkpoints.CheckpointError(
      f'no checkpoint for step {step} in {ckpt_dir}; available: {steps_here}'
    )
  manager, _ = checkpoints.create_managers(workdir, keep=len(steps_here) + 1)
  step = steps_here[-1] if step is None else step
  meta = checkpoints.restore_meta(manager, step)
  config = ml_collections.ConfigDict(meta['config'])
  generator, *_, template = state_lib.build(config)
  state, _, _ = checkpoints.restore(manager, template, step)
  return Generator(config, generator, state)


def generate_images(
  workdir: str | os.PathLike,
  num_images: int,
  *,
  seed: int = 0,
  step: int | None = None,
  batch_size: int = 64,
  progress: bool = False,
) -> np.ndarray:
  """uint8 [num_images, R, R, 1] from the EMA generator; same seed, same images."""
  gen = restore_generator(workdir, step)
  return sample_from(gen, num_images, seed=seed, batch_size=batch_size, progress=progress)


def generate_batched(
  generate, params, g_state, z: np.ndarray, *, batch_size: int = 64, progress: bool = False
) -> np.ndarray:
  """uint8 [N, R, R, 1] from latents z [N, latent] in fixed-size batches (one compile)."""
  out = []
  for start in tqdm.trange(
    0, len(z), batch_size, disable=not progress, desc='sampling', unit='batch'
  ):
    chunk = z[start : start + batch_size]
    pad = batch_size - len(chunk)
    chunk = np.concatenate([chunk, np.zeros((pad, z.shape[1]), z.dtype)]) if pad else chunk
    images = image_utils.to_uint8(jax.device_get(generate(params, g_state, chunk)))
    out.append(images[: batch_size - pad])
  return np.concatenate(out)


def sample_from(
  gen: Generator, num_images: int, *, seed: int = 0, batch_size: int = 64, progress: bool = False
) -> np.ndarray:
  if num_images <= 0:
    raise ValueError(f'--num_images={num_images} must be positive')
  return generate_batched(
    gen.generate,
    gen.params,
    gen.g_state,
    gen.latents(num_images, seed),
    batch_size=batch_size,
    progress=progress,
  )


def class_of(config: ml_collections.ConfigDict) -> str:
  name = config.dataset.split('/')[-1]
  if name not in _LAYOUT:
    raise ValueError(
      f'config.dataset={config.dataset!r}: sampling writes one class; '
      f'expected one of {sorted(_LAYOUT)}'
    )
  return name


def export_dataset(
  gen: Generator,
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
  cls = class_of(gen.config)
  folder, pattern = _LAYOUT[cls]
  output_dir.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f'.{output_dir.name}.'))
  try:
    images = sample_from(gen, num_images, seed=seed, batch_size=batch_size, progress=progress)
    for i, image in enumerate(tqdm.tqdm(images, disable=not progress, desc='writing', unit='img')):
      name = pattern.format(i=i, p=_SYNTHETIC_PATIENT_OFFSET + i)
      image_utils.write_png(tmp / folder / name, image)
    image_utils.write_png(tmp / 'grid.png', image_utils.make_grid(images[:64]))
    manifest = dict(
      num_images=num_images,
      seed=seed,
      step=gen.step,
      class_name=cls,
      folder=folder,
      resolution=gen.config.resolution,
      weights='ema',
      config=gen.config.to_dict(),
    )
    (tmp / 'manifest.json').write_text(json.dumps(manifest, indent=2, sort_keys=True))
    if output_dir.exists():
      output_dir.rmdir()
    os.replace(tmp, output_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return output_dir


FLAGS = flags.FLAGS


def _define_flags():
  flags.DEFINE_string('workdir', None, 'Training workdir holding checkpoints/.')
  flags.DEFINE_string('output_dir', None, 'New folder for the synthetic dataset.')
  flags.DEFINE_integer('num_images', 1000, 'How many images to write.')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.DEFINE_integer('seed', 0, 'Latent seed; same seed, same images.')
  flags.DEFINE_integer('batch_size', 64, 'Generator batch size.')
  flags.mark_flags_as_required(['workdir', 'output_dir'])


def main(argv):
  del argv
  try:
    gen = restore_generator(FLAGS.workdir, FLAGS.step)
    out = export_dataset(
      gen, FLAGS.output_dir, FLAGS.num_images, seed=FLAGS.seed, batch_size=FLAGS.batch_size
    )
  except (checkpoints.CheckpointError, FileExistsError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  logging.info('Wrote %d images from step %d to %s', FLAGS.num_images, gen.step, out)
  print(f'Wrote {FLAGS.num_images} images (step {gen.step}) to {out}')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
