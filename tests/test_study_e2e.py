"""The study runner end to end on the bundled demo data: the smoke noise study.

Workers split the runs, a diverging arm is marked failed while the others go
on, a SIGKILLed study resumes with the same command, reruns skip finished
runs, and the report is drawn from the saved files.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from configs.studies import noise
from cxrgan_jax.study import pipeline
from cxrgan_jax.study import results
from cxrgan_jax.study import spec

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def smoke_study(data_dir):
  study = noise.get_config('normal,smoke')
  study.base.data_dir = str(data_dir)
  study.arms.append({'name': 'diverges', 'overrides': {'g_optimizer.learning_rate': 1e38}})
  return study


def statuses(study_dir, runs):
  return {r['name']: r['status'] for r in results.collect(study_dir, runs)}


def test_workers_failures_rerun_and_report(demo_tfds_dir, tmp_path):
  study = smoke_study(demo_tfds_dir)
  runs = spec.runs(study)
  assert len(runs) == 6  # 5 arms of the noise study + the diverging one, 1 seed.
  second_share = {r.name for r in spec.share(runs, (1, 2))}

  pipeline.run(study, str(tmp_path), worker='1/2')
  done = statuses(tmp_path, runs)
  assert {n for n, s in done.items() if s != results.PENDING} == second_share

  pipeline.run(study, str(tmp_path), worker='0/2')
  done = statuses(tmp_path, runs)
  assert done.pop('diverges/seed0') == results.FAILED
  assert set(done.values()) == {results.FINISHED}
  failed = results.read_run(tmp_path / 'diverges/seed0')
  assert failed['error'].startswith('diverged: NaN/Inf')

  for run in runs:
    if run.arm != 'diverges':
      scores = results.read_run(tmp_path / run.name)['scores']
      assert [s['step'] for s in scores] == [2, 4]
      assert all(s['fd_pixels'] > 0 and s['seconds'] > 0 for s in scores)
      assert scores[1]['images_seen'] == 4 * study.base.batch_size

  # A rerun trains and scores nothing again, and rebuilds the report.
  marker = tmp_path / 'default/seed0' / results.RUN_FILE
  before = marker.stat().st_mtime_ns
  (tmp_path / 'report.md').unlink()
  pipeline.run(study, str(tmp_path))
  assert marker.stat().st_mtime_ns == before
  report = (tmp_path / 'report.md').read_text()
  assert '`diverges` seed 0: diverged' in report and '| `data_noise=0.2` | 1 ok |' in report
  saved = json.loads((tmp_path / pipeline.RESULTS_FILE).read_text())
  assert saved['summary']['arms']['diverges']['runs'] == []
  for name in (
    'curves_fd_pixels.png',
    'pareto.png',
    'final_grids.png',
    'default_seed0_progression.gif',
  ):
    assert (tmp_path / 'figures' / name).is_file(), name


def study_command(workdir, data_dir, *extra):
  return [
    sys.executable,
    '-m',
    'cxrgan_jax.study',
    f'--config={ROOT / "configs/studies/noise.py"}:normal,smoke',
    f'--config.base.data_dir={data_dir}',
    f'--workdir={workdir}',
    *extra,
  ]


def subprocess_env():
  return dict(
    os.environ,
    XLA_FLAGS='--xla_force_host_platform_device_count=2',
    JAX_PLATFORMS='cpu',
    PYTHONPATH=str(ROOT),
  )


def test_sigkilled_study_resumes_with_the_same_command(demo_tfds_dir, tmp_path):
  # Worker 0 of 5 owns exactly one run: default/seed0.
  command = study_command(tmp_path, demo_tfds_dir, '--worker=0/5')
  proc = subprocess.Popen(
    command, cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
  )
  first_checkpoint = tmp_path / 'default/seed0/checkpoints/2'
  deadline = time.time() + 300
  while not first_checkpoint.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert first_checkpoint.exists(), proc.stderr.read().decode()[-3000:]
  run_dir = tmp_path / 'default/seed0'
  assert not (run_dir / results.RUN_FILE).exists()  # Killed before it finished.

  done = subprocess.run(command, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'Resumed from step' in done.stderr
  assert results.read_run(run_dir)['status'] == results.FINISHED
  assert [s['step'] for s in results.read_run(run_dir)['scores']] == [2, 4]
  assert (tmp_path / 'report.md').is_file()


def test_dry_run_and_bad_study_fail_before_training(tmp_path):
  dry = subprocess.run(
    study_command(tmp_path, '/nonexistent', '--dry_run', '--worker=1/2'),
    cwd=ROOT,
    env=subprocess_env(),
    capture_output=True,
    text=True,
  )
  assert dry.returncode == 0, dry.stderr[-2000:]
  assert (
    'worker 1/2: 2 of 5 runs' in dry.stdout
    and 'data_noise=0.05/seed0  data_noise_std=0.05' in dry.stdout
  )
  assert not any(tmp_path.iterdir())

  bad = subprocess.run(
    [*study_command(tmp_path, '/nonexistent'), '--config.eval.every_steps=0'],
    cwd=ROOT,
    env=subprocess_env(),
    capture_output=True,
    text=True,
  )
  assert bad.returncode != 0
  assert 'eval.every_steps must be an int >= 1' in bad.stderr
  assert not any(tmp_path.iterdir())
