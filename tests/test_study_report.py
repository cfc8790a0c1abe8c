"""results.json and report.md from saved run records (no training here)."""

import json

from matplotlib.colors import to_rgb
import ml_collections
import numpy as np
from PIL import Image

from configs import base as base_config
from cxrgan_jax import files
from cxrgan_jax import images
from cxrgan_jax.study import pipeline
from cxrgan_jax.study import reference
from cxrgan_jax.study import report
from cxrgan_jax.study import results
from cxrgan_jax.study import spec


def make_study():
  study = ml_collections.ConfigDict()
  study.name = 'toy'
  study.base = base_config.get_config()
  study.arms = [
    {'name': 'default', 'overrides': {}},
    {'name': 'better', 'overrides': {'loss': 'hinge'}},
    {'name': 'broken', 'overrides': {'loss': 'minimax'}},
  ]
  study.seeds = [0, 1, 2]
  study.budget = ml_collections.ConfigDict(dict(steps=30, minutes=0.0))
  study.eval = ml_collections.ConfigDict(dict(every_steps=10, split='test'))
  return study


def two_arm_study(progression: str = 'first_seed'):
  """make_study's `default` and `better` arms only."""
  study = make_study()
  study.arms = study.arms[:2]
  study.report = ml_collections.ConfigDict(dict(progression=progression))
  return study


def write_run(run_dir, status, fds, seconds_per_point=60.0):
  files.write_json(
    run_dir / results.RUN_FILE,
    {
      'status': status,
      'train_seconds': seconds_per_point * len(fds),
      'images_per_sec': 50.0,
      **({'error': 'diverged: NaN at step 3'} if status == results.FAILED else {}),
    },
  )
  lines = [
    json.dumps(
      {
        'step': 10 * (i + 1),
        'seconds': seconds_per_point * (i + 1),
        'images_seen': 320 * (i + 1),
        'fd_cxr': fd,
      }
    )
    for i, fd in enumerate(fds)
  ]
  files.write_text(run_dir / results.SCORES_FILE, '\n'.join(lines) + '\n')
  for i in range(len(fds)):
    grid = np.full((20, 20), 40 * i, np.uint8)
    (run_dir / 'samples').mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(run_dir / 'samples' / f'step_{10 * (i + 1):06d}.png')


def test_summary_verdicts_failures_and_figures(tmp_path):
  study = make_study()
  runs = spec.runs(study)
  for run in runs:
    run_dir = tmp_path / run.name
    if run.arm == 'default':
      write_run(run_dir, results.FINISHED, [30.0, 20.0, 10.0 + run.seed * 0.1])
    elif run.arm == 'better':
      write_run(run_dir, results.FINISHED, [25.0, 10.0, 5.0 + run.seed * 0.1])
    elif run.seed == 0:
      write_run(run_dir, results.FAILED, [40.0])
    # broken/seed1 and seed2 never ran: pending.
  records = results.collect(tmp_path, runs)
  assert [r['status'] for r in records if r['arm'] == 'broken'] == ['failed', 'pending', 'pending']
  summary = results.summarize(
    records, metrics={'fd_cxr': True}, threshold=('fd_cxr', 12.0), margin=0.1
  )
  better = summary['arms']['better']['summary']
  assert better['fd_cxr']['mean']['mean'] == np.mean([5.0, 5.1, 5.2])
  assert better['fd_cxr']['difference']['mean'] == np.mean([5.0, 5.1, 5.2]) - np.mean(
    [10.0, 10.1, 10.2]
  )
  assert better['fd_cxr']['verdict'] == 'helps'
  assert better['time_to_threshold'] == {'reached': 3, 'of': 3, 'mean_seconds': 120.0}
  assert summary['arms']['default']['summary']['time_to_threshold']['mean_seconds'] == 180.0
  broken = summary['arms']['broken']
  assert broken['runs'] == [] and broken['failed'][0]['error'].startswith('diverged')

  path = report.write(study, tmp_path, records, summary)
  text = path.read_text()
  assert '| `better` | 3 ok |' in text and '| helps |' in text
  assert '`broken` seed 0: diverged: NaN at step 3' in text
  figures = tmp_path / report.FIGURES
  for name in (
    'curves.png',
    'pareto.png',
    'bars.png',
    'final_grids.png',
    'better_seed1_progression.png',
    'better_seed1_progression.gif',
  ):
    assert (figures / name).stat().st_size > 0, name
    assert f'({report.FIGURES}/{name})' in text
  # Sample figures: gray, posterised; plots: a small palette.
  for name in ('final_grids.png', 'better_seed1_progression.png'):
    figure = Image.open(figures / name)
    assert figure.mode == 'L', name
    assert len(np.unique(np.asarray(figure))) <= report.SAMPLE_GRAY_LEVELS, name
  plot = Image.open(figures / 'curves.png')
  assert plot.mode == 'P' and len(plot.getcolors()) <= report.PLOT_COLOURS
  gif = Image.open(figures / 'default_seed0_progression.gif')
  assert gif.n_frames == 3
  gif.seek(2)  # Posterised to GIF_GRAY_LEVELS: 80 -> the centre of its level.
  step = 256 // report.GIF_GRAY_LEVELS
  assert set(np.asarray(gif.convert('L')).ravel()) == {80 // step * step + step // 2}


def test_grid_crop_keeps_the_top_left_samples(tmp_path):
  samples = np.arange(36, dtype=np.uint8).reshape(36, 1, 1, 1) * np.ones((1, 8, 8, 1), np.uint8)
  path = tmp_path / 'step_000010.png'
  images.write_png(path, images.make_grid(samples))  # 6 x 6 samples of 8 x 8, pad 2.
  crop = np.asarray(report.grid_crop(path, resolution=8, side=2))
  assert crop.shape == (18, 18)
  assert [crop[0, 0], crop[0, 10], crop[10, 0], crop[10, 10]] == [0, 1, 6, 7]
  assert (crop[8:10] == 0).all()  # The padding between rows.
  whole = report.grid_crop(path, resolution=16, side=2)  # Not this grid's size.
  assert whole.size == (58, 58)


def test_seed_band_counts_each_seed_inside_its_own_range():
  short = ([0.0, 1.0], [4.0, 2.0])
  long = ([0.0, 1.0, 2.0], [0.0, 2.0, 6.0])
  t, median, low, high = report.seed_band([short, long])
  assert t[0] == 0.0 and t[-1] == 2.0 and t.size == report.CURVE_POINTS
  np.testing.assert_allclose([median[0], low[0], high[0]], [2.0, 0.0, 4.0])
  after = t > 1.0  # Only the long run was scored here.
  np.testing.assert_allclose(median[after], np.interp(t[after], *long))
  np.testing.assert_allclose(low[after], high[after])
  _, median, low, _ = report.seed_band([short, short, long])  # One seed of 3 past t = 1.
  assert np.all(np.isnan(median[after])) and not np.any(np.isnan(low[after]))


def test_results_written_before_score_columns_still_read(tmp_path):
  old = {
    'runs': [{'name': 'a/seed0', 'scores': {'columns': ['step', 'fd'], 'rows': [[10, 2.5]]}}],
    'summary': {},
  }
  (tmp_path / 'results.json').write_text(json.dumps(old))
  records, _ = report.read_results(tmp_path / 'results.json')
  assert records[0]['scores'] == [{'step': 10, 'fd': 2.5}]


def test_pareto_front():
  points = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (0.5, 9.0), (2.0, 3.0)]
  assert report._pareto_front(points) == {0, 1, 3, 4}


def test_every_metric_table_and_first_seed_progression(tmp_path):
  study = two_arm_study()
  runs = spec.runs(study)
  for run in runs:
    fds = [20.0, 10.0 + run.seed] if run.arm == 'default' else [20.0, 5.0 + run.seed]
    write_run(tmp_path / run.name, results.FINISHED, fds)
    with (tmp_path / run.name / results.SCORES_FILE).open('a') as f:  # A second metric.
      f.write(json.dumps({'step': 20, 'seconds': 120.0, 'one_nn': 0.8 - 0.01 * run.seed}) + '\n')
  records = results.collect(tmp_path, runs)
  summary = results.summarize(
    records, metrics={'fd_cxr': True, 'one_nn': True}, threshold=None, margin=0.1
  )
  text = report.write(study, tmp_path, records, summary).read_text()
  assert '## Every metric against `default`' in text
  assert '| `better` | 0 [' in text and 'negligible |' in text  # Same 1-NN as default.
  made = sorted(p.name for p in (tmp_path / report.FIGURES).glob('*_progression.png'))
  assert made == ['better_seed0_progression.png', 'default_seed0_progression.png']
  study.report.progression = 'none'
  for path in (tmp_path / report.FIGURES).glob('*_progression.*'):
    path.unlink()
  text = report.write(study, tmp_path, records, summary).read_text()
  assert 'progression' not in text
  assert not list((tmp_path / report.FIGURES).glob('*_progression.*'))


def test_every_arm_against_the_peer(tmp_path):
  """Each arm's difference from a peer arm, with the verdict in the arm's favour."""
  study = make_study()
  study.arms = study.arms[:2]
  study.peers = ['torch_dcgan']
  runs = spec.runs(study) + spec.peer_runs(study)
  finals = {'default': 10.0, 'better': 5.0, 'peer=torch_dcgan': 8.0}
  for run in runs:
    write_run(tmp_path / run.name, results.FINISHED, [20.0, finals[run.arm] + 0.1 * run.seed])
  records = results.collect(tmp_path, runs)
  summary = results.summarize(records, metrics={'fd_cxr': True}, threshold=None, margin=0.1)
  table = summary['against_peers']['peer=torch_dcgan']
  assert set(table) == {'default', 'better'}
  assert np.isclose(table['better']['fd_cxr']['difference']['mean'], -3.0)
  assert table['better']['fd_cxr']['verdict'] == 'helps'
  assert table['default']['fd_cxr']['verdict'] == 'hurts'
  text = report.write(study, tmp_path, records, summary).read_text()
  assert '## Against `peer=torch_dcgan`' in text
  assert '| `better` | -3 [' in text and 'helps |' in text
  assert 'Budget per run: 30 steps or 0' not in text and 'Budget per run: 30 steps.' in text


def test_verdicts_against_a_named_control_arm(tmp_path):
  """report.control: a study without a 'default' arm compares against the one it names."""
  study = make_study()
  study.arms = [
    {'name': 'chosen', 'overrides': {'batch_size': 16}},
    {'name': 'chosen+more', 'overrides': {'batch_size': 16, 'loss': 'hinge'}},
  ]
  study.report = ml_collections.ConfigDict(dict(control='chosen', progression='none'))
  runs = spec.runs(study)
  for run in runs:
    final = 10.0 if run.arm == 'chosen' else 5.0
    write_run(tmp_path / run.name, results.FINISHED, [20.0, final + 0.1 * run.seed])
  records = results.collect(tmp_path, runs)
  summary = results.summarize(
    records, metrics={'fd_cxr': True}, threshold=None, margin=0.1, control='chosen'
  )
  assert summary['control'] == 'chosen'
  assert 'verdict' not in summary['arms']['chosen']['summary']['fd_cxr']
  assert summary['arms']['chosen+more']['summary']['fd_cxr']['verdict'] == 'helps'
  text = report.write(study, tmp_path, records, summary).read_text()
  assert 'verdicts against `chosen`' in text and 'Δfd_cxr vs chosen' in text
  assert '| `chosen+more` | 3 ok |' in text and '| helps |' in text


def test_committed_results_alone_re_render_the_report(tmp_path):
  """A study folder holding only results.json and figures (a clone) re-renders from them."""
  study = two_arm_study()
  runs = spec.runs(study)
  for run in runs:
    final = 10.0 if run.arm == 'default' else 5.0
    final += run.seed / 7  # More digits than results.json keeps.
    write_run(tmp_path / 'work' / run.name, results.FINISHED, [20.0, final])
  pipeline.write_report(study, tmp_path / 'work', runs)
  saved = json.loads((tmp_path / 'work' / pipeline.RESULTS_FILE).read_text())
  rows = saved['runs'][0]['scores']  # Metric names once per file, a row per point.
  assert saved['score_columns'][0] == 'step' and len(rows) == 2
  assert len(rows[0]) == len(saved['score_columns'])
  records, _ = report.read_results(tmp_path / 'work' / pipeline.RESULTS_FILE)
  assert records[0]['scores'] == results.collect(tmp_path / 'work', runs)[0]['scores']

  clone = tmp_path / 'clone'
  clone.mkdir()
  (clone / pipeline.RESULTS_FILE).write_bytes(
    (tmp_path / 'work' / pipeline.RESULTS_FILE).read_bytes()
  )
  (clone / report.FIGURES).mkdir()
  kept = ['final_grids.png', 'better_seed0_progression.png', 'better_seed0_progression.gif']
  for name in kept:
    (clone / report.FIGURES / name).write_bytes(
      (tmp_path / 'work' / report.FIGURES / name).read_bytes()
    )
  pipeline.write_report(study, clone, runs)  # The same summary from the rounded numbers.
  saved_text = (tmp_path / 'work' / pipeline.RESULTS_FILE).read_text()
  assert (clone / pipeline.RESULTS_FILE).read_text() == saved_text
  study.report.control = 'better'  # A rendering change: verdicts against another arm.
  text = pipeline.write_report(study, clone, runs).read_text()
  assert '| `default` | 3 ok |' in text and 'Δfd_cxr vs better' in text and '| hurts |' in text
  for name in kept + ['curves.png', 'pareto.png', 'bars.png']:
    assert f'({report.FIGURES}/{name})' in text, name
  assert 'default_seed0_progression' not in text  # Not kept, and nothing to redraw it from.
  again = json.loads((clone / pipeline.RESULTS_FILE).read_text())
  assert again['runs'] == saved['runs']


def test_results_write_each_run_s_unchanging_scores_once(tmp_path):
  """A column that holds one value through every run is written once per run, and reads back."""
  records = [
    {
      'name': 'a/seed0',
      'scores': [
        {'step': 10, 'fd': 2.5, 'num_real': 217, 'ref': 0.5},
        {'step': 20, 'fd': 1.5, 'num_real': 217, 'ref': 0.5},
      ],
    },
    {'name': 'a/seed1', 'scores': [{'step': 10, 'fd': 3.0, 'num_real': 217, 'ref': 0.7}]},
    {'name': 'b/seed0', 'scores': []},
    {'name': 'c/seed0', 'error': 'diverged'},
  ]
  path = tmp_path / 'results.json'
  report.write_results(path, records, {'arms': {}})
  saved = json.loads(path.read_text())
  assert saved['score_columns'] == ['step', 'fd']  # 'ref' differs between runs, not within.
  assert saved['fixed_score_columns'] == ['num_real', 'ref']
  assert saved['runs'][0]['fixed_scores'] == [217, 0.5]
  assert saved['runs'][0]['scores'] == [[10, 2.5], [20, 1.5]]
  assert report.read_results(path) == (records, {'arms': {}})
  records[0]['scores'][1]['ref'] = 0.6  # Now it changes within a run: a column again.
  report.write_results(path, records, {})
  assert 'ref' in json.loads(path.read_text())['score_columns']
  assert report.read_results(path)[0] == records


def test_real_image_reference_is_a_row_and_a_line_and_follows_its_settings(tmp_path):
  """reference.json's scores join the summary, the table and the figures; stale ones do not."""
  study = two_arm_study(progression='none')
  study.eval.reference_subsets = 2
  study.eval.num_samples = 500
  runs = spec.runs(study)
  for run in runs:
    write_run(tmp_path / run.name, results.FINISHED, [20.0, 10.0 if run.arm == 'default' else 5.0])
  subsets = [{'fd_cxr': 0.25, 'num_fake': 500}, {'fd_cxr': 0.5, 'num_fake': 500}]
  reference.save(study, tmp_path, subsets + [{'fd_cxr': 9.0, 'num_fake': 500}])
  text = pipeline.write_report(study, tmp_path, runs).read_text()
  assert 'random sets of 500 real `train` images' in text
  assert '| real `train` images (reference) | 2 subsets | 0.375 (0.25-0.5) | - |' in text
  saved = json.loads((tmp_path / pipeline.RESULTS_FILE).read_text())
  assert saved['summary']['reference'] == {
    'split': 'train',
    'num_images': 500,
    'subsets': 2,
    'values': {'fd_cxr': [0.25, 0.5]},
  }
  assert (tmp_path / report.FIGURES / 'curves.png').is_file()
  # Scores made with other settings are not this study's floor.
  study.eval.num_samples = 1000
  assert reference.read(study, tmp_path) == []
  text = pipeline.write_report(study, tmp_path, runs).read_text()
  assert 'reference' not in text
  assert 'reference' not in json.loads((tmp_path / pipeline.RESULTS_FILE).read_text())['summary']


def test_curves_keep_every_arm_colour_exactly(tmp_path):
  """The small palette must not merge thin arm lines into one colour (median cut
  alone drew blue and green arms both in teal, and missed all four here)."""
  rng = np.random.RandomState(0)
  metrics = ('fd_cxr', 'fd_pixels', 'one_nn_accuracy_cxr', 'precision_cxr')
  records = [
    {
      'arm': f'arm{a}',
      'scores': [
        {'seconds': 30.0 + 5 * i, **{m: float(rng.rand() + 0.05 * a) for m in metrics}}
        for i in range(20)
      ],
    }
    for a in range(4)
    for _ in range(5)
  ]
  report.plot_curves(records, metrics, tmp_path / 'curves.png')
  plot = Image.open(tmp_path / 'curves.png')
  assert plot.mode == 'P' and len(plot.getcolors()) <= report.PLOT_COLOURS
  drawn = {colour for _, colour in plot.convert('RGB').getcolors()}
  for a in range(4):
    assert tuple(round(255 * c) for c in to_rgb(f'C{a}')) in drawn, a
