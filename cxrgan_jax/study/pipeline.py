"""One study call: check every run, train and score this worker's share, score the
real-image reference, report."""

import pathlib
import sys

from absl import logging
import ml_collections

from cxrgan_jax import files
from cxrgan_jax.study import reference
from cxrgan_jax.study import report
from cxrgan_jax.study import results
from cxrgan_jax.study import runner
from cxrgan_jax.study import scoring
from cxrgan_jax.study import spec
from cxrgan_jax.study import utility
from cxrgan_jax.study import utility_report

RESULTS_FILE = 'results.json'
CONFIG_FILE = results.CONFIG_FILE


def describe(runs: list[spec.Run], total: int, worker: tuple[int, int]) -> str:
  """The --dry_run listing: one line per run with its overrides."""
  width = max([len(r.name) for r in runs] or [0])
  lines = [f'worker {worker[0]}/{worker[1]}: {len(runs)} of {total} runs']
  for run in runs:
    overrides = ', '.join(f'{k}={v!r}' for k, v in run.overrides.items()) or '(base config)'
    lines.append(f'  {run.name:<{width}}  {overrides}')
  return '\n'.join(lines)


def _report_settings(study: ml_collections.ConfigDict) -> dict:
  settings = study.get('report') or ml_collections.ConfigDict()
  metrics = dict(settings.get('metrics') or [('fd_cxr', True)])
  threshold = settings.get('threshold')
  return {
    'metrics': metrics,
    'threshold': tuple(threshold) if threshold else None,
    'margin': float(settings.get('margin', 0.1)),
    'control': spec.control_arm(study),
  }


def summarize(
  study: ml_collections.ConfigDict, study_dir: pathlib.Path, all_runs: list[spec.Run]
) -> tuple[list[dict], dict, bool]:
  """(records, summary, results_only) of a study folder.

  A folder with no run folders but a results.json (a study's committed
  results, cloned elsewhere) takes its records from that file: results_only.
  """
  saved = study_dir / RESULTS_FILE
  results_only = saved.exists() and not any((study_dir / r.name).exists() for r in all_runs)
  if results_only:
    records = results.from_saved(report.read_results(saved)[0], all_runs)
  else:
    records = results.collect(study_dir, all_runs)
  # Summarised as saved, so a re-render from results.json alone gives the same summary.
  records = files.round_floats(records, report.RESULTS_DIGITS)
  settings = _report_settings(study)
  summary = results.summarize(records, **settings)
  subsets = files.round_floats(reference.read(study, study_dir), report.RESULTS_DIGITS)
  floor = reference.summarize(subsets, list(settings['metrics']))
  if floor:
    summary['reference'] = floor
  return records, summary, results_only


def write_report(
  study: ml_collections.ConfigDict, study_dir: pathlib.Path, all_runs: list[spec.Run]
) -> pathlib.Path:
  """results.json and report.md; a results-only folder keeps its sample figures,
  which only the run folders could redraw."""
  records, summary, results_only = summarize(study, study_dir, all_runs)
  report.write_results(study_dir / RESULTS_FILE, records, summary)
  return report.write(study, study_dir, records, summary, keep_sample_figures=results_only)


def run(
  study: ml_collections.ConfigDict,
  workdir: str,
  *,
  dry_run: bool = False,
  worker: str = '0/1',
  report_only: bool = False,
) -> pathlib.Path | None:
  """Returns the report's path (None for a dry run)."""
  if study.get('kind', 'gan') != 'gan':
    return run_classifier_study(
      study, workdir, dry_run=dry_run, worker=worker, report_only=report_only
    )
  all_runs = spec.runs(study)  # Fails here, naming the field, before anything trains.
  peers = spec.peer_runs(study)  # Trained by bench/study_peer.py; reported with the arms.
  index, count = spec.parse_worker(worker)
  if dry_run:
    print(describe(spec.share(all_runs, (index, count)), len(all_runs), (index, count)))
    sys.stdout.flush()
    return None
  study_dir = pathlib.Path(workdir).absolute()
  if not report_only:
    runner.check_runs(all_runs)
    scorer = scoring.Scorer(study)
    files.write_json(study_dir / CONFIG_FILE, study.to_dict())
    mine = spec.share(all_runs, (index, count))
    for i, one in enumerate(mine):
      logging.info('study: run %d/%d of worker %d/%d: %s', i + 1, len(mine), index, count, one.name)
      record = runner.train_run(one, study_dir / one.name)
      if record['status'] == results.FINISHED:
        scorer.score_run(one, study_dir / one.name)
  if reference.num_subsets(study):  # Real images scored as samples: the report's floor.
    reference.score(study, study_dir)
  path = write_report(study, study_dir, all_runs + peers)
  logging.info('study: report at %s', path)
  return path


def run_classifier_study(
  study: ml_collections.ConfigDict,
  workdir: str,
  *,
  dry_run: bool = False,
  worker: str = '0/1',
  report_only: bool = False,
) -> pathlib.Path | None:
  """The classifier-utility kinds (study.utility): GANs -> samples -> classifiers -> report."""
  study_dir = pathlib.Path(workdir).absolute()
  runs = utility.classifier_runs(study, study_dir)  # Fails here, naming the field.
  index, count = spec.parse_worker(worker)
  if dry_run:
    gans = utility.gans_to_train(study, runs, study_dir)
    lines = [f'worker {index}/{count}: GANs to train: {[g.name for g in gans] or "none"}']
    for run in spec.share(runs, (index, count)):
      sources = ', '.join(d for _, d in run.gans) or 'real data only'
      lines.append(f'  {run.name}  ({sources})')
    print('\n'.join(lines))
    sys.stdout.flush()
    return None
  if not report_only:
    runner.check_runs(utility.gans_to_train(study, runs, study_dir))
    files.write_json(study_dir / CONFIG_FILE, study.to_dict())
    utility.train_share(study, study_dir, runs, (index, count))
  _, path = utility_report.write(study, study_dir, utility.collect(runs, study_dir))
  logging.info('study: report at %s', path)
  return path
