"""Trains one chest X-ray GAN: `python main.py --config=configs/normal.py --workdir=DIR`.

Rerunning the same command resumes from the latest checkpoint in DIR. On
SIGTERM/SIGINT the run saves the step it reached and exits with 128 + the
signal number (143, 130), so a requeue loop reruns it; see README "Faults".
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from cxrgan_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, samples and logs.')
config_flags.DEFINE_config_file('config', None, 'Training configuration file.', lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  cli.quiet_library_logs()
  import jax  # pylint: disable=g-import-not-at-top

  from cxrgan_jax import parallel  # pylint: disable=g-import-not-at-top

  parallel.initialize_distributed()
  from cxrgan_jax import preemption  # pylint: disable=g-import-not-at-top
  from cxrgan_jax import train  # pylint: disable=g-import-not-at-top
  from cxrgan_jax import workdir  # pylint: disable=g-import-not-at-top

  logging.info(
    'JAX process %d/%d, local devices: %s',
    jax.process_index(),
    jax.process_count(),
    jax.local_devices(),
  )
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except workdir.WorkdirError as e:
    sys.exit(f'main.py: {e}')  # Status 1, the reason without a traceback.
  except preemption.Preempted as e:
    logging.warning('%s', e)
    # 128 + signal: reported like a death by that signal, so requeue loops rerun it.
    sys.exit(e.exit_code)


if __name__ == '__main__':
  app.run(main)
