"""End to end on real X-rays: train, resume after SIGTERM/SIGKILL or damage, sample."""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
from PIL import Image
import pytest

from configs import eval as eval_configs
from configs import tiny
from cxrgan_jax import checkpoints
from cxrgan_jax import sampling
from cxrgan_jax import train
from cxrgan_jax.evaluation import suite

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def small_config(data_dir, steps: int):
  config = tiny.get_config('dcgan')
  config.data_dir, config.num_train_steps = str(data_dir), steps
  return config


def main_command(workdir, data_dir, steps: int) -> list[str]:
  return [
    sys.executable,
    str(ROOT / 'main.py'),
    f'--config={ROOT / "configs/tiny.py"}:dcgan',
    f'--workdir={workdir}',
    f'--config.data_dir={data_dir}',
    f'--config.num_train_steps={steps}',
  ]


def subprocess_env(cache_dir=None) -> dict[str, str]:
  """A child process's environment: the tests' two CPU devices and, given
  cache_dir, jax's persistent compilation cache there (every program cached)."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2', JAX_PLATFORMS='cpu')
  if cache_dir is not None:
    env.update(
      JAX_COMPILATION_CACHE_DIR=str(cache_dir), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0'
    )
  return env


def final_state(workdir, data_dir, steps: int):
  config = small_config(data_dir, steps)
  *_, template = train.build(config)
  latest, _ = checkpoints.create_managers(workdir, keep=3)
  state, data_state, _ = checkpoints.restore(latest, template)
  return state, data_state


def test_short_training_on_real_xrays_writes_everything(demo_tfds_dir, tmp_path, compilation_cache):
  workdir = tmp_path / 'run'
  config = small_config(demo_tfds_dir, 8)
  config.eval_every_steps = 2
  config.eval_start_step = 4  # Evaluated at 4, 6 and 8, never at 2.
  state = train.train_and_evaluate(config, str(workdir))
  assert int(state.step) == 8
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['4', '8']
  best = [p.name for p in (workdir / 'best').iterdir() if p.name.isdigit()]
  assert len(best) == 1 and best[0] in ('4', '6', '8')
  assert (workdir / 'samples' / 'step_000008.png').is_file()
  assert list(workdir.glob('events.out.tfevents.*')), 'TensorBoard events missing'
  lines = [json.loads(l) for l in (workdir / 'metrics.jsonl').read_text().splitlines()]
  train_lines = [l for l in lines if 'd_loss' in l]
  eval_lines = [l for l in lines if 'eval/fd_pixels' in l]
  assert [l['step'] for l in train_lines] == [2, 4, 6, 8]
  assert all(np.isfinite(l['d_loss']) and l['images_per_sec'] > 0 for l in train_lines)
  assert [l['step'] for l in eval_lines] == [4, 6, 8]
  fds = {l['step']: l['eval/fd_pixels'] for l in eval_lines}
  assert all(np.isfinite(v) and v > 0 for v in fds.values())
  assert best[0] == str(min(fds, key=fds.get)), 'best/ must hold the lowest FD step'

  sampler = sampling.restore_sampler(workdir)
  out = sampling.export_dataset(sampler, tmp_path / 'synthetic', 10, seed=3, progress=False)
  pngs = sorted((out / 'NORMAL').glob('*.png'))
  assert len(pngs) == 10 and (out / 'grid.png').is_file()
  manifest = json.loads((out / 'manifest.json').read_text())
  assert manifest['step'] == 8 and manifest['seed'] == 3
  again = sampling.generate(workdir, 10, seed=3)
  first = np.asarray(Image.open(pngs[0]))
  np.testing.assert_array_equal(first, again[0, ..., 0])

  # The kept best checkpoint is reachable: sampled by the binary (with the
  # batch statistics instead of the default), evaluated by the suite.
  best_step = int(best[0])
  assert checkpoints.available_steps(workdir, 'best') == [best_step]
  assert sampling.restore_sampler(workdir, which='best').step == best_step
  mode = 'batch'
  proc = subprocess.run(
    [sys.executable, '-m', 'cxrgan_jax.sample', f'--workdir={workdir}', '--which=best']
    + [f'--output_dir={tmp_path / "best_synthetic"}', '--num_images=4', '--seed=3']
    + [f'--batchnorm={mode}'],
    cwd=ROOT,
    env=dict(subprocess_env(compilation_cache), PYTHONPATH=str(ROOT)),
    capture_output=True,
    text=True,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  best_manifest = json.loads((tmp_path / 'best_synthetic' / 'manifest.json').read_text())
  assert best_manifest['step'] == best_step and best_manifest['batchnorm'] == mode
  best_images = sampling.generate(workdir, 4, seed=3, which='best', batchnorm=mode)
  first = np.asarray(Image.open(sorted((tmp_path / 'best_synthetic/NORMAL').glob('*.png'))[0]))
  np.testing.assert_array_equal(first, best_images[0, ..., 0])
  default_images = sampling.generate(workdir, 4, seed=3, which='best')
  assert np.any(default_images != best_images), 'the BatchNorm mode changed nothing'

  report = tmp_path / 'eval'
  config = eval_configs.get_config()
  config.update(
    output_dir=str(report),
    workdir=str(workdir),
    which='best',
    num_samples=24,
    dataset='chest_xray_pneumonia/normal',
    split='test',
    data_dir=str(demo_tfds_dir),
    features='pixels',
    cache_dir='',
    ms_ssim_pairs=20,
    num_permutations=50,
    batchnorm=mode,
  )
  metrics = suite.run(config)
  assert np.isfinite(metrics['fd_pixels']) and metrics['fd_pixels'] > 0
  assert 0.0 <= metrics['one_nn_accuracy_pixels'] <= 1.0
  assert json.loads((report / 'metrics.json').read_text())['fd_pixels'] == metrics['fd_pixels']
  info = json.loads((report / 'evaluation_info.json').read_text())
  assert f'best step {best_step}' in info['fake_source']
  assert f'BatchNorm {mode}' in info['fake_source']
  assert (report / 'report.md').is_file()


def test_sampling_errors_are_clear(tmp_path):
  with pytest.raises(checkpoints.CheckpointError, match='no checkpoint found'):
    sampling.restore_sampler(tmp_path / 'nothing_here')
  with pytest.raises(checkpoints.CheckpointError, match='eval_every_steps'):
    sampling.restore_sampler(tmp_path / 'nothing_here', which='best')
  with pytest.raises(ValueError, match='which'):
    checkpoints.available_steps(tmp_path, 'newest')


@pytest.fixture(scope='module')
def straight_run(demo_tfds_dir, tmp_path_factory, compilation_cache) -> pathlib.Path:
  """An uninterrupted 12-step run through main.py: checkpoints 4, 8 and 12.

  The reference of the interrupted runs, and the source of damaged copies.
  """
  workdir = tmp_path_factory.mktemp('straight') / 'run'
  subprocess.run(
    main_command(workdir, demo_tfds_dir, 12),
    check=True,
    env=subprocess_env(compilation_cache),
    cwd=ROOT,
    capture_output=True,
  )
  return workdir


def _wait_for(condition, proc, what: str, timeout: float = 300) -> None:
  deadline = time.time() + timeout
  while not condition():
    assert proc.poll() is None, f'run ended before {what}'
    assert time.time() < deadline, f'no {what} within {timeout} s'
    time.sleep(0.05)


def _checkpoint_steps(workdir) -> list[int]:
  return sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())


def test_resume_after_sigterm_and_sigkill_is_bit_exact(
  straight_run, demo_tfds_dir, tmp_path, compilation_cache
):
  """SIGTERM saves the step reached; SIGKILL loses only what followed the last save."""
  steps = 12
  env = subprocess_env(compilation_cache)
  workdir = tmp_path / 'interrupted'

  # 1. SIGTERM once the first metrics are logged: stops at that step, saved.
  proc = subprocess.Popen(
    main_command(workdir, demo_tfds_dir, steps),
    env=env,
    cwd=ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  jsonl = workdir / 'metrics.jsonl'
  _wait_for(lambda: jsonl.is_file() and jsonl.read_text().strip(), proc, 'first metrics')
  proc.send_signal(signal.SIGTERM)
  stderr = proc.communicate(timeout=300)[1]
  assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  match = re.search(r'SIGTERM received: saved a checkpoint at step (\d+)', stderr)
  assert match, stderr[-3000:]
  stopped = int(match.group(1))
  assert 2 <= stopped < 8, f'stopped at step {stopped}'
  assert _checkpoint_steps(workdir)[-1] == stopped
  assert not (workdir / 'writer.lock').exists(), 'the lock must be released on SIGTERM'

  # 2. Resume, then SIGKILL after the next periodic checkpoint: the lock stays behind.
  proc = subprocess.Popen(
    main_command(workdir, demo_tfds_dir, steps),
    env=env,
    cwd=ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  _wait_for(lambda: _checkpoint_steps(workdir)[-1] > stopped, proc, 'checkpoint after resume')
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert _checkpoint_steps(workdir)[-1] < steps, f'killed too late: {_checkpoint_steps(workdir)}'
  assert (workdir / 'writer.lock').exists()

  # 3. The same command again finishes the run, taking over the dead run's lock.
  resumed = subprocess.run(
    main_command(workdir, demo_tfds_dir, steps), env=env, cwd=ROOT, capture_output=True, text=True
  )
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert 'Resumed from step' in resumed.stderr
  assert 'Taking over the lock of a run that is gone' in resumed.stderr

  a, a_data = final_state(straight_run, demo_tfds_dir, steps)
  b, b_data = final_state(workdir, demo_tfds_dir, steps)
  assert int(a.step) == int(b.step) == steps
  assert a_data == b_data
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def _damage(step_dir: pathlib.Path, how: str) -> None:
  """Breaks a saved step the way real faults do."""
  arrays = [
    p for p in (step_dir / checkpoints.STATE).rglob('*') if p.is_file() and p.parent.name == 'd'
  ]
  if how == 'truncate_biggest_file':  # A copy cut short.
    biggest = max(arrays, key=lambda p: p.stat().st_size)
    with biggest.open('r+b') as f:
      f.truncate(biggest.stat().st_size // 2)
  elif how == 'empty_array_files':  # A disk that filled while the files were written.
    for path in arrays:
      path.open('wb').close()
  elif how == 'delete_an_item':  # A half-synced folder.
    shutil.rmtree(step_dir / checkpoints.DATA)
  else:
    raise ValueError(how)


@pytest.mark.parametrize('damage', ['truncate_biggest_file', 'empty_array_files', 'delete_an_item'])
def test_damaged_latest_checkpoint_is_skipped_and_moved_aside(
  damage, straight_run, demo_tfds_dir, tmp_path, caplog
):
  workdir = tmp_path / 'run'
  shutil.copytree(straight_run, workdir)
  latest = workdir / 'checkpoints' / '12'
  _damage(latest, damage)

  # Readers (sample, evaluate) read only the generator's arrays: they fall
  # back when those are damaged, with a warning, and leave the workdir as is.
  # (Which arrays a truncated file held is Orbax's choice, so that case is
  # checked for the trainer only.)
  if damage == 'empty_array_files':
    assert sampling.restore_sampler(workdir).step == 8
    assert 'Checkpoint step 12 in' in caplog.text and 'does not restore' in caplog.text
    # A broken step asked for by name is an error, not a silent fallback.
    with pytest.raises(checkpoints.CheckpointError, match='checkpoint step 12 in'):
      sampling.restore_sampler(workdir, step=12)
  elif damage == 'delete_an_item':
    assert sampling.restore_sampler(workdir).step == 12  # Its generator is intact.
  assert latest.is_dir()
  if damage == 'empty_array_files':
    return  # The trainer's side is the same as for a truncated file (below).

  # Training resumes from 8 and moves 12 aside, not deleting it (8 steps: no
  # step to run; redoing steps after a resume is exact, see the test above).
  caplog.clear()
  state = train.train_and_evaluate(small_config(demo_tfds_dir, 8), str(workdir))
  assert 'Moved damaged checkpoint step 12' in caplog.text
  assert _checkpoint_steps(workdir) == [4, 8]
  moved = workdir / 'checkpoints_damaged' / '12'
  assert (moved / checkpoints.STATE).is_dir() and (moved / checkpoints.META).is_dir()
  reference, _, _ = checkpoints.restore(checkpoints.create_managers(straight_run, 3)[0], state, 8)
  assert int(state.step) == 8
  for x, y in zip(jax.tree.leaves(reference), jax.tree.leaves(state)):
    np.testing.assert_array_equal(x, y)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(
  straight_run, demo_tfds_dir, tmp_path
):
  # The straight run cut back to its step-4 checkpoint, resumed with a
  # learning rate that overflows at once.
  workdir = tmp_path / 'run'
  shutil.copytree(straight_run, workdir)
  for step in ('8', '12'):
    shutil.rmtree(workdir / 'checkpoints' / step)
  good, _ = final_state(workdir, demo_tfds_dir, 4)
  config = small_config(demo_tfds_dir, 8)
  config.g_optimizer.learning_rate = 1e38
  with pytest.raises(train.NonFiniteError, match='Last good checkpoint: step 4'):
    train.train_and_evaluate(config, str(workdir))
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['4']
  restored, _ = final_state(workdir, demo_tfds_dir, 4)
  assert int(restored.step) == 4
  for x, y in zip(jax.tree.leaves(good), jax.tree.leaves(restored)):
    np.testing.assert_array_equal(x, y)


def test_time_budget_ends_the_run_at_a_log_step_and_survives_a_rerun(demo_tfds_dir, tmp_path):
  workdir = tmp_path / 'run'
  config = small_config(demo_tfds_dir, 10_000)
  config.max_train_minutes = 1e-4  # Spent by the first log step (compile alone is longer).
  state = train.train_and_evaluate(config, str(workdir))
  assert int(state.step) == config.log_every_steps
  assert checkpoints.available_steps(workdir) == [config.log_every_steps]
  assert (workdir / 'samples' / f'step_{config.log_every_steps:06d}.png').is_file()
  # Rerunning finds the budget spent (from metrics.jsonl) and trains nothing more.
  again = train.train_and_evaluate(config, str(workdir))
  assert int(again.step) == config.log_every_steps
  assert checkpoints.available_steps(workdir) == [config.log_every_steps]
