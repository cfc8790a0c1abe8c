"""Models: shapes and ranges, exact layer rewrites, BatchNorm sync (pmap)."""

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import base
from configs import tiny
from cxrgan_jax import models
from cxrgan_jax.models import layers

FAMILIES = ('dcgan', 'resnet')


def small_config(model: str, resolution: int = 64, spectral_norm=False):
  config = tiny.get_config(model)
  config.resolution = resolution
  config.spectral_norm = spectral_norm
  return config


class Pair(NamedTuple):
  """An initialised model pair of the small test config."""

  config: ml_collections.ConfigDict
  g: nn.Module
  d: nn.Module
  g_vars: dict
  d_vars: dict
  z: jax.Array  # [8, latent_dim]


def make_pair(model: str) -> Pair:
  config = small_config(model)
  g, d = models.create_models(config)
  z = jax.random.normal(jax.random.PRNGKey(0), (8, config.latent_dim))
  g_vars = g.init(jax.random.PRNGKey(1), z, train=False)
  d_vars = d.init(jax.random.PRNGKey(2), jnp.zeros((8, 64, 64, 1)), train=False)
  return Pair(config, g, d, g_vars, d_vars, z)


# Initialisation dominates the cost of these tests (compilation of every op),
# so each model is built once per module.
@pytest.fixture(scope='module')
def dcgan_pair() -> Pair:
  return make_pair('dcgan')


@pytest.fixture(scope='module')
def resnet_pair() -> Pair:
  return make_pair('resnet')


@pytest.fixture(scope='module', params=FAMILIES)
def pair(request) -> Pair:
  return request.getfixturevalue(f'{request.param}_pair')


@pytest.fixture(scope='module')
def resnet_sn_d() -> tuple[nn.Module, dict]:
  """The residual D with spectral norm, and its variables."""
  d = models.create_models(small_config('resnet', spectral_norm=True))[1]
  return d, d.init(jax.random.PRNGKey(2), jnp.zeros((8, 64, 64, 1)), train=False)


def test_shapes_dtypes_and_range_at_64(pair):
  g, d, g_vars, d_vars, z = pair[1:]
  images, g_updates = g.apply(g_vars, 3.0 * z, train=True, mutable=['batch_stats'])
  assert images.shape == (8, 64, 64, 1) and images.dtype == jnp.float32
  assert np.all(np.abs(np.asarray(images)) <= 1.0)
  assert float(jnp.std(images)) > 0.0
  assert 'batch_stats' in g_updates
  eval_images = g.apply(g_vars, z, train=False)
  assert eval_images.shape == (8, 64, 64, 1)
  logits, _ = d.apply(d_vars, images, train=True, mutable=['batch_stats'])
  eval_logits = d.apply(d_vars, eval_images, train=False)
  for out in (logits, eval_logits):
    assert out.shape == (8,) and out.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(out)))


def test_spectral_norm_state_in_batch_stats(resnet_sn_d):
  d, d_vars = resnet_sn_d
  x = jax.random.normal(jax.random.PRNGKey(5), (8, 64, 64, 1))
  logits, updates = d.apply(d_vars, x, train=True, mutable=['batch_stats'])
  assert logits.shape == (8,) and np.all(np.isfinite(np.asarray(logits)))
  names = [str(path) for path, _ in jax.tree_util.tree_leaves_with_path(updates['batch_stats'])]
  assert any('sigma' in n for n in names) and any('/u' in n for n in names)
  # Spectral norm adds no parameters: the same 'params' tree as without it.
  plain_d = models.create_models(small_config('resnet'))[1]
  plain_vars = jax.eval_shape(lambda: plain_d.init(jax.random.PRNGKey(2), x, train=False))
  assert jax.tree.map(jnp.shape, plain_vars['params']) == jax.tree.map(jnp.shape, d_vars['params'])


@pytest.mark.parametrize('model', FAMILIES)
@pytest.mark.parametrize('resolution', [128, 256])
def test_shapes_at_higher_resolution(model, resolution):
  # Shape inference only (no compilation), so this is cheap at any size.
  config = small_config(model, resolution)
  g, d = models.create_models(config)
  z = jax.ShapeDtypeStruct((2, config.latent_dim), jnp.float32)
  g_vars = jax.eval_shape(lambda z: g.init(jax.random.PRNGKey(0), z, train=False), z)
  images = jax.eval_shape(lambda v, z: g.apply(v, z, train=False), g_vars, z)
  assert images.shape == (2, resolution, resolution, 1)
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.PRNGKey(0), x, train=False), images)
  logits = jax.eval_shape(lambda v, x: d.apply(v, x, train=False), d_vars, images)
  assert logits.shape == (2,) and logits.dtype == jnp.float32


def _value_and_vjp(f, x, params, cotangent):
  """(f(x, params), its gradients wrapt x and params for `cotangent`), jitted."""

  def run(x, params, cotangent):
    y, vjp = jax.vjp(f, x, params)
    return y, vjp(cotangent)

  return jax.jit(run)(x, params, cotangent)


def _assert_all_close(got, want):
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12), got, want)


def _assert_same_function_f64(ours, reference, x_shape, k_shape):
  """Outputs and input/kernel gradients of two functions f(x, kernel), float64."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(sum(x_shape) + sum(k_shape))
    x, kernel = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
    out_shape = jax.eval_shape(reference, x, kernel).shape
    cotangent = rng.standard_normal(out_shape)
    got = _value_and_vjp(ours, x, kernel, cotangent)
    want = _value_and_vjp(reference, x, kernel, cotangent)
    assert got[0].shape == out_shape and got[0].dtype == jnp.float64
    _assert_all_close(got, want)


DOWN_SHAPES = [(3, 8, 6, 1, 4), (1, 4, 10, 5, 3), (5, 2, 2, 2, 1)]  # B, H, W, C_in, C_out
UP_SHAPES = [(3, 3, 5, 1, 4), (1, 4, 2, 6, 1), (5, 1, 1, 3, 2), (3, 2, 3, 1, 16), (1, 3, 2, 5, 17)]


def _down_reference(x, kernel):
  return jax.lax.conv_general_dilated(
    x, kernel, (2, 2), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )


def _up_reference(x, kernel):
  return jax.lax.conv_transpose(
    x, kernel, (2, 2), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )


@pytest.mark.parametrize('b,h,w,c,o', DOWN_SHAPES)
def test_conv4x4_stride2_equals_lax_conv(b, h, w, c, o):
  _assert_same_function_f64(layers.conv4x4_stride2, _down_reference, (b, h, w, c), (4, 4, c, o))


@pytest.mark.parametrize('b,h,w,c,o', UP_SHAPES)
def test_conv_transpose4x4_stride2_equals_lax_conv_transpose(b, h, w, c, o):
  _assert_same_function_f64(
    layers.conv_transpose4x4_stride2, _up_reference, (b, h, w, c), (4, 4, c, o)
  )


def _r1_like(f):
  """Kernel gradient of |d sum(f(x, k)^2) / dx|^2: the second order R1 needs."""

  def penalty(x, kernel):
    grad_x = jax.grad(lambda x: jnp.sum(f(x, kernel) ** 2))(x)
    return jnp.sum(grad_x**2)

  return jax.jit(jax.grad(penalty, (0, 1)))


@pytest.mark.parametrize(
  'ours,reference,x_shape,k_shape',
  [
    (layers.conv4x4_stride2, _down_reference, (3, 6, 4, 2), (4, 4, 2, 3)),
    (layers.conv_transpose4x4_stride2, _up_reference, (3, 3, 5, 2), (4, 4, 2, 3)),
  ],
)
def test_second_derivatives_equal_lax_convs(ours, reference, x_shape, k_shape):
  # R1 differentiates the input gradient again; the custom VJPs must hold there too.
  with jax.enable_x64(True):
    rng = np.random.default_rng(7)
    x, kernel = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
    _assert_all_close(_r1_like(ours)(x, kernel), _r1_like(reference)(x, kernel))


def test_no_input_dilated_convolution_in_forward_backward_or_second_order():
  # The point of the custom VJPs: XLA CPU's slow input-dilated convs never appear.
  x = jnp.ones((2, 8, 8, 3))
  for f in (layers.conv4x4_stride2, layers.conv_transpose4x4_stride2):
    kernel = jnp.ones((4, 4, 3, 5))
    first = jax.make_jaxpr(jax.grad(lambda x, k, f=f: jnp.sum(f(x, k) ** 2), (0, 1)))(x, kernel)
    second = jax.make_jaxpr(_r1_like(f))(x, kernel)
    for jaxpr in (first, second):
      convs = [e for e in _all_eqns(jaxpr.jaxpr) if e.primitive.name == 'conv_general_dilated']
      assert convs, 'expected convolutions'
      assert all(set(e.params['lhs_dilation']) == {1} for e in convs), jaxpr


def _all_eqns(jaxpr):
  """Every equation of a jaxpr, inside custom-VJP, pjit and other sub-jaxprs too."""
  for eqn in jaxpr.eqns:
    yield eqn
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      yield from _all_eqns(sub)


@pytest.mark.parametrize('b,h,w,c,o', [(3, 8, 6, 1, 4), (1, 4, 10, 5, 3), (5, 2, 2, 2, 1)])
def test_both_kernel_gradient_forms_agree(b, h, w, c, o):
  # Which form runs depends on the shape; tests' small shapes take the conv,
  # so the matmul form is checked against it directly.
  with jax.enable_x64(True):
    rng = np.random.default_rng(b + h + w + c + o)
    x, g = rng.standard_normal((b, h, w, c)), rng.standard_normal((b, h // 2, w // 2, o))
    want = layers._kernel_grad_conv(jnp.asarray(x), jnp.asarray(g))
    got = layers._kernel_grad_matmul(jnp.asarray(x), jnp.asarray(g))
    assert got.shape == (4, 4, c, o) and got.dtype == jnp.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('b,h,w,c,o', [(3, 3, 5, 1, 4), (1, 4, 2, 6, 1), (2, 1, 1, 3, 7)])
def test_both_transposed_conv_forms_agree(b, h, w, c, o):
  # The output width picks the form; each is checked against the other here.
  with jax.enable_x64(True):
    rng = np.random.default_rng(b + h + w + c + o)
    x, kernel = (
      jnp.asarray(rng.standard_normal((b, h, w, c))),
      jnp.asarray(rng.standard_normal((4, 4, c, o))),
    )
    want = _up_reference(x, kernel)
    for form in (layers._up_forward_phases, layers._up_forward_overlap_add):
      np.testing.assert_allclose(form(x, kernel), want, rtol=1e-12, atol=1e-12)


def test_downsampling_odd_sizes_is_a_clear_error():
  with pytest.raises(ValueError, match='must be even'):
    layers.conv4x4_stride2(jnp.ones((1, 5, 4, 2)), jnp.ones((4, 4, 2, 3)))
  with pytest.raises(ValueError, match='does not fit input channels 2'):
    layers.conv4x4_stride2(jnp.ones((1, 4, 4, 2)), jnp.ones((4, 4, 3, 3)))


class _NearestThenConv(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    return nn.Conv(self.features, (3, 3))(layers.upsample_nearest_2x(x))


class _ConvThenPool(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    return layers.avg_pool_2x(nn.Conv(self.features, (3, 3))(x))


@pytest.mark.parametrize(
  'layer,reference,x_shape',
  [
    (
      layers.ConvTranspose4x4,
      lambda f: nn.ConvTranspose(f, (4, 4), strides=(2, 2), padding='SAME'),
      (3, 5, 7, 1),  # Odd, non-square sizes exercise both borders of both phases.
    ),
    (layers.UpsampleConv3x3, _NearestThenConv, (3, 5, 7, 2)),
    (
      layers.Conv4x4Down,
      lambda f: nn.Conv(f, (4, 4), strides=(2, 2), padding='SAME'),
      (3, 6, 10, 1),
    ),
    (layers.Conv3x3AvgPool, _ConvThenPool, (3, 6, 10, 2)),
  ],
)
def test_layers_equal_the_layers_they_replace(layer, reference, x_shape):
  # Same parameter tree, same outputs and gradients (float64).
  ours, ref_module = layer(2), reference(2)
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    shapes = jax.eval_shape(ours.init, jax.random.PRNGKey(1), x)['params']
    params = jax.tree.map(lambda a: rng.standard_normal(a.shape), shapes)
    ref_shapes = jax.eval_shape(ref_module.init, jax.random.PRNGKey(1), x)['params']
    # The references that compose layers nest their conv one level deeper.
    ref_params = {'Conv_0': params} if 'Conv_0' in ref_shapes else params
    assert jax.tree.map(jnp.shape, ref_params) == jax.tree.map(jnp.shape, ref_shapes)
    cotangent = rng.standard_normal(
      jax.eval_shape(ref_module.apply, {'params': ref_params}, x).shape
    )
    got = _value_and_vjp(lambda x, p: ours.apply({'params': p}, x), x, params, cotangent)
    want = _value_and_vjp(lambda x, p: ref_module.apply({'params': p}, x), x, ref_params, cotangent)
    if 'Conv_0' in ref_shapes:
      want = (want[0], (want[1][0], want[1][1]['Conv_0']))
    _assert_all_close(got, want)


@pytest.mark.parametrize('transposed', [False, True])
def test_from_torch_kernel_layout(transposed):
  torch = pytest.importorskip('torch')
  weight = torch.randn((3, 2, 4, 4) if transposed else (2, 3, 4, 4), dtype=torch.float64)
  x = torch.randn(5, 3, 6, 4, dtype=torch.float64)  # NCHW, C_in = 3.
  if transposed:
    want = torch.nn.functional.conv_transpose2d(x, weight, stride=2, padding=1)
    ours = layers.conv_transpose4x4_stride2
  else:
    want = torch.nn.functional.conv2d(x, weight, stride=2, padding=1)
    ours = layers.conv4x4_stride2
  with jax.enable_x64(True):
    kernel = layers.from_torch(weight.numpy(), transposed=transposed)
    got = ours(jnp.asarray(x.numpy().transpose(0, 2, 3, 1)), jnp.asarray(kernel))
  np.testing.assert_allclose(got, want.numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)


def test_depth_to_space_layout():
  x = np.arange(2 * 2 * 3 * 8, dtype=np.float32).reshape(2, 2, 3, 8)
  y = np.asarray(layers.depth_to_space(jnp.asarray(x), 2))
  assert y.shape == (2, 4, 6, 2)
  for i in range(2):
    for j in range(2):
      np.testing.assert_array_equal(
        y[:, i::2, j::2, :], x[..., (2 * i + j) * 2 : (2 * i + j + 1) * 2]
      )


def test_resampling_helpers():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 6, 3))
  up = layers.upsample_nearest_2x(x)
  np.testing.assert_array_equal(up, jnp.repeat(jnp.repeat(x, 2, 1), 2, 2))
  np.testing.assert_allclose(layers.avg_pool_2x(up), x, rtol=1e-6)
  assert layers.channels_at(256, 0, 32) == 256
  assert layers.channels_at(256, 3, 32) == 32
  assert layers.channels_at(256, 5, 32) == 32
  assert layers.channels_at(16, 2, 32) == 16  # Floor never exceeds widest.


def test_dcgan_init_is_normal_002(dcgan_pair):
  kernels = [
    a
    for path, a in jax.tree_util.tree_leaves_with_path(
      (dcgan_pair.g_vars['params'], dcgan_pair.d_vars['params'])
    )
    if 'kernel' in str(path[-1])
  ]
  flat = np.concatenate([np.ravel(k) for k in kernels])
  assert abs(flat.std() - 0.02) < 0.002 and abs(flat.mean()) < 0.002


def _single_and_pmapped(single, multi, variables, inputs, axis_name):
  """Train-mode outputs and batch_stats: `single` on the whole batch, `multi`
  pmapped over the batch split in two."""

  def call(module, v, x):
    return module.apply(v, x, train=True, mutable=['batch_stats'])

  single_out, single_stats = call(single, variables, inputs)
  n = jax.local_device_count()
  shards = inputs.reshape(n, inputs.shape[0] // n, *inputs.shape[1:])
  replicated = jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *a.shape)), variables)
  multi_out, multi_stats = jax.pmap(lambda v, x: call(multi, v, x), axis_name=axis_name)(
    replicated, shards
  )
  return (
    single_out,
    single_stats,
    multi_out.reshape(single_out.shape),
    jax.tree.map(lambda a: a[0], multi_stats),
  )


@pytest.mark.parametrize(
  'model,net', [('dcgan', 'g'), ('dcgan', 'd'), ('resnet', 'g')]
)  # resnet D: no BN.
def test_batchnorm_syncs_across_devices(request, model, net):
  assert jax.local_device_count() == 2, 'conftest should expose 2 CPU devices'
  config, g, d, g_vars, d_vars, z = request.getfixturevalue(f'{model}_pair')
  if net == 'g':
    single, variables, inputs = g, g_vars, 3.0 * z
  else:
    single, variables, inputs = d, d_vars, g.apply(g_vars, 3.0 * z, train=False)
  synced = models.create_models(config, axis_name='batch')[net == 'd']
  s_out, s_stats, m_out, m_stats = _single_and_pmapped(single, synced, variables, inputs, 'batch')
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), s_stats, m_stats
  )
  np.testing.assert_allclose(s_out, m_out, rtol=1e-4, atol=1e-5)
  if net == 'd':
    # Control: without axis_name each device normalises its own half, so the
    # running statistics differ; the check above is therefore not vacuous.
    _, _, _, u_stats = _single_and_pmapped(single, single, variables, inputs, 'batch')
    diffs = jax.tree.leaves(
      jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), s_stats, u_stats)
    )
    assert max(diffs) > 1e-4


@pytest.mark.parametrize('spectral_norm', [False, True])
def test_resnet_discriminator_is_per_sample(resnet_pair, resnet_sn_d, spectral_norm):
  # No batch coupling in D: the basis for a clean per-sample R1 penalty.
  d, d_vars = resnet_sn_d if spectral_norm else (resnet_pair.d, resnet_pair.d_vars)
  assert ('batch_stats' in d_vars) == spectral_norm
  x = jax.random.normal(jax.random.PRNGKey(5), (8, 64, 64, 1))
  y = x.at[1:].multiply(-2.0)
  lx, _ = d.apply(d_vars, x, train=True, mutable=['batch_stats'])
  ly, _ = d.apply(d_vars, y, train=True, mutable=['batch_stats'])
  np.testing.assert_allclose(lx[0], ly[0], rtol=1e-5)
  assert not np.allclose(lx[1:], ly[1:])


def test_spectral_norm_bounds_the_kernel(resnet_sn_d):
  d, d_vars = resnet_sn_d
  x = jax.random.normal(jax.random.PRNGKey(5), (2, 64, 64, 1))
  step = jax.jit(lambda v: d.apply(v, x, train=True, mutable=['batch_stats'])[1])
  for _ in range(30):  # Power iteration converges over training calls.
    d_vars = {**d_vars, **step(d_vars)}
  sigma_est = d_vars['batch_stats']['DBlock_0']['SpectralNorm_1']['Conv_1/kernel/sigma']
  kernel = np.asarray(d_vars['params']['DBlock_0']['Conv_1']['kernel'])
  sigma_true = np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), 2)
  np.testing.assert_allclose(sigma_est, sigma_true, rtol=1e-2)


@pytest.mark.parametrize(
  'field,value,message',
  [
    ('model', 'stylegan', 'config.model'),
    ('resolution', 96, 'config.resolution=96 is not supported'),
    ('latent_dim', 0, 'config.latent_dim'),
    ('g_channels', -8, 'config.g_channels'),
    ('d_channels', 32.5, 'config.d_channels'),
    ('compute_dtype', 'float16', 'config.compute_dtype'),
  ],
)
def test_validate_model_config_names_the_field(field, value, message):
  # A fresh ConfigDict, so its type checks accept the wrong-typed value.
  config = ml_collections.ConfigDict({**small_config('dcgan').to_dict(), field: value})
  with pytest.raises(ValueError, match=message):
    models.validate_model_config(config)
  with pytest.raises(ValueError, match=message):
    models.create_models(config)


@pytest.mark.parametrize('model', FAMILIES)
def test_bfloat16_compute_keeps_float32_params_and_outputs(model):
  # Traced only (no compilation): the matmuls run in bf16, the interfaces do not.
  config = small_config(model)
  config.compute_dtype = 'bfloat16'
  g, d = models.create_models(config)
  z = jax.ShapeDtypeStruct((2, config.latent_dim), jnp.float32)
  g_vars = jax.eval_shape(lambda z: g.init(jax.random.PRNGKey(0), z, train=False), z)
  images = jax.eval_shape(lambda v, z: g.apply(v, z, train=False), g_vars, z)
  d_vars = jax.eval_shape(lambda x: d.init(jax.random.PRNGKey(0), x, train=False), images)
  assert images.dtype == jnp.float32
  assert {a.dtype for a in jax.tree.leaves((g_vars, d_vars))} == {jnp.dtype(jnp.float32)}
  logits_fn = lambda v, x: d.apply(v, x, train=False)
  assert jax.eval_shape(logits_fn, d_vars, images).dtype == jnp.float32
  jaxpr = str(jax.make_jaxpr(logits_fn)(d_vars, jnp.zeros(images.shape)))
  assert 'bf16' in jaxpr and 'preferred_element_type=float32' in jaxpr


def test_validate_accepts_base_config():
  for model in FAMILIES:
    for resolution in (64, 128, 256):
      config = base.get_config()
      config.model, config.resolution = model, resolution
      models.validate_model_config(config)
