"""Two real processes on localhost train one model (jax.distributed, gloo CPU collectives).

Then `sample` and `evaluate` started as two processes of a job write one
folder (process 0's), not two racing ones.

Each process has one CPU device and runs tests/multihost_worker.py, which joins
the run as main.py does and trains the tiny DCGAN below with two D updates
per step, augmentation and instance noise: every path of the step that
draws example-keyed randomness or averages over devices. One two-process run,
SIGKILLed after its first checkpoint and resumed, is shared: that it equals
one process with as many devices trained straight through proves the resume
and the multi-process step at once. A persistent compilation cache lets
process 0 of the later launches skip compiling (jax writes it from process 0
only, so process 1 still compiles, alone on the cores): ~3.3 -> ~2 min a
launch, measured.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import multihost_worker
import numpy as np
from PIL import Image
import pytest

from cxrgan_jax import checkpoints
from cxrgan_jax import sampling
from cxrgan_jax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / 'tests' / 'multihost_worker.py'
STEPS = 6
TIMEOUT_S = 900  # Per run; two compiles on 2 shared cores.
pytestmark = pytest.mark.slow


def overrides(data_dir) -> dict:
  return {
    'data_dir': str(data_dir),
    'num_train_steps': STEPS,
    'batch_size': 8,
    'latent_dim': 16,
    'g_channels': 32,
    'd_channels': 32,
    'd_steps': 2,
    'instance_noise.std': 0.1,
    'log_every_steps': 2,
    'sample_every_steps': STEPS,
    'checkpoint_every_steps': 2,
    'num_sample_images': 16,
    # best/ and checkpoints/ then save steps 4 and 6 at once (Orbax's
    # cross-process barriers of the two must not collide).
    'eval_every_steps': 4,
    'eval.num_samples': 16,
  }


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def start_two_processes(workdir, out_dir, data_dir, cache_dir) -> list[subprocess.Popen]:
  """Both processes of one run, as launch.sh would start them on one machine."""
  args = [sys.executable, str(WORKER), str(workdir), str(out_dir)]
  return start_two(args + [json.dumps(overrides(data_dir))], out_dir, cache_dir)


def start_two(args: list[str], out_dir, cache_dir) -> list[subprocess.Popen]:
  """Two processes of `args` joined by launch.sh's variables; logs in out_dir."""
  out_dir.mkdir(parents=True, exist_ok=True)
  env = dict(
    os.environ,
    PYTHONPATH=str(ROOT),
    XLA_FLAGS='--xla_force_host_platform_device_count=1',
    JAX_PLATFORMS='cpu',
    JAX_COMPILATION_CACHE_DIR=str(cache_dir),
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
    CXRGAN_COORDINATOR=f'localhost:{free_port()}',
    CXRGAN_NUM_PROCESSES='2',
  )
  procs = []
  for i in range(2):
    with (out_dir / f'process_{i}.log').open('w') as log:
      procs.append(
        subprocess.Popen(
          args,
          env=dict(env, CXRGAN_PROCESS_ID=str(i)),
          cwd=ROOT,
          stdout=log,
          stderr=subprocess.STDOUT,
        )
      )
  return procs


def wait_for(procs, out_dir) -> None:
  try:
    for p in procs:
      p.wait(timeout=TIMEOUT_S)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for i, p in enumerate(procs):
    log = (out_dir / f'process_{i}.log').read_text()
    assert p.returncode == 0, f'process {i} exited {p.returncode}:\n{log[-4000:]}'


def held_state(out_dir, process: int) -> dict[str, np.ndarray]:
  with np.load(out_dir / f'process_{process}.npz') as f:
    return dict(f)


def saved_checkpoint(workdir, data_dir):
  *_, template = train.build(multihost_worker.config_from(overrides(data_dir)))
  latest, _ = checkpoints.create_managers(workdir, keep=3)
  state, data_state, _ = checkpoints.restore(latest, template)
  return multihost_worker.state_leaves(state), data_state


@pytest.fixture(scope='module')
def two_process_run(demo_tfds_dir, tmp_path_factory):
  """(workdir, out_dir, compilation cache) of a two-process run SIGKILLed after its
  first checkpoint and finished by the same command: every test below sees a
  resumed run, so a resume that lost or replayed anything fails them all."""
  root = tmp_path_factory.mktemp('two_processes')
  workdir, out_dir, cache = root / 'run', root / 'out', root / 'jax_cache'
  procs = start_two_processes(workdir, out_dir, demo_tfds_dir, cache)
  deadline = time.time() + TIMEOUT_S
  try:
    while not (workdir / 'checkpoints' / '2').is_dir():
      assert all(p.poll() is None for p in procs), 'a process ended before the first checkpoint'
      assert time.time() < deadline, f'no checkpoint within {TIMEOUT_S} s'
      time.sleep(0.05)
  finally:
    for p in procs:
      p.send_signal(signal.SIGKILL)
    for p in procs:
      p.wait()
  saved = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  assert saved and saved[-1] < STEPS, f'killed too late: {saved}'
  wait_for(start_two_processes(workdir, out_dir, demo_tfds_dir, cache), out_dir)
  for i in range(2):
    assert 'Resumed from step' in (out_dir / f'process_{i}.log').read_text()
  return workdir, out_dir, cache


def test_two_processes_train_one_model_and_write_one_run(two_process_run, demo_tfds_dir):
  workdir, out_dir, _ = two_process_run
  first, second = held_state(out_dir, 0), held_state(out_dir, 1)
  assert int(first['.step']) == STEPS
  assert sorted(first) == sorted(second)
  for name in first:
    np.testing.assert_array_equal(first[name], second[name], err_msg=name)
  # One checkpoint of that model, readable by a single process.
  saved, _ = saved_checkpoint(workdir, demo_tfds_dir)
  assert sorted(saved) == sorted(first)
  for name in first:
    np.testing.assert_array_equal(saved[name], first[name], err_msg=name)
  # Process 0 alone writes the run's logs and grids.
  lines = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [line['step'] for line in lines if 'd_loss' in line] == [2, 4, 6]
  assert [line['step'] for line in lines if 'eval/fd_pixels' in line] == [4, 6]
  assert len([p for p in (workdir / 'best').iterdir() if p.name.isdigit()]) == 1
  assert [p.name for p in (workdir / 'samples').iterdir()] == ['step_000006.png']
  assert len(list(workdir.glob('events.out.tfevents.*'))) == 2  # One per launch, process 0's.


def test_two_processes_equal_one_process_with_as_many_devices(
  two_process_run, demo_tfds_dir, tmp_path
):
  _, out_dir, _ = two_process_run
  assert jax.process_count() == 1 and jax.local_device_count() == 2  # conftest
  config = multihost_worker.config_from(overrides(demo_tfds_dir))
  *_, init = train.build(config)
  one = multihost_worker.state_leaves(train.train_and_evaluate(config, str(tmp_path / 'run')))
  two = held_state(out_dir, 0)
  init = multihost_worker.state_leaves(init)
  assert sorted(one) == sorted(two) == sorted(init)
  # The tolerance of tests/test_train.py's 1-vs-2-device test: updates agree
  # to 1e-4 of their largest size (float32 sums in another order). Measured:
  # bit-identical here, a two-term sum is the same in any order.
  for group in ('.g_params', '.d_params', '.ema_params', '.g_state', '.d_state'):
    names = [n for n in init if n.startswith(group)]
    scale = max(float(np.max(np.abs(one[n] - init[n]))) for n in names)
    assert scale > 0, group
    for n in names:
      np.testing.assert_allclose(
        two[n] - init[n], one[n] - init[n], rtol=0, atol=1e-4 * scale, err_msg=n
      )
  for n in ('.step', '.augment_p', '.ada_sum', '.ada_count'):
    np.testing.assert_array_equal(two[n], one[n], err_msg=n)


def test_sample_under_two_processes_writes_one_folder(two_process_run, tmp_path):
  workdir, _, cache = two_process_run
  out = tmp_path / 'synthetic'
  args = [sys.executable, '-m', 'cxrgan_jax.sample', f'--workdir={workdir}']
  args += [f'--output_dir={out}', '--num_images=10', '--seed=3', '--batch_size=4']
  wait_for(start_two(args, tmp_path / 'logs', cache), tmp_path / 'logs')
  assert 'process 0 writes' in (tmp_path / 'logs' / 'process_1.log').read_text()
  assert sorted(p.name for p in tmp_path.iterdir()) == ['logs', 'synthetic']  # No temp left.
  pngs = sorted((out / 'NORMAL').glob('*.png'))
  assert len(pngs) == 10 and (out / 'grid.png').is_file()
  manifest = json.loads((out / 'manifest.json').read_text())
  assert manifest['num_images'] == 10 and manifest['step'] == STEPS
  expected = sampling.generate(workdir, 10, seed=3, batch_size=4)
  written = np.stack([np.asarray(Image.open(p)) for p in pngs])
  np.testing.assert_array_equal(written, expected[..., 0])


def test_evaluate_under_two_processes_writes_one_report(two_process_run, demo_tfds_dir, tmp_path):
  workdir, _, cache = two_process_run
  out = tmp_path / 'eval'
  args = [sys.executable, '-m', 'cxrgan_jax.evaluate', f'--workdir={workdir}']
  args += [f'--output_dir={out}', '--num_samples=16', '--features=pixels', '--pixel_size=16']
  args += [f'--data_dir={demo_tfds_dir}', '--split=test', '--cache_dir=']
  args += ['--ms_ssim_pairs=20', '--num_permutations=50']
  wait_for(start_two(args, tmp_path / 'logs', cache), tmp_path / 'logs')
  assert 'process 0 writes' in (tmp_path / 'logs' / 'process_1.log').read_text()
  metrics = json.loads((out / 'metrics.json').read_text())
  assert metrics['num_fake'] == 16 and np.isfinite(metrics['fd_pixels'])
  info = json.loads((out / 'evaluation_info.json').read_text())
  assert f'step {STEPS}' in info['fake_source']
  assert (out / 'report.md').is_file()
