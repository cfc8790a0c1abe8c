"""A study config -> the list of runs it asks for, checked before anything trains.

A study config (configs/studies/*.py) is an ml_collections.ConfigDict with:

  base     the run config every arm starts from (a full training ConfigDict)
  arms     explicit named arms: [{'name': str, 'overrides': {dotted.field: value}}]
  grid     [(dotted.field, [values]), ...]: one arm per point of the product
  sweep    [(dotted.field, [values]), ...]: one-at-a-time around the base,
           plus the control arm 'default'
(grid and sweep are lists of pairs, not dicts: ConfigDict keys cannot hold
dots, and a list keeps the order in which the report lists the arms.)
  seeds    [int]: every arm runs once per seed (config.seed)
  budget   {'steps': int} and/or {'minutes': float}: whichever ends first
  eval     {'every_steps': int, ...}: when runs are scored (see study.scoring);
           'reference_subsets': sets of real training images scored the same
           way, the report's floor (study.reference; 0 = none)
  peers    optional [name]: programs trained outside the runner on the base
           config and budget (bench/study_peer.py), reported as arm 'peer=<name>'

At least one of arms / grid / sweep. An arm named 'default' with no overrides
is the control that verdicts compare against. A run's name is
'<arm>/seed<seed>', which is also its workdir under the study's workdir.
"""

import dataclasses
import itertools
from typing import Any

import ml_collections

CONTROL_ARM = 'default'
# Which runs get a progression strip and GIF in the report: every run, each
# arm's first seed, or none (a study whose runs another report already shows).
PROGRESSION_MODES = ('all', 'first_seed', 'none')


class StudyError(ValueError):
  """A study config that cannot run; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Run:
  arm: str
  seed: int
  overrides: dict[str, Any]  # dotted field -> value, without the seed.
  config: ml_collections.ConfigDict

  @property
  def name(self) -> str:
    return f'{self.arm}/seed{self.seed}'


def _has_field(config: ml_collections.ConfigDict, dotted: str) -> bool:
  node = config
  for part in dotted.split('.'):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False
    node = node[part]
  return True


def _set_field(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  *parents, leaf = dotted.split('.')
  node = config
  for part in parents:
    node = node[part]
  old = node[leaf]
  if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)  # ConfigDict refuses int for a float field; 1 means 1.0 here.
  try:
    node[leaf] = value
  except TypeError as e:
    raise StudyError(f'override {dotted}={value!r}: {e}') from None


def _value_label(value: Any) -> str:
  return format(value, 'g') if isinstance(value, float) else str(value)


def _check_fields(fields, base, where: str) -> None:
  for field in fields:
    if not isinstance(field, str) or not _has_field(base, field):
      raise StudyError(
        f'{where}: {field!r} is not a field of the base config; fields are dotted '
        "paths such as 'loss' or 'g_optimizer.learning_rate' (see configs/base.py)"
      )


def _value_lists(pairs, where: str) -> dict[str, list]:
  """[(field, [values]), ...] -> {field: [values]}, checked."""
  out = {}
  for i, pair in enumerate(pairs if isinstance(pairs, (list, tuple)) else [pairs]):
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
      raise StudyError(
        f"{where}[{i}] must be a (field, [values]) pair, e.g. ('loss', ['hinge']); got {pair!r}"
      )
    field, values = pair
    if not isinstance(values, (list, tuple)) or not values:
      raise StudyError(f'{where}.{field} must be a non-empty list of values, got {values!r}')
    if field in out:
      raise StudyError(f'{where}: {field!r} is listed twice')
    out[field] = list(values)
  return out


def arms(study: ml_collections.ConfigDict) -> dict[str, dict[str, Any]]:
  """Arm name -> overrides, in config order; checked against the base config."""
  base = study.base
  out: dict[str, dict[str, Any]] = {}

  def add(name, overrides, where):
    if not isinstance(name, str) or not name or '/' in name:
      raise StudyError(f'{where}: arm name {name!r} must be a non-empty string without "/"')
    if name in out:
      raise StudyError(f'{where}: arm {name!r} is defined twice')
    _check_fields(overrides, base, where)
    out[name] = dict(overrides)

  for i, arm in enumerate(study.get('arms') or []):
    arm = dict(arm)
    if set(arm) - {'name', 'overrides'} or 'name' not in arm:
      raise StudyError(f"arms[{i}] must be {{'name': str, 'overrides': dict}}, got {arm!r}")
    add(arm['name'], dict(arm.get('overrides') or {}), f'arms[{i}]')
  if study.get('grid'):
    grid = _value_lists(study.grid, 'grid')
    _check_fields(grid, base, 'grid')
    for point in itertools.product(*grid.values()):
      overrides = dict(zip(grid, point))
      name = ','.join(f'{k}={_value_label(v)}' for k, v in overrides.items())
      add(name, overrides, 'grid')
  if study.get('sweep'):
    sweep = _value_lists(study.sweep, 'sweep')
    _check_fields(sweep, base, 'sweep')
    if CONTROL_ARM not in out:
      add(CONTROL_ARM, {}, 'sweep')
    for field, values in sweep.items():
      for value in values:
        add(f'{field}={_value_label(value)}', {field: value}, f'sweep.{field}')
  if not out:
    raise StudyError('the study defines no arms: give arms, grid or sweep')
  return out


def _budget(study) -> tuple[int | None, float | None]:
  budget = study.get('budget')
  steps = budget.get('steps') if budget else None
  minutes = budget.get('minutes') if budget else None
  if not steps and not minutes:
    raise StudyError('budget needs steps > 0 or minutes > 0 (budget.steps / budget.minutes)')
  if steps is not None and steps < 0 or minutes is not None and minutes < 0:
    raise StudyError(f'budget.steps and budget.minutes must be >= 0, got {budget!r}')
  return steps or None, minutes or None


def control_arm(study: ml_collections.ConfigDict) -> str:
  """The arm every other arm's verdict is against: `report.control`, else 'default'."""
  return (study.get('report') or {}).get('control', CONTROL_ARM)


def progression_mode(study: ml_collections.ConfigDict) -> str:
  return (study.get('report') or {}).get('progression', 'all')


def runs(study: ml_collections.ConfigDict) -> list[Run]:
  """Every (arm, seed) run with its full training config, arms-major order."""
  for key in ('base', 'seeds', 'budget', 'eval'):
    if key not in study:
      raise StudyError(f'the study config has no {key!r} field (see cxrgan_jax/study/spec.py)')
  seeds = list(study.seeds)
  if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
    raise StudyError(f'seeds must be a non-empty list of distinct ints, got {seeds!r}')
  every = study.eval.get('every_steps', 0)
  if not isinstance(every, int) or every < 1:
    raise StudyError(f'eval.every_steps must be an int >= 1, got {every!r}')
  subsets = study.eval.get('reference_subsets', 0)
  if not isinstance(subsets, int) or subsets < 0:
    raise StudyError(f'eval.reference_subsets must be an int >= 0, got {subsets!r}')
  mode = progression_mode(study)
  if mode not in PROGRESSION_MODES:
    raise StudyError(f'report.progression must be one of {PROGRESSION_MODES}, got {mode!r}')
  study_arms = arms(study)
  control = control_arm(study)
  if control != CONTROL_ARM and control not in study_arms:
    raise StudyError(f'report.control={control!r} is not an arm; arms: {sorted(study_arms)}')
  out = []
  for arm, overrides in study_arms.items():
    for seed in seeds:
      config = ml_collections.ConfigDict(study.base.to_dict())
      for field, value in overrides.items():
        _set_field(config, field, value)
      out.append(
        Run(
          arm=arm,
          seed=seed,
          overrides=overrides,
          config=_run_config(study, config, seed, overrides.get('num_train_steps')),
        )
      )
  return out


def _run_config(
  study, config: ml_collections.ConfigDict, seed: int, arm_steps: int | None = None
) -> ml_collections.ConfigDict:
  """An arm's config with the study's seed, budget and scoring schedule applied.

  An arm may set its own num_train_steps under the study's budget (whichever
  ends first); a learning-rate cooldown needs that, since it counts in steps.
  """
  steps, minutes = _budget(study)
  every = study.eval.every_steps
  config.seed = seed
  limits = [int(s) for s in (steps, arm_steps) if s]
  # A wall-clock budget alone: steps are a far upper bound.
  config.num_train_steps = min(limits) if limits else 10**9
  if config.get('lr_cooldown_fraction', 0.0) and not limits:
    raise StudyError(
      'lr_cooldown_fraction counts in steps, but this run has only a wall-clock budget: '
      'give its arm num_train_steps (or the study budget.steps)'
    )
  config.max_train_minutes = float(minutes or 0.0)
  # Every scored point must be a kept checkpoint.
  config.checkpoint_every_steps = every
  config.keep_checkpoints = 10**6
  config.sample_every_steps = every
  return config


# Peers: other programs a user could pick instead, trained outside the runner on
# the base config and budget (bench/study_peer.py) and reported as arm 'peer=<name>'.
PEERS = ('torch_dcgan',)
PEER_PREFIX = 'peer='


def peer_runs(study: ml_collections.ConfigDict) -> list[Run]:
  """The study's peer runs (`study.peers`), one per seed, on the base config."""
  peers = list(study.get('peers') or [])
  unknown = set(peers) - set(PEERS)
  if unknown:
    raise StudyError(f'peers {sorted(unknown)} are unknown; known peers: {PEERS}')
  return [
    Run(
      arm=f'{PEER_PREFIX}{peer}',
      seed=seed,
      overrides={},
      config=_run_config(study, ml_collections.ConfigDict(study.base.to_dict()), seed),
    )
    for peer in peers
    for seed in study.seeds
  ]


def parse_worker(spec: str) -> tuple[int, int]:
  """'i/N' -> (i, N): this process's share of the runs, for SLURM arrays."""
  try:
    index, count = (int(x) for x in spec.split('/'))
  except ValueError:
    raise StudyError(f'--worker={spec!r} must look like i/N, e.g. 0/4') from None
  if count < 1 or not 0 <= index < count:
    raise StudyError(f'--worker={spec!r}: need 0 <= i < N')
  return index, count


def share(all_runs: list[Run], worker: tuple[int, int]) -> list[Run]:
  """Round-robin share, so each worker gets every arm's early seeds first."""
  index, count = worker
  return all_runs[index::count]
