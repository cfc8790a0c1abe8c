"""Scores every kept checkpoint of a run with the evaluation library.

Each point is one `evaluation.suite.run` on fixed-seed samples of that step's
EMA generator against the study's real split (never the training split),
with the training split for the memorisation audit. The point is logged with
the training seconds and images seen at that step, which gives the curves of
quality against time. Points already scored are skipped, so an interrupted
scoring resumes.
"""

import json
import math
import pathlib

from absl import logging
import ml_collections

from cxrgan_jax import checkpoints
from cxrgan_jax import files
from cxrgan_jax import run_log
from cxrgan_jax.evaluation import suite
from cxrgan_jax.study import results
from cxrgan_jax.study import spec

EVAL_DIR = 'study_eval'


def scored_steps(run_dir: pathlib.Path) -> set[int]:
  return {s['step'] for s in results.read_run(run_dir)['scores']}


def suite_config(study_eval: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of the study's evaluation settings without the study's own fields
  (when to score, how many reference sets), as evaluation.suite takes them."""
  config = ml_collections.ConfigDict(study_eval.to_dict())
  for name in ('every_steps', 'reference_subsets'):
    if name in config:
      del config[name]
  return config


def eval_config(
  study_eval: ml_collections.ConfigDict, run: spec.Run, run_dir: pathlib.Path, step: int
) -> ml_collections.ConfigDict:
  """The study's evaluation settings pointed at one checkpoint of one run."""
  config = suite_config(study_eval)
  config.workdir = str(run_dir)
  config.which = 'latest'
  config.step = step
  config.samples_dir = ''
  config.dataset = run.config.dataset
  config.data_dir = run.config.data_dir
  config.output_dir = str(run_dir / EVAL_DIR / f'step_{step:06d}')
  return config


def finite_numbers(metrics: dict) -> dict:
  """The metrics that are finite numbers: what the study keeps of an evaluation."""
  return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def make_point(run_dir: pathlib.Path, step: int, images_seen: int, metrics: dict) -> dict:
  """One scored checkpoint: its finite numbers, training seconds and images seen."""
  return {
    'step': step,
    'seconds': run_log.seconds_at(run_dir, step),
    'images_seen': images_seen,
    **finite_numbers(metrics),
  }


def append_point(run_dir: pathlib.Path, step: int, images_seen: int, metrics: dict) -> dict:
  """Logs one scored checkpoint (make_point) as a line of study_scores.jsonl; returns it."""
  point = make_point(run_dir, step, images_seen, metrics)
  with (run_dir / results.SCORES_FILE).open('a') as f:  # One whole line per point.
    f.write(json.dumps(point) + '\n')
  return point


class Scorer:
  """Callable per run; holds nothing between runs but the study's settings."""

  def __init__(self, study: ml_collections.ConfigDict):
    self._eval = study.eval

  def score_run(self, run: spec.Run, run_dir: pathlib.Path) -> list[dict]:
    """Scores the run's unscored checkpoints, appending to study_scores.jsonl."""
    done = scored_steps(run_dir)
    todo = [s for s in checkpoints.available_steps(run_dir, 'latest') if s not in done]
    images_per_step = run.config.batch_size * run.config.d_steps
    points = []
    for step in todo:
      logging.info('study: scoring %s at step %d', run.name, step)
      metrics = suite.run(eval_config(self._eval, run, run_dir, step))
      points.append(append_point(run_dir, step, step * images_per_step, metrics))
    if run.config.eval_every_steps:
      self.score_best(run, run_dir)
    return points

  def score_best(self, run: spec.Run, run_dir: pathlib.Path) -> dict | None:
    """Scores the run's kept best checkpoint into study_best.json, once per best step."""
    saved = checkpoints.available_steps(run_dir, 'best')
    if not saved:
      return None
    step, path = saved[-1], run_dir / results.BEST_FILE
    if path.exists():
      point = json.loads(path.read_text())
      if point.get('step') == step:
        return point
    logging.info('study: scoring %s at its best step %d', run.name, step)
    config = eval_config(self._eval, run, run_dir, step)
    config.which = 'best'
    config.output_dir = str(run_dir / EVAL_DIR / f'best_{step:06d}')
    images_seen = step * run.config.batch_size * run.config.d_steps
    point = make_point(run_dir, step, images_seen, suite.run(config))
    files.write_json(path, point)
    return point
