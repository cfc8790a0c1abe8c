"""Shared fixtures. Every test sees two CPU devices so pmap paths really run."""

import os

# Must precede the first `import jax` anywhere in the test session.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pathlib

import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
# The one setting that points tests at the full shared X-ray folder.
SHARED_DATA_ENV = 'CXRGAN_SHARED_DATA'


def shared_data_root() -> pathlib.Path:
  return pathlib.Path(
      os.environ.get(SHARED_DATA_ENV, PROJECT_ROOT.parent / 'shared' / 'data'))


@pytest.fixture(scope='session')
def shared_chest_xray_dir() -> pathlib.Path:
  """`<shared>/chest_xray` (Kaggle layout), or skip with the reason."""
  path = shared_data_root() / 'chest_xray'
  if not (path / 'train').is_dir():
    pytest.skip(f'full X-ray folder not found at {path}; set {SHARED_DATA_ENV} '
                'to the folder that holds chest_xray/')
  return path
