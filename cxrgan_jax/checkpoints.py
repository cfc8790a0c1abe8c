"""Orbax checkpoints of a run: latest-K for resume, plus the best by a metric.

Layout under the workdir:
  checkpoints/<step>/{state,data_iterator,meta}   every `checkpoint_every_steps`
  best/<step>/{state,data_iterator,meta}          one, the lowest eval metric so far
A checkpoint holds the whole TrainState (as a state dict of numpy arrays), the
input iterator's position and the config, so a restart with the same command
continues bit for bit. Sampling and evaluation read only the generator's part
(`restore_generator`) of either kind (`which='latest'` or `'best'`).
"""

import dataclasses
import os
import pathlib
from typing import Any

import flax
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from cxrgan_jax import models
from cxrgan_jax.state import TrainState

STATE, DATA, META = 'state', 'data_iterator', 'meta'
# Checkpoint kinds -> their folder in the workdir.
FOLDERS = {'latest': 'checkpoints', 'best': 'best'}


class CheckpointError(RuntimeError):
  """A checkpoint that is missing or unreadable, with what to do about it."""


def _options(max_to_keep: int, **kwargs) -> ocp.CheckpointManagerOptions:
  return ocp.CheckpointManagerOptions(
    max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True, **kwargs
  )


def create_managers(
  workdir: str | pathlib.Path, keep: int
) -> tuple[ocp.CheckpointManager, ocp.CheckpointManager]:
  """(latest, best) managers; `best` keeps the one checkpoint with the lowest metric."""
  workdir = pathlib.Path(workdir).absolute()
  names = (STATE, DATA, META)
  latest = ocp.CheckpointManager(
    workdir / FOLDERS['latest'], options=_options(keep), item_names=names
  )
  best = ocp.CheckpointManager(
    workdir / FOLDERS['best'],
    item_names=names,
    options=_options(
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
      raise CheckpointError(
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
      f'checkpoint step {step} in {manager.directory} is incomplete or missing '
      f'({e}); pass another --step or delete that step folder'
    ) from e
  except Exception as e:  # Orbax raises many types for damaged files.
    raise CheckpointError(
      f'checkpoint step {step} in {manager.directory} could not be read: '
      f'{type(e).__name__}: {e}. It is probably corrupt; delete that step folder '
      'to fall back to an earlier one'
    ) from e
  state = flax.serialization.from_state_dict(template, restored[STATE])
  return state, restored[DATA], restored[META]


def restore_meta(manager: ocp.CheckpointManager, step: int) -> dict[str, Any]:
  """Only the JSON meta item (the run's config), to build a template for restore()."""
  try:
    restored = manager.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))
  except Exception as e:  # Orbax raises many types for damaged files.
    raise CheckpointError(
      f'checkpoint step {step} in {manager.directory} has no readable config '
      f'({type(e).__name__}: {e}); delete that step folder or pass another --step'
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
    step: a step of that kind; None takes the newest.

  Raises:
    CheckpointError: nothing of that kind, or no such step (lists the steps).
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
  step = saved[-1] if step is None else step
  if step not in saved:
    raise CheckpointError(f'no checkpoint for step {step} in {folder}; available: {saved}')
  manager = ocp.CheckpointManager(
    folder,
    options=ocp.CheckpointManagerOptions(create=False),
    item_handlers={STATE: ocp.PyTreeCheckpointHandler(), META: ocp.JsonCheckpointHandler()},
  )
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
      f'checkpoint step {step} in {folder} could not be read: {type(e).__name__}: {e}. '
      'It is probably corrupt; pass another --step'
    ) from e
  return GeneratorWeights(config, restored['ema_params'], restored['g_state'], step)
