"""The study runner end to end on the bundled demo data: the smoke noise study.

Workers split the runs, a diverging arm is marked failed while the others go
on, a SIGKILLed study resumes with the same command, reruns skip finished
runs, and the report is drawn from the saved files.
"""

import json
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import test_train_e2e as e2e

from configs.studies import gan_utility as gan_utility_config
from configs.studies import noise
from configs.studies import utility as utility_config
from cxrgan_jax.study import pipeline
from cxrgan_jax.study import reference
from cxrgan_jax.study import results
from cxrgan_jax.study import spec
from cxrgan_jax.study import utility

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


KEEPS_BEST = {'eval_every_steps': 2, 'eval.features': 'pixels', 'eval.num_samples': 16}


def smoke_study(data_dir, class_name='normal'):
  """The smoke noise study cut to two arms, plus for normal one that diverges;
  normal's noisy arm also keeps its best checkpoint (in-training FD on the
  validation split), which then is its final value."""
  study = noise.get_config(f'{class_name},smoke')
  study.base.data_dir = str(data_dir)
  study.arms = [a for a in study.arms if a['name'] in ('default', 'data_noise=0.2')]
  if class_name == 'normal':
    study.arms[1]['overrides'].update(KEEPS_BEST)
    study.arms.append({'name': 'diverges', 'overrides': {'g_optimizer.learning_rate': 1e38}})
  return study


def statuses(study_dir, runs):
  return {r['name']: r['status'] for r in results.collect(study_dir, runs)}


@pytest.fixture(scope='module')
def noise_studies(demo_tfds_dir, tmp_path_factory):
  """Smoke noise studies of both classes; normal's trained as two workers, in order.

  Returns {class: (study, folder, {run name: status after worker 1/2 alone})};
  the classifier-utility tests below read these GANs too.
  """
  out = {}
  for class_name in ('normal', 'bacterial'):
    study = smoke_study(demo_tfds_dir, class_name)
    folder = tmp_path_factory.mktemp(f'noise_{class_name}')
    pipeline.run(study, str(folder), worker='1/2')
    after_first = statuses(folder, spec.runs(study))
    pipeline.run(study, str(folder), worker='0/2')
    out[class_name] = (study, folder, after_first)
  return out


def test_workers_failures_rerun_and_report(noise_studies):
  study, tmp_path, after_first_worker = noise_studies['normal']
  runs = spec.runs(study)
  assert len(runs) == 3  # default, data_noise=0.2 and the diverging arm, 1 seed.
  second_share = {r.name for r in spec.share(runs, (1, 2))}
  assert {n for n, s in after_first_worker.items() if s != results.PENDING} == second_share

  done = statuses(tmp_path, runs)
  assert done.pop('diverges/seed0') == results.FAILED
  assert set(done.values()) == {results.FINISHED}
  failed = results.read_run(tmp_path / 'diverges/seed0')
  assert failed['error'].startswith('diverged: NaN/Inf')

  for run in runs:
    if run.arm != 'diverges':
      scores = results.read_run(tmp_path / run.name)['scores']
      assert [s['step'] for s in scores] == [2, 4]
      assert all(s['fd_pixels'] > 0 and s['seconds'] > 0 for s in scores)
      assert scores[1]['images_seen'] == 4 * study.base.batch_size

  # Real training images scored as samples: the report's floor.
  floor = json.loads((tmp_path / reference.REFERENCE_FILE).read_text())
  assert len(floor['subsets']) == study.eval.reference_subsets == 1
  assert floor['subsets'][0]['num_fake'] == study.eval.num_samples

  # A rerun trains and scores nothing again, and rebuilds the report.
  marker = tmp_path / 'default/seed0' / results.RUN_FILE
  before = marker.stat().st_mtime_ns
  floor_before = (tmp_path / reference.REFERENCE_FILE).stat().st_mtime_ns
  (tmp_path / 'report.md').unlink()
  pipeline.run(study, str(tmp_path))
  assert marker.stat().st_mtime_ns == before
  assert (tmp_path / reference.REFERENCE_FILE).stat().st_mtime_ns == floor_before
  report = (tmp_path / 'report.md').read_text()
  assert '`diverges` seed 0: diverged' in report and '| `data_noise=0.2` | 1 ok |' in report
  assert '| real `train` images (reference) | 1 subsets |' in report
  saved = json.loads((tmp_path / pipeline.RESULTS_FILE).read_text())
  assert saved['summary']['reference']['values']['fd_pixels'] == [
    pytest.approx(floor['subsets'][0]['fd_pixels'], rel=1e-3)
  ]
  assert saved['summary']['arms']['diverges']['runs'] == []
  # A run that keeps a best checkpoint reports it as its final value.
  noisy = tmp_path / 'data_noise=0.2/seed0'
  best = json.loads((noisy / results.BEST_FILE).read_text())
  evaluated = [json.loads(l) for l in (noisy / 'metrics.jsonl').open() if 'eval/' in l]
  assert best['step'] == min(evaluated, key=lambda l: l['eval/fd_pixels'])['step']
  assert best['step'] in (2, 4)
  (final,) = saved['summary']['arms']['data_noise=0.2']['runs']
  assert final['final']['fd_pixels'] == pytest.approx(best['fd_pixels'], rel=1e-3)
  assert not (tmp_path / 'default/seed0' / results.BEST_FILE).exists()
  assert 'Arms that keep a best checkpoint (`data_noise=0.2`' in report
  for name in (
    'curves.png',
    'pareto.png',
    'final_grids.png',
    'default_seed0_progression.gif',
  ):
    assert (tmp_path / 'figures' / name).is_file(), name


def test_utility_study_trains_gans_samples_and_classifiers(noise_studies, demo_tfds_dir, tmp_path):
  study = utility_config.get_config('smoke')
  study.classifier.data_dir = demo_tfds_dir
  # normal reads the noise study's control run; bacterial's GAN is trained here.
  study.gan.workdirs.normal = str(noise_studies['normal'][1] / 'default/seed{seed}')
  runs = utility.classifier_runs(study, tmp_path)
  assert [r.name for r in runs] == [
    'normal+bacterial/real/fraction1/seed0',
    'normal+bacterial/synthetic/seed0',
    'normal+bacterial/mixed/fraction1/seed0',
  ]
  assert [g.name for g in utility.gans_to_train(study, runs, tmp_path)] == ['gan/bacterial/seed0']

  pipeline.run(study, str(tmp_path))
  assert results.read_run(tmp_path / 'gan/bacterial/seed0')['status'] == results.FINISHED
  records = utility.collect(runs, tmp_path)
  assert all('test' in r for r in records), records
  counts = {r['arm']: r['train_images'] for r in records}
  assert counts['synthetic'] == 2 * study.num_synthetic  # Every sample of both GANs.
  assert counts['mixed'] == 2 * counts['real']  # One synthetic per real image, per class.
  tstr = json.loads(
    (
      tmp_path
      / 'synthetic'
      / next(
        p.name for p in (tmp_path / 'synthetic').iterdir() if p.name.startswith('gan__bacterial')
      )
      / 'manifest.json'
    ).read_text()
  )
  assert tstr['class_name'] == 'bacterial' and tstr['num_images'] == study.num_synthetic

  saved = json.loads((tmp_path / 'results.json').read_text())
  assert set(saved['summary']['tstr_over_trtr']['normal+bacterial']) == {
    'accuracy',
    'pneumonia_auc',
  }
  report = (tmp_path / 'report.md').read_text()
  assert '## TSTR / TRTR' in report and '| normal vs bacterial | `synthetic` | - | 1 |' in report
  assert (tmp_path / 'figures/utility_accuracy.png').is_file()

  # A rerun trains nothing again.
  marker = tmp_path / 'classifier' / runs[1].name / 'metrics.json'
  before = marker.stat().st_mtime_ns
  pipeline.run(study, str(tmp_path))
  assert marker.stat().st_mtime_ns == before


def test_gan_utility_study_sets_tstr_accuracy_against_fd(noise_studies, demo_tfds_dir, tmp_path):
  study = gan_utility_config.get_config('noise,smoke')
  study.classifier.data_dir = demo_tfds_dir
  for class_name in ('normal', 'bacterial'):
    study.gan_studies[class_name] = str(noise_studies[class_name][1])
  runs = utility.classifier_runs(study, tmp_path)
  # The diverged arm exists for normal only, so it is not a GAN pair.
  assert [r.name for r in runs] == ['tstr/default/seed0', 'tstr/data_noise=0.2/seed0']
  # Label order, not the config's alphabetical keys: normal must be label 0.
  assert {r.config.classes for r in runs} == {'normal,bacterial'}

  pipeline.run(study, str(tmp_path))
  saved = json.loads((tmp_path / 'results.json').read_text())
  arms = saved['summary']['arms']
  assert set(arms) == {'default', 'data_noise=0.2'}
  assert all(a['runs'] == 1 and a['fd_pixels']['mean'] > 0 for a in arms.values())
  assert all(0.0 <= r['test']['accuracy'] <= 1.0 for r in saved['runs'])
  report = (tmp_path / 'report.md').read_text()
  assert '## Does fd_pixels predict usefulness?' in report
  assert (tmp_path / 'figures/fd_vs_tstr_accuracy.png').is_file()


def study_command(workdir, data_dir, *extra):
  return [
    sys.executable,
    '-m',
    'cxrgan_jax.study',
    f'--config={ROOT / "configs/studies/noise.py"}:normal,smoke',
    f'--config.base.data_dir={data_dir}',
    f'--workdir={workdir}',
    *extra,
  ]


def subprocess_env(cache_dir=None):
  return dict(e2e.subprocess_env(cache_dir), PYTHONPATH=str(ROOT))


def test_sigkilled_study_resumes_with_the_same_command(demo_tfds_dir, tmp_path, compilation_cache):
  # Worker 0 of 5 owns exactly one run: default/seed0. 8 steps instead of the
  # smoke budget's 4 leave the run 6 steps and 3 scorings to go when it is
  # killed after its first checkpoint: with 4, a fast machine could finish
  # the run between two polls.
  command = study_command(tmp_path, demo_tfds_dir, '--worker=0/5', '--config.budget.steps=8')
  proc = subprocess.Popen(
    command,
    cwd=ROOT,
    env=subprocess_env(compilation_cache),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
  )
  first_checkpoint = tmp_path / 'default/seed0/checkpoints/2'
  deadline = time.time() + 300
  while not first_checkpoint.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert first_checkpoint.exists(), proc.stderr.read().decode()[-3000:]
  run_dir = tmp_path / 'default/seed0'
  assert not (run_dir / results.RUN_FILE).exists()  # Killed before it finished.

  done = subprocess.run(
    command, cwd=ROOT, env=subprocess_env(compilation_cache), capture_output=True, text=True
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'Resumed from step' in done.stderr
  assert results.read_run(run_dir)['status'] == results.FINISHED
  assert [s['step'] for s in results.read_run(run_dir)['scores']] == [2, 4, 6, 8]
  assert (tmp_path / 'report.md').is_file()


def test_dry_run_and_bad_study_fail_before_training(tmp_path):
  dry = subprocess.run(
    study_command(tmp_path, '/nonexistent', '--dry_run', '--worker=1/2'),
    cwd=ROOT,
    env=subprocess_env(),
    capture_output=True,
    text=True,
  )
  assert dry.returncode == 0, dry.stderr[-2000:]
  assert (
    'worker 1/2: 2 of 5 runs' in dry.stdout
    and 'data_noise=0.05/seed0  data_noise_std=0.05' in dry.stdout
  )
  assert not any(tmp_path.iterdir())

  bad = subprocess.run(
    [*study_command(tmp_path, '/nonexistent'), '--config.eval.every_steps=0'],
    cwd=ROOT,
    env=subprocess_env(),
    capture_output=True,
    text=True,
  )
  assert bad.returncode != 0
  assert 'eval.every_steps must be an int >= 1' in bad.stderr
  assert not any(tmp_path.iterdir())
