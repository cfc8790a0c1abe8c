"""Train-step images/s of each GAN family, JAX vs the same DCGAN step in PyTorch.

  python bench/bench_train_step.py [--resolutions 64 128] [--batch_size 64]

Prints one table: images/s of a full step (D update + G update) per family
and resolution on this machine's devices, and for the DCGAN the PyTorch CPU
step (bench/torch_dcgan.py, needs `pip install -e '.[bench]'`) measured in
the same run, with the JAX/PyTorch ratio. Channel widths come from
configs/dcgan_normal.py and configs/normal.py, so the numbers describe the
configs users run.
"""

import argparse
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from configs import dcgan_normal
from configs import normal
from cxrgan_jax import parallel
from cxrgan_jax import steps
from cxrgan_jax import train


def time_jax_step(config, steps_to_time: int, warmup: int) -> tuple[float, float]:
  """(images/s, first-call seconds) of the pmapped step over all local devices.

  Steps cycle through lazy R1 as in training (one regularised step every
  `r1_interval`), and warm-up covers a full cycle so both variants are compiled.
  """
  generator, discriminator, g_tx, d_tx, state = train.build(config)
  devices = jax.local_devices()
  step_fn_for = steps.make_pmapped_steps(config, generator, discriminator, g_tx, d_tx, devices)
  per_device = config.batch_size // len(devices)
  rng = np.random.RandomState(0)
  batch = {
    'image': rng.uniform(
      -1, 1, (len(devices), config.d_steps, per_device, config.resolution, config.resolution, 1)
    ).astype(np.float32)
  }
  rstate = parallel.replicate(state, devices)
  count = 0

  def run(n):
    nonlocal rstate, count
    for _ in range(n):
      rstate, metrics = step_fn_for(count)(rstate, batch)
      count += 1
    jax.block_until_ready(metrics)

  start = time.perf_counter()
  run(1)
  compile_s = time.perf_counter() - start
  run(max(warmup, config.r1_interval if config.r1_gamma > 0 else 1) - 1)
  start = time.perf_counter()
  run(steps_to_time)
  elapsed = time.perf_counter() - start
  return config.batch_size * config.d_steps * steps_to_time / elapsed, compile_s


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--resolutions', type=int, nargs='+', default=[64, 128])
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--families', nargs='+', default=['dcgan', 'resnet'])
  parser.add_argument('--no_torch', action='store_true')
  parser.add_argument(
    '--channels',
    type=int,
    default=0,
    help="Override both nets' widest width (0: the configs' own).",
  )
  args = parser.parse_args()

  torch_step = None
  if not args.no_torch:
    try:
      from bench import torch_dcgan  # pylint: disable=g-import-not-at-top

      torch_step = torch_dcgan.time_torch_dcgan_step
    except ImportError as e:
      print(f'(PyTorch column skipped: {e}; pip install -e ".[bench]")')

  rows = []
  for family in args.families:
    for res in args.resolutions:
      config = (dcgan_normal if family == 'dcgan' else normal).get_config()
      config.resolution, config.batch_size = res, args.batch_size
      if args.channels:
        config.g_channels = config.d_channels = args.channels
      jax_rate, compile_s = time_jax_step(config, args.steps, args.warmup)
      torch_rate = None
      if family == 'dcgan' and torch_step is not None:
        torch_rate = torch_step(
          res,
          args.batch_size,
          config.latent_dim,
          config.g_channels,
          config.d_channels,
          args.steps,
          args.warmup,
        )
      rows.append((family, res, config.g_channels, jax_rate, compile_s, torch_rate))
      print(f'  measured {family} {res}px', flush=True)

  device = jax.devices()[0]
  print(
    f'\nTrain step, batch {args.batch_size}, {jax.local_device_count()} x '
    f'{device.platform} ({device.device_kind}), {os.cpu_count()} CPU(s)'
  )
  print('| family | res | width | JAX img/s | JAX compile s | PyTorch img/s | JAX / PyTorch |')
  print('|---|---|---|---|---|---|---|')
  for family, res, width, jax_rate, compile_s, torch_rate in rows:
    torch_cells = (
      ('-', '-') if torch_rate is None else (f'{torch_rate:.1f}', f'{jax_rate / torch_rate:.2f}x')
    )
    print(
      f'| {family} | {res} | {width} | {jax_rate:.1f} | {compile_s:.1f} | '
      f'{torch_cells[0]} | {torch_cells[1]} |'
    )


if __name__ == '__main__':
  main()
