"""Per-layer forward + backward time, JAX layers vs their PyTorch equivalents.

  python bench/bench_layers.py [--family dcgan] [--resolution 64] [--channels 0]
      [--batch_size 64] [--compute_dtype float32]

Prints one row per convolution of the family's G and D at the config's widths
(configs/dcgan_normal.py or configs/normal.py, or --channels): milliseconds of
one jitted forward + backward (gradients with respect to input and kernel, for
a fixed cotangent) in JAX, and of the same layer in PyTorch CPU, measured in
the same process, with the speed ratio. The rows that cost the most and have
the lowest ratio are what a train step's ratio is made of (bench_train_step.py).
"""

import argparse
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import flax.linen as nn  # pylint: disable=g-import-not-at-top
import jax
import jax.numpy as jnp
import numpy as np

from configs import dcgan_normal
from configs import normal
from cxrgan_jax import models
from cxrgan_jax.models import dcgan
from cxrgan_jax.models import layers
from cxrgan_jax.models import resnet


def layer_specs(family: str, resolution: int, g_channels: int, d_channels: int):
  """(name, input side, C_in, C_out, kind) of every conv of the family's nets."""
  specs = []
  doublings = layers.num_doublings(resolution)
  if family == 'dcgan':
    g = [layers.channels_at(g_channels, lv, dcgan.MIN_CHANNELS) for lv in range(doublings)] + [1]
    for i in range(doublings):
      specs.append((f'G up {4 << i}->{8 << i}', 4 << i, g[i], g[i + 1], 'up4x4'))
    d = [1] + [
      layers.channels_at(d_channels, lv, dcgan.MIN_CHANNELS) for lv in reversed(range(doublings))
    ]
    for i in range(doublings):
      side = resolution >> i
      specs.append((f'D down {side}->{side // 2}', side, d[i], d[i + 1], 'down4x4'))
    return specs
  widths = [g_channels] + [
    layers.channels_at(g_channels, lv, resnet.MIN_CHANNELS) for lv in range(1, doublings + 1)
  ]
  for i in range(doublings):
    side = 4 << i
    specs.append((f'G up3x3 {side}->{2 * side}', side, widths[i], widths[i + 1], 'nearest3x3'))
    specs.append((f'G conv3x3 @{2 * side}', 2 * side, widths[i + 1], widths[i + 1], 'conv3x3'))
  widths = [1] + [
    layers.channels_at(d_channels, lv, resnet.MIN_CHANNELS) for lv in reversed(range(doublings))
  ]
  for i in range(doublings):
    side = resolution >> i
    specs.append((f'D conv3x3 @{side}', side, widths[i], widths[i + 1], 'conv3x3'))
    specs.append((f'D conv3x3+pool @{side}', side, widths[i + 1], widths[i + 1], 'conv3x3pool'))
  return specs


def jax_layer(kind: str, c_out: int, dtype):
  return {
    'up4x4': lambda: layers.ConvTranspose4x4(c_out, dtype=dtype),
    'down4x4': lambda: layers.Conv4x4Down(c_out, dtype=dtype),
    'nearest3x3': lambda: layers.UpsampleConv3x3(c_out, dtype=dtype),
    'conv3x3': lambda: nn.Conv(c_out, (3, 3), dtype=dtype),
    'conv3x3pool': lambda: layers.Conv3x3AvgPool(c_out, dtype=dtype),
  }[kind]()


def time_jax(kind, batch, side, c_in, c_out, dtype, reps) -> float:
  module = jax_layer(kind, c_out, dtype)
  x = jnp.asarray(np.random.RandomState(0).standard_normal((batch, side, side, c_in)), jnp.float32)
  params = module.init(jax.random.PRNGKey(0), x)['params']
  cotangent = jnp.ones(jax.eval_shape(module.apply, {'params': params}, x).shape, jnp.float32)

  @jax.jit
  def fwd_bwd(params, x):
    y, vjp = jax.vjp(lambda p, x: module.apply({'params': p}, x).astype(jnp.float32), params, x)
    return y, vjp(cotangent)

  jax.block_until_ready(fwd_bwd(params, x))
  best = float('inf')
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fwd_bwd(params, x))
    best = min(best, time.perf_counter() - start)
  return best * 1e3


def time_torch(kind, batch, side, c_in, c_out, reps) -> float:
  import torch  # pylint: disable=g-import-not-at-top
  from torch.nn import functional as F  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(len(os.sched_getaffinity(0)))
  if kind == 'up4x4':
    conv = torch.nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
    f = conv
  elif kind == 'down4x4':
    conv = torch.nn.Conv2d(c_in, c_out, 4, 2, 1)
    f = conv
  else:
    conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
    f = {
      'nearest3x3': lambda x: conv(F.interpolate(x, scale_factor=2, mode='nearest')),
      'conv3x3': conv,
      'conv3x3pool': lambda x: F.avg_pool2d(conv(x), 2),
    }[kind]
  x = torch.randn(batch, c_in, side, side, requires_grad=True)
  cotangent = torch.ones_like(f(x))

  def run():
    x.grad = None
    conv.zero_grad(set_to_none=True)
    f(x).backward(cotangent)
    return x.grad.sum().item()

  run()
  best = float('inf')
  for _ in range(reps):
    start = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - start)
  return best * 1e3


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--family', default='dcgan', choices=models.MODELS)
  parser.add_argument('--resolution', type=int, default=64)
  parser.add_argument('--channels', type=int, default=0)
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--reps', type=int, default=3)
  parser.add_argument('--compute_dtype', default='float32', choices=models.COMPUTE_DTYPES)
  parser.add_argument('--no_torch', action='store_true')
  args = parser.parse_args()
  config = (dcgan_normal if args.family == 'dcgan' else normal).get_config()
  if args.channels:
    config.g_channels = config.d_channels = args.channels
  dtype = None if args.compute_dtype == 'float32' else jnp.bfloat16
  specs = layer_specs(args.family, args.resolution, config.g_channels, config.d_channels)
  load = lambda: ' '.join(f'{x:.1f}' for x in os.getloadavg())
  start_load = load()
  rows = []
  for name, side, c_in, c_out, kind in specs:
    jax_ms = time_jax(kind, args.batch_size, side, c_in, c_out, dtype, args.reps)
    torch_ms = None
    if not args.no_torch:
      torch_ms = time_torch(kind, args.batch_size, side, c_in, c_out, args.reps)
    rows.append((name, c_in, c_out, jax_ms, torch_ms))
    print(f'  {name}: {jax_ms:.1f} ms', flush=True)
  print(
    f'\n{args.family} {args.resolution}px layers, batch {args.batch_size}, forward + backward, '
    f'JAX {args.compute_dtype}, best of {args.reps}; load average {start_load} at start, '
    f'{load()} at end; XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}'
  )
  print('| layer | C_in | C_out | JAX ms | PyTorch f32 ms | JAX speed / PyTorch |')
  print('|---|---|---|---|---|---|')
  for name, c_in, c_out, jax_ms, torch_ms in rows:
    torch_cells = (
      ('-', '-') if torch_ms is None else (f'{torch_ms:.1f}', f'{torch_ms / jax_ms:.2f}x')
    )
    print(f'| {name} | {c_in} | {c_out} | {jax_ms:.1f} | {torch_cells[0]} | {torch_cells[1]} |')
  total_jax = sum(r[3] for r in rows)
  if rows[0][4] is not None:
    total_torch = sum(r[4] for r in rows)
    print(f'| all | | | {total_jax:.1f} | {total_torch:.1f} | {total_torch / total_jax:.2f}x |')


if __name__ == '__main__':
  main()
