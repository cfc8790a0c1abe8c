"""bench/retro_keep_best.py's selection: the lowest validation FD from a start step, against the last."""

import pytest

from bench import retro_keep_best


def run(*rows):
  return {
    'rows': [dict(step=s, validation_fd_cxr=v, test_fd_cxr=t, test_one_nn=n) for s, v, t, n in rows]
  }


def test_keeps_the_lowest_validation_fd_from_the_start_step_and_compares_with_the_last():
  runs = [
    # An early checkpoint has the lowest validation FD; from step 2 on, step 3.
    run((1, 0.1, 5.0, 0.9), (2, 0.5, 2.0, 0.7), (3, 0.3, 1.0, 0.6), (4, 0.4, 3.0, 0.65)),
    run((1, 0.2, 4.0, 0.8), (2, 0.6, 2.5, 0.7), (3, 0.9, 1.5, 0.6), (4, 0.5, 2.0, 0.62)),
  ]
  from_start = retro_keep_best.changes(runs, 0)
  assert from_start['test_fd_cxr']['mean'] == pytest.approx(((5.0 - 3.0) + (4.0 - 2.0)) / 2)
  later = retro_keep_best.changes(runs, 2)
  assert later['test_fd_cxr']['mean'] == pytest.approx(((1.0 - 3.0) + (2.0 - 2.0)) / 2)
  assert later['test_one_nn']['mean'] == pytest.approx(((0.6 - 0.65) + (0.62 - 0.62)) / 2)
  # Past every checkpoint: the last one is kept, so nothing changes.
  assert retro_keep_best.changes(runs, 9)['test_fd_cxr']['mean'] == 0.0
