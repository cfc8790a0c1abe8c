"""The classifier-utility studies' bookkeeping: which classifiers run, and what the summary says."""

import pathlib

import pytest

from configs.studies import utility as utility_config
from cxrgan_jax.study import spec
from cxrgan_jax.study import utility
from cxrgan_jax.study import utility_report


def test_cpu_utility_study_lists_every_arm_fraction_and_seed(tmp_path):
  study = utility_config.get_config('cpu')
  study.gan.workdirs.normal = '/gans/normal/seed{seed}'
  runs = utility.classifier_runs(study, tmp_path)
  # 2 class sets x (3 real + 1 TSTR + 3 mixed) cells x 3 seeds.
  assert len(runs) == 2 * 7 * 3
  tstr = [r for r in runs if r.group['arm'] == 'synthetic' and r.seed == 2]
  assert [r.config.classes for r in tstr] == ['normal,bacterial', 'normal,bacterial,viral']
  assert tstr[1].config.real_fraction == 0.0
  assert dict(tstr[1].gans) == {
    'normal': '/gans/normal/seed2',  # Given: the noise study's control run.
    'bacterial': str(tmp_path / 'gan/bacterial/seed2'),  # Trained by the study.
    'viral': str(tmp_path / 'gan/viral/seed2'),
  }
  real = [r for r in runs if r.group['arm'] == 'real']
  assert {r.config.real_fraction for r in real} == {0.1, 0.25, 1.0} and not any(
    r.gans for r in real
  )
  gans = utility.gans_to_train(study, runs, tmp_path)
  assert sorted(g.name for g in gans) == sorted(
    f'gan/{c}/seed{s}' for c in ('bacterial', 'viral') for s in (0, 1, 2)
  )
  assert all(g.config.num_train_steps == study.gan.steps for g in gans)


@pytest.mark.parametrize(
  'field, value, message',
  [
    ('arms', ['real', 'gan'], 'arms'),
    ('real_fractions', [0.0, 1.0], 'real_fractions'),
    ('class_sets', ['normal'], 'class_sets entry'),
    ('class_sets', ['normal,covid'], 'class_sets entry'),
  ],
)
def test_bad_utility_study_names_the_field(field, value, message, tmp_path):
  study = utility_config.get_config('cpu')
  study[field] = value
  with pytest.raises(spec.StudyError, match=message):
    utility.classifier_runs(study, tmp_path)


def _record(seed, arm, fraction, accuracy, auc=0.9):
  return {
    'seed': seed,
    'classes': 'normal+bacterial',
    'arm': arm,
    'fraction': fraction,
    'test': {m: accuracy for m in utility.METRICS} | {'pneumonia_auc': auc},
  }


def test_summary_gives_tstr_ratio_and_mixed_verdicts():
  records = []
  for seed, (real, syn, mixed_small, real_small) in enumerate(
    [(0.90, 0.72, 0.85, 0.70), (0.92, 0.74, 0.86, 0.72), (0.91, 0.73, 0.84, 0.71)]
  ):
    records += [
      _record(seed, 'real', 1.0, real),
      _record(seed, 'synthetic', None, syn),
      _record(seed, 'real', 0.1, real_small),
      _record(seed, 'mixed', 0.1, mixed_small),
      _record(seed, 'mixed', 1.0, real),  # Exactly as good as real.
    ]
  records.append({'seed': 3, 'classes': 'normal+bacterial', 'arm': 'real', 'fraction': 0.1})
  summary = utility_report.summarize_utility(records, margin=0.05)
  ratio = summary['tstr_over_trtr']['normal+bacterial']['accuracy']
  assert ratio['mean'] == pytest.approx((0.72 / 0.90 + 0.74 / 0.92 + 0.73 / 0.91) / 3)
  assert ratio['low'] < ratio['mean'] < ratio['high'] < 1.0
  mixed = summary['mixed_vs_real_accuracy']['normal+bacterial']
  assert mixed['0.1']['verdict'] == 'helps'
  assert mixed['1']['verdict'] == 'negligible'
  cell = summary['cells']['normal+bacterial/real/0.1']
  assert cell['runs'] == 3 and cell['accuracy']['mean'] == pytest.approx(0.71)


def test_correlation_needs_three_points_with_spread():
  assert utility_report._correlation([1.0, 2.0], [0.5, 0.6]) is None
  assert utility_report._correlation([1.0, 1.0, 1.0], [0.5, 0.6, 0.7]) is None
  corr = utility_report._correlation([1.0, 2.0, 3.0, 4.0], [0.9, 0.8, 0.75, 0.6])
  assert corr['spearman_rho'] == pytest.approx(-1.0) and corr['pearson_r'] < -0.9


def test_synthetic_folder_is_one_per_gan_workdir(tmp_path):
  a = utility.synthetic_dir(tmp_path, '/x/noise_normal/default/seed0')
  b = utility.synthetic_dir(tmp_path, '/y/noise_normal/default/seed0')
  assert a != b and a.parent == b.parent == tmp_path / 'synthetic'
  assert a.name.startswith('noise_normal__default__seed0-')
  assert utility.synthetic_dir(tmp_path, pathlib.Path('/x/noise_normal/default/seed0')) == a


def test_a_gan_is_ready_only_when_its_study_run_finished(tmp_path):
  study_dir = tmp_path / 'noise_normal'
  run_dir = study_dir / 'default/seed0'
  (run_dir / 'checkpoints').mkdir(parents=True)
  (study_dir / 'study_config.json').write_text('{}')
  assert not utility.gan_ready(run_dir)  # Training: checkpoints, but not finished.
  (run_dir / 'study_run.json').write_text('{"status": "finished"}')
  assert utility.gan_ready(run_dir)
  plain = tmp_path / 'my_run'
  (plain / 'checkpoints').mkdir(parents=True)
  assert not utility.gan_ready(plain)  # A plain workdir with no checkpoint yet.


def test_gan_utility_takes_every_arm_finished_in_both_classes_but_not_the_peer(tmp_path):
  """Peer runs hold PyTorch generators that `sample` cannot restore: left out."""
  import json

  from configs.studies import gan_utility as gan_utility_config

  study = gan_utility_config.get_config('hparams')
  for class_name in ('normal', 'bacterial'):
    folder = tmp_path / f'hparams_{class_name}'
    folder.mkdir()
    runs = [
      {'arm': arm, 'seed': seed, 'name': f'{arm}/seed{seed}', 'status': 'finished'}
      for arm in ('default', 'batch_size=16', 'peer=torch_dcgan')
      for seed in (0, 1)
    ]
    runs.append({'arm': 'width=x2', 'seed': 0, 'name': 'width=x2/seed0', 'status': 'failed'})
    (folder / 'results.json').write_text(json.dumps({'runs': runs}))
    study.gan_studies[class_name] = str(folder)
  names = [(r.name, r.seed) for r in utility.gan_utility_runs(study, tmp_path)]
  assert names == [(f'tstr/{a}/seed{s}', s) for a in ('default', 'batch_size=16') for s in (0, 1)]
