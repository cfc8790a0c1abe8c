"""The tree is formatted and lint-clean under the project's ruff config."""

import shutil
import subprocess

from conftest import PROJECT_ROOT
import pytest

RUFF = shutil.which('ruff')


@pytest.mark.skipif(RUFF is None, reason='ruff not installed (it is in the test extra)')
@pytest.mark.parametrize('args', [['format', '--check', '.'], ['check', '.']])
def test_ruff_is_clean(args):
  result = subprocess.run([RUFF, *args], cwd=PROJECT_ROOT, capture_output=True, text=True)
  assert result.returncode == 0, (
    f'ruff {" ".join(args)} failed; run `ruff format . && ruff check --fix .`:\n'
    f'{result.stdout}{result.stderr}'
  )
