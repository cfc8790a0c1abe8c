r"""Runs a study: `python -m cxrgan_jax.study --config=configs/studies/NAME.py --workdir=DIR`.

Trains every (arm, seed) run as an ordinary workdir under DIR/<arm>/seed<k>,
scores each kept checkpoint, and writes DIR/results.json and DIR/report.md.
Rerun the same command to resume: finished runs are skipped, interrupted ones
resume, and the report is rebuilt.

  --dry_run        list the runs and what each overrides; train nothing
  --worker=i/N     train only this worker's share (SLURM arrays, several machines
                   on one shared DIR); every worker rebuilds the report from what
                   is finished so far
  --report_only    rebuild results.json and report.md from the saved files
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from cxrgan_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Study folder; each run is a workdir under it.')
config_flags.DEFINE_config_file('config', None, 'Study config (configs/studies/*.py).')
flags.DEFINE_bool('dry_run', False, 'List the runs and their overrides, then exit.')
flags.DEFINE_string('worker', '0/1', 'i/N: train only every N-th run starting at i.')
flags.DEFINE_bool('report_only', False, 'Rebuild the report from saved results; train nothing.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  cli.quiet_library_logs()
  # Imported once flags are parsed, so --help answers without loading JAX.
  from cxrgan_jax import preemption
  from cxrgan_jax.study import pipeline
  from cxrgan_jax.study import spec

  try:
    pipeline.run(
      FLAGS.config,
      FLAGS.workdir,
      dry_run=FLAGS.dry_run,
      worker=FLAGS.worker,
      report_only=FLAGS.report_only,
    )
  except spec.StudyError as e:
    logging.error('%s', e)
    raise SystemExit(f'study config error: {e}') from None
  except preemption.Preempted as e:
    logging.warning('%s', e)
    raise SystemExit(e.exit_code) from None  # 128 + signal, as main.py, for requeueing.


if __name__ == '__main__':
  app.run(main)
