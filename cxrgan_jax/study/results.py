"""The study's numbers: per-run records on disk -> per-arm summaries with intervals.

Each run directory holds, besides the ordinary training files:
  study_run.json      {'status': 'finished'|'failed', 'error': str, 'train_seconds',
                       'steps', 'images_per_sec'}
  study_scores.jsonl  one line per scored checkpoint: {'step', 'seconds',
                       'images_seen', <metric>: float, ...}
  study_best.json     runs that keep a best checkpoint (eval_every_steps > 0):
                       its score, a point as above; it is the run's final value
Everything in the report is derived from these, so `--report_only` can
rebuild it anywhere the small files were copied.
"""

from collections.abc import Sequence
import json
import math
import pathlib
from typing import Any

from cxrgan_jax.study import spec
from cxrgan_jax.study import stats

RUN_FILE = 'study_run.json'
CONFIG_FILE = 'study_config.json'  # In the study folder: its config, saved by every call.
SCORES_FILE = 'study_scores.jsonl'
BEST_FILE = 'study_best.json'
FINISHED, FAILED, PENDING = 'finished', 'failed', 'pending'


def read_run(run_dir: pathlib.Path) -> dict[str, Any]:
  """The run's status record (status 'pending' if it never finished) and its scores."""
  path = run_dir / RUN_FILE
  record = json.loads(path.read_text()) if path.exists() else {'status': PENDING}
  scores_path = run_dir / SCORES_FILE
  scores = {}
  if scores_path.exists():
    for line in scores_path.read_text().splitlines():
      try:
        point = json.loads(line)
      except json.JSONDecodeError:
        continue  # A line torn by a kill mid-write; that step is scored again.
      scores[point['step']] = point
  record['scores'] = [scores[step] for step in sorted(scores)]
  best_path = run_dir / BEST_FILE
  if best_path.exists():
    record['best'] = json.loads(best_path.read_text())
  return record


def time_to_threshold(scores: Sequence[dict], metric: str, threshold: float) -> float | None:
  """Training seconds at the first scored point with metric <= threshold."""
  for point in scores:
    value = point.get(metric)
    if value is not None and value <= threshold:
      return float(point['seconds'])
  return None


def _final(record: dict, metric: str) -> float | None:
  """The run's kept best checkpoint's value if it keeps one (what `sample
  --which=best` samples), else its last scored checkpoint's."""
  best = record.get('best') or {}
  if best.get(metric) is not None and math.isfinite(best[metric]):
    return float(best[metric])
  scores = record['scores']
  values = [s[metric] for s in scores if s.get(metric) is not None and math.isfinite(s[metric])]
  return float(values[-1]) if values else None


def collect(study_dir: pathlib.Path, runs: Sequence[spec.Run]) -> list[dict[str, Any]]:
  """One record per run of the study, in the study's order."""
  return _records(runs, lambda run: read_run(study_dir / run.name))


def from_saved(saved: Sequence[dict], runs: Sequence[spec.Run]) -> list[dict[str, Any]]:
  """collect()'s records, taken from a results.json's runs instead of run folders."""
  by_name = {r['name']: r for r in saved}
  return _records(runs, lambda run: dict(by_name.get(run.name, {'status': PENDING, 'scores': []})))


def _records(runs: Sequence[spec.Run], read) -> list[dict[str, Any]]:
  """read(run) -> its status record, named after the run, for every run in order."""
  out = []
  for run in runs:
    record = read(run)
    record.update(name=run.name, arm=run.arm, seed=run.seed, overrides=run.overrides)
    out.append(record)
  return out


def summarize(
  records: Sequence[dict],
  *,
  metrics: dict[str, bool],
  threshold: tuple[str, float] | None,
  margin: float,
  control: str = spec.CONTROL_ARM,
) -> dict[str, Any]:
  """Per-arm means with 95% intervals over seeds, and verdicts against `control`.

  metrics: name -> lower_is_better. Only finished runs count; failed ones are
  listed with their error so a diverging arm is visible, not silently dropped.
  """
  arms: dict[str, dict[str, Any]] = {}
  for record in records:
    arm = arms.setdefault(
      record['arm'], {'overrides': record['overrides'], 'runs': [], 'failed': []}
    )
    if record['status'] == FAILED:
      arm['failed'].append({'seed': record['seed'], 'error': record.get('error', '')})
    if record['status'] != FINISHED:
      continue
    finals = {m: _final(record, m) for m in metrics}
    run = {
      'seed': record['seed'],
      'final': finals,
      'train_seconds': record.get('train_seconds'),
      'images_per_sec': record.get('images_per_sec'),
    }
    if threshold:
      run['time_to_threshold'] = time_to_threshold(record['scores'], *threshold)
    arm['runs'].append(run)

  control_name, control = control, arms.get(control)
  for name, arm in arms.items():
    arm['summary'] = {}
    for metric, lower in metrics.items():
      values = _final_values(arm, metric)
      if not values:
        continue
      entry = {'mean': stats.mean_interval(values).__dict__}
      control_values = _final_values(control, metric) if control else []
      if control_values and name != control_name:
        entry.update(_versus(values, control_values, lower_is_better=lower, margin=margin))
      arm['summary'][metric] = entry
    for key in ('train_seconds', 'images_per_sec'):
      values = [r[key] for r in arm['runs'] if r.get(key) is not None]
      if values:
        arm['summary'][key] = {'mean': stats.mean_interval(values).__dict__}
    if threshold:
      reached = [r['time_to_threshold'] for r in arm['runs']]
      arm['summary']['time_to_threshold'] = {
        'reached': sum(t is not None for t in reached),
        'of': len(reached),
        'mean_seconds': (
          sum(t for t in reached if t is not None) / max(1, sum(t is not None for t in reached))
          if any(t is not None for t in reached)
          else None
        ),
      }
  return {
    'metrics': metrics,
    'threshold': list(threshold) if threshold else None,
    'margin': margin,
    'control': control_name,
    'arms': arms,
    'against_peers': against_peers(arms, metrics, margin),
  }


def _final_values(arm: dict, metric: str) -> list[float]:
  return [r['final'][metric] for r in arm['runs'] if r['final'][metric] is not None]


def _versus(
  values: list[float], reference: list[float], *, lower_is_better: bool, margin: float
) -> dict[str, Any]:
  """mean(values) - mean(reference) with its interval, and the verdict on it."""
  diff = stats.difference_interval(values, reference)
  return {
    'difference': diff.__dict__,
    'verdict': stats.verdict(
      diff, sum(reference) / len(reference), lower_is_better=lower_is_better, margin=margin
    ),
  }


def against_peers(arms: dict, metrics: dict[str, bool], margin: float) -> dict[str, dict]:
  """peer arm -> arm -> metric -> the arm's difference from the peer and its verdict.

  The question a study's peer asks is whether an arm beats the program a user
  would pick instead, so every arm is compared with every peer, per metric.
  """
  out: dict[str, dict] = {}
  for peer_name, peer in arms.items():
    if not peer_name.startswith(spec.PEER_PREFIX):
      continue
    table = out.setdefault(peer_name, {})
    for name, arm in arms.items():
      if name.startswith(spec.PEER_PREFIX):
        continue
      for metric, lower in metrics.items():
        values, peer_values = _final_values(arm, metric), _final_values(peer, metric)
        if not values or not peer_values:
          continue
        table.setdefault(name, {})[metric] = _versus(
          values, peer_values, lower_is_better=lower, margin=margin
        )
  return out


def interval(entry: dict) -> stats.Interval:
  return stats.Interval(**entry)
