"""Where a JAX train step spends its time on CPU: a jax.profiler trace, summed per XLA op.

  python bench/profile_train_step.py [--family dcgan] [--resolution 64] [--batch_size 64]
      [--steps 6] [--top 15] [--trace_dir /tmp/cxrgan_profile]

Compiles and warms up the same pmapped step as bench/bench_train_step.py,
records --steps steps under `jax.profiler.trace` (also written as a Perfetto
trace, viewable at ui.perfetto.dev), and prints the ops that took the most
time: each op's total, share of all op time, call count, and what it is (its
HLO kind: dot, convolution, fusion, custom call...). Op shapes come from the
optimised HLO, so a gradient product that runs in Eigen rather than a
library kernel shows up as a plain `dot` with its operand layouts.
"""

import argparse
import collections
import gzip
import json
import os
import pathlib
import re
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bench import bench_train_step  # noqa: E402
from cxrgan_jax import parallel  # noqa: E402
from cxrgan_jax import steps  # noqa: E402
from cxrgan_jax import train  # noqa: E402


def make_runner(config):
  """A closure running n steps of the pmapped step on a fixed random batch."""
  generator, discriminator, g_tx, d_tx, state = train.build(config)
  devices = jax.local_devices()
  step_fn_for = steps.make_pmapped_steps(config, generator, discriminator, g_tx, d_tx, devices)
  per_device = config.batch_size // len(devices)
  shape = (len(devices), config.d_steps, per_device, config.resolution, config.resolution, 1)
  batch = {'image': np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)}
  box = {'state': parallel.replicate(state, devices), 'count': 0}

  def run(n: int) -> None:
    for _ in range(n):
      box['state'], metrics = step_fn_for(box['count'])(box['state'], batch)
      box['count'] += 1
    jax.block_until_ready(metrics)

  def hlo() -> str:
    """The optimised HLO of the step (the variant without R1), for op shapes."""
    return step_fn_for(1).lower(box['state'], batch).compile().as_text()

  run.hlo = hlo
  return run


def op_times(trace_dir: pathlib.Path) -> tuple[collections.Counter, collections.Counter]:
  """(total microseconds, calls) per HLO op, from the newest Perfetto trace in trace_dir.

  Only events that carry an `hlo_op` (the ops XLA's CPU runtime executes) count;
  the runtime's own spans (ThunkExecutor::Execute, thread-pool waits) enclose
  them and would count their time twice.
  """
  traces = sorted(trace_dir.rglob('*.trace.json.gz'), key=lambda p: p.stat().st_mtime)
  if not traces:
    raise SystemExit(f'no *.trace.json.gz under {trace_dir}; the profiler wrote no trace')
  with gzip.open(traces[-1], 'rt') as f:
    events = json.load(f)
  events = events['traceEvents'] if isinstance(events, dict) else events
  total, calls = collections.Counter(), collections.Counter()
  for e in events:
    op = (e.get('args') or {}).get('hlo_op')
    if e.get('ph') == 'X' and op:
      total[op] += e['dur']
      calls[op] += 1
  return total, calls


def kind(op: str) -> str:
  """'ynn_fusion.71' -> 'ynn_fusion': ops of one kind (library matmul, copy, ...) pooled."""
  return re.sub(r'\.\d+$', '', op)


def describe(hlo_text: str) -> dict[str, str]:
  """HLO op name -> its opcode, result shape and operand shapes, from the optimised module."""
  out = {}
  for line in hlo_text.splitlines():
    m = re.match(r'\s*(?:ROOT )?%?([\w.-]+) = (\S+?\[[^\]]*\])\S* (\w+)\((.*?)\)', line)
    if m:
      name, shape, opcode, operands = m.groups()
      shapes = re.findall(r'\w+\[[\d,]*\]', operands)
      out[name] = f'{opcode} -> {shape}' + (f' from {", ".join(shapes)}' if shapes else '')
  return out


def hlo_text(run) -> str:
  try:
    return run.hlo()
  except Exception as e:  # noqa: BLE001 - shapes are a convenience; the timings stand.
    print(f'(no op shapes: {type(e).__name__}: {e})')
    return ''


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--family', default='dcgan', choices=('dcgan', 'resnet'))
  parser.add_argument('--resolution', type=int, default=64)
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--channels', type=int, default=0, help='0: the family config width.')
  parser.add_argument('--steps', type=int, default=6)
  parser.add_argument('--top', type=int, default=15)
  parser.add_argument('--trace_dir', default='/tmp/cxrgan_profile')
  args = parser.parse_args()
  config = bench_train_step.bench_config(
    args.family, args.resolution, args.batch_size, args.channels
  )
  run = make_runner(config)
  run(2 * max(1, config.r1_interval))  # Compile every variant and warm up.
  trace_dir = pathlib.Path(args.trace_dir) / time.strftime('%Y%m%d-%H%M%S')
  start = time.perf_counter()
  with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
    run(args.steps)
  wall = time.perf_counter() - start
  total, calls = op_times(trace_dir)
  op_sum = sum(total.values())
  print(
    f'{args.family} {args.resolution}px batch {args.batch_size}: {args.steps} steps in '
    f'{wall:.2f}s under the profiler ({bench_train_step.load()}); XLA op time summed over '
    f'threads {op_sum / 1e6:.2f}s\n'
  )
  kinds = collections.Counter()
  for name, us in total.items():
    kinds[kind(name)] += us
  print('| op kind | ms per step | share |\n|---|---|---|')
  for name, us in kinds.most_common(args.top):
    print(f'| `{name}` | {us / 1e3 / args.steps:.1f} | {us / op_sum:.1%} |')
  shapes = describe(hlo_text(run))
  print('\n| op | ms per step | share | calls per step | what |\n|---|---|---|---|---|')
  for name, us in total.most_common(args.top):
    print(
      f'| `{name}` | {us / 1e3 / args.steps:.1f} | {us / op_sum:.1%} | '
      f'{calls[name] / args.steps:g} | {shapes.get(name, "")} |'
    )
  print(f'trace: {trace_dir}')


if __name__ == '__main__':
  main()
