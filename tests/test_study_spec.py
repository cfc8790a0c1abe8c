"""Study configs -> runs: arms, grids, sweeps, seeds, worker shares, bad input."""

import ml_collections
import pytest

from configs import base as base_config
from cxrgan_jax.study import spec


def make_study(**fields) -> ml_collections.ConfigDict:
  study = ml_collections.ConfigDict()
  study.base = base_config.get_config()
  study.seeds = [0, 1]
  study.budget = ml_collections.ConfigDict(dict(steps=20, minutes=0.0))
  study.eval = ml_collections.ConfigDict(dict(every_steps=10))
  for key, value in fields.items():
    study[key] = value
  return study


def test_sweep_is_one_at_a_time_around_a_default_arm():
  study = make_study(sweep=[('loss', ['hinge', 'minimax']), ('g_optimizer.learning_rate', [1e-3])])
  runs = spec.runs(study)
  names = [r.name for r in runs]
  assert names[:2] == ['default/seed0', 'default/seed1']
  assert 'loss=hinge/seed1' in names and 'g_optimizer.learning_rate=0.001/seed0' in names
  assert len(runs) == 2 * (1 + 2 + 1)
  lr = next(r for r in runs if r.arm.startswith('g_optimizer'))
  assert lr.config.g_optimizer.learning_rate == 1e-3
  assert lr.config.loss == study.base.loss  # Only the swept field moves.
  assert lr.config.d_optimizer.learning_rate == study.base.d_optimizer.learning_rate
  assert {r.config.seed for r in runs} == {0, 1}
  assert all(r.config.num_train_steps == 20 for r in runs)
  assert all(r.config.checkpoint_every_steps == 10 for r in runs)
  # The study never edits its base.
  assert study.base.loss == base_config.get_config().loss


def test_grid_is_the_cartesian_product():
  study = make_study(grid=[('loss', ['hinge', 'minimax']), ('d_steps', [1, 2])], seeds=[3])
  arms = spec.arms(study)
  assert list(arms) == [
    'loss=hinge,d_steps=1',
    'loss=hinge,d_steps=2',
    'loss=minimax,d_steps=1',
    'loss=minimax,d_steps=2',
  ]


def test_explicit_arms_and_int_for_float_fields():
  study = make_study(
    arms=[
      {'name': 'default', 'overrides': {}},
      {'name': 'noisy', 'overrides': {'instance_noise.std': 1}},
    ]
  )
  noisy = [r for r in spec.runs(study) if r.arm == 'noisy'][0]
  assert noisy.config.instance_noise.std == 1.0


@pytest.mark.parametrize(
  'fields, message',
  [
    ({'sweep': [('learning_rate', [1e-3])]}, "'learning_rate' is not a field"),
    ({'sweep': {'loss': ['hinge']}}, 'must be a (field, [values]) pair'),
    ({'sweep': [('loss', ['a']), ('loss', ['b'])]}, "'loss' is listed twice"),
    ({'grid': [('loss', 'hinge')]}, 'grid.loss must be a non-empty list'),
    ({'grid': [('loss', [])]}, 'grid.loss must be a non-empty list'),
    ({'arms': [{'name': 'a', 'overrides': {'g_optimizer.lr': 1}}]}, "'g_optimizer.lr' is not"),
    ({'arms': [{'name': 'a'}, {'name': 'a'}]}, "arm 'a' is defined twice"),
    ({'arms': [{'nam': 'a'}]}, 'arms[0] must be'),
    ({'arms': [{'name': 'x', 'overrides': {'loss': 3}}]}, 'override loss=3'),
    ({}, 'defines no arms'),
    ({'sweep': [('loss', ['hinge'])], 'seeds': []}, 'seeds must be'),
    ({'sweep': [('loss', ['hinge'])], 'seeds': [1, 1]}, 'seeds must be'),
    ({'sweep': [('loss', ['hinge'])], 'budget': {'steps': 0, 'minutes': 0}}, 'budget needs'),
    ({'sweep': [('loss', ['hinge'])], 'eval': {'every_steps': 0}}, 'eval.every_steps'),
    ({'sweep': [('loss', ['hinge'])], 'report': {'progression': 'first'}}, 'report.progression'),
    ({'sweep': [('loss', ['hinge'])], 'report': {'control': 'hinge'}}, "report.control='hinge'"),
  ],
)
def test_bad_studies_fail_naming_the_field(fields, message):
  with pytest.raises(spec.StudyError) as e:
    spec.runs(make_study(**fields))
  assert message in str(e.value)


def test_an_arm_may_end_before_the_budget_and_a_cooldown_needs_a_step_count():
  arms = [
    {'name': 'default', 'overrides': {}},
    {'name': 'short', 'overrides': {'num_train_steps': 7, 'lr_cooldown_fraction': 0.5}},
  ]
  runs = {r.arm: r.config for r in spec.runs(make_study(arms=arms))}
  assert runs['default'].num_train_steps == 20 and runs['short'].num_train_steps == 7
  longer = [{'name': 'long', 'overrides': {'num_train_steps': 50}}]
  assert spec.runs(make_study(arms=longer))[0].config.num_train_steps == 20  # Budget first.
  # A wall-clock budget alone: the arm's steps are its end, and only they place the cooldown.
  clock = ml_collections.ConfigDict(dict(steps=0, minutes=2.0))
  runs = {r.arm: r.config for r in spec.runs(make_study(arms=arms, budget=clock))}
  assert runs['default'].num_train_steps == 10**9 and runs['short'].num_train_steps == 7
  assert runs['short'].max_train_minutes == 2.0
  no_end = [{'name': 'cool', 'overrides': {'lr_cooldown_fraction': 0.5}}]
  with pytest.raises(spec.StudyError, match='lr_cooldown_fraction counts in steps'):
    spec.runs(make_study(arms=no_end, budget=clock))


def test_worker_shares_partition_the_runs():
  runs = spec.runs(make_study(sweep=[('loss', ['hinge', 'minimax'])], seeds=[0, 1, 2]))
  shares = [spec.share(runs, (i, 4)) for i in range(4)]
  names = [r.name for s in shares for r in s]
  assert sorted(names) == sorted(r.name for r in runs) and len(set(names)) == len(runs)
  assert spec.parse_worker('2/4') == (2, 4)
  for bad in ('4/4', '-1/2', 'a/b', '3'):
    with pytest.raises(spec.StudyError, match='--worker'):
      spec.parse_worker(bad)
