"""Equal-steps parity: the project's DCGAN against the PyTorch DCGAN example.

Trains both for the same number of steps on the same batches (the project's
input pipeline feeds both, in the same order), for several seeds; samples
each final generator with BatchNorm on running averages and on batch
statistics; prints fd_cxr and 1-NN accuracy (cxr features) against a held-out
real split as a markdown table. The JAX runs go through `main.py` exactly as
a user starts them; the PyTorch runs use `bench/torch_dcgan.py`'s step, the
one that `tests/test_dcgan_parity.py` proves equal to ours for one step.

Every phase is resumable: a finished run, sample set or score is reused.

  python -m bench.dcgan_parity --data_dir=TFDS --classifier_workdir=CLF \\
      --workdir=/tmp/dcgan_parity --steps=800 --channels=64 --batch_size=32 --seeds=0,1

Needs torch (the `bench` extra) and a trained classifier
(`python -m cxrgan_jax.classifier`).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from configs import dcgan_normal
from cxrgan_jax import files
from cxrgan_jax import input_pipeline

MODES = ('running', 'batch')
SAMPLE_BATCH = 64  # Latents per generator call when sampling (matters for 'batch').
XLA_ONE_THREAD = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'


def run_config(args, seed: int):
  config = dcgan_normal.get_config()
  config.seed = seed
  config.data_dir = args.data_dir
  config.resolution = args.resolution
  config.g_channels = config.d_channels = args.channels
  config.batch_size = args.batch_size
  config.num_train_steps = args.steps
  config.checkpoint_every_steps = args.steps
  config.sample_every_steps = args.steps
  config.log_every_steps = 50
  config.keep_checkpoints = 1
  return config


def overrides(config) -> list[str]:
  """The command-line flags that turn dcgan_normal.py into `config`."""
  keys = (
    'seed data_dir resolution g_channels d_channels batch_size num_train_steps '
    'checkpoint_every_steps sample_every_steps log_every_steps keep_checkpoints'
  )
  return [f'--config.{k}={config[k]}' for k in keys.split()]


def train_jax(args, seed: int, workdir: pathlib.Path) -> None:
  config = run_config(args, seed)
  if (workdir / 'checkpoints' / str(args.steps)).exists():
    return
  cmd = [
    sys.executable,
    str(ROOT / 'main.py'),
    f'--config={ROOT / "configs" / "dcgan_normal.py"}',
    f'--workdir={workdir}',
    *overrides(config),
  ]
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  # One CPU device, as a user's default run; --threads intra-op threads.
  env['XLA_FLAGS'] = '' if args.threads <= 0 else XLA_ONE_THREAD
  print(' '.join(cmd), flush=True)
  subprocess.run(cmd, check=True, env=env, cwd=ROOT)


def train_torch(args, seed: int, workdir: pathlib.Path) -> None:
  """The PyTorch example's loop on the batches the JAX run of `seed` sees."""
  import torch  # pylint: disable=g-import-not-at-top

  from bench import torch_dcgan  # pylint: disable=g-import-not-at-top

  final = workdir / 'generator.pt'
  if final.exists():
    return
  config = run_config(args, seed)
  torch.set_num_threads(args.threads if args.threads > 0 else len(os.sched_getaffinity(0)))
  torch.manual_seed(seed)
  g = torch_dcgan.Generator(config.resolution, config.latent_dim, config.g_channels)
  d = torch_dcgan.Discriminator(config.resolution, config.d_channels)
  opt = config.g_optimizer
  g_opt, d_opt = torch_dcgan.make_optimizers(g, d, opt.learning_rate, (opt.b1, opt.b2))
  data = input_pipeline.create_train_iterator(config, seed=config.seed)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  with open(workdir / 'metrics.jsonl', 'a') as log:
    for step in range(1, args.steps + 1):
      real = next(data)['image'].reshape(-1, config.resolution, config.resolution, 1)
      real = torch.from_numpy(np.ascontiguousarray(real.transpose(0, 3, 1, 2)))
      z = torch.randn(real.shape[0], config.latent_dim)
      d_loss, g_loss = torch_dcgan.train_step(g, d, g_opt, d_opt, real, z)
      if step % config.log_every_steps == 0 or step == args.steps:
        row = dict(step=step, d_loss=float(d_loss), g_loss=float(g_loss))
        row['seconds'] = time.perf_counter() - start
        log.write(json.dumps(row) + '\n')
        log.flush()
        print(f'torch seed {seed} {row}', flush=True)
  tmp = final.with_suffix('.tmp')
  torch.save(g.state_dict(), tmp)
  os.replace(tmp, final)


def torch_samples(workdir: pathlib.Path, config, num: int, mode: str) -> np.ndarray:
  """uint8 [num, R, R, 1] from a PyTorch run; mode 'batch' is the example's train mode."""
  import torch  # pylint: disable=g-import-not-at-top

  from bench import torch_dcgan  # pylint: disable=g-import-not-at-top

  g = torch_dcgan.Generator(config.resolution, config.latent_dim, config.g_channels)
  g.load_state_dict(torch.load(workdir / 'generator.pt'))
  g.train(mode == 'batch')
  gen = torch.Generator().manual_seed(0)
  out = []
  with torch.no_grad():
    for _ in range(0, num, SAMPLE_BATCH):  # Full batches only, as sampling.Sampler.
      x = g(torch.randn(SAMPLE_BATCH, config.latent_dim, generator=gen)).numpy()
      out.append(np.clip(np.rint((x.transpose(0, 2, 3, 1) + 1.0) * 127.5), 0, 255))
  return np.concatenate(out)[:num].astype(np.uint8)


def jax_samples(workdir: pathlib.Path, num: int, mode: str) -> np.ndarray:
  from cxrgan_jax import sampling  # pylint: disable=g-import-not-at-top

  sampler = sampling.restore_sampler(workdir, batchnorm=mode)
  return sampler.images(num, seed=0, batch_size=SAMPLE_BATCH)


def score_all(args, root: pathlib.Path, seeds: list[int]) -> list[dict]:
  """Scores every finished run in both sampling modes; prints the tables."""
  from cxrgan_jax import images as image_utils  # pylint: disable=g-import-not-at-top
  from cxrgan_jax.evaluation import extractors  # pylint: disable=g-import-not-at-top
  from cxrgan_jax.evaluation import suite  # pylint: disable=g-import-not-at-top

  config = run_config(args, seeds[0])
  extractor = extractors.make_extractor('cxr', classifier_workdir=args.classifier_workdir)
  real = input_pipeline.load_images(
    config.dataset, args.split, data_dir=args.data_dir, resolution=args.resolution
  )['image']
  real_features = extractor(real)
  rows = []
  for arm in args.arms.split(','):
    for seed in seeds:
      workdir = root / f'{arm}_{seed}'
      for mode in MODES:
        path = workdir / f'scores_{mode}_{args.split}_{args.num_samples}.json'
        if not path.exists():
          if arm == 'jax':
            fake = jax_samples(workdir, args.num_samples, mode)
          else:
            fake = torch_samples(workdir, run_config(args, seed), args.num_samples, mode)
          image_utils.write_png(workdir / f'grid_{mode}.png', image_utils.make_grid(fake[:64]))
          metrics, _ = suite.feature_metrics('cxr', real_features, extractor(fake))
          files.write_json(path, {k: float(v) for k, v in metrics.items()})
        metrics = json.loads(path.read_text())
        rows.append(
          dict(
            arm=arm,
            seed=seed,
            mode=mode,
            fd_cxr=metrics['fd_cxr'],
            one_nn=metrics['one_nn_accuracy_cxr'],
          )
        )
  print_tables(args, rows)
  return rows


def print_tables(args, rows: list[dict]) -> None:
  print(
    f'\nDCGAN {args.resolution}px, width {args.channels}, batch {args.batch_size}, '
    f'{args.steps} steps; {args.num_samples} samples vs the {args.split} split (cxr features)\n'
  )
  print('| implementation | seed | BatchNorm when sampling | fd_cxr | 1-NN accuracy |')
  print('|---|---|---|---|---|')
  for r in rows:
    print(f'| {r["arm"]} | {r["seed"]} | {r["mode"]} | {r["fd_cxr"]:.2f} | {r["one_nn"]:.3f} |')
  print(
    '\n| implementation | BatchNorm when sampling | fd_cxr (min-max over seeds) | 1-NN (min-max) |'
  )
  print('|---|---|---|---|')
  for arm in dict.fromkeys(r['arm'] for r in rows):
    for mode in MODES:
      sel = [r for r in rows if r['arm'] == arm and r['mode'] == mode]
      fd = [r['fd_cxr'] for r in sel]
      nn = [r['one_nn'] for r in sel]
      print(f'| {arm} | {mode} | {min(fd):.2f}-{max(fd):.2f} | {min(nn):.3f}-{max(nn):.3f} |')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', required=True, help='TFDS data_dir with chest_xray_pneumonia.')
  parser.add_argument('--classifier_workdir', required=True, help='For fd_cxr features.')
  parser.add_argument('--workdir', required=True, help='Runs, samples and scores go here.')
  parser.add_argument('--steps', type=int, default=800)
  parser.add_argument('--channels', type=int, default=64, help='G and D width at 4x4.')
  parser.add_argument('--resolution', type=int, default=64)
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--seeds', default='0,1')
  parser.add_argument('--num_samples', type=int, default=1000)
  parser.add_argument('--split', default='test', help='Held-out real split scored against.')
  parser.add_argument(
    '--threads', type=int, default=0, help='1: one thread per run (concurrent runs); 0: all cores.'
  )
  parser.add_argument('--arms', default='jax,torch', help='Implementations to train and score.')
  parser.add_argument('--phase', default='all', choices=('train', 'score', 'all'))
  args = parser.parse_args()
  root = pathlib.Path(args.workdir)
  seeds = [int(s) for s in args.seeds.split(',')]
  if args.phase in ('train', 'all'):
    arms = args.arms.split(',')
    for seed in seeds:
      if 'jax' in arms:
        train_jax(args, seed, root / f'jax_{seed}')
      if 'torch' in arms:
        train_torch(args, seed, root / f'torch_{seed}')
  if args.phase in ('score', 'all'):
    score_all(args, root, seeds)


if __name__ == '__main__':
  main()
