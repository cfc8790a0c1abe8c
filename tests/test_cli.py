"""cli: the binaries' earlier flags still reach their config fields; their XLA CPU defaults."""

import importlib.metadata
import os
import pathlib
import subprocess
import sys

import pytest

from cxrgan_jax import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_shorthands_become_config_overrides():
  argv = ['prog', '--workdir=run', '--features', 'cxr,pixels', '--nocenter_crop', '--center_crop']
  argv += ['--step=3', '--config.seed=2', '--unknown=1', 'positional']
  assert cli.expand_shorthands(argv, 'eval') == [
    'prog',
    '--config.workdir=run',
    '--config.features',
    'cxr,pixels',
    '--config.center_crop=false',
    '--config.center_crop',
    '--config.step=3',  # A None default (placeholder) still takes an int.
    '--config.seed=2',
    '--unknown=1',  # Not a field: left for absl to reject.
    'positional',
  ]
  # '--noworkdir' is not a boolean field's negation: left alone.
  assert cli.expand_shorthands(['p', '--noworkdir'], 'eval') == ['p', '--noworkdir']
  assert cli.expand_shorthands(['p', '--balance=loss'], 'classifier') == [
    'p',
    '--config.balance=loss',
  ]


def test_config_file_moves_before_the_overrides():
  argv = ['p', '--workdir=w', '--config', 'my.py', '--seed=1']
  assert cli.expand_shorthands(argv, 'classifier') == [
    'p',
    '--config',
    'my.py',
    '--config.workdir=w',
    '--config.seed=1',
  ]


_CONV_PROBE = """
import sys
from cxrgan_jax import cli
print('added' if cli.use_fast_cpu_convolutions() else 'kept')
import jax, jax.numpy as jnp
x, k = jnp.ones((8, 32, 32, 64)), jnp.ones((4, 4, 64, 128))
conv = lambda x, k: jax.lax.conv_general_dilated(
  x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
print('ynn' if '%ynn_fusion' in jax.jit(conv).lower(x, k).compile().as_text() else 'xla')
"""


def _conv_path(xla_flags: str) -> list[str]:
  env = {**os.environ, 'XLA_FLAGS': xla_flags, 'JAX_PLATFORMS': 'cpu'}
  env['PYTHONPATH'] = os.pathsep.join([str(ROOT), env.get('PYTHONPATH', '')])
  out = subprocess.run(
    [sys.executable, '-c', _CONV_PROBE], env=env, capture_output=True, text=True, check=True
  )
  return out.stdout.split()


def test_binaries_run_xla_convolutions_on_cpu_unless_told_otherwise():
  version = tuple(int(v) for v in importlib.metadata.version('jaxlib').split('.')[:2])
  if version not in cli.FAST_CPU_CONV_JAXLIB:
    pytest.skip(f'jaxlib {version}: the flag is only set on {cli.FAST_CPU_CONV_JAXLIB}')
  # The default: the flag is added before JAX starts, and the conv leaves YNNPACK.
  assert _conv_path('') == ['added', 'xla']
  # Other flags are kept beside it.
  assert _conv_path('--xla_force_host_platform_device_count=2') == ['added', 'xla']
  # A user who names the flag gets what they asked for: here, YNNPACK back.
  assert _conv_path(f'--{cli.YNN_FLAG}=+individual_convolution') == ['kept', 'ynn']
