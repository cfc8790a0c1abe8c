"""cli: the binaries' earlier flags still reach their config fields."""

from cxrgan_jax import cli


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
