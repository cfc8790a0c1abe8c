"""What the binaries share: a config file read by config_flags, with short flags.

Each binary reads its settings as an ml_collections config (configs/eval.py,
configs/classifier.py), overridable field by field as `--config.FIELD=VALUE`.
For the command lines written before the configs existed, `--FIELD=VALUE`,
`--FIELD VALUE`, `--FIELD` and `--noFIELD` (booleans) are accepted as
shorthands for a top-level FIELD of the binary's default config. Library
modules never import this one.
"""

from collections.abc import Sequence
import importlib.util
import pathlib
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs'


def _quiet_library_info(record) -> bool:
  """Keeps Orbax's and TFDS's per-call INFO chatter out of a training log."""
  noisy = ('/orbax/', '/tensorflow_datasets/', '/jax/_src/xla_bridge')
  return record.levelno >= logging.WARNING or not any(n in record.pathname for n in noisy)


def quiet_library_logs() -> None:
  logging.get_absl_handler().addFilter(_quiet_library_info)


def define_config_flag(name: str, help_text: str) -> tuple[flags.FlagHolder, list[str]]:
  """--config=FILE (default configs/<name>.py), read like main.py's.

  Returns the flag and the command line with shorthands expanded, for
  `app.run(main, argv=...)`: config_flags reads its overrides when the flag
  is defined, so both must see the same expanded command line.
  """
  argv = expand_shorthands(sys.argv, name)
  holder = config_flags.DEFINE_config_file(
    'config', str(CONFIGS / f'{name}.py'), help_text, lock_config=True, sys_argv=argv
  )
  return holder, argv


def _default_fields(name: str) -> dict:
  spec = importlib.util.spec_from_file_location(f'_cxrgan_config_{name}', CONFIGS / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def expand_shorthands(argv: Sequence[str], name: str) -> list[str]:
  """argv with `--FIELD...` of configs/<name>.py rewritten to `--config.FIELD...`.

  A `--config FILE` given after them moves first: config_flags wants the file
  before its overrides.
  """
  config = _default_fields(name)
  argv = list(argv)
  for i, arg in enumerate(argv):
    if arg == '--config' or arg.startswith('--config='):
      n = 2 if arg == '--config' else 1
      argv = argv[:1] + argv[i : i + n] + argv[1:i] + argv[i + n :]
      break
  out = [argv[0]]
  for arg in argv[1:]:
    key, eq, value = arg[2:].partition('=') if arg.startswith('--') else ('', '', '')
    if key in config:
      arg = f'--config.{key}{eq}{value}'
    elif key.startswith('no') and not eq and isinstance(config.get(key[2:]), bool):
      arg = f'--config.{key[2:]}=false'
    out.append(arg)
  return out
