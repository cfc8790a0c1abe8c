"""A run's workdir: checked writable at start, and held by one writer at a time.

Both checks run before anything is compiled or read, so a bad --workdir fails
in seconds with the reason, not at the first checkpoint an hour later, and a
second run on the same workdir cannot interleave its checkpoints and metrics
with the first one's.
"""

import datetime
import errno
import json
import os
import pathlib
import shutil
import socket
import sys

from absl import logging

LOCK_NAME = 'writer.lock'


class WorkdirError(RuntimeError):
  """The workdir cannot be used: not writable, full, or held by another run."""


def check_writable(workdir: pathlib.Path) -> None:
  """Creates `workdir` if needed and writes, syncs and deletes a probe file in it.

  A real write, not `os.access`: access() says yes to root on a read-only
  directory and knows nothing of full disks or read-only mounts.
  """
  hint = 'choose another --workdir, or fix the permissions/mount'
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise WorkdirError(
      f'cannot create the workdir {workdir}: {e.strerror or e} ({_errno_name(e)}); {hint}'
    ) from e
  if not workdir.is_dir():
    raise WorkdirError(f'the workdir {workdir} exists and is not a directory; {hint}')
  probe = workdir / f'.write_probe.{socket.gethostname()}.{os.getpid()}'
  try:
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
      os.write(fd, b'\0' * 4096)
      os.fsync(fd)
    finally:
      os.close(fd)
      probe.unlink()
  except OSError as e:
    what = 'is full' if e.errno in (errno.ENOSPC, errno.EDQUOT) else 'is not writable'
    raise WorkdirError(
      f'the workdir {workdir} {what}: writing a test file failed with '
      f'{e.strerror or e} ({_errno_name(e)}); {hint}'
    ) from e


def check_free_space(workdir: pathlib.Path, checkpoint_bytes: int, keep: int) -> None:
  """Fails if not even one checkpoint fits; warns if `keep` of them do not."""
  free = shutil.disk_usage(workdir).free
  if free < checkpoint_bytes:
    raise WorkdirError(
      f'the workdir {workdir} has {_mib(free)} free, less than one checkpoint '
      f'({_mib(checkpoint_bytes)}); free some space or choose another --workdir'
    )
  if free < checkpoint_bytes * (keep + 1):
    logging.warning(
      'The workdir %s has %s free; %d checkpoints of %s (config.keep_checkpoints, plus the '
      'one being written) may not fit.',
      workdir,
      _mib(free),
      keep + 1,
      _mib(checkpoint_bytes),
    )


def _mib(n: int) -> str:
  return f'{n / 2**20:.1f} MiB'


def _errno_name(e: OSError) -> str:
  return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__


def _process_start_ticks(pid: int) -> int | None:
  """Start time of `pid` in clock ticks since boot (Linux), to tell reused pids apart."""
  try:
    stat = pathlib.Path(f'/proc/{pid}/stat').read_text()
  except OSError:
    return None
  # Field 22; the command name (field 2) may hold spaces, so split after ')'.
  return int(stat.rsplit(')', 1)[1].split()[19])


def _alive(holder: dict) -> bool:
  """Whether the holder process (on this host) still runs.

  A pid that now belongs to a process started at another time (a restarted
  container gives its first processes the same pids again) counts as gone.
  """
  pid = holder.get('pid')
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # Exists, owned by another user.
  ticks = holder.get('start_ticks')
  return ticks is None or _process_start_ticks(pid) in (None, ticks)


class Lock:
  """`WORKDIR/writer.lock`: JSON {host, pid, start_time, start_ticks, argv} of the writer.

  Taken by creating the file exclusively: the JSON is written to a temporary
  file that is then hard-linked to the lock name. link() fails if the name
  exists, like open(O_CREAT|O_EXCL), and a reader never sees a half-written
  lock. A lock whose holder process is gone (same host) is taken over with a
  warning; one held from another host can only be judged by a person.
  Released (deleted) on exit if it is still ours. `enabled=False` (processes
  other than 0 of a multi-host run) makes it a no-op.
  """

  def __init__(self, workdir: pathlib.Path, enabled: bool = True):
    self.path = workdir / LOCK_NAME
    self.enabled = enabled
    self.info = {
      'host': socket.gethostname(),
      'pid': os.getpid(),
      'start_time': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'start_ticks': _process_start_ticks(os.getpid()),
      'argv': list(sys.argv),
    }
    self._held = False

  def __enter__(self) -> 'Lock':
    if self.enabled:
      self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()

  def acquire(self) -> None:
    for _ in range(3):
      if self._try_create():
        self._held = True
        return
      holder = self._read(self.path)
      if holder is None:
        continue  # Released between our two calls; try again.
      if holder.get('host') != self.info['host'] or _alive(holder):
        raise WorkdirError(
          f'the workdir {self.path.parent} is in use by another run: {_describe(holder)}. '
          'Two runs writing one workdir would mix their checkpoints and metrics. Wait '
          f'for it, use another --workdir, or, if that run is surely dead, delete {self.path}'
        )
      self._take_over(holder)
    raise WorkdirError(f'could not take {self.path}: other processes keep taking it')

  def release(self) -> None:
    if self._held and self._read(self.path) == self.info:
      self.path.unlink(missing_ok=True)
    self._held = False

  def _try_create(self) -> bool:
    tmp = self.path.with_name(f'.{LOCK_NAME}.{self.info["host"]}.{self.info["pid"]}')
    tmp.write_text(json.dumps(self.info))
    try:
      os.link(tmp, self.path)
      return True
    except FileExistsError:
      return False
    finally:
      tmp.unlink(missing_ok=True)

  def _take_over(self, stale: dict) -> None:
    """Moves the stale lock away; if someone else replaced it meanwhile, puts theirs back."""
    aside = self.path.with_name(f'.{LOCK_NAME}.stale.{self.info["pid"]}')
    try:
      os.rename(self.path, aside)  # Atomic: of several racers, one moves a given file.
    except FileNotFoundError:
      return
    moved = self._read(aside)
    if moved != stale:
      try:
        os.link(aside, self.path)
      except FileExistsError:
        pass
    else:
      logging.warning(
        'Taking over the lock of a run that is gone: %s (%s).', _describe(stale), self.path
      )
    aside.unlink(missing_ok=True)

  @staticmethod
  def _read(path: pathlib.Path) -> dict | None:
    try:
      return json.loads(path.read_text())
    except FileNotFoundError:
      return None
    except (OSError, ValueError):
      return {'host': '?', 'pid': None, 'start_time': '?', 'unreadable': str(path)}


def _describe(holder: dict) -> str:
  return (
    f'host {holder.get("host")}, pid {holder.get("pid")}, started {holder.get("start_time")}'
    + (f', command {" ".join(holder["argv"])}' if holder.get('argv') else '')
  )
