"""Checkpoints written before the matmul-form layers (commit 8ba5f2b) still work.

tests/data/pre_matmul_layers.json holds, for each family with and without
spectral norm, the variable tree (paths and shapes) of a tiny model as that
older code built it, and the outputs of its G and D for variables filled
deterministically from that tree. The test rebuilds the tree with the current
code: the same paths and shapes mean an old checkpoint restores into it, and
the same outputs mean it computes the same function.

Regenerate (only when the variable layout changes on purpose, together with a
migration note in README): `PYTHONPATH=. python tests/test_checkpoint_compat.py`.
"""

import json
import pathlib

import jax
import numpy as np
import pytest

from configs import base
from cxrgan_jax import checkpoints
from cxrgan_jax import models
from cxrgan_jax import state as state_lib

FIXTURE = pathlib.Path(__file__).parent / 'data' / 'pre_matmul_layers.json'
CASES = [('dcgan', False), ('dcgan', True), ('resnet', False), ('resnet', True)]


def _config(model: str, spectral_norm: bool):
  config = base.get_config()
  config.model, config.resolution, config.spectral_norm = model, 64, spectral_norm
  config.latent_dim, config.g_channels, config.d_channels = 4, 8, 8
  return config


def _signature(variables) -> list[list]:
  return [
    [jax.tree_util.keystr(path), list(leaf.shape)]
    for path, leaf in jax.tree_util.tree_leaves_with_path(variables)
  ]


def _fill(variables, seed: int):
  """Deterministic values of a sensible scale for each leaf, by its path."""
  rng = np.random.default_rng(seed)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
  filled = []
  for path, leaf in leaves:
    name = jax.tree_util.keystr(path)
    if name.endswith(("['var']", "sigma']")):
      value = rng.uniform(0.5, 1.5, leaf.shape)
    elif name.endswith("['kernel']"):
      value = rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
    elif name.endswith("['scale']"):
      value = 1.0 + 0.1 * rng.standard_normal(leaf.shape)
    else:
      value = 0.1 * rng.standard_normal(leaf.shape)
    filled.append(np.asarray(value, leaf.dtype))
  return jax.tree_util.tree_unflatten(treedef, filled)


def _outputs(model: str, spectral_norm: bool) -> dict:
  config = _config(model, spectral_norm)
  g, d = models.create_models(config)
  rng = np.random.default_rng(0)
  z = rng.standard_normal((2, config.latent_dim)).astype(np.float32)
  x = rng.uniform(-1.0, 1.0, (2, 64, 64, 1)).astype(np.float32)
  g_shapes = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), z, train=False))
  d_shapes = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), x, train=False))
  g_vars, d_vars = _fill(g_shapes, 1), _fill(d_shapes, 2)
  images = np.asarray(jax.jit(lambda v, z: g.apply(v, z, train=False))(g_vars, z))[..., 0]
  logits = np.asarray(jax.jit(lambda v, x: d.apply(v, x, train=False))(d_vars, x))

  def rounded(a):
    return np.vectorize(lambda v: float(f'{v:.7g}'))(a).tolist()

  return {
    'g_tree': _signature(g_shapes),
    'd_tree': _signature(d_shapes),
    # Two corners cover both borders and every sub-pixel phase.
    'g_corners': [rounded(images[:, :6, :6]), rounded(images[:, -6:, -6:])],
    'd_logits': rounded(logits),
  }


@pytest.mark.parametrize('model,spectral_norm', CASES)
def test_old_variable_trees_load_and_compute_the_same(model, spectral_norm):
  want = json.loads(FIXTURE.read_text())[f'{model}/sn={spectral_norm}']
  got = _outputs(model, spectral_norm)
  assert got['g_tree'] == want['g_tree']
  assert got['d_tree'] == want['d_tree']
  np.testing.assert_allclose(got['g_corners'], want['g_corners'], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(got['d_logits'], want['d_logits'], rtol=1e-4, atol=1e-4)


def test_restore_of_another_layout_fails_naming_the_array(tmp_path):
  # Orbax alone would restore mismatched shapes silently (truncated/padded).
  config = _config('dcgan', False)
  saved = state_lib.build(config)[-1]
  latest, _ = checkpoints.create_managers(tmp_path, keep=1)
  wider = _config('dcgan', False)
  wider.g_channels = 16
  # A meta config that disagrees with the arrays: what a checkpoint of an
  # older parameter layout looks like to restore_generator.
  checkpoints.save(latest, saved, {}, {'config': wider.to_dict()})
  latest.wait_until_finished()
  template = jax.eval_shape(lambda: state_lib.build(wider)[-1])  # Shapes suffice.
  message = r"\['ema_params'\]\['BatchNorm_0'\]\['bias'\] has shape \(8,\) there but \(16,\)"
  with pytest.raises(checkpoints.CheckpointError, match=message):
    checkpoints.restore(latest, template)
  with pytest.raises(checkpoints.CheckpointError, match='does not fit this model'):
    checkpoints.restore_generator(tmp_path)
  restored, _, _ = checkpoints.restore(latest, saved)  # Control: same layout restores.
  assert int(restored.step) == int(saved.step)


def test_a_mismatched_newest_step_is_not_skipped_as_damaged(tmp_path):
  """Fallback to an older step is for damage; another model's checkpoint stops the read."""
  config = _config('dcgan', False)
  saved = state_lib.build(config)[-1]
  latest, _ = checkpoints.create_managers(tmp_path, keep=2)
  wider = _config('dcgan', False)
  wider.g_channels = 16
  checkpoints.save(latest, saved, {}, {'config': config.to_dict()})
  checkpoints.save(latest, saved.replace(step=saved.step + 1), {}, {'config': wider.to_dict()})
  latest.wait_until_finished()
  with pytest.raises(checkpoints.ModelMismatchError, match='step 1 .* does not fit this model'):
    checkpoints.restore_generator(tmp_path)
  assert checkpoints.restore_generator(tmp_path, step=0).step == 0


if __name__ == '__main__':
  FIXTURE.parent.mkdir(exist_ok=True)
  fixture = {f'{m}/sn={sn}': _outputs(m, sn) for m, sn in CASES}
  FIXTURE.write_text(json.dumps(fixture, separators=(',', ':')) + '\n')
  print(f'wrote {FIXTURE}')
