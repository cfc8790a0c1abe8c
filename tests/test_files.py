"""files: writes appear whole or not at all; one cache root."""

import json
import os
import stat

import pytest

from cxrgan_jax import files


def test_atomic_write_replaces_only_on_success(tmp_path):
  path = tmp_path / 'sub' / 'data.json'
  files.write_json(path, {'b': 1, 'a': [1, 2]})
  assert json.loads(path.read_text()) == {'a': [1, 2], 'b': 1}
  assert path.read_text().endswith('\n')
  with pytest.raises(RuntimeError):
    with files.atomic_write(path, 'w') as f:
      f.write('half a file')
      raise RuntimeError('crash while writing')
  # The old content is intact and no temporary file is left behind.
  assert json.loads(path.read_text()) == {'a': [1, 2], 'b': 1}
  assert [p.name for p in path.parent.iterdir()] == ['data.json']


def test_atomic_write_gives_the_umask_permissions(tmp_path):
  # A workdir shared by a group must stay readable: not mkstemp's 0600.
  old_umask = os.umask(0o022)
  try:
    files.write_text(tmp_path / 'a.txt', 'x')
    os.umask(0o002)
    files.write_text(tmp_path / 'b.txt', 'x')
  finally:
    os.umask(old_umask)
  assert stat.S_IMODE((tmp_path / 'a.txt').stat().st_mode) == 0o644
  assert stat.S_IMODE((tmp_path / 'b.txt').stat().st_mode) == 0o664


def test_sha256_and_cache_root(tmp_path, monkeypatch):
  (tmp_path / 'x').write_bytes(b'abc')
  assert files.sha256(tmp_path / 'x').startswith('ba7816bf')  # SHA-256('abc').
  monkeypatch.setenv(files.CACHE_ENV, str(tmp_path / 'cache'))
  assert files.cache_root() == tmp_path / 'cache'
  monkeypatch.delenv(files.CACHE_ENV)
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
  assert files.cache_root() == tmp_path / 'xdg' / 'cxrgan_jax'


def test_write_json_rounds_floats_to_significant_digits(tmp_path):
  path = tmp_path / 'results.json'
  value = {'a': [132.19346408457193, 1.23456789e-7, 3], 'b': {'c': float('nan'), 'd': 'x'}}
  files.write_json(path, value, significant_digits=6)
  got = json.loads(path.read_text())
  assert got['a'] == [132.193, 1.23457e-07, 3] and got['b']['d'] == 'x'
  assert got['b']['c'] != got['b']['c']  # NaN stays NaN.


def test_write_json_inline_depth_puts_deep_values_on_one_line(tmp_path):
  path = tmp_path / 'results.json'
  value = {
    'runs': [{'name': 'a/seed0', 'scores': [{'fd': 1.5, 'step': 2}, {'fd': 1.0, 'step': 4}]}]
  }
  files.write_json(path, value, inline_depth=4)
  text = path.read_text()
  assert json.loads(text) == value
  assert '      {"fd": 1.5, "step": 2},\n' in text  # One scored point per line.
  assert text.count('\n') == 11
  table = {'scores': {'columns': ['step', 'fd'], 'rows': [[2, 1.5], [4, 1.0]]}}
  files.write_json(path, table, inline_depth=9)  # Lists of plain values: one line each.
  assert path.read_text().splitlines()[2:5] == [
    '    "columns": ["step", "fd"],',
    '    "rows": [',
    '      [2, 1.5],',
  ]
  files.write_json(path, {'empty': {}, 'x': []}, inline_depth=1)
  assert json.loads(path.read_text()) == {'empty': {}, 'x': []}
