"""The training loop: feeds batches to the pmapped step, logs, samples, saves.

Everything that changes lives in `TrainState`; this file only moves data
between the input pipeline, the step function, Orbax and the metric writers.
"""

import json
import pathlib
import time

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from cxrgan_jax import checkpoints
from cxrgan_jax import config_checks
from cxrgan_jax import files
from cxrgan_jax import images as image_utils
from cxrgan_jax import input_pipeline
from cxrgan_jax import parallel
from cxrgan_jax import preemption
from cxrgan_jax import run_log
from cxrgan_jax import sampling
from cxrgan_jax import state as state_lib
from cxrgan_jax import steps
from cxrgan_jax import workdir as workdir_lib


class TimeBudget:
  """`config.max_train_minutes` of training over all (re)starts of a run; 0 = none.

  Time already spent is read from metrics.jsonl (run_log), so a resumed run
  gets only what is left. Checked at log steps; on several hosts process 0's
  clock decides for all, so every process stops at the same step.
  """

  def __init__(self, minutes: float, workdir: pathlib.Path, every: int):
    self._limit = 60.0 * minutes
    self._every = every
    self.spent_before = float(run_log.training_seconds(workdir)[1][-1]) if self._limit else 0.0
    self._start = time.time()

  @property
  def exhausted(self) -> bool:
    return bool(self._limit) and self.spent_before >= self._limit

  def seconds_left(self) -> float:
    """Training seconds this budget still allows (inf without one)."""
    if not self._limit:
      return float('inf')
    return max(self._limit - self.spent_before - (time.time() - self._start), 0.0)

  def reached(self, step: int) -> bool:
    if not self._limit or step % self._every:
      return False
    done = np.asarray(self.seconds_left() <= 0.0)
    if jax.process_count() > 1:
      done = multihost_utils.broadcast_one_to_all(done)
    return bool(done)


class NonFiniteError(FloatingPointError):
  """A loss or gradient became NaN/Inf; the bad state was never saved."""


def build(config: ml_collections.ConfigDict):
  """state.build with BatchNorm synced over the step's pmap axis."""
  return state_lib.build(config, axis_name=parallel.AXIS)


def fixed_latents(config: ml_collections.ConfigDict) -> jax.Array:
  """The latent batch of every sample grid of a run: same seed, same faces."""
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5A)
  return jax.random.normal(key, (config.num_sample_images, config.latent_dim))


def stack_d_batches(batches: list[dict]) -> dict:
  """d_steps batches of [devices, B, ...] -> [devices, d_steps, B, ...]."""
  return {'image': np.stack([b['image'] for b in batches], axis=1)}


def _config_differences(old: dict, new: dict, prefix: str = '') -> list[str]:
  diffs = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key), new.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      diffs += _config_differences(a, b, f'{prefix}{key}.')
    elif a != b:
      diffs.append(f'{prefix}{key}: {a!r} -> {b!r}')
  return diffs


def _truncate_jsonl(path: pathlib.Path, last_step: int) -> None:
  """Drops lines logged after the checkpoint we resume from (they will be redone)."""
  if not path.exists():
    return
  kept = [
    line
    for line in path.read_text().splitlines()
    if line.strip() and json.loads(line)['step'] <= last_step
  ]
  files.write_text(path, ''.join(line + '\n' for line in kept))


class SampleGrids:
  """Writes the fixed-latent EMA grid to TensorBoard and samples/step_000123.png.

  Called by process 0 only: the grid is the same on every process.
  """

  def __init__(self, config, generator, workdir: pathlib.Path, writer):
    self._z = fixed_latents(config)
    self._sampler = sampling.Sampler(config, generator, None, None, 0)
    self._dir = workdir / 'samples'
    self._writer = writer

  def __call__(self, step: int, state: state_lib.TrainState) -> pathlib.Path:
    self._sampler.set_weights(state.ema_params, state.g_state)
    fakes = self._sampler.images_from(np.asarray(self._z), batch_size=len(self._z))
    grid = image_utils.make_grid(fakes)
    path = self._dir / f'step_{step:06d}.png'
    image_utils.write_png(path, grid)
    self._writer.write_images(step, {'samples': grid[None, ..., None]})
    return path


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> state_lib.TrainState:
  """Trains (or resumes) a run in `workdir`; returns the final unreplicated state.

  Raises:
    preemption.Preempted: SIGTERM/SIGINT arrived; the step reached was saved.
    workdir_lib.WorkdirError: the workdir is not writable, or another run holds it.
  """
  config_checks.check_config(config)
  workdir = pathlib.Path(workdir).absolute()
  workdir_lib.check_writable(workdir)
  # On several hosts only process 0 holds the lock: they are one run.
  with (
    workdir_lib.Lock(workdir, enabled=jax.process_index() == 0),
    preemption.Watcher() as preempt,
  ):
    return _train_and_evaluate(config, workdir, preempt)


def _train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: pathlib.Path, preempt: preemption.Watcher
) -> state_lib.TrainState:
  is_chief = jax.process_index() == 0
  # The step is pmapped over every device of every process (its pmeans span
  # them all); each process holds a replica on, and feeds, its local devices.
  devices = jax.local_devices()
  generator, discriminator, g_tx, d_tx, state = build(config)
  workdir_lib.check_free_space(
    workdir, sum(x.nbytes for x in jax.tree.leaves(state)), config.keep_checkpoints
  )
  data_iter = input_pipeline.create_train_iterator(config, seed=config.seed)
  latest_mngr, best_mngr = checkpoints.create_managers(workdir, config.keep_checkpoints)
  meta = {'config': config.to_dict()}
  state = _resume(latest_mngr, state, data_iter, meta['config'], workdir, is_chief)
  initial_step, num_steps = int(state.step), config.num_train_steps
  budget = TimeBudget(config.get('max_train_minutes', 0.0), workdir, config.log_every_steps)
  if budget.exhausted:  # Stopped by its time budget before; nothing is left to train.
    logging.info('Time budget already spent (%.0f s); nothing to train', budget.spent_before)
    num_steps = initial_step
  logs = _Logs(workdir, meta['config'], initial_step, is_chief)
  report = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=logs.writer)
  grids = SampleGrids(config, generator, workdir, logs.writer)
  evaluator = _make_evaluator(config, generator, workdir)
  step_fn_for = steps.make_pmapped_steps(config, generator, discriminator, g_tx, d_tx)
  rstate = parallel.replicate(state, devices)
  _log_start(config, initial_step, num_steps, len(devices))

  def host_state() -> state_lib.TrainState:
    return jax.device_get(parallel.unreplicate(rstate))

  def save(manager, **kwargs) -> None:
    checkpoints.save(manager, host_state(), data_iter.get_state(), meta, **kwargs)

  pending_finite = None  # Device scalar of the previous step, checked one step late.
  stopped_at = None  # The step a SIGTERM/SIGINT stopped the run at.
  for step in range(initial_step + 1, num_steps + 1):
    batch = stack_d_batches([next(data_iter) for _ in range(config.d_steps)])
    rstate, metrics = step_fn_for(step - 1)(rstate, batch)
    _check_finite(pending_finite, step - 1, latest_mngr)
    pending_finite = metrics['finite']
    report(step)
    is_last = step == num_steps or budget.reached(step)
    if _due(step, config.log_every_steps, is_last):
      _check_finite(pending_finite, step, latest_mngr)
      logs.train_step(
        step, num_steps, metrics, config.batch_size * config.d_steps, budget.seconds_left()
      )
    if is_chief and _due(step, config.sample_every_steps, is_last):
      grids(step, host_state())
    if (
      evaluator is not None
      and step >= config.get('eval_start_step', 0)
      and _due(step, config.eval_every_steps, is_last)
    ):
      eval_scalars = evaluator(step, host_state())
      logs.scalars(step, eval_scalars)
      save(best_mngr, metrics={'value': eval_scalars[evaluator.metric_name]})
    if _due(step, config.checkpoint_every_steps, is_last):
      save(latest_mngr)
      logs.writer.flush()
    # Called at every step on every process (the multi-host sync point needs it).
    preempted = preempt.should_stop(step)
    if is_last:  # The step budget, or the time budget before it.
      num_steps = step
      break
    if preempted:
      stopped_at = step
      if step % config.checkpoint_every_steps:
        _check_finite(pending_finite, step, latest_mngr)
        save(latest_mngr)
      break

  _check_finite(pending_finite, stopped_at or num_steps, latest_mngr)
  latest_mngr.wait_until_finished()
  best_mngr.wait_until_finished()
  logs.writer.close()
  if stopped_at is not None:
    raise preemption.Preempted(stopped_at, preempt.signum, str(latest_mngr.directory))
  return host_state()


def _make_evaluator(config: ml_collections.ConfigDict, generator, workdir: pathlib.Path):
  """The in-training FD evaluator, or None when config.eval_every_steps is 0."""
  if not config.eval_every_steps:
    return None
  from cxrgan_jax.evaluation import in_training  # pylint: disable=g-import-not-at-top

  return in_training.TrainingEvaluator(config, generator, workdir)


def _due(step: int, every: int, is_last: bool) -> bool:
  return step % every == 0 or is_last


def _resume(
  latest_mngr, state: state_lib.TrainState, data_iter, config_dict: dict, workdir, is_chief
) -> state_lib.TrainState:
  """The newest restorable checkpoint (data_iter moved to its position), or `state`."""
  if latest_mngr.latest_step() is None:
    return state
  template = state
  state, data_state, meta = checkpoints.restore_newest(
    latest_mngr, lambda step: checkpoints.restore(latest_mngr, template, step), move_damaged=True
  )
  data_iter.set_state(data_state)
  for line in _config_differences(meta.get('config', {}), config_dict):
    logging.warning('Config differs from the checkpoint: %s', line)
  logging.info('Resumed from step %d in %s', int(state.step), latest_mngr.directory)
  if is_chief:
    _truncate_jsonl(workdir / run_log.METRICS_FILE, int(state.step))
  return state


def _check_finite(flag, step: int, latest_mngr) -> None:
  """Raises NonFiniteError when the step's `finite` flag (per device) is off."""
  if flag is not None and not bool(np.all(jax.device_get(flag) > 0)):
    latest_mngr.wait_until_finished()
    raise NonFiniteError(
      f'NaN/Inf in a loss or gradient at step {step}; stopped without saving it. '
      f'Last good checkpoint: step {latest_mngr.latest_step()} in '
      f'{latest_mngr.directory}. Lower config.g_optimizer/d_optimizer.learning_rate, '
      'set config.grad_clip_norm, or raise config.r1_gamma, then rerun the same command '
      'to resume.'
    )


def _log_start(config, initial_step: int, num_steps: int, local_devices: int) -> None:
  logging.info(
    'Training %s at %d^2 from step %d to %d on %d device(s): %d process(es) x %d local',
    config.model,
    config.resolution,
    initial_step,
    num_steps,
    jax.device_count(),
    jax.process_count(),
    local_devices,
  )


class _Logs:
  """Where a run's scalars go: clu's writer (TensorBoard, console) and metrics.jsonl."""

  def __init__(self, workdir: pathlib.Path, config_dict: dict, initial_step: int, is_chief: bool):
    self.writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
    if initial_step == 0:
      self.writer.write_hparams(_flatten(config_dict))
    self._jsonl = workdir / run_log.METRICS_FILE
    self._is_chief = is_chief
    self._tick = (time.time(), initial_step)

  def scalars(self, step: int, scalars: dict[str, float]) -> None:
    """To the writer, and one line of metrics.jsonl (process 0)."""
    self.writer.write_scalars(step, scalars)
    if self._is_chief:
      with self._jsonl.open('a') as f:
        f.write(json.dumps({'step': step, 'time': time.time(), **scalars}) + '\n')

  def train_step(
    self,
    step: int,
    num_steps: int,
    metrics: dict,
    images_per_step: int,
    seconds_left: float = float('inf'),
  ) -> None:
    """The step's losses and norms with steps/s and images/s; one console line.

    The ETA is the sooner of the last step and the end of the time budget.
    """
    host = jax.device_get(parallel.unreplicate(metrics))
    scalars = {k: float(v) for k, v in host.items() if k != 'finite'}
    now = time.time()
    steps_per_sec = (step - self._tick[1]) / max(now - self._tick[0], 1e-9)
    self._tick = (now, step)
    scalars.update(steps_per_sec=steps_per_sec, images_per_sec=steps_per_sec * images_per_step)
    self.scalars(step, scalars)
    eta = min((num_steps - step) / max(steps_per_sec, 1e-9), seconds_left)
    logging.info(
      'step %d/%d | %.2f steps/s %.1f img/s | ETA %s | d_loss %.3f g_loss %.3f '
      'D(x) %.3f D(G(z)) %.3f | |gG| %.2f |gD| %.2f | aug p %.3f',
      *(step, num_steps, steps_per_sec, scalars['images_per_sec'], _format_seconds(eta)),
      *(scalars[k] for k in ('d_loss', 'g_loss', 'd_real', 'd_fake', 'g_grad_norm')),
      scalars['d_grad_norm'],
      scalars['augment_p'],
    )


def _flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _format_seconds(seconds: float) -> str:
  seconds = int(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m' if h else f'{m}m{s:02d}s'
