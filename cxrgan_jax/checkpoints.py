"""Orbax checkpoints of a run: latest-K for resume, plus the best by a metric.

Layout under the workdir:
  checkpoints/<step>/{state,data_iterator,meta}   every `checkpoint_every_steps`
  best/<step>/{state,data_iterator,meta}          one, the lowest eval metric so far
A checkpoint holds the whole TrainState (as a state dict of numpy arrays), the
input iterator's position and the config, so a restart with the same command
continues bit for bit.
"""

import pathlib
from typing import Any

import flax
import jax
import orbax.checkpoint as ocp

from cxrgan_jax.state import TrainState

STATE, DATA, META = 'state', 'data_iterator', 'meta'


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
  latest = ocp.CheckpointManager(workdir / 'checkpoints', options=_options(keep), item_names=names)
  best = ocp.CheckpointManager(
    workdir / 'best',
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


def restore(
  manager: ocp.CheckpointManager, template: TrainState, step: int | None = None
) -> tuple[TrainState, dict, dict]:
  """Restores (state, data_iterator_state, meta) at `step` (default latest)."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(f'no checkpoint in {manager.directory}')
  target = flax.serialization.to_state_dict(jax.device_get(template))
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
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
