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
  return pathlib.Path(os.environ.get(SHARED_DATA_ENV, PROJECT_ROOT.parent / 'shared' / 'data'))


@pytest.fixture(scope='session')
def shared_chest_xray_dir() -> pathlib.Path:
  """`<shared>/chest_xray` (Kaggle layout), or skip with the reason."""
  path = shared_data_root() / 'chest_xray'
  if not (path / 'train').is_dir():
    pytest.skip(
      f'full X-ray folder not found at {path}; set {SHARED_DATA_ENV} '
      'to the folder that holds chest_xray/'
    )
  return path


# --- Data fixtures (TFDS builder in data_prep/chest_xray_pneumonia) --------

DEMO_MANUAL_DIR = PROJECT_ROOT / 'data_prep' / 'demo'
DEMO_CONFIGS = ('normal', 'bacterial', 'viral', 'all')


def import_builder_module():
  """The builder package, imported once under the name the tfds CLI uses.

  Importing registers `chest_xray_pneumonia` with TFDS; one module name keeps
  it from being registered twice in a test session.
  """
  import importlib  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  data_prep = str(PROJECT_ROOT / 'data_prep')
  if data_prep not in sys.path:
    sys.path.insert(0, data_prep)
  return importlib.import_module('chest_xray_pneumonia.chest_xray_pneumonia')


def build_dataset(manual_dir, data_dir, config) -> None:
  """download_and_prepare one config (a name or a config object)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  module = import_builder_module()
  builder = module.ChestXrayPneumonia(config=config, data_dir=str(data_dir))
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
  )


@pytest.fixture(scope='session')
def compilation_cache(tmp_path_factory) -> pathlib.Path:
  """One jax persistent compilation cache for the session's child processes.

  Each launch of main.py or the study runner compiles the same tiny programs;
  with the cache only the first launch of a program compiles it.
  """
  return tmp_path_factory.mktemp('jax_cache')


@pytest.fixture(scope='session')
def demo_tfds_dir(tmp_path_factory) -> str:
  """TFDS data_dir holding every config of the bundled demo sample.

  Built once per session (array_record, image_size 256; ~3 s on 2 cores):
  300 real images, 100 per class; read it with
  `tfds.data_source('chest_xray_pneumonia/<config>', data_dir=...)` or the
  functions of cxrgan_jax.input_pipeline.
  """
  data_dir = tmp_path_factory.mktemp('demo_tfds')
  for config in DEMO_CONFIGS:
    build_dataset(DEMO_MANUAL_DIR, data_dir, config)
  return str(data_dir)
