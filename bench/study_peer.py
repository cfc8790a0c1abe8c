r"""The peer arm of a study: the plain PyTorch DCGAN, trained and scored like every other arm.

A user who wants synthetic X-rays on a CPU would most likely take the PyTorch
DCGAN example instead of this project. This trains that model
(`bench/torch_dcgan.py`: the example's layers, loss, Adam settings and
one-G-forward step) on the study's base run config (class, resolution,
batch, widths, latent size, learning rate), on the same batches in the same
order, for the study's budget (the same wall-clock minutes and/or steps), and
scores its saved generators at the study's scoring steps with the same
evaluation settings (fixed-seed samples against the real test split). Its runs
are written as the study's `peer=torch_dcgan/seed<k>` runs, in the runner's
file formats, so the study's report lists the peer beside the arms:

  python -m cxrgan_jax.study --config=configs/studies/hparams.py:normal ... --workdir=DIR
  python -m bench.study_peer --study_dir=DIR          # reads DIR/study_config.json
  python -m cxrgan_jax.study --config=... --workdir=DIR --report_only

Sampling uses BatchNorm running averages (`g.eval()`), which scored better
than the example's batch statistics in 5 of 6 parity runs (README): the peer
gets its better mode. A peer run interrupted before it finished restarts
from scratch on the next call (it has no resumable state). Needs torch (the
`bench` extra).
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

import ml_collections  # noqa: E402

from cxrgan_jax import files  # noqa: E402
from cxrgan_jax import images as image_utils  # noqa: E402
from cxrgan_jax import input_pipeline  # noqa: E402
from cxrgan_jax import run_log  # noqa: E402
from cxrgan_jax.study import pipeline  # noqa: E402
from cxrgan_jax.study import results  # noqa: E402
from cxrgan_jax.study import scoring  # noqa: E402
from cxrgan_jax.study import spec  # noqa: E402

GENERATORS = 'torch_generators'  # <run>/torch_generators/<step>.pt
SAMPLE_BATCH = 64


def load_study(study_dir: pathlib.Path) -> ml_collections.ConfigDict:
  path = study_dir / pipeline.CONFIG_FILE
  if not path.exists():
    raise SystemExit(f'{path} not found: run the study first (it writes its config there).')
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def check_peer_config(config: ml_collections.ConfigDict) -> None:
  """The peer is the plain DCGAN: refuse a base config it cannot stand in for."""
  problems = []
  if config.model != 'dcgan':
    problems.append(f'model={config.model!r} (the peer is a DCGAN)')
  if config.d_steps != 1 or config.loss != 'non_saturating':
    problems.append(
      f'd_steps={config.d_steps}, loss={config.loss!r} (the example: 1, non-saturating)'
    )
  for name in ('g_optimizer', 'd_optimizer'):
    if config[name].name != 'adam':
      problems.append(f'{name}.name={config[name].name!r} (the example uses Adam)')
  if problems:
    raise SystemExit('the study base config is not the DCGAN example: ' + '; '.join(problems))


def _save_generator(g, path: pathlib.Path) -> None:
  import torch  # pylint: disable=g-import-not-at-top

  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix('.tmp')
  torch.save(g.state_dict(), tmp)
  os.replace(tmp, path)


def _generator(config):
  from bench import torch_dcgan  # pylint: disable=g-import-not-at-top

  return torch_dcgan.Generator(config.resolution, config.latent_dim, config.g_channels)


def samples(config, state_path: pathlib.Path, num: int, seed: int) -> np.ndarray:
  """uint8 [num, R, R, 1] from a saved generator, BatchNorm on running averages."""
  import torch  # pylint: disable=g-import-not-at-top

  g = _generator(config)
  g.load_state_dict(torch.load(state_path))
  g.eval()
  gen = torch.Generator().manual_seed(seed)
  out = []
  with torch.no_grad():
    for _ in range(0, num, SAMPLE_BATCH):
      x = g(torch.randn(SAMPLE_BATCH, config.latent_dim, generator=gen)).numpy()
      out.append(np.clip(np.rint((x.transpose(0, 2, 3, 1) + 1.0) * 127.5), 0, 255))
  return np.concatenate(out)[:num].astype(np.uint8)


def train(run: spec.Run, run_dir: pathlib.Path, every: int, threads: int) -> dict:
  """The example's loop for the run's budget; a generator saved every `every` steps."""
  import torch  # pylint: disable=g-import-not-at-top

  from bench import torch_dcgan  # pylint: disable=g-import-not-at-top

  config = run.config
  if run_dir.exists():  # An interrupted peer run: no resumable state, start over.
    shutil.rmtree(run_dir)
  run_dir.mkdir(parents=True)
  torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
  torch.manual_seed(config.seed)
  g = _generator(config)
  d = torch_dcgan.Discriminator(config.resolution, config.d_channels)
  opt = config.g_optimizer
  g_opt, d_opt = torch_dcgan.make_optimizers(g, d, opt.learning_rate, (opt.b1, opt.b2))
  data = input_pipeline.create_train_iterator(config, seed=config.seed)
  fixed_z = torch.randn(36, config.latent_dim, generator=torch.Generator().manual_seed(0))
  limit = config.max_train_minutes * 60 if config.max_train_minutes else float('inf')
  trained, step, since, since_step = 0.0, 0, time.perf_counter(), 0
  with open(run_dir / 'metrics.jsonl', 'a') as log:
    while step < config.num_train_steps and trained < limit:
      t0 = time.perf_counter()
      real = next(data)['image'].reshape(-1, config.resolution, config.resolution, 1)
      real = torch.from_numpy(np.ascontiguousarray(real.transpose(0, 3, 1, 2)))
      z = torch.randn(real.shape[0], config.latent_dim)
      d_loss, g_loss = torch_dcgan.train_step(g, d, g_opt, d_opt, real, z)
      trained += time.perf_counter() - t0
      step += 1
      done = step >= config.num_train_steps or trained >= limit
      if step % config.log_every_steps == 0 or done:
        rate = (step - since_step) / max(time.perf_counter() - since, 1e-9)
        row = dict(
          step=step,
          d_loss=float(d_loss),
          g_loss=float(g_loss),
          steps_per_sec=rate,
          images_per_sec=rate * config.batch_size,
        )
        log.write(json.dumps(row) + '\n')
        log.flush()
        print(f'peer {run.name} {row} trained {trained:.0f}s', flush=True)
        since, since_step = time.perf_counter(), step
      if step % every == 0 or done:
        _save_generator(g, run_dir / GENERATORS / f'{step}.pt')
        g.eval()
        with torch.no_grad():
          grid = g(fixed_z).numpy().transpose(0, 2, 3, 1)
        g.train()
        grid = np.clip(np.rint((grid + 1.0) * 127.5), 0, 255).astype(np.uint8)
        image_utils.write_png(
          run_dir / 'samples' / f'step_{step:06d}.png', image_utils.make_grid(grid)
        )
  return {'steps': step, 'train_seconds': trained}


def score(study, run: spec.Run, run_dir: pathlib.Path) -> None:
  """Every saved generator through the study's evaluation, as the runner scores its arms."""
  from cxrgan_jax.evaluation import suite  # pylint: disable=g-import-not-at-top

  done = scoring.scored_steps(run_dir)
  steps = sorted(int(p.stem) for p in (run_dir / GENERATORS).glob('*.pt'))
  for step in [s for s in steps if s not in done]:
    folder = run_dir / 'study_samples' / f'step_{step:06d}'
    if not folder.is_dir():
      images = samples(run.config, run_dir / GENERATORS / f'{step}.pt', study.eval.num_samples, 0)
      tmp = folder.with_name(folder.name + '.tmp')
      shutil.rmtree(tmp, ignore_errors=True)
      for i, image in enumerate(images):
        image_utils.write_png(tmp / f'{i:05d}.png', image)
      os.replace(tmp, folder)
    config = scoring.eval_config(study.eval, run, run_dir, step)
    config.workdir = ''
    config.samples_dir = str(folder)
    scoring.append_point(run_dir, step, step * run.config.batch_size, suite.run(config))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--study_dir', required=True, help='A study folder (has study_config.json).')
  parser.add_argument('--threads', type=int, default=0, help='Torch threads; 0: every core.')
  args = parser.parse_args()
  study_dir = pathlib.Path(args.study_dir).absolute()
  study = load_study(study_dir)
  check_peer_config(study.base)
  for run in spec.peer_runs(study):
    run_dir = study_dir / run.name
    record = results.read_run(run_dir)
    if record['status'] == results.PENDING:
      started = time.time()
      trained = train(run, run_dir, study.eval.every_steps, args.threads)
      record = {
        'status': results.FINISHED,
        **trained,
        'images_per_sec': run_log.images_per_second(run_dir),
        'wall_seconds_this_call': time.time() - started,
      }
      files.write_json(run_dir / results.RUN_FILE, record)
    score(study, run, run_dir)
  print(f'peer runs scored; rebuild the report with --report_only (study {study_dir})')


if __name__ == '__main__':
  main()
