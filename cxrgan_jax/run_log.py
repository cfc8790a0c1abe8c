"""Reading a run's metrics.jsonl: how long it trained, and how fast.

The loop appends a line every `log_every_steps` with `steps_per_sec` over the
interval since the previous line. Training time is the sum of the intervals'
durations, so it excludes the gaps while a run was stopped and counts the
compile time after each (re)start, which is what a user pays.
"""

import json
import pathlib

import numpy as np

METRICS_FILE = 'metrics.jsonl'


def _speed_lines(workdir: pathlib.Path) -> list[dict]:
  path = pathlib.Path(workdir) / METRICS_FILE
  if not path.exists():
    return []
  lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  return sorted((x for x in lines if x.get('steps_per_sec')), key=lambda x: x['step'])


def training_seconds(workdir: pathlib.Path, start_step: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(steps, cumulative training seconds at those steps), starting at (start_step, 0)."""
  steps, seconds = [start_step], [0.0]
  for line in _speed_lines(workdir):
    if line['step'] <= steps[-1]:
      continue
    seconds.append(seconds[-1] + (line['step'] - steps[-1]) / line['steps_per_sec'])
    steps.append(line['step'])
  return np.asarray(steps), np.asarray(seconds)


def seconds_at(workdir: pathlib.Path, step: int) -> float:
  """Training seconds spent up to `step` (linear between logged steps)."""
  steps, seconds = training_seconds(workdir)
  return float(np.interp(step, steps, seconds))


def images_per_second(workdir: pathlib.Path) -> float | None:
  """Median logged throughput: robust to the slow first interval (compile) of each start."""
  speeds = [x['images_per_sec'] for x in _speed_lines(workdir)]
  return float(np.median(speeds)) if speeds else None
