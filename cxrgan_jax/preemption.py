"""SIGTERM/SIGINT -> finish the step, save it, exit; the same command resumes.

Clusters and spot VMs announce preemption with SIGTERM (SLURM also sends it at
the end of a job's time limit), users stop a run with Ctrl-C (SIGINT). Instead
of dying mid-step, the loop asks `Watcher.should_stop(step)` after every step;
when it says yes, the loop saves a checkpoint at that step, flushes its
writers and raises `Preempted`. `main.py` turns that into exit status
128 + signal number (143 for SIGTERM, 130 for SIGINT): what a shell or SLURM
reports for a process ended by that signal, so a requeue loop such as
`until ./launch.sh ...; do :; done` or `sbatch --requeue` reruns it, and
nothing mistakes a stopped run for a finished one.

One process: Python handlers set a flag. A second signal restores the default
handler and re-delivers, so a second Ctrl-C stops at once without saving.

Several processes (after `jax.distributed.initialize`): every process must
save the same step. JAX's preemption service catches SIGTERM on any process,
tells all of them, and `multihost_utils.reached_preemption_sync_point(step)`
becomes true on every process at the same step (the largest step any process
had reached, plus one). Python must not replace that SIGTERM handler, so here
only SIGINT gets one, which forwards the signal as SIGTERM to the own process.
"""

import os
import signal
import threading

from absl import logging
import jax
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(RuntimeError):
  """The run stopped on a signal after saving a checkpoint at `step`."""

  def __init__(self, step: int, signum: int, checkpoint_dir: str):
    self.step, self.signum = step, signum
    self.exit_code = 128 + signum
    super().__init__(
      f'{signal.Signals(signum).name} received: saved a checkpoint at step {step} in '
      f'{checkpoint_dir} and stopped (exit status {self.exit_code}). Rerun the same '
      'command to resume.'
    )


class Watcher:
  """Context manager that turns SIGTERM/SIGINT into `should_stop(step) == True`.

  Handlers are installed on enter and the previous ones restored on exit, so a
  library caller (a test, the study runner) gets its own handlers back.
  """

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, object] = {}
    self._multiprocess = jax.process_count() > 1
    self._sync_point = self._multiprocess

  def __enter__(self) -> 'Watcher':
    if threading.current_thread() is not threading.main_thread():
      logging.warning(
        'Training outside the main thread: SIGTERM/SIGINT will not save a checkpoint.'
      )
      return self
    wanted = (signal.SIGINT,) if self._multiprocess else SIGNALS
    for signum in wanted:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def _handle(self, signum, frame) -> None:
    del frame
    if self._multiprocess:
      # JAX's handler (C++) tells every process; see the module docstring.
      self.signum = signal.SIGINT
      os.kill(os.getpid(), signal.SIGTERM)
      return
    if self.signum is not None:  # Second signal: give up saving, stop now.
      signal.signal(signum, signal.SIG_DFL)
      os.kill(os.getpid(), signum)
      return
    self.signum = signum
    logging.warning(
      '%s received: finishing this step, then saving a checkpoint and stopping '
      '(send it again to stop at once without saving).',
      signal.Signals(signum).name,
    )

  def should_stop(self, step: int) -> bool:
    """True once a signal came (one process) or all processes reached the sync step.

    Multi-process runs must call this at every step, on every process, with
    the same step numbers: the sync protocol counts on it.
    """
    if not self._sync_point:
      return self.signum is not None
    try:
      reached = multihost_utils.reached_preemption_sync_point(step)
    except RuntimeError as e:  # jax_enable_preemption_service=False.
      logging.warning('No preemption sync across processes (%s); SIGTERM will not save.', e)
      self._sync_point = False
      return False
    if reached and self.signum is None:
      self.signum = signal.SIGTERM
    return reached
