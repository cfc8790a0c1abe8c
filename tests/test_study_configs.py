"""Every committed study config, at every scale, is a valid study of valid runs."""

import importlib
import pathlib
import sys

import pytest

from configs import cpu_best
from configs.studies import chosen
from configs.studies import chosen_lr
from configs.studies import common
from configs.studies import confirm
from configs.studies import confirm_best
from configs.studies import confirm_pilot
from configs.studies import confirm_pilot2
from configs.studies import cooldown
from configs.studies import ema
from configs.studies import gan_utility
from configs.studies import hparams
from configs.studies import longer
from configs.studies import noise
from configs.studies import pilot
from configs.studies import pilot2
from configs.studies import precision
from configs.studies import replicate_best
from configs.studies import utility as utility_config
from cxrgan_jax.study import runner
from cxrgan_jax.study import spec
from cxrgan_jax.study import utility

STUDIES = {
  'noise': noise,
  'hparams': hparams,
  'precision': precision,
  'chosen': chosen,
  'chosen_lr': chosen_lr,
  'ema': ema,
  'cooldown': cooldown,
  'confirm': confirm,
  'confirm_best': confirm_best,
  'pilot': pilot,
  'pilot2': pilot2,
  'confirm_pilot': confirm_pilot,
  'confirm_pilot2': confirm_pilot2,
  'longer': longer,
  'replicate_best': replicate_best,
}
CLASSIFIER_STUDIES = {'utility': utility_config, 'gan_utility': gan_utility}


@pytest.mark.parametrize('scale', common.SCALES)
@pytest.mark.parametrize('name', sorted(STUDIES))
def test_study_config_is_valid(name, scale):
  study = STUDIES[name].get_config(f'normal,{scale}')
  study.eval.classifier_workdir = 'runs/classifier'  # As the study's command line sets it.
  runs = spec.runs(study)
  runner.check_runs(runs)  # The training checks of every run, as before any training.
  seeds = {r.seed for r in runs}
  assert len(seeds) == 1 if scale == 'smoke' else len(seeds) >= 2
  assert spec.control_arm(study) in {r.arm for r in runs}
  assert all(r.config.checkpoint_every_steps == study.eval.every_steps for r in runs)


def test_every_study_file_is_covered():
  folder = pathlib.Path(noise.__file__).parent
  found = {p.stem for p in folder.glob('*.py')} - {'__init__', 'common'}
  assert found == set(STUDIES) | set(CLASSIFIER_STUDIES)


def test_every_config_file_imports_on_its_own():
  """The study command loads one config file first: an import cycle between
  configs (a study and cpu_best) fails only in some orders, so try each first."""
  root = pathlib.Path(noise.__file__).parents[2]
  names = sorted(
    '.'.join(p.relative_to(root).with_suffix('').parts)
    for p in root.glob('configs/**/*.py')
    if p.stem != '__init__'
  )
  saved = {k: v for k, v in sys.modules.items() if k.split('.')[0] == 'configs'}
  try:
    for name in names:
      for key in [k for k in sys.modules if k.split('.')[0] == 'configs']:
        del sys.modules[key]
      importlib.import_module(name)
  finally:
    for key in [k for k in sys.modules if k.split('.')[0] == 'configs']:
      del sys.modules[key]
    sys.modules.update(saved)


@pytest.mark.parametrize('scale', common.SCALES)
def test_utility_study_config_is_valid(scale, tmp_path):
  study = utility_config.get_config(scale)
  runs = utility.classifier_runs(study, tmp_path)
  runner.check_runs(utility.gans_to_train(study, runs, tmp_path))
  assert {r.group['arm'] for r in runs} == {'real', 'synthetic', 'mixed'}


@pytest.mark.parametrize('scale', common.SCALES)
def test_gan_utility_study_config_needs_its_gan_studies(scale, tmp_path):
  study = gan_utility.get_config(f'hparams,{scale}')
  assert dict(study.gan_studies) == {
    'normal': 'studies/hparams_normal',
    'bacterial': 'studies/hparams_bacterial',
  }
  study.gan_studies.normal = str(tmp_path)
  with pytest.raises(spec.StudyError, match='results.json not found'):
    utility.classifier_runs(study, tmp_path)


@pytest.mark.parametrize('arg', ['pediatric', 'normal,huge', ''])
def test_unknown_class_or_scale_is_refused(arg):
  with pytest.raises(ValueError, match='use CLASS\\[,SCALE\\]'):
    noise.get_config(arg)


def seeds_of(studies) -> set[int]:
  return set().union(*(set(s.seeds) for s in studies))


@pytest.mark.parametrize('class_name', ['normal', 'bacterial'])
def test_the_chosen_setting_is_the_config_users_train(class_name):
  """configs/cpu_best.py trains exactly the `chosen` arm that the last confirmation measures."""
  study = (confirm_best if class_name == 'bacterial' else confirm).get_config(class_name)
  study.eval.classifier_workdir = 'runs/classifier'
  (run,) = [r for r in spec.runs(study) if r.arm == 'chosen' and r.seed == study.seeds[0]]
  config = cpu_best.get_config(class_name)
  config.eval.classifier_workdir = run.config.eval.classifier_workdir  # A path, not a setting.
  runner.check_runs([run])
  assert config.max_train_minutes == study.budget.minutes
  fields = ('batch_size', 'resolution', 'g_channels', 'd_channels', 'latent_dim', 'dataset')
  fields += ('g_optimizer', 'd_optimizer', 'd_steps', 'loss', 'model', 'ema_decay', 'r1_gamma')
  fields += ('r1_interval', 'augment', 'lr_cooldown_fraction', 'eval_every_steps')
  fields += ('eval_start_step', 'eval')
  if config.lr_cooldown_fraction:  # Else both stop on the clock, long before either step count.
    fields += ('num_train_steps',)
  for field in fields:
    assert config[field] == run.config[field], field
  earlier = seeds_of([chosen.get_config(class_name), cooldown.get_config(class_name)])
  assert len(study.seeds) >= 10 and not earlier & set(study.seeds)


def test_the_chosen_setting_is_what_its_studies_chose():
  """cpu_best's per-class additions are exactly the arms that the studies chose and confirmed."""
  study = cooldown.get_config('normal')
  (arm,) = [a for a in study.arms if a['name'] == 'chosen+cooldown']
  assert cpu_best.overrides('normal') == arm['overrides'] == confirm.ARMS['normal']
  for best in (confirm_best, replicate_best):
    (arm,) = best.get_config('bacterial').arms
    assert cpu_best.overrides('bacterial') == arm['overrides']
  assert cpu_best.overrides('viral') == cpu_best.OVERRIDES == confirm.ARMS['viral']


@pytest.mark.parametrize('name', ['pilot', 'pilot2'])
def test_a_pilot_uses_seeds_no_other_study_used(name):
  """A pilot chooses on its own seeds, so its choice can be confirmed on others."""
  others = seeds_of(STUDIES[n].get_config('bacterial') for n in STUDIES if n != name)
  study = STUDIES[name].get_config('bacterial')
  assert not others & set(study.seeds)
  (control,) = [a for a in study.arms if a['name'] == 'chosen']
  assert control['overrides'] == confirm.ARMS['bacterial']


def test_the_pilot_confirmation_trains_the_pilot_pick_on_new_seeds():
  study = confirm_pilot.get_config('bacterial')
  (arm,) = [a for a in pilot.get_config('bacterial').arms if a['name'] == 'chosen+r1_gamma=1']
  assert [a['overrides'] for a in study.arms] == [arm['overrides']]
  assert arm['overrides'] == {**confirm.ARMS['bacterial'], 'r1_gamma': 1.0}
  earlier = seeds_of(STUDIES[n].get_config('bacterial') for n in STUDIES if n != 'confirm_pilot')
  assert len(study.seeds) >= 10 and not earlier & set(study.seeds)


def test_the_second_pilot_confirmation_trains_its_pick_on_new_seeds():
  study = confirm_pilot2.get_config('bacterial')
  (arm,) = [a for a in pilot2.get_config('bacterial').arms if a['name'] == 'chosen+width=x2']
  assert [a['overrides'] for a in study.arms] == [arm['overrides']]
  width = confirm.get_config('bacterial').base.g_channels
  wider = {'g_channels': 2 * width, 'd_channels': 2 * width}
  assert arm['overrides'] == {**confirm.ARMS['bacterial'], **wider}
  earlier = seeds_of(STUDIES[n].get_config('bacterial') for n in STUDIES if n != 'confirm_pilot2')
  assert len(study.seeds) >= 10 and not earlier & set(study.seeds)


def test_the_longer_study_trains_the_confirmed_arm_longer_on_new_seeds():
  study = longer.get_config('bacterial')
  assert [a['overrides'] for a in study.arms] == [confirm.ARMS['bacterial'], {}]
  assert study.budget.minutes == 5 * confirm.get_config('bacterial').budget.minutes
  earlier = seeds_of(STUDIES[n].get_config('bacterial') for n in STUDIES if n != 'longer')
  assert not earlier & set(study.seeds)
