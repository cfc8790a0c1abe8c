"""Trains a worker's share of a study's runs, each an ordinary training workdir.

Rerunning is always safe: a run whose `study_run.json` says finished or
failed is skipped, and any other run is (re)started by the training loop's
own resume, which continues bit for bit from the latest checkpoint after any
interruption, SIGKILL included.
"""

import pathlib
import time
import traceback

from absl import logging

from cxrgan_jax import config_checks
from cxrgan_jax import files
from cxrgan_jax import preemption
from cxrgan_jax import run_log
from cxrgan_jax import train
from cxrgan_jax import workdir as workdir_lib
from cxrgan_jax.study import results
from cxrgan_jax.study import spec


def check_runs(runs: list[spec.Run]) -> None:
  """Every run's config must pass the training checks before the first one trains."""
  for run in runs:
    try:
      config_checks.check_config(run.config)
    except config_checks.ConfigError as e:
      raise spec.StudyError(f'run {run.name} (overrides {run.overrides}): {e}') from None


def train_run(run: spec.Run, run_dir: pathlib.Path) -> dict:
  """Trains (or resumes, or skips) one run; returns its status record."""
  record = results.read_run(run_dir)
  if record['status'] in (results.FINISHED, results.FAILED):
    logging.info('study: %s already %s, skipped', run.name, record['status'])
    return record
  logging.info('study: training %s (overrides %s)', run.name, run.overrides)
  started = time.time()
  try:
    train.train_and_evaluate(run.config, str(run_dir))
    record = {'status': results.FINISHED}
  except preemption.Preempted:
    raise  # Saved; the whole study stops and the same command resumes it.
  except workdir_lib.WorkdirError as e:
    # Another worker holds this run (or its folder cannot be written): not a
    # result of the run, so it stays pending for whoever can train it.
    logging.warning('study: %s skipped: %s', run.name, e)
    return record
  except train.NonFiniteError as e:
    record = {'status': results.FAILED, 'error': f'diverged: {e}'}
    logging.warning('study: %s diverged; marked failed, the other runs go on', run.name)
  except Exception as e:  # noqa: BLE001 - one broken arm must not stop the study.
    record = {'status': results.FAILED, 'error': f'{type(e).__name__}: {e}'}
    logging.error('study: %s failed:\n%s', run.name, traceback.format_exc())
  steps, seconds = run_log.training_seconds(run_dir)
  record.update(
    steps=int(steps[-1]),
    train_seconds=float(seconds[-1]),
    images_per_sec=run_log.images_per_second(run_dir),
    wall_seconds_this_call=time.time() - started,
  )
  files.write_json(run_dir / results.RUN_FILE, record)
  return record
