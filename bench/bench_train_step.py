"""Train-step images/s of each GAN family, JAX and PyTorch side by side.

  python bench/bench_train_step.py [--resolutions 64 128] [--batch_size 64]
      [--families dcgan resnet] [--channels 128] [--repeats 2]
      [--compute_dtypes float32 bfloat16]

Prints one table: images/s of a full step (D update + G update) per family
and resolution on this machine's JAX devices, and the same step in PyTorch
CPU (bench/torch_dcgan.py, bench/torch_resnet.py; `pip install -e
'.[bench]'`) measured in the same process, with the JAX/PyTorch ratio. On a
shared machine only the ratio means much: both sides see the same load,
printed with the table. With --repeats N the two sides alternate N times and
each keeps its best rate. Widths come from configs/dcgan_normal.py and
configs/normal.py (or --channels). Augmentation is off on both sides (the
PyTorch reference has none); R1 (lazy, every r1_interval steps) and the EMA
run on both, and timing starts on an R1 step and spans --steps steps.
XLA flags are read at start-up: A/B them with two runs (XLA_FLAGS=...),
comparing the ratios; XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution
times XLA's own CPU convolutions instead of YNNPACK's (bench/README.md).
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
  `r1_interval`); warm-up covers a full cycle so both variants are compiled,
  and timing starts on a regularised step.
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
  interval = config.r1_interval if config.r1_gamma > 0 else 1
  run(-(-max(warmup, 2) // interval) * interval - 1)
  start = time.perf_counter()
  run(steps_to_time)
  elapsed = time.perf_counter() - start
  return config.batch_size * config.d_steps * steps_to_time / elapsed, compile_s


def bench_config(family: str, resolution: int, batch_size: int, channels: int):
  """The family's config at `resolution`, augmentation off (see module docstring)."""
  config = (dcgan_normal if family == 'dcgan' else normal).get_config()
  config.resolution, config.batch_size = resolution, batch_size
  if channels:
    config.g_channels = config.d_channels = channels
  config.augment.policy = ''
  return config


def time_torch_step(family: str, config, steps_to_time: int, warmup: int) -> float:
  """Images/s of the PyTorch reference of `family` with `config`'s settings."""
  from bench import torch_dcgan  # pylint: disable=g-import-not-at-top
  from bench import torch_resnet  # pylint: disable=g-import-not-at-top

  args = (
    config.resolution,
    config.batch_size,
    config.latent_dim,
    config.g_channels,
    config.d_channels,
    steps_to_time,
    warmup,
  )
  if family == 'dcgan':
    return torch_dcgan.time_torch_dcgan_step(*args)
  return torch_resnet.time_torch_resnet_step(
    *args, r1_gamma=config.r1_gamma, r1_interval=config.r1_interval, ema_decay=config.ema_decay
  )


def load() -> str:
  return 'load average ' + ' '.join(f'{x:.1f}' for x in os.getloadavg())


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--resolutions', type=int, nargs='+', default=[64, 128])
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--steps', type=int, default=8)
  parser.add_argument('--warmup', type=int, default=4)
  parser.add_argument('--repeats', type=int, default=1)
  parser.add_argument('--families', nargs='+', default=['dcgan', 'resnet'])
  parser.add_argument(
    '--compute_dtypes',
    nargs='+',
    default=['float32'],
    help='JAX config.compute_dtype values to time (PyTorch stays float32).',
  )
  parser.add_argument('--no_torch', action='store_true')
  parser.add_argument(
    '--channels',
    type=int,
    default=0,
    help="Override both nets' widest width (0: the configs' own).",
  )
  args = parser.parse_args()

  torch_version = None
  if not args.no_torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top

      torch_version = torch.__version__
    except ImportError as e:
      print(f'(PyTorch column skipped: {e}; pip install -e ".[bench]")')

  loads = [load()]
  rows = []
  for family in args.families:
    for res in args.resolutions:
      configs = {}
      for dtype in args.compute_dtypes:
        configs[dtype] = bench_config(family, res, args.batch_size, args.channels)
        configs[dtype].compute_dtype = dtype
      jax_rates, compile_s, torch_rate = dict.fromkeys(configs, 0.0), {}, 0.0
      for _ in range(args.repeats):
        for dtype, config in configs.items():
          rate, first_s = time_jax_step(config, args.steps, args.warmup)
          jax_rates[dtype] = max(jax_rates[dtype], rate)
          compile_s.setdefault(dtype, first_s)
        if torch_version:
          torch_rate = max(torch_rate, time_torch_step(family, config, args.steps, args.warmup))
      for dtype, config in configs.items():
        rows.append(
          (family, res, config.g_channels, dtype, jax_rates[dtype], compile_s[dtype], torch_rate)
        )
      loads.append(load())
      rates = ', '.join(f'JAX {d} {r:.1f}' for d, r in jax_rates.items())
      print(
        f'  {family} {res}px: {rates}, PyTorch {torch_rate:.1f} img/s ({loads[-1]})', flush=True
      )

  device = jax.devices()[0]
  print(
    f'\nTrain step, batch {args.batch_size}, {time.strftime("%Y-%m-%d %H:%M")}, '
    f'{jax.local_device_count()} x {device.platform} ({device.device_kind}), '
    f'{os.cpu_count()} CPU(s), jax {jax.__version__}, torch {torch_version}, '
    f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}'
  )
  print(f'{loads[0]} at start, {loads[-1]} at end; best of {args.repeats} alternating run(s)')
  print(
    '| family | res | width | JAX compute | JAX img/s | JAX compile s | PyTorch f32 img/s '
    '| JAX / PyTorch |'
  )
  print('|---|---|---|---|---|---|---|---|')
  for family, res, width, dtype, jax_rate, compile_s, torch_rate in rows:
    torch_cells = (
      ('-', '-') if not torch_rate else (f'{torch_rate:.1f}', f'{jax_rate / torch_rate:.2f}x')
    )
    print(
      f'| {family} | {res} | {width} | {dtype} | {jax_rate:.1f} | {compile_s:.1f} | '
      f'{torch_cells[0]} | {torch_cells[1]} |'
    )


if __name__ == '__main__':
  main()
