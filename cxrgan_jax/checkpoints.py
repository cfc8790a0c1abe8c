"""Orbax checkpoints of a run: latest-K for resume, plus the best by a metric.

Layout under the workdir:
  checkpoints/<step>/{state,data_iterator,meta}   every `checkpoint_every_steps`
  best/<step>/{state,data_iterator,meta}          one, the lowest eval metric so far
A checkpoint holds the whole TrainState (as a state dict of numpy arrays), the
input iterator's position and the config, so a restart with the same command
continues bit for bit. Sampling and evaluation read only the generator's part
(`restore_generator`) of either kind (`which='latest'` or `'best'`).

A step that no longer restores (a disk that filled, a file truncated by a copy,
a half-synced folder) is skipped by `restore_newest`: the newest step that
restores is used, and a trainer moves the broken ones to
`<workdir>/checkpoints_damaged/<step>` (outside Orbax's folder, so Orbax neither
lists nor deletes them) for a person to inspect.
"""

from collections.abc import Callable
import dataclasses
import os
import pathlib
import shutil
from typing import Any, TypeVar

from absl import logging
import flax
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from cxrgan_jax import models
from cxrgan_jax.state import TrainState

STATE, DATA, META = 'state', 'data_iterator', 'meta'
# Checkpoint kinds -> their folder in the workdir.
FOLDERS = {'latest': 'checkpoints', 'best': 'best'}
DAMAGED_SUFFIX = '_damaged'
T = TypeVar('T')


class CheckpointError(RuntimeError):
  """A checkpoint that is missing or unreadable, with what to do about it."""


class ModelMismatchError(CheckpointError):
  """A readable checkpoint of another model layout: not damage, so never skipped."""


def _options(which: str, max_to_keep: int, **kwargs) -> ocp.CheckpointManagerOptions:
  # Under several processes Orbax names its cross-process barriers by step;
  # `latest` and `best` saving the same step at once would share, and break,
  # them (measured: "Barrier _async_write_complete.4 is already ongoing",
  # then a hang) without a prefix per manager.
  return ocp.CheckpointManagerOptions(
    max_to_keep=max_to_keep,
    create=True,
    cleanup_tmp_directories=True,
    multiprocessing_options=ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=which),
    **kwargs,
  )


def create_managers(
  workdir: str | pathlib.Path, keep: int
) -> tuple[ocp.CheckpointManager, ocp.CheckpointManager]:
  """(latest, best) managers; `best` keeps the one checkpoint with the lowest metric."""
  workdir = pathlib.Path(workdir).absolute()
  names = (STATE, DATA, META)
  latest = ocp.CheckpointManager(
    workdir / FOLDERS['latest'], options=_options('latest', keep), item_names=names
  )
  best = ocp.CheckpointManager(
    workdir / FOLDERS['best'],
    item_names=names,
    options=_options(
      'best',
      1,
      best_fn=lambda metrics: metrics['value'],
      best_mode='min',
      keep_checkpoints_without_metrics=False,
    ),
  )
  return latest, best


def save(
  manager: ocp.CheckpointManager,
  state: TrainState,
  data_state: dict,
  meta: dict,
  metrics: dict | None = None,
) -> bool:
  """Saves an unreplicated state; returns whether the manager wrote it."""
  state_dict = flax.serialization.to_state_dict(jax.device_get(state))
  return manager.save(
    int(state.step),
    args=ocp.args.Composite(
      **{
        STATE: ocp.args.StandardSave(state_dict),
        DATA: ocp.args.JsonSave(data_state),
        META: ocp.args.JsonSave(meta),
      }
    ),
    metrics=metrics,
  )


def check_shapes(manager: ocp.CheckpointManager, step: int, abstract: Any) -> None:
  """Raises CheckpointError when a saved array's shape differs from `abstract`'s.

  Orbax restores such arrays without complaint (truncated or padded), so a
  checkpoint of another model layout would load as garbage. Leaves that the
  checkpoint lacks are left to Orbax; an unreadable tree to restore's handling.
  """
  try:
    saved = manager.item_metadata(step)[STATE]
  except Exception:  # pylint: disable=broad-except
    return
  saved_shapes = {
    jax.tree_util.keystr(path): tuple(leaf.shape)
    for path, leaf in jax.tree_util.tree_leaves_with_path(saved)
    if hasattr(leaf, 'shape')
  }
  for path, leaf in jax.tree_util.tree_leaves_with_path(abstract):
    name = jax.tree_util.keystr(path)
    if name in saved_shapes and saved_shapes[name] != tuple(leaf.shape):
      raise ModelMismatchError(
        f'checkpoint step {step} in {manager.directory} does not fit this model: '
        f'{name} has shape {saved_shapes[name]} there but {tuple(leaf.shape)} in the '
        'model built from the config. It was written with other model settings '
        '(model, resolution, *_channels, latent_dim) or by code with another '
        'parameter layout; restore it with its own config and code version'
      )


def restore(
  manager: ocp.CheckpointManager, template: TrainState, step: int | None = None
) -> tuple[TrainState, dict, dict]:
  """Restores (state, data_iterator_state, meta) at `step` (default latest)."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(f'no checkpoint in {manager.directory}')
  target = flax.serialization.to_state_dict(jax.device_get(template))
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  check_shapes(manager, step, abstract)
  try:
    restored = manager.restore(
      step,
      args=ocp.args.Composite(
        **{
          STATE: ocp.args.StandardRestore(abstract),
          DATA: ocp.args.JsonRestore(),
          META: ocp.args.JsonRestore(),
        }
      ),
    )
  except FileNotFoundError as e:
    raise CheckpointError(
      f'checkpoint step {step} in {manager.directory} is incomplete or missing a file: {e}'
    ) from e
  except Exception as e:  # Orbax raises many types for damaged files.
    raise CheckpointError(
      f'checkpoint step {step} in {manager.directory} could not be read (damaged, or '
      f'written with another model config): {type(e).__name__}: {e}'
    ) from e
  state = flax.serialization.from_state_dict(template, restored[STATE])
  return state, restored[DATA], restored[META]


def restore_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
  """Only the JSON meta item (the run's config), to build a template for restore()."""
  try:
    restored = manager.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))
  except Exception as e:  # Orbax raises many types for damaged files.
    raise CheckpointError(
      f'checkpoint step {step} in {manager.directory} has no readable config: '
      f'{type(e).__name__}: {e}'
    ) from e
  return restored[META]


def _folder(workdir: str | os.PathLike, which: str) -> pathlib.Path:
  if which not in FOLDERS:
    raise ValueError(f'which={which!r} is unknown; use one of {sorted(FOLDERS)}')
  return pathlib.Path(workdir).absolute() / FOLDERS[which]


def available_steps(workdir: str | os.PathLike, which: str = 'latest') -> list[int]:
  """Steps saved in `workdir` of kind `which` ('latest' or 'best'), oldest first.

  Only finished checkpoints count (Orbax's temporary folders do not).
  """
  folder = _folder(workdir, which)
  return sorted(ocp.utils.checkpoint_steps(folder)) if folder.is_dir() else []


@dataclasses.dataclass(frozen=True)
class GeneratorWeights:
  """What sampling needs from a checkpoint: no discriminator, no optimisers."""

  config: ml_collections.ConfigDict
  ema_params: Any
  g_state: Any
  step: int


def _generator_template(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Abstract {'ema_params', 'g_state'} of the config's generator (no compute)."""
  generator, _ = models.create_models(config)
  z = jax.ShapeDtypeStruct((1, config.latent_dim), np.float32)
  variables = jax.eval_shape(lambda x: generator.init(jax.random.key(0), x, train=False), z)
  variables = flax.core.unfreeze(variables)
  params = variables.pop('params')
  return {'ema_params': params, 'g_state': variables}


def restore_generator(
  workdir: str | os.PathLike, *, which: str = 'latest', step: int | None = None
) -> GeneratorWeights:
  """The EMA generator weights and G state of one checkpoint of `workdir`.

  Args:
    workdir: a training run's workdir.
    which: 'latest' (`checkpoints/`, kept every checkpoint_every_steps) or
      'best' (`best/`, the lowest in-training Fréchet distance).
    step: a step of that kind; None takes the newest one whose generator
      restores (a damaged newer one is skipped with a warning and left where
      it is: the trainer moves it aside when it resumes).

  Raises:
    CheckpointError: nothing of that kind, no such step (lists the steps), the
      named step is damaged, or no step restores.
  """
  folder = _folder(workdir, which)
  saved = available_steps(workdir, which)
  if not saved:
    hint = (
      'the run kept no best checkpoint; train with config.eval_every_steps > 0'
      if which == 'best'
      else f'train first with `python main.py --config=... --workdir={workdir}`'
    )
    raise CheckpointError(f'no checkpoint found in {folder}; {hint}')
  if step is not None and step not in saved:
    raise CheckpointError(f'no checkpoint for step {step} in {folder}; available: {saved}')
  manager = ocp.CheckpointManager(
    folder,
    options=ocp.CheckpointManagerOptions(create=False),
    # DATA is never read here; naming its handler keeps Orbax from warning that
    # the data-iterator item it finds cannot be restored.
    item_handlers={
      STATE: ocp.PyTreeCheckpointHandler(),
      DATA: ocp.JsonCheckpointHandler(),
      META: ocp.JsonCheckpointHandler(),
    },
  )

  def restore_at(step: int) -> GeneratorWeights:
    config = ml_collections.ConfigDict(restore_meta(manager, step)['config'])
    abstract = _generator_template(config)
    check_shapes(manager, step, abstract)
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), abstract)
    try:
      restored = manager.restore(
        step,
        args=ocp.args.Composite(
          **{STATE: ocp.args.PyTreeRestore(abstract, restore_args, partial_restore=True)}
        ),
      )[STATE]
    except Exception as e:  # Orbax raises many types for damaged files.
      raise CheckpointError(
        f'checkpoint step {step} in {folder} could not be read: {type(e).__name__}: {e}'
      ) from e
    return GeneratorWeights(config, restored['ema_params'], restored['g_state'], step)

  return restore_newest(manager, restore_at, step=step)


def damaged_dir(manager: ocp.CheckpointManager) -> pathlib.Path:
  """`<workdir>/checkpoints_damaged` for `<workdir>/checkpoints` (a sibling, not a child)."""
  directory = pathlib.Path(manager.directory)
  return directory.with_name(directory.name + DAMAGED_SUFFIX)


def restore_newest(
  manager: ocp.CheckpointManager,
  restore_step: Callable[[int], T],
  *,
  step: int | None = None,
  move_damaged: bool = False,
) -> T:
  """`restore_step(s)` for the newest step s that restores, or for `step` if named.

  A named step that fails raises its CheckpointError: the caller asked for
  exactly that one. Otherwise each step that raises CheckpointError is logged
  with its error and the next older one is tried. Steps are only judged broken
  once an older one restores with the same `restore_step`; when every step
  fails, nothing is moved and the newest step's error is raised. A
  ModelMismatchError (a config that no longer matches the run's model) is
  raised at once: it is no damage.

  Args:
    manager: the Orbax manager of the folder to read.
    restore_step: restores one step, raising CheckpointError when it cannot.
    step: a step to restore instead of the newest readable one.
    move_damaged: move broken newer steps to `damaged_dir(manager)`, so that
      saving those step numbers again works. Trainers only: readers (sample,
      evaluate) leave a workdir that a running trainer may own as it is.
  """
  if step is not None:
    return restore_step(step)
  candidates = sorted(manager.all_steps(), reverse=True)
  if not candidates:
    raise CheckpointError(f'no checkpoint in {manager.directory}')
  broken: list[tuple[int, CheckpointError]] = []
  for candidate in candidates:
    try:
      result = restore_step(candidate)
    except ModelMismatchError:
      raise  # Every step of the run would fail alike; nothing here is damaged.
    except CheckpointError as e:
      logging.warning(
        'Checkpoint step %d in %s does not restore; trying an older one. %s',
        candidate,
        manager.directory,
        e,
      )
      broken.append((candidate, e))
      continue
    if broken:
      logging.warning(
        'Using checkpoint step %d: newer step(s) %s in %s are damaged.',
        candidate,
        [s for s, _ in broken],
        manager.directory,
      )
      if move_damaged:
        _move_aside(manager, [s for s, _ in broken])
    return result
  raise CheckpointError(
    f'none of the checkpoints {candidates} in {manager.directory} restores; the newest '
    f'failed with: {broken[0][1]}'
  ) from broken[0][1]


def _move_aside(manager: ocp.CheckpointManager, steps: list[int]) -> None:
  """Process 0 moves the step folders; every process then sees the new step list."""
  if jax.process_index() == 0:
    target_root = damaged_dir(manager)
    target_root.mkdir(parents=True, exist_ok=True)
    for s in steps:
      source = pathlib.Path(manager.directory) / str(s)
      target, n = target_root / str(s), 1
      while target.exists():  # The same step broken again in a later life of the run.
        target, n = target_root / f'{s}.{n}', n + 1
      shutil.move(source, target)
      logging.warning('Moved damaged checkpoint step %d to %s (not deleted).', s, target)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('cxrgan_move_damaged_checkpoints')
  manager.reload()
