"""Checkpoint -> synthetic X-ray dataset on disk, in the Kaggle archive's layout.

  python -m cxrgan_jax.sample --workdir=DIR --num_images=1000 --output_dir=OUT [--which=best]
      [--batchnorm=running|standing|batch]

writes OUT/NORMAL/*.png (or OUT/PNEUMONIA/*_bacteria_*.png / *_virus_*.png),
OUT/grid.png and OUT/manifest.json (see `cxrgan_jax.sampling`).

Started on every host of a multi-host job (launch.sh's CXRGAN_* variables),
process 0 writes the one folder and the others exit.
"""

from absl import app
from absl import flags
from absl import logging

from cxrgan_jax import checkpoints
from cxrgan_jax import parallel
from cxrgan_jax import sampling

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Training workdir holding checkpoints/ (and best/).')
flags.DEFINE_string('output_dir', None, 'New folder for the synthetic dataset.')
flags.DEFINE_integer('num_images', 1000, 'How many images to write.')
flags.DEFINE_enum(
  'which', 'latest', sorted(checkpoints.FOLDERS), 'latest: checkpoints/; best: best/ (lowest FD).'
)
flags.DEFINE_integer('step', None, 'Checkpoint step of --which (default: the newest).')
flags.DEFINE_integer('seed', 0, 'Latent seed; same seed, same images.')
flags.DEFINE_integer('batch_size', 64, 'Generator batch size.')
flags.DEFINE_enum(
  'batchnorm',
  sampling.DEFAULT_BATCHNORM,
  sampling.BATCHNORM_MODES,
  "Generator BatchNorm: 'running' averages (recomputed for an EMA generator), "
  "'standing' (always recomputed for the weights sampled) or each batch's own "
  "statistics ('batch', batches of --batch_size, as the PyTorch DCGAN example samples).",
)
flags.mark_flags_as_required(['workdir', 'output_dir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if index := parallel.launched_process_index():
    print(f'Process {index}: process 0 writes {FLAGS.output_dir}')
    return
  try:
    sampler = sampling.restore_sampler(
      FLAGS.workdir, which=FLAGS.which, step=FLAGS.step, batchnorm=FLAGS.batchnorm
    )
    out = sampling.export_dataset(
      sampler, FLAGS.output_dir, FLAGS.num_images, seed=FLAGS.seed, batch_size=FLAGS.batch_size
    )
  except (checkpoints.CheckpointError, FileExistsError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  logging.info('Wrote %d images from step %d to %s', FLAGS.num_images, sampler.step, out)
  print(f'Wrote {FLAGS.num_images} images ({FLAGS.which} step {sampler.step}) to {out}')


if __name__ == '__main__':
  app.run(main)
