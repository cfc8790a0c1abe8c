"""preemption.Watcher in real processes: one process, and two that must agree.

The training loop's use of it (save at the step, exit 143, resume bit for
bit) is tested in test_train_e2e.py.
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A stand-in training loop: one "step" every 20 ms, asking the watcher each time.
LOOP = """
import sys, time
import jax
num_processes, process_id, port = (int(a) for a in sys.argv[1:4])
if num_processes > 1:
  jax.distributed.initialize(f'localhost:{port}', num_processes, process_id)
from cxrgan_jax import preemption
with preemption.Watcher() as watcher:
  for step in range(1, 20_000):
    time.sleep(0.02)
    if step == 10:
      print('ready', flush=True)
    if watcher.should_stop(step):
      print('stop', step, watcher.signum, flush=True)
      break
"""


def _start(num_processes: int, process_id: int, port: int) -> subprocess.Popen:
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=str(ROOT))
  env.pop('XLA_FLAGS', None)
  return subprocess.Popen(
    [sys.executable, '-c', LOOP, str(num_processes), str(process_id), str(port)],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _wait_ready(proc: subprocess.Popen) -> None:
  line = proc.stdout.readline()
  assert line == 'ready\n', line + proc.stderr.read()[-3000:]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_one_process_stops_on_the_first_signal_and_dies_on_the_second():
  proc = _start(1, 0, 0)
  _wait_ready(proc)
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 0, err[-3000:]
  assert out.startswith('stop ') and out.split()[2] == str(int(signal.SIGINT)), out

  # The loop below never asks the watcher: a second SIGTERM must still end it.
  # Short sleeps, like a training loop's steps: the kernel may hand the signal
  # to any of JAX's threads, and Python runs its handler on the main thread
  # between bytecodes, so one long sleep would not see it for 120 s.
  proc = subprocess.Popen(
    [
      sys.executable,
      '-c',
      'import time\nfrom cxrgan_jax import preemption\n'
      'with preemption.Watcher():\n  print("ready", flush=True)\n'
      '  for _ in range(1200):\n    time.sleep(0.1)',
    ],
    cwd=ROOT,
    env=dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=str(ROOT)),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  _wait_ready(proc)
  proc.send_signal(signal.SIGTERM)
  time.sleep(0.5)
  assert proc.poll() is None, 'the first SIGTERM must only ask for a stop'
  proc.send_signal(signal.SIGTERM)
  proc.communicate(timeout=60)
  assert proc.returncode == -signal.SIGTERM


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_two_processes_stop_at_the_same_step(sig):
  """A signal to one process stops both at one step (JAX's preemption sync point)."""
  port = _free_port()
  procs = [_start(2, i, port) for i in range(2)]
  try:
    for proc in procs:
      _wait_ready(proc)
    procs[1].send_signal(sig)
    outs = [proc.communicate(timeout=120) for proc in procs]
  finally:
    for proc in procs:
      proc.kill()
  for proc, (out, err) in zip(procs, outs):
    assert proc.returncode == 0 and out.startswith('stop '), out + err[-3000:]
  steps = [out.split()[1] for out, _ in outs]
  assert steps[0] == steps[1], steps
