"""The DCGAN baseline computes the PyTorch DCGAN example's train step.

Same initial weights (converted between layouts), same real batch, same
latents, float32: one full D + G step of `cxrgan_jax.steps` and of
`bench/torch_dcgan.py` must give the same losses and the same updated
weights and BatchNorm statistics. Needs torch (the `bench` extra).
"""

from typing import NamedTuple

import jax
import ml_collections
import numpy as np
import pytest

from configs import dcgan_normal
from cxrgan_jax import parallel
from cxrgan_jax import state as state_lib
from cxrgan_jax import steps

torch = pytest.importorskip('torch', reason='the DCGAN parity test needs torch (bench extra)')
torch_dcgan = pytest.importorskip('bench.torch_dcgan')

BATCH = 16


def parity_config():
  config = dcgan_normal.get_config()
  config.g_channels = 64
  config.d_channels = 64
  config.batch_size = BATCH
  return config


def step_latents(config, state) -> np.ndarray:
  """The latents of step 0's (only) D update, which the G update reuses."""
  z_key, _ = steps.d_update_keys(jax.random.fold_in(state.rng, state.step), 0)
  latents = jax.pmap(
    lambda k: steps.sample_latents(k, BATCH, config.latent_dim),
    axis_name=steps.AXIS,
    devices=jax.local_devices()[:1],
  )(z_key[None])
  return np.asarray(latents[0])


def to_torch(module, params, state):
  return torch_dcgan.state_dict_from_flax(module, params, state.get('batch_stats', {}))


def nchw(x: np.ndarray):
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


class Run(NamedTuple):
  config: ml_collections.ConfigDict
  init: state_lib.TrainState
  after: state_lib.TrainState
  metrics: dict
  g: 'torch.nn.Module'
  d: 'torch.nn.Module'
  g_opt: 'torch.optim.Optimizer'
  d_opt: 'torch.optim.Optimizer'
  torch_losses: dict
  bn_calls: dict  # torch BatchNorm2d -> [examples * H * W of each training forward]


@pytest.fixture(scope='module')
def run() -> Run:
  """One step of each implementation from the same weights, batch and latents."""
  config = parity_config()
  generator, discriminator, g_tx, d_tx, init = state_lib.build(config, axis_name=steps.AXIS)
  real = np.random.RandomState(0).uniform(-1, 1, (1, BATCH, 64, 64, 1)).astype(np.float32)
  devices = jax.local_devices()[:1]
  p_step = steps.make_pmapped_steps(config, generator, discriminator, g_tx, d_tx, devices)(0)
  z = step_latents(config, init)

  torch.manual_seed(0)
  g = torch_dcgan.Generator(config.resolution, config.latent_dim, config.g_channels)
  d = torch_dcgan.Discriminator(config.resolution, config.d_channels)
  g.load_state_dict(to_torch(g, init.g_params, init.g_state))
  d.load_state_dict(to_torch(d, init.d_params, init.d_state))
  opt = config.g_optimizer
  g_opt, d_opt = torch_dcgan.make_optimizers(g, d, opt.learning_rate, (opt.b1, opt.b2))
  bn_calls = {}
  for layer in [*g.modules(), *d.modules()]:
    if isinstance(layer, torch.nn.BatchNorm2d):
      layer.register_forward_hook(
        lambda m, x, _: bn_calls.setdefault(m, []).append(x[0].numel() // x[0].shape[1])
      )
  d_loss, g_loss = torch_dcgan.train_step(g, d, g_opt, d_opt, nchw(real[0]), torch.tensor(z))

  rstate, metrics = p_step(parallel.replicate(init, devices), {'image': real[None]})
  return Run(
    config,
    init,
    jax.device_get(parallel.unreplicate(rstate)),
    jax.device_get(parallel.unreplicate(metrics)),
    g,
    d,
    g_opt,
    d_opt,
    dict(d_loss=float(d_loss), g_loss=float(g_loss)),
    bn_calls,
  )


def test_losses_match(run):
  assert run.metrics['finite'] == 1.0
  for key in ('d_loss', 'g_loss'):
    np.testing.assert_allclose(run.metrics[key], run.torch_losses[key], rtol=1e-5, err_msg=key)


def unbiased_to_biased(start, torch_var, calls, momentum=0.1):
  """PyTorch's running variance as flax would keep it.

  Deliberate difference: each training forward folds the batch variance into
  the running average; PyTorch folds in the unbiased one (x n/(n-1), n =
  examples * H * W per channel), flax the biased one.
  """
  decay = (1.0 - momentum) ** len(calls)
  assert len(set(calls)) == 1, calls
  n = calls[0]
  return decay * start + (torch_var - decay * start) * (n - 1) / n


def adam_first_moments(run, net):
  """(ours, theirs): each parameter's Adam first moment (1 - b1) * grad, torch layout."""
  module = getattr(run, net)
  opt_state = getattr(run.after, f'{net}_opt_state')
  mu = opt_state[0].mu  # optax.adam = chain(scale_by_adam, scale_by_learning_rate).
  ours = to_torch(module, mu, getattr(run.init, f'{net}_state'))
  opt = run.g_opt if net == 'g' else run.d_opt
  theirs = {name: opt.state[p]['exp_avg'].numpy() for name, p in module.named_parameters()}
  return {k: ours[k].numpy() for k in theirs}, theirs


@pytest.mark.parametrize('net', ['g', 'd'])
def test_gradients_match(run, net):
  ours, theirs = adam_first_moments(run, net)
  for name, want in theirs.items():
    # Elementwise relative to the tensor's largest gradient: the sums run in
    # another order (matmul forms vs convolutions), and BatchNorm's backward
    # (which subtracts means) amplifies that rounding in G's early layers to
    # ~1e-4 (measured 7e-5 with the phase-form up-convs).
    np.testing.assert_allclose(
      ours[name], want, rtol=1e-5, atol=2e-4 * np.max(np.abs(want)), err_msg=name
    )


@pytest.mark.parametrize('net', ['g', 'd'])
def test_updated_weights_and_statistics_match(run, net):
  module = getattr(run, net)
  before = to_torch(module, getattr(run.init, f'{net}_params'), getattr(run.init, f'{net}_state'))
  ours = to_torch(module, getattr(run.after, f'{net}_params'), getattr(run.after, f'{net}_state'))
  theirs = module.state_dict()
  layers = dict(module.named_modules())
  our_mu, their_mu = adam_first_moments(run, net)
  opt = run.config.g_optimizer if net == 'g' else run.config.d_optimizer
  assert set(ours) == set(theirs)
  for name, value in theirs.items():
    if name.endswith('num_batches_tracked'):
      continue
    want, got, start = value.numpy(), ours[name].numpy(), before[name].numpy()
    atol = 1e-7
    if name.endswith('running_var'):
      calls = run.bn_calls[layers[name.rsplit('.', 1)[0]]]
      # D sees real, fakes, and fakes again in the G update; G runs once.
      assert len(calls) == (1 if net == 'g' else 3)
      want = unbiased_to_biased(start, want, calls)
    elif name in their_mu:
      # Adam's first update is lr * g / (|g| + eps): where |g| is near eps it
      # amplifies the gradients' rounding differences (measured above) by
      # lr * eps / (|g| + eps)^2.
      grad = np.abs(their_mu[name]) / (1.0 - opt.b1)
      grad_error = np.max(np.abs(our_mu[name] - their_mu[name])) / (1.0 - opt.b1)
      eps = 1e-8
      linear = opt.learning_rate * eps * grad_error / (grad + eps) ** 2
      # Where |g| is within rounding of 0 the update's sign is free: up to 2 lr.
      atol = atol + np.where(grad <= grad_error, 2 * opt.learning_rate, linear)
    assert np.any(want != start), f'{name} did not change'
    np.testing.assert_array_less(np.abs(got - want), 1e-5 * np.abs(want) + atol, err_msg=name)


def nominal_init(layer, name: str) -> tuple[float, float]:
  """(mean, std) of a DCGAN parameter or statistic at init (Radford et al. 2015)."""
  if name.endswith('running_var'):
    return 1.0, 0.0
  if name.endswith(('bias', 'running_mean')):
    return 0.0, 0.0
  return (1.0, 0.02) if isinstance(layer, torch.nn.BatchNorm2d) else (0.0, 0.02)


def test_initialisations_have_the_same_distributions(run):
  """Both draw N(0, 0.02) weights, zero biases and BatchNorm gammas ~ N(1,
  0.02); the draws themselves differ, so the other tests copy weights."""
  torch.manual_seed(1)
  fresh = dict(
    g=torch_dcgan.Generator(64, run.config.latent_dim, run.config.g_channels),
    d=torch_dcgan.Discriminator(64, run.config.d_channels),
  )
  for net, module in fresh.items():
    ours = to_torch(module, getattr(run.init, f'{net}_params'), getattr(run.init, f'{net}_state'))
    layers = dict(module.named_modules())
    for name, value in module.state_dict().items():
      if name.endswith('num_batches_tracked'):
        continue
      mean, std = nominal_init(layers[name.rsplit('.', 1)[0]], name)
      for side, x in (('flax', ours[name].numpy()), ('torch', value.numpy())):
        # Within 5 standard errors of the sample mean and of the sample std.
        n, msg = x.size, f'{side} {name}'
        np.testing.assert_allclose(x.mean(), mean, atol=5 * std / np.sqrt(n) + 1e-7, err_msg=msg)
        np.testing.assert_allclose(x.std(), std, atol=5 * std / np.sqrt(2 * n) + 1e-7, err_msg=msg)
