r"""Trains the X-ray classifier: flags -> configs/classifier.py -> train_and_evaluate.

  python -m cxrgan_jax.classifier --workdir=/tmp/cxr_clf --data_dir=/tmp/tfds \
      --config.resolution=64 --config.num_steps=1500

Every field of configs/classifier.py is a flag `--config.FIELD` (or the
shorthand `--FIELD`, see cxrgan_jax/cli.py).
"""

from absl import app

from cxrgan_jax import cli
from cxrgan_jax.classifier import train

CONFIG, ARGV = cli.define_config_flag('classifier', 'Classifier configuration file.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = CONFIG.value
  if not config.workdir:
    raise app.UsageError('--workdir is required.')
  metrics = train.train_and_evaluate(config, config.workdir)
  names = metrics['config']['class_names']
  print(f'Best validation step {metrics["best_step"]}, training {metrics["train_seconds"]:.0f}s.')
  print(train.format_table('validation', metrics['validation'], names))
  print(train.format_table('test', metrics['test'], names))


if __name__ == '__main__':
  app.run(main, argv=ARGV)
