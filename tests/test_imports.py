"""The import rule of the README's layout, read from the source (no imports run).

binaries -> study -> train / evaluation / sampling / classifier -> steps, state,
checkpoints, models, metrics, ... -> files / images / batching. A module may
import its own layer or lower ones; no library module imports a binary or
configs/; metrics/ imports only metrics/ and the lowest layer.
"""

import ast
import pathlib

from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / 'cxrgan_jax'
BINARIES = {
  'main',
  'cxrgan_jax.cli',
  'cxrgan_jax.evaluate',
  'cxrgan_jax.sample',
  'cxrgan_jax.classifier.__main__',
  'cxrgan_jax.study.__main__',
}
# Module-name prefix -> layer; higher layers may import lower ones.
LAYERS = {
  'cxrgan_jax.study': 3,
  'cxrgan_jax.train': 2,
  'cxrgan_jax.evaluation': 2,
  'cxrgan_jax.sampling': 2,
  'cxrgan_jax.classifier': 2,
  'cxrgan_jax.config_checks': 2,  # Checks config.eval against evaluation's names.
  'cxrgan_jax.steps': 1,
  'cxrgan_jax.state': 1,
  'cxrgan_jax.checkpoints': 1,
  'cxrgan_jax.models': 1,
  'cxrgan_jax.metrics': 1,
  'cxrgan_jax.input_pipeline': 1,
  'cxrgan_jax.losses': 1,
  'cxrgan_jax.augment': 1,
  'cxrgan_jax.parallel': 1,
  'cxrgan_jax.preemption': 1,
  'cxrgan_jax.workdir': 1,
  'cxrgan_jax.files': 0,
  'cxrgan_jax.images': 0,
  'cxrgan_jax.batching': 0,
  'cxrgan_jax.run_log': 0,
}


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(PROJECT_ROOT).with_suffix('').parts)
  if parts[-1] == '__init__':
    parts.pop()
  return '.'.join(parts)


def _layer(module: str) -> int | None:
  for prefix, layer in LAYERS.items():
    if module == prefix or module.startswith(prefix + '.'):
      return layer
  return None


def _imports(path: pathlib.Path) -> set[str]:
  """Project modules imported anywhere in the file (top level or inside functions)."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      out.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        full = f'{node.module}.{alias.name}'
        is_module = (PROJECT_ROOT / full.replace('.', '/')).with_suffix('.py').is_file() or (
          PROJECT_ROOT / full.replace('.', '/')
        ).is_dir()
        out.add(full if is_module else node.module)
  return {m for m in out if m.split('.')[0] in ('cxrgan_jax', 'configs', 'main')}


def _check(module: str, imported: set[str]) -> list[str]:
  """The rule's complaints about `module` importing `imported`."""
  layer = _layer(module)
  if layer is None:
    return [f'{module}: not in the layer table of tests/test_imports.py']
  bad = []
  for name in sorted(imported):
    target = _layer(name)
    if name in BINARIES or name.split('.')[0] == 'configs':
      bad.append(f'{module} imports {name}, a binary or a config')
    elif target is not None and target > layer:
      bad.append(f'{module} (layer {layer}) imports {name} (layer {target})')
    elif module.startswith('cxrgan_jax.metrics') and target == 1:
      if not name.startswith('cxrgan_jax.metrics'):
        bad.append(f'{module} imports {name}: metrics/ imports nothing above it')
  return bad


def test_library_imports_follow_the_layers():
  bad = []
  for path in sorted(PACKAGE.rglob('*.py')):
    module = _module_name(path)
    if module not in BINARIES and module != 'cxrgan_jax':
      bad += _check(module, _imports(path))
  assert bad == []


def test_the_rule_catches_violations():
  found = _check('cxrgan_jax.metrics.x', {'cxrgan_jax.sampling', 'cxrgan_jax.evaluate'})
  assert len(found) == 2, found
  assert _check('cxrgan_jax.metrics.x', {'cxrgan_jax.checkpoints'})  # Same layer, not metrics/.
  assert _check('cxrgan_jax.steps', {'cxrgan_jax.train'})
  assert _check('cxrgan_jax.sampling', {'configs.tiny'})
  assert not _check('cxrgan_jax.train', {'cxrgan_jax.sampling', 'cxrgan_jax.files'})
  # The reader resolves `from package import module` to the module.
  assert 'cxrgan_jax.evaluation.suite' in _imports(PROJECT_ROOT / 'cxrgan_jax' / 'evaluate.py')
