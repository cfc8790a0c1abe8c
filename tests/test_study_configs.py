"""Every committed study config, at every scale, is a valid study of valid runs."""

import pathlib

import pytest

from configs.studies import common
from configs.studies import hparams
from configs.studies import noise
from cxrgan_jax.study import runner
from cxrgan_jax.study import spec

STUDIES = {'noise': noise, 'hparams': hparams}


@pytest.mark.parametrize('scale', common.SCALES)
@pytest.mark.parametrize('name', sorted(STUDIES))
def test_study_config_is_valid(name, scale):
  study = STUDIES[name].get_config(f'normal,{scale}')
  runs = spec.runs(study)
  runner.check_runs(runs)  # The training checks of every run, as before any training.
  assert {r.seed for r in runs} == set(common.seeds(scale))
  assert spec.CONTROL_ARM in {r.arm for r in runs}
  assert all(r.config.checkpoint_every_steps == study.eval.every_steps for r in runs)


def test_every_study_file_is_covered():
  folder = pathlib.Path(noise.__file__).parent
  found = {p.stem for p in folder.glob('*.py')} - {'__init__', 'common'}
  assert found == set(STUDIES)


@pytest.mark.parametrize('arg', ['pediatric', 'normal,huge', ''])
def test_unknown_class_or_scale_is_refused(arg):
  with pytest.raises(ValueError, match='use CLASS\\[,SCALE\\]'):
    noise.get_config(arg)
