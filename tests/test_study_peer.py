"""The PyTorch peer arm (bench/study_peer.py) trains, is scored like an arm, and is reported."""

import pathlib
import subprocess
import sys

import pytest

from configs.studies import noise
from cxrgan_jax import files
from cxrgan_jax.study import pipeline
from cxrgan_jax.study import results
from cxrgan_jax.study import spec

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_unknown_peer_is_refused():
  study = noise.get_config('normal,smoke')
  study.peers = ['keras_dcgan']
  with pytest.raises(spec.StudyError, match='known peers'):
    spec.peer_runs(study)


def test_peer_runs_scores_and_joins_the_report(demo_tfds_dir, tmp_path):
  pytest.importorskip('torch', reason='the peer needs torch (the bench extra)')
  study = noise.get_config('normal,smoke')
  study.base.data_dir = demo_tfds_dir
  study.arms = [a for a in study.arms if a['name'] == 'default']
  study.peers = ['torch_dcgan']
  files.write_json(tmp_path / pipeline.CONFIG_FILE, study.to_dict())
  done = subprocess.run(
    [sys.executable, '-m', 'bench.study_peer', f'--study_dir={tmp_path}', '--threads=1'],
    cwd=ROOT,
    capture_output=True,
    text=True,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  run_dir = tmp_path / 'peer=torch_dcgan/seed0'
  record = results.read_run(run_dir)
  assert record['status'] == results.FINISHED and record['steps'] == study.budget.steps
  assert [s['step'] for s in record['scores']] == [2, 4]
  assert all(
    s['fd_pixels'] > 0 and s['num_fake'] == study.eval.num_samples for s in record['scores']
  )
  assert (run_dir / 'samples/step_000004.png').is_file()

  pipeline.run(study, str(tmp_path), report_only=True)
  report = (tmp_path / 'report.md').read_text()
  assert '| `peer=torch_dcgan` | 1 ok |' in report and '| `default` | 0 ok |' in report
