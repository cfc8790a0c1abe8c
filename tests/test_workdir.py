"""The workdir at start: one writer at a time, and unwritable folders refused at once.

Each training here points at a data_dir that does not exist: failing with the
workdir's error rather than "dataset not built" shows the check runs first.
Preemption and damaged checkpoints are tested in test_train_e2e.py.
"""

import ctypes
import json
import logging
import os
import pathlib
import socket
import subprocess
import sys

import pytest
import test_train_e2e as e2e

from cxrgan_jax import train
from cxrgan_jax import workdir as workdir_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
NO_DATA = '/nonexistent/tfds'


def _main(workdir, **popen_kwargs) -> subprocess.CompletedProcess:
  return subprocess.run(
    e2e.main_command(workdir, NO_DATA, 4),
    env=e2e.subprocess_env(),
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    **popen_kwargs,
  )


def _dead_pid() -> int:
  """The pid of a process of ours that has exited (and been reaped)."""
  proc = subprocess.run(
    [sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True
  )
  return int(proc.stdout)


def _write_lock(workdir: pathlib.Path, **holder) -> None:
  workdir.mkdir(parents=True, exist_ok=True)
  info = {'host': socket.gethostname(), 'start_time': '2026-01-01T00:00:00+00:00', **holder}
  (workdir / workdir_lib.LOCK_NAME).write_text(json.dumps(info))


def test_second_writer_fails_naming_the_holder(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  # This test process is the first writer; main.py in a subprocess the second.
  with workdir_lib.Lock(workdir) as lock:
    held = json.loads((workdir / workdir_lib.LOCK_NAME).read_text())
    assert held['pid'] == os.getpid() and held['host'] == socket.gethostname()
    second = _main(workdir)
    assert second.returncode == 1, second.stderr[-3000:]
    assert 'is in use by another run' in second.stderr
    assert f'host {socket.gethostname()}, pid {os.getpid()}, started {lock.info["start_time"]}' in (
      second.stderr
    )
    assert 'Traceback' not in second.stderr
    # The loser must not have touched the holder's lock.
    assert json.loads((workdir / workdir_lib.LOCK_NAME).read_text()) == held
  assert not (workdir / workdir_lib.LOCK_NAME).exists(), 'released on exit'


def test_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
  workdir = tmp_path / 'run'
  dead = _dead_pid()
  _write_lock(workdir, pid=dead)
  caplog.set_level(logging.WARNING)
  with workdir_lib.Lock(workdir):
    assert json.loads((workdir / workdir_lib.LOCK_NAME).read_text())['pid'] == os.getpid()
  assert f'Taking over the lock of a run that is gone: host {socket.gethostname()}, pid {dead}' in (
    caplog.text
  )
  assert list(workdir.iterdir()) == []


def test_reused_pid_counts_as_gone_but_a_live_holder_does_not(tmp_path):
  workdir = tmp_path / 'run'
  # Our parent is alive, but it is not the process that wrote this lock: a
  # restarted container hands the same pids out again.
  _write_lock(workdir, pid=os.getppid(), start_ticks=1)
  with workdir_lib.Lock(workdir):
    pass
  # The same pid with its real start time is a live holder.
  ticks = int(pathlib.Path(f'/proc/{os.getppid()}/stat').read_text().rsplit(')', 1)[1].split()[19])
  _write_lock(workdir, pid=os.getppid(), start_ticks=ticks)
  with pytest.raises(workdir_lib.WorkdirError, match=f'pid {os.getppid()}'):
    workdir_lib.Lock(workdir).acquire()


def test_lock_of_another_host_is_never_taken_over(tmp_path):
  workdir = tmp_path / 'run'
  _write_lock(workdir, host='node-17', pid=_dead_pid())
  with pytest.raises(workdir_lib.WorkdirError, match='host node-17'):
    workdir_lib.Lock(workdir).acquire()
  # Processes other than 0 of a multi-host run do not take the lock at all.
  with workdir_lib.Lock(workdir, enabled=False):
    pass
  assert json.loads((workdir / workdir_lib.LOCK_NAME).read_text())['host'] == 'node-17'


def test_workdir_whose_parent_is_a_file_fails_at_start(tmp_path):
  (tmp_path / 'file').write_text('not a folder')
  workdir = tmp_path / 'file' / 'run'
  with pytest.raises(workdir_lib.WorkdirError, match='cannot create the workdir .*ENOTDIR'):
    train.train_and_evaluate(e2e.small_config(NO_DATA, 4), str(workdir))


def _drop_root_file_override() -> None:
  """In the child before exec: root loses the capabilities that ignore file modes.

  PR_CAPBSET_DROP of CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER: the
  exec'd process is still uid 0, so it reads root's files (the venv may live
  under /root), but a mode-0555 folder now stops it as it stops any user.
  """
  libc = ctypes.CDLL(None, use_errno=True)
  for capability in (1, 2, 3):
    if libc.prctl(24, capability, 0, 0, 0) != 0:
      raise OSError(ctypes.get_errno(), 'prctl(PR_CAPBSET_DROP)')


def test_read_only_workdir_fails_at_start(tmp_path):
  """A real EACCES from the kernel on a mode-0555 workdir, through main.py."""
  workdir = tmp_path / 'run'
  workdir.mkdir()
  workdir.chmod(0o555)
  try:
    root = {'preexec_fn': _drop_root_file_override} if os.geteuid() == 0 else {}
    run = _main(workdir, **root)
    assert run.returncode == 1, run.stderr[-3000:]
    assert f'main.py: the workdir {workdir} is not writable' in run.stderr
    assert 'EACCES' in run.stderr and 'Traceback' not in run.stderr
    assert list(workdir.iterdir()) == []
  finally:
    workdir.chmod(0o755)


def _can_mount_tmpfs() -> list[str] | None:
  """The unshare command that lets this process mount a tmpfs, if there is one."""
  for cmd in (['unshare', '--mount'], ['unshare', '--user', '--map-root-user', '--mount']):
    probe = 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; s=$?; rmdir "$d"; exit $s'
    try:
      if subprocess.run([*cmd, 'sh', '-c', probe], capture_output=True).returncode == 0:
        return cmd
    except FileNotFoundError:
      return None
  return None


def test_read_only_and_full_filesystems_fail_clearly(tmp_path):
  """Real EROFS and ENOSPC: tmpfs mounts in a private mount namespace."""
  unshare = _can_mount_tmpfs()
  if unshare is None:
    pytest.skip('needs `unshare` with permission to mount a tmpfs (mount namespaces)')
  ro, full = tmp_path / 'ro', tmp_path / 'full'
  ro.mkdir()
  full.mkdir()
  check = f"""
import pathlib
from cxrgan_jax import workdir as w

def fill(path):
  with open(path, 'wb', buffering=0) as f:
    try:
      while True:
        f.write(b'x' * 4096)
    except OSError:
      pass

run = pathlib.Path('{full}/run')
for call in (
  lambda: w.check_writable(pathlib.Path('{ro}/run')),
  lambda: (w.check_writable(run), w.check_free_space(run, 2**20, 3)),
  lambda: (fill('{full}/filler'), w.check_writable(run)),
):
  try:
    call()
    print('no error')
  except w.WorkdirError as e:
    print(type(e).__name__, e)
"""
  script = (
    f'mount -t tmpfs -o size=1m tmpfs {ro} && mkdir {ro}/run && mount -o remount,ro {ro} && '
    f'mount -t tmpfs -o size=512k tmpfs {full} && exec {sys.executable} -c "$0"'
  )
  run = subprocess.run(
    [*unshare, 'sh', '-c', script, check], cwd=ROOT, capture_output=True, text=True, timeout=60
  )
  lines = run.stdout.splitlines()
  assert run.returncode == 0 and len(lines) == 3, run.stdout + run.stderr
  assert (
    lines[0].startswith(f'WorkdirError the workdir {ro}/run is not writable')
    and 'EROFS' in (lines[0])
  )
  assert lines[1].startswith(f'WorkdirError the workdir {full}/run has') and (
    'less than one checkpoint (1.0 MiB)' in lines[1]
  )
  assert (
    lines[2].startswith(f'WorkdirError the workdir {full}/run is full') and 'ENOSPC' in (lines[2])
  )
