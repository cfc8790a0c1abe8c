r"""Would keeping the best checkpoint have lowered a study's test scores? Measured after the fact.

  python -m bench.retro_keep_best --data_dir=TFDS --classifier_workdir=CLS \
      --out=studies/confirm_best_bacterial/retro/validation_fd.jsonl STUDY_DIR/ARM/seed* ...

For every kept checkpoint of the finished study runs given (their workdirs,
with every checkpoint the study scored), the Fréchet distance on the
validation split that an in-training evaluation would have computed there
(`config.eval`, below), or for a peer run (`STUDY_DIR/peer=torch_dcgan/
seed<k>`) on each generator it saved, beside the test-split scores the study already wrote
in study_scores.jsonl. Then, for each first eligible step, the change in
final test `fd_cxr` and 1-NN accuracy if the run had kept the checkpoint with
the lowest validation FD instead of its last one (mean over runs, 95% t
interval). This chose `eval_start_step` for configs/studies/confirm_best.py,
and tells what the same selection would have given the peer after its runs
(outside its clock); runs are only read, and nothing is trained.
"""

import argparse
import json
import pathlib
import types

import ml_collections
import numpy as np

from cxrgan_jax import checkpoints
from cxrgan_jax import files
from cxrgan_jax import models
from cxrgan_jax.evaluation import extractors
from cxrgan_jax.evaluation import in_training
from cxrgan_jax.evaluation import real_cache
from cxrgan_jax.study import results
from cxrgan_jax.study import spec
from cxrgan_jax.study import stats

START_STEPS = (0, 600, 900, 1200, 1500)


def _validation_fd_fn(config: ml_collections.ConfigDict, args):
  """images uint8 [N, R, R, 1] -> FD to the validation split in the X-ray classifier's features."""
  extractor = extractors.make_extractor(
    'cxr', inception_weights='', classifier_workdir=args.classifier_workdir
  )
  split = real_cache.SplitSpec(config.dataset, 'validation', args.data_dir, config.resolution)
  real_stats = real_cache.real_split_statistics(split, extractor, pathlib.Path(args.cache_dir))
  return lambda images: in_training.frechet_distance_to_split(
    images, extractor=extractor, real_stats=real_stats
  )


def _jax_generators(run_dir: pathlib.Path, args):
  """(step, validation FD) of every kept checkpoint, as the in-training evaluation computes it."""
  evaluator = None
  for step in checkpoints.available_steps(run_dir):
    weights = checkpoints.restore_generator(run_dir, step=step)
    if evaluator is None:
      config = ml_collections.ConfigDict(weights.config)
      config.data_dir = args.data_dir
      config.eval = ml_collections.ConfigDict(
        dict(
          features='cxr',
          split='validation',
          num_samples=args.num_samples,
          inception_weights='',
          classifier_workdir=args.classifier_workdir,
        )
      )
      generator, _ = models.create_models(config)
      evaluator = in_training.TrainingEvaluator(config, generator, pathlib.Path(args.cache_dir))
    state = types.SimpleNamespace(ema_params=weights.ema_params, g_state=weights.g_state)
    yield step, evaluator(step, state)['eval/fd_cxr']


def _peer_generators(run_dir: pathlib.Path, args):
  """(step, validation FD) of every generator a bench.study_peer run saved (its own sampling)."""
  from bench import study_peer  # pylint: disable=g-import-not-at-top  (needs torch)

  study = study_peer.load_study(run_dir.parent.parent)
  (run,) = [r for r in spec.peer_runs(study) if r.name == f'{run_dir.parent.name}/{run_dir.name}']
  fd = _validation_fd_fn(run.config, args)
  saved = sorted(int(p.stem) for p in (run_dir / study_peer.GENERATORS).glob('*.pt'))
  for step in saved:
    path = run_dir / study_peer.GENERATORS / f'{step}.pt'
    yield step, fd(study_peer.samples(run.config, path, args.num_samples, seed=1))


def validation_fds(run_dir: pathlib.Path, args) -> list[dict]:
  """One row per kept generator: step, validation FD, and the study's test scores there."""
  scores = {p['step']: p for p in results.read_run(run_dir)['scores']}
  is_peer = run_dir.parent.name.startswith(spec.PEER_PREFIX)
  generators = (_peer_generators if is_peer else _jax_generators)(run_dir, args)
  rows = []
  for step, validation_fd in generators:
    test = scores.get(step, {})
    rows.append(
      dict(
        step=step,
        validation_fd_cxr=validation_fd,
        test_fd_cxr=test.get('fd_cxr'),
        test_one_nn=test.get('one_nn_accuracy_cxr'),
      )
    )
  return rows


def changes(runs: list[dict], start: int) -> dict[str, dict]:
  """Kept best (lowest validation FD from `start` on) minus last, per test metric."""
  out = {}
  for metric in ('test_fd_cxr', 'test_one_nn'):
    diffs = []
    for run in runs:
      rows = [r for r in run['rows'] if r[metric] is not None]
      eligible = [r for r in rows if r['step'] >= start] or rows[-1:]
      best = min(eligible, key=lambda r: r['validation_fd_cxr'])
      diffs.append(best[metric] - rows[-1][metric])
    out[metric] = stats.mean_interval(diffs).__dict__
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('run_dirs', nargs='+', type=pathlib.Path)
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--classifier_workdir', required=True)
  parser.add_argument('--out', required=True, type=pathlib.Path)
  parser.add_argument('--num_samples', type=int, default=500)
  parser.add_argument('--cache_dir', default='/tmp/retro_keep_best_cache')
  args = parser.parse_args()
  runs = [dict(run=str(d), rows=validation_fds(d, args)) for d in args.run_dirs]
  pairs = [
    (r['validation_fd_cxr'], r['test_fd_cxr'])
    for run in runs
    for r in run['rows']
    if r['test_fd_cxr'] is not None
  ]
  summary = dict(
    runs=len(runs),
    correlation=float(np.corrcoef(np.asarray(pairs).T)[0, 1]),
    kept_best_minus_last={str(s): changes(runs, s) for s in START_STEPS},
  )
  files.write_json(args.out, dict(summary=summary, runs=runs), significant_digits=4, inline_depth=3)
  print(json.dumps(summary, indent=1))


if __name__ == '__main__':
  main()
