"""Step functions, config checks, NaN handling and sampling of the training code."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from cxrgan_jax import config_checks
from cxrgan_jax import parallel
from cxrgan_jax import sampling
from cxrgan_jax import state as state_lib
from cxrgan_jax import steps
from cxrgan_jax import train


def tiny_config(model: str = 'resnet', **overrides):
  """configs/tiny.py with every random path of the step switched on."""
  config = tiny.get_config(model)
  config.augment.p = 0.5
  config.augment.interval = 1
  config.instance_noise.std = 0.1
  config.d_steps = 2
  for key, value in overrides.items():
    config[key] = value
  return config


def run_one_step(config, num_devices: int, real: np.ndarray):
  """One pmapped step over `num_devices` on a global batch real [d_steps, B, R, R, 1]."""
  generator, discriminator, g_tx, d_tx, state = train.build(config)
  devices = jax.local_devices()[:num_devices]
  p_step = steps.make_pmapped_steps(config, generator, discriminator, g_tx, d_tx, devices)(0)
  d, b = real.shape[:2]
  sharded = real.reshape(d, num_devices, b // num_devices, *real.shape[2:]).swapaxes(0, 1)
  rstate = parallel.replicate(state, devices)
  rstate, metrics = p_step(rstate, {'image': sharded})
  return (
    jax.device_get(parallel.unreplicate(rstate)),
    jax.device_get(parallel.unreplicate(metrics)),
  )


def test_two_devices_equal_one_device_on_the_same_global_batch():
  # DCGAN has BatchNorm in G and D, the case where device layout could leak in;
  # augmentation, instance noise and R1 cover every random path.
  assert jax.local_device_count() >= 2, 'conftest sets 2 host devices'
  config = tiny_config('dcgan', d_steps=1)
  # SGD, not Adam: Adam's first update is lr * sign(g), so a gradient that is
  # zero up to float rounding flips sign and hides the comparison in noise.
  for opt in (config.g_optimizer, config.d_optimizer):
    opt.name, opt.learning_rate = 'sgd', 0.05
  real = np.random.RandomState(0).uniform(-1, 1, (config.d_steps, 8, 64, 64, 1))
  real = real.astype(np.float32)
  *_, init = train.build(config)
  one, m1 = run_one_step(config, 1, real)
  two, m2 = run_one_step(config, 2, real)
  assert m1['finite'] == 1.0 and m2['finite'] == 1.0
  for name in ('g_params', 'd_params', 'ema_params', 'g_state', 'd_state'):
    leaves0 = jax.tree.leaves(getattr(init, name))
    leaves1 = jax.tree.leaves(getattr(one, name))
    leaves2 = jax.tree.leaves(getattr(two, name))
    assert len(leaves1) == len(leaves2) == len(leaves0)
    # Compare the step's updates relative to their size (float32 sums in
    # another order: ~2e-6 measured). Randomness keyed by device, or a missing
    # pmean, changes updates by their own size.
    scale = max(float(np.max(np.abs(b - a))) for a, b in zip(leaves0, leaves1))
    assert scale > 0, name
    for a, b, c in zip(leaves0, leaves1, leaves2):
      np.testing.assert_allclose(c - a, b - a, rtol=0, atol=1e-4 * scale, err_msg=name)
  for key in ('d_loss', 'g_loss', 'd_real', 'd_fake', 'r1'):
    np.testing.assert_allclose(m1[key], m2[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_resnet_step_learns_and_adapts_augmentation():
  # One D update: two double the compile time, and the d_steps loop does not
  # depend on the model (tests/test_multihost.py trains the DCGAN with two).
  config = tiny_config('resnet', d_steps=1)
  config.augment.p = 0.0
  config.augment.target = -1.0  # Any r_t is above target: p must go up.
  _, _, _, _, before = train.build(config)
  after, metrics = run_one_step(config, 2, np.zeros((1, 8, 64, 64, 1), np.float32))
  assert int(after.step) == 1 and metrics['finite'] == 1.0
  assert metrics['r1'] >= 0.0 and 0.0 <= metrics['d_real'] <= 1.0
  for name in ('g_params', 'd_params'):
    moved = [
      not np.allclose(a, b)
      for a, b in zip(jax.tree.leaves(getattr(before, name)), jax.tree.leaves(getattr(after, name)))
    ]
    assert any(moved), name
  expected = config.batch_size / config.augment.adjust_images
  np.testing.assert_allclose(after.augment_p, expected, rtol=1e-6)


def test_non_finite_step_keeps_the_old_state():
  config = tiny_config('dcgan', d_steps=1)
  config.g_optimizer.learning_rate = 1e38
  config.augment.policy = ''
  _, _, _, _, before = train.build(config)
  after, metrics = run_one_step(config, 2, np.zeros((1, 8, 64, 64, 1), np.float32))
  assert metrics['finite'] == 0.0
  assert int(after.step) == 0
  for a, b in zip(jax.tree.leaves(before.g_params), jax.tree.leaves(after.g_params)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
  'field,value,message',
  [
    ('resolution', 96, 'config.resolution'),
    ('batch_size', 7, 'config.batch_size'),
    ('loss', 'wasserstein', 'config.loss'),
    ('model', 'stylegan9', 'config.model'),
    ('d_steps', 0, 'config.d_steps'),
    ('ema_decay', 1.5, 'config.ema_decay'),
    ('lr_cooldown_fraction', 1.5, 'config.lr_cooldown_fraction'),
    ('sample_every_steps', 0, 'config.sample_every_steps'),
    ('checkpoint_every_steps', 0, 'config.checkpoint_every_steps'),
    ('eval_every_steps', -1, 'config.eval_every_steps'),
    ('eval_start_step', -1, 'config.eval_start_step'),
  ],
)
def test_impossible_configs_fail_naming_the_field(field, value, message):
  config = tiny_config()
  config[field] = value
  with pytest.raises(config_checks.ConfigError, match=message.replace('.', r'\.')):
    config_checks.check_config(config, devices=2, processes=1)


def test_unknown_optimizer_and_policy_fail_naming_the_field():
  config = tiny_config()
  config.g_optimizer.name = 'lamb'
  with pytest.raises(config_checks.ConfigError, match=r'config\.g_optimizer\.name'):
    config_checks.check_config(config, devices=1, processes=1)
  config = tiny_config()
  config.augment.policy = 'translation,hflip'
  with pytest.raises(config_checks.ConfigError, match='policy'):
    config_checks.check_config(config, devices=1, processes=1)


@pytest.mark.parametrize(
  'features,needs', [('cxr', 'classifier_workdir'), ('inception', 'weights')]
)
def test_in_training_features_without_their_model_fail_naming_the_field(features, needs):
  config = tiny_config()
  config.eval_every_steps, config.eval.features = 10, features
  with pytest.raises(config_checks.ConfigError, match=rf'config\.eval\.\w*{needs}'):
    config_checks.check_config(config, devices=1, processes=1)
  config.eval_every_steps = 0  # No in-training evaluation: nothing to check.
  config_checks.check_config(config, devices=1, processes=1)


def _update_sizes(tx, count: int) -> list[float]:
  """|update| of `count` applications of tx to one weight under a constant gradient."""
  params = {'w': jnp.zeros(())}
  opt_state = tx.init(params)
  sizes = []
  for _ in range(count):
    updates, opt_state = tx.update({'w': jnp.ones(())}, opt_state, params)
    sizes.append(float(jnp.abs(updates['w'])))
  return sizes


def test_cooldown_holds_then_decays_each_nets_learning_rate_to_zero():
  config = tiny_config('dcgan', num_train_steps=4, lr_cooldown_fraction=0.5)
  config.g_optimizer.b1 = config.d_optimizer.b1 = 0.0  # Adam's step is then lr * 1.
  _, _, g_tx, d_tx, _ = train.build(config)
  lr = config.g_optimizer.learning_rate
  # G: held for 2 of its 4 updates, then linear to 0 (updates 3, 4) and 0 after.
  np.testing.assert_allclose(_update_sizes(g_tx, 6), [lr, lr, lr, lr / 2, 0, 0], rtol=1e-3)
  # D, updated d_steps=2 times per step: the same shape over 8 updates.
  d_lr = config.d_optimizer.learning_rate
  d_sizes = _update_sizes(d_tx, 9)
  np.testing.assert_allclose(d_sizes[:5], [d_lr] * 5, rtol=1e-3)
  np.testing.assert_allclose(d_sizes[5:], [0.75 * d_lr, 0.5 * d_lr, 0.25 * d_lr, 0], rtol=1e-3)
  # Off (the default): constant.
  constant = state_lib.make_optimizer(config.g_optimizer, 0.0, num_updates=4)
  np.testing.assert_allclose(_update_sizes(constant, 6), [lr] * 6, rtol=1e-3)


def test_generate_fn_is_deterministic_and_in_range():
  config = tiny_config()
  generator, _, _, _, state = train.build(config)
  generate = sampling.make_generate_fn(generator)
  z = train.fixed_latents(config)
  a = generate(state.ema_params, state.g_state, z)
  b = generate(state.ema_params, state.g_state, z)
  assert a.shape == (config.num_sample_images, 64, 64, 1)
  np.testing.assert_array_equal(a, b)
  assert float(jnp.max(jnp.abs(a))) <= 1.0


def test_time_budget_counts_earlier_starts_and_bounds_the_eta(tmp_path):
  # A resumed run gets only the budget left after its earlier starts.
  lines = [{'step': 10, 'steps_per_sec': 0.5}, {'step': 20, 'steps_per_sec': 1.0}]  # 20 s + 10 s.
  (tmp_path / 'metrics.jsonl').write_text(''.join(json.dumps(x) + '\n' for x in lines))
  budget = train.TimeBudget(1.0, tmp_path, every=10)
  assert budget.spent_before == pytest.approx(30.0)
  assert 29.0 < budget.seconds_left() <= 30.0
  assert not budget.exhausted and not budget.reached(10)
  assert train.TimeBudget(0.5, tmp_path, every=10).exhausted
  assert train.TimeBudget(0.0, tmp_path, every=10).seconds_left() == float('inf')
