"""FID Inception: semantics against a NumPy transcription, weights, parity.

The NumPy reference below is written from torchvision's / pytorch-fid's
PyTorch definitions (NCHW, OIHW weights, float64), independently of the Flax
code, and reads the *torch-named* state dict. Agreement therefore checks the
block semantics (exclude-pad average pools, the max pool of Mixed_7c,
BatchNorm eps), the block order and the OIHW -> HWIO weight mapping at once.
"""

import collections
import hashlib
import io
import pathlib
import pickle
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cxrgan_jax.evaluation import extractors
from cxrgan_jax.metrics import features
from cxrgan_jax.metrics import inception
from cxrgan_jax.metrics import inception_weights as iw
from cxrgan_jax.metrics import torch_pickle


@pytest.fixture(scope='module')
def variables():
  return inception.init_variables(0)


@pytest.fixture(scope='module')
def state_dict(variables):
  return iw.variables_to_state_dict(variables)


# ----------------------------------------------------------------------------
# NumPy reference (PyTorch semantics, NCHW, float64).
# ----------------------------------------------------------------------------


def np_conv(x, w, stride=1, pad=(0, 0)):
  """torch.nn.functional.conv2d without bias: x [N,C,H,W], w [O,I,kh,kw]."""
  x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
  _, _, kh, kw = w.shape
  oh = (x.shape[2] - kh) // stride + 1
  ow = (x.shape[3] - kw) // stride + 1
  out = np.zeros((x.shape[0], w.shape[0], oh, ow))
  for i in range(kh):
    for j in range(kw):
      patch = x[
        :, :, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride
      ]
      out += np.einsum('nchw,oc->nohw', patch, w[:, :, i, j].astype(np.float64))
  return out


def np_basic(sd, name, x, stride=1, pad=(0, 0), eps=1e-3):
  """torchvision BasicConv2d: conv -> BatchNorm2d(eps) in eval -> ReLU."""
  y = np_conv(x, sd[name + '.conv.weight'], stride, pad)
  bn = lambda k: sd[f'{name}.bn.{k}'].astype(np.float64)[None, :, None, None]
  y = (y - bn('running_mean')) / np.sqrt(bn('running_var') + eps)
  return np.maximum(y * bn('weight') + bn('bias'), 0.0)


def np_avg_pool3(x, count_include_pad):
  """F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=...)."""
  h, w = x.shape[2:]
  xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
  ones = np.pad(np.ones((h, w)), 1)
  total = sum(xp[:, :, i : i + h, j : j + w] for i in range(3) for j in range(3))
  count = sum(ones[i : i + h, j : j + w] for i in range(3) for j in range(3))
  return total / (9.0 if count_include_pad else count)


def np_max_pool3(x, stride, pad):
  """F.max_pool2d(x, 3, stride, padding=pad): padding never wins."""
  xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
  oh = (xp.shape[2] - 3) // stride + 1
  ow = (xp.shape[3] - 3) // stride + 1
  return np.max(
    [
      xp[:, :, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
      for i in range(3)
      for j in range(3)
    ],
    axis=0,
  )


def np_block_a(sd, p, x, include_pad=False):
  b1 = np_basic(sd, p + 'branch1x1', x)
  b5 = np_basic(sd, p + 'branch5x5_1', x)
  b5 = np_basic(sd, p + 'branch5x5_2', b5, pad=(2, 2))
  b3 = np_basic(sd, p + 'branch3x3dbl_1', x)
  b3 = np_basic(sd, p + 'branch3x3dbl_2', b3, pad=(1, 1))
  b3 = np_basic(sd, p + 'branch3x3dbl_3', b3, pad=(1, 1))
  bp = np_basic(sd, p + 'branch_pool', np_avg_pool3(x, include_pad))
  return np.concatenate([b1, b5, b3, bp], 1)


def np_block_b(sd, p, x):
  b3 = np_basic(sd, p + 'branch3x3', x, stride=2)
  bd = np_basic(sd, p + 'branch3x3dbl_1', x)
  bd = np_basic(sd, p + 'branch3x3dbl_2', bd, pad=(1, 1))
  bd = np_basic(sd, p + 'branch3x3dbl_3', bd, stride=2)
  return np.concatenate([b3, bd, np_max_pool3(x, 2, 0)], 1)


def np_block_c(sd, p, x, include_pad=False):
  b1 = np_basic(sd, p + 'branch1x1', x)
  b7 = np_basic(sd, p + 'branch7x7_1', x)
  b7 = np_basic(sd, p + 'branch7x7_2', b7, pad=(0, 3))
  b7 = np_basic(sd, p + 'branch7x7_3', b7, pad=(3, 0))
  bd = np_basic(sd, p + 'branch7x7dbl_1', x)
  bd = np_basic(sd, p + 'branch7x7dbl_2', bd, pad=(3, 0))
  bd = np_basic(sd, p + 'branch7x7dbl_3', bd, pad=(0, 3))
  bd = np_basic(sd, p + 'branch7x7dbl_4', bd, pad=(3, 0))
  bd = np_basic(sd, p + 'branch7x7dbl_5', bd, pad=(0, 3))
  bp = np_basic(sd, p + 'branch_pool', np_avg_pool3(x, include_pad))
  return np.concatenate([b1, b7, bd, bp], 1)


def np_block_d(sd, p, x):
  b3 = np_basic(sd, p + 'branch3x3_1', x)
  b3 = np_basic(sd, p + 'branch3x3_2', b3, stride=2)
  b7 = np_basic(sd, p + 'branch7x7x3_1', x)
  b7 = np_basic(sd, p + 'branch7x7x3_2', b7, pad=(0, 3))
  b7 = np_basic(sd, p + 'branch7x7x3_3', b7, pad=(3, 0))
  b7 = np_basic(sd, p + 'branch7x7x3_4', b7, stride=2)
  return np.concatenate([b3, b7, np_max_pool3(x, 2, 0)], 1)


def np_block_e(sd, p, x, pool):
  """pool: 'avg' (FIDInceptionE_1), 'max' (FIDInceptionE_2), 'avg_incl'."""
  b1 = np_basic(sd, p + 'branch1x1', x)
  b3 = np_basic(sd, p + 'branch3x3_1', x)
  b3 = np.concatenate(
    [
      np_basic(sd, p + 'branch3x3_2a', b3, pad=(0, 1)),
      np_basic(sd, p + 'branch3x3_2b', b3, pad=(1, 0)),
    ],
    1,
  )
  bd = np_basic(sd, p + 'branch3x3dbl_1', x)
  bd = np_basic(sd, p + 'branch3x3dbl_2', bd, pad=(1, 1))
  bd = np.concatenate(
    [
      np_basic(sd, p + 'branch3x3dbl_3a', bd, pad=(0, 1)),
      np_basic(sd, p + 'branch3x3dbl_3b', bd, pad=(1, 0)),
    ],
    1,
  )
  if pool == 'max':
    bp = np_max_pool3(x, 1, 1)
  else:
    bp = np_avg_pool3(x, count_include_pad=(pool == 'avg_incl'))
  bp = np_basic(sd, p + 'branch_pool', bp)
  return np.concatenate([b1, b3, bd, bp], 1)


def np_inception(sd, x):
  """Whole FID network on NCHW input in [-1, 1] -> (pool3, logits)."""
  x = np_basic(sd, 'Conv2d_1a_3x3', x, stride=2)
  x = np_basic(sd, 'Conv2d_2a_3x3', x)
  x = np_basic(sd, 'Conv2d_2b_3x3', x, pad=(1, 1))
  x = np_max_pool3(x, 2, 0)
  x = np_basic(sd, 'Conv2d_3b_1x1', x)
  x = np_basic(sd, 'Conv2d_4a_3x3', x)
  x = np_max_pool3(x, 2, 0)
  for name in ('Mixed_5b', 'Mixed_5c', 'Mixed_5d'):
    x = np_block_a(sd, name + '.', x)
  x = np_block_b(sd, 'Mixed_6a.', x)
  for name in ('Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e'):
    x = np_block_c(sd, name + '.', x)
  x = np_block_d(sd, 'Mixed_7a.', x)
  x = np_block_e(sd, 'Mixed_7b.', x, 'avg')
  x = np_block_e(sd, 'Mixed_7c.', x, 'max')
  pool3 = x.mean(axis=(2, 3))
  logits = pool3 @ sd['fc.weight'].T.astype(np.float64) + sd['fc.bias']
  return pool3, logits


def np_resize_bilinear(x, out_h, out_w):
  """PyTorch upsample_bilinear2d, align_corners=False, per output pixel."""
  n, c, in_h, in_w = x.shape

  def taps(in_size, out_size):
    # PyTorch's CPU kernel computes source coordinates in float32 for float32
    # tensors (opmath_t); float64 here would differ by ~1e-5 at 128 -> 299.
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    src = (np.arange(out_size, dtype=f32) + f32(0.5)) * scale - f32(0.5)
    src = np.maximum(src, f32(0.0))
    i0 = src.astype(np.int64)  # Truncation == floor, src >= 0.
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    l1 = (src - i0.astype(f32)).astype(np.float64)
    return i0, i1, 1.0 - l1, l1

  h0, h1, hl0, hl1 = taps(in_h, out_h)
  w0, w1, wl0, wl1 = taps(in_w, out_w)
  out = np.empty((n, c, out_h, out_w))
  for oh in range(out_h):
    for ow in range(out_w):
      out[:, :, oh, ow] = hl0[oh] * (
        wl0[ow] * x[:, :, h0[oh], w0[ow]] + wl1[ow] * x[:, :, h0[oh], w1[ow]]
      ) + hl1[oh] * (wl0[ow] * x[:, :, h1[oh], w0[ow]] + wl1[ow] * x[:, :, h1[oh], w1[ow]])
  return out


def _sub(variables, name):
  return {c: variables[c][name] for c in ('params', 'batch_stats')}


def _assert_close(got, want, rel=2e-5):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape
  scale = max(np.abs(want).max(), 1e-6)
  err = np.abs(got - want).max() / scale
  assert err < rel, f'max rel error {err:.3g}'
  return err


def _max_rel_diff(a, b):
  return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max()


# ----------------------------------------------------------------------------
# Resize and preprocessing.
# ----------------------------------------------------------------------------


def test_resize_known_pytorch_values():
  # F.interpolate([[1, 2], [3, 4]], size=4, mode='bilinear',
  # align_corners=False) in PyTorch.
  x = jnp.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
  got = np.asarray(inception.resize_bilinear(x, (4, 4)))[0, :, :, 0]
  want = np.array(
    [[1.0, 1.25, 1.75, 2.0], [1.5, 1.75, 2.25, 2.5], [2.5, 2.75, 3.25, 3.5], [3.0, 3.25, 3.75, 4.0]]
  )
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_resize_downscale_has_no_antialiasing():
  # 8 -> 4: each output samples exactly between two inputs (src = 2i + 0.5).
  x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype(np.float32)
  got = np.asarray(inception.resize_bilinear(jnp.asarray(x), (4, 4)))
  want = (x[:, 0::2] + x[:, 1::2]) / 2
  want = (want[:, :, 0::2] + want[:, :, 1::2]) / 2
  np.testing.assert_allclose(got, want, atol=1e-6)
  antialiased = jax.image.resize(x, (1, 4, 4, 1), 'linear', antialias=True)
  assert np.abs(np.asarray(antialiased) - want).max() > 1e-2


@pytest.mark.parametrize(
  'in_hw,out_hw',
  [((5, 7), (299, 299)), ((128, 96), (299, 299)), ((301, 400), (299, 299)), ((13, 11), (4, 6))],
)
def test_resize_matches_pytorch_rule(in_hw, out_hw):
  x = np.random.default_rng(1).uniform(size=(2, 1) + in_hw)
  want = np_resize_bilinear(x, *out_hw)
  got = inception.resize_bilinear(jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32), out_hw)
  np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, atol=2e-6)


def test_preprocess_range_and_gray_replication():
  x = np.random.default_rng(2).uniform(size=(2, 20, 30, 1)).astype(np.float32)
  got = np.asarray(inception.preprocess(jnp.asarray(x)))
  assert got.shape == (2, 299, 299, 3)
  want = 2.0 * np_resize_bilinear(x.transpose(0, 3, 1, 2), 299, 299) - 1.0
  for c in range(3):
    np.testing.assert_allclose(got[..., c], want[:, 0], atol=4e-6)
  rgb = np.asarray(inception.preprocess(jnp.asarray(np.repeat(x, 3, -1))))
  np.testing.assert_allclose(rgb, got, atol=1e-6)


# ----------------------------------------------------------------------------
# Blocks and the whole network against the NumPy reference.
# ----------------------------------------------------------------------------


def test_basic_conv_batchnorm_eps_and_affine():
  rng = np.random.default_rng(3)
  sd = {
    'c.conv.weight': rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
    'c.bn.weight': rng.uniform(0.5, 2.0, 4).astype(np.float32),
    'c.bn.bias': rng.normal(size=4).astype(np.float32),
    'c.bn.running_mean': rng.normal(size=4).astype(np.float32),
    # Tiny variances make eps dominate: 1e-3 vs torch's default 1e-5
    # changes the output several-fold.
    'c.bn.running_var': rng.uniform(1e-4, 1e-3, 4).astype(np.float32),
  }
  x = rng.normal(size=(1, 3, 6, 6))
  module = inception.BasicConv2d(4, 3, padding=1)
  v = {
    'params': {
      'conv': {'kernel': sd['c.conv.weight'].transpose(2, 3, 1, 0)},
      'bn': {'scale': sd['c.bn.weight'], 'bias': sd['c.bn.bias']},
    },
    'batch_stats': {'bn': {'mean': sd['c.bn.running_mean'], 'var': sd['c.bn.running_var']}},
  }
  got = np.asarray(module.apply(v, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32)))
  got = got.transpose(0, 3, 1, 2)
  _assert_close(got, np_basic(sd, 'c', x, pad=(1, 1)))
  assert _max_rel_diff(got, np_basic(sd, 'c', x, pad=(1, 1), eps=1e-5)) > 0.1


BLOCKS = {
  # name: (module, numpy reference, input channels, spatial size).
  'Mixed_5b': (inception.InceptionA(32), np_block_a, 192, 5),
  'Mixed_6a': (inception.InceptionB(), np_block_b, 288, 7),
  'Mixed_6b': (inception.InceptionC(128), np_block_c, 768, 5),
  'Mixed_7a': (inception.InceptionD(), np_block_d, 768, 7),
  'Mixed_7b': (
    inception.InceptionE(max_pool=False),
    lambda sd, p, x: np_block_e(sd, p, x, 'avg'),
    1280,
    4,
  ),
  'Mixed_7c': (
    inception.InceptionE(max_pool=True),
    lambda sd, p, x: np_block_e(sd, p, x, 'max'),
    2048,
    4,
  ),
}


def _run_block(variables, name, x_nchw):
  module = BLOCKS[name][0]
  y = module.apply(_sub(variables, name), jnp.asarray(x_nchw.transpose(0, 2, 3, 1), jnp.float32))
  return np.asarray(y).transpose(0, 3, 1, 2)


@pytest.mark.parametrize('name', sorted(BLOCKS))
def test_block_matches_pytorch_semantics(variables, state_dict, name):
  _, reference, channels, size = BLOCKS[name]
  # Signed inputs: a max pool padded with 0 instead of -inf would show.
  x = np.random.default_rng(4).normal(size=(1, channels, size, size))
  _assert_close(_run_block(variables, name, x), reference(state_dict, name + '.', x))


@pytest.mark.parametrize(
  'name,wrong',
  [
    ('Mixed_5b', lambda sd, p, x: np_block_a(sd, p, x, include_pad=True)),
    ('Mixed_6b', lambda sd, p, x: np_block_c(sd, p, x, include_pad=True)),
    ('Mixed_7b', lambda sd, p, x: np_block_e(sd, p, x, 'avg_incl')),
    ('Mixed_7b', lambda sd, p, x: np_block_e(sd, p, x, 'max')),
    ('Mixed_7c', lambda sd, p, x: np_block_e(sd, p, x, 'avg')),
  ],
)
def test_block_pooling_is_discriminated(variables, state_dict, name, wrong):
  """The tests above would fail for torchvision's (non-FID) pooling."""
  _, _, channels, size = BLOCKS[name]
  x = np.random.default_rng(4).normal(size=(1, channels, size, size))
  got = _run_block(variables, name, x)
  assert _max_rel_diff(got, wrong(state_dict, name + '.', x)) > 1e-3


def test_whole_network_matches_reference(variables, state_dict):
  # 75x75 is the smallest input the stride pattern accepts (Mixed_7a -> 1x1).
  x = np.random.default_rng(5).uniform(-1, 1, size=(2, 3, 75, 75))
  pool3, logits = jax.jit(inception.InceptionV3().apply)(
    variables, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32)
  )
  want_pool3, want_logits = np_inception(state_dict, x)
  assert pool3.shape == (2, inception.POOL3_DIM)
  assert logits.shape == (2, inception.NUM_CLASSES)
  _assert_close(pool3, want_pool3, rel=1e-4)
  _assert_close(logits, want_logits, rel=1e-4)


# ----------------------------------------------------------------------------
# Feature extractors.
# ----------------------------------------------------------------------------


@pytest.fixture(scope='module')
def extractor(variables):
  return features.inception_extractor(variables=variables)


def test_inception_extractor_shapes_and_padding(extractor):
  rng = np.random.default_rng(6)
  images = rng.integers(0, 256, size=(3, 16, 16, 1), dtype=np.uint8)
  pool3, logits = extractor.features_and_logits(images, batch_size=2)
  assert pool3.shape == (3, 2048) and pool3.dtype == np.float32
  assert logits.shape == (3, 1008) and logits.dtype == np.float32
  assert np.isfinite(pool3).all() and np.isfinite(logits).all()
  assert extractor.dim == 2048 and extractor.name == 'inception'
  # The zero-padded last batch must not leak into the real rows.
  alone = extractor(images[2:], batch_size=2)
  np.testing.assert_allclose(alone, pool3[2:], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(extractor.logits(images, batch_size=2), logits, rtol=1e-5, atol=1e-6)
  rgb = extractor(np.repeat(images, 3, axis=-1), batch_size=2)
  np.testing.assert_allclose(rgb, pool3, rtol=1e-5, atol=1e-6)
  assert extractor(images[:0]).shape == (0, 2048)


def test_inception_extractor_matches_reference_pipeline(extractor, state_dict):
  """uint8 -> /255 -> resize 299 -> 2x-1 -> network, end to end."""
  # One 16x16 image, as `extractor(images[2:])` above: no recompilation.
  images = np.random.default_rng(7).integers(0, 256, (1, 16, 16, 1), np.uint8)
  x = images.transpose(0, 3, 1, 2).astype(np.float64) / 255.0
  x = 2.0 * np_resize_bilinear(x, 299, 299) - 1.0
  want = np_inception(state_dict, np.repeat(x, 3, axis=1))[0]
  _assert_close(extractor(images, batch_size=2), want, rel=1e-4)


def test_pixel_extractor():
  ex = features.pixel_extractor(size=8)
  img = np.zeros((2, 16, 16, 1), np.uint8)
  img[1] = 255
  out = ex(img, batch_size=4)
  assert out.shape == (2, 64) and ex.dim == 64 and out.dtype == np.float32
  np.testing.assert_allclose(out[0], 0.0, atol=1e-6)
  np.testing.assert_allclose(out[1], 1.0, atol=1e-6)
  same = features.pixel_extractor(size=16)(img[1:])
  np.testing.assert_allclose(same, 1.0, atol=1e-6)
  # Seven images in batches of two: order kept across the in-flight queue,
  # padding of the last batch dropped; RGB averaged to gray.
  levels = np.arange(7, dtype=np.uint8) * 30
  rgb = np.broadcast_to(levels[:, None, None, None], (7, 16, 16, 3)).copy()
  rgb[..., 0] = 0
  out = ex(rgb, batch_size=2, progress=True)
  assert out.shape == (7, 64)
  np.testing.assert_allclose(out, np.repeat(levels[:, None] * (2 / 3 / 255.0), 64, 1), atol=1e-6)


def test_extractors_by_name():
  with pytest.raises(ValueError, match='Unknown feature space.*pixels'):
    extractors.make_extractor('nope')
  assert extractors.make_extractor('pixels', pixel_size=4).dim == 16
  with pytest.raises(ValueError, match='uint8'):
    features.pixel_extractor(4)(np.zeros((1, 4, 4, 1), np.float32))


# ----------------------------------------------------------------------------
# Torch-free .pth reading, written in torch's own file formats.
# ----------------------------------------------------------------------------

_TYPE_NAMES = {
  np.dtype(np.float32): 'FloatStorage',
  np.dtype(np.int64): 'LongStorage',
  np.dtype(np.float64): 'DoubleStorage',
}


class _Global:
  """A reference to a torch global, pickled as GLOBAL 'module name'."""

  def __init__(self, module, name):
    self.module, self.name = module, name

  def __call__(self, *args):
    raise NotImplementedError


class _StorageRef:
  def __init__(self, key, data):
    self.key, self.data = key, np.ascontiguousarray(data).reshape(-1)


class _TensorRef:
  """Pickles like a torch tensor: _rebuild_tensor_v2(storage, ...)."""

  def __init__(self, storage, offset, size, stride):
    self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

  def __reduce__(self):
    return _Global('torch._utils', '_rebuild_tensor_v2'), self.args


class _TorchPickler(pickle._Pickler):  # Pure-Python: its dispatch is a dict.
  dispatch = pickle._Pickler.dispatch.copy()

  def __init__(self, f, legacy):
    super().__init__(f, protocol=2)
    self.legacy = legacy

  def _save_global_ref(self, obj):
    self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())
    self.memoize(obj)

  dispatch[_Global] = _save_global_ref

  def persistent_id(self, obj):
    if not isinstance(obj, _StorageRef):
      return None
    pid = ('storage', _Global('torch', _TYPE_NAMES[obj.data.dtype]), obj.key, 'cpu', obj.data.size)
    return pid + (None,) if self.legacy else pid


def _tensor_refs(arrays):
  """One storage per array, except 'shared' tensors (views of one storage)."""
  refs, storages = collections.OrderedDict(), []
  for i, (name, a) in enumerate(arrays.items()):
    st = _StorageRef(str(i), a)
    storages.append(st)
    stride = [int(np.prod(a.shape[k + 1 :])) for k in range(a.ndim)]
    refs[name] = _TensorRef(st, 0, a.shape, stride)
  refs._metadata = collections.OrderedDict({'': {'version': 1}})
  return refs, storages


def write_pth_zip(path, obj, storages):
  buf = io.BytesIO()
  _TorchPickler(buf, legacy=False).dump(obj)
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as zf:
    zf.writestr('archive/data.pkl', buf.getvalue())
    zf.writestr('archive/byteorder', 'little')
    for st in storages:
      zf.writestr(f'archive/data/{st.key}', st.data.tobytes())
    zf.writestr('archive/version', '3\n')


def write_pth_legacy(path, obj, storages):
  with open(path, 'wb') as f:
    pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
    pickle.dump(1001, f, protocol=2)
    pickle.dump(
      {
        'protocol_version': 1001,
        'little_endian': True,
        'type_sizes': {'short': 2, 'int': 4, 'long': 4},
      },
      f,
      protocol=2,
    )
    _TorchPickler(f, legacy=True).dump(obj)
    keys = sorted({st.key: st for st in storages})
    pickle.dump(keys, f, protocol=2)
    by_key = {st.key: st for st in storages}
    for k in keys:
      f.write(struct.pack('<q', by_key[k].data.size))
      f.write(by_key[k].data.tobytes())


def write_state_dict(path, arrays, legacy=False):
  refs, storages = _tensor_refs(arrays)
  (write_pth_legacy if legacy else write_pth_zip)(path, refs, storages)


@pytest.mark.parametrize('legacy', [False, True])
def test_reader_views_strides_and_dtypes(tmp_path, legacy):
  base = np.arange(24, dtype=np.float32)
  st = _StorageRef('0', base)
  counts = _StorageRef('1', np.array([7], np.int64))
  obj = collections.OrderedDict(
    # A transposed (non-contiguous) view with an offset into one storage...
    t=_TensorRef(st, 2, (3, 4), (1, 3)),
    # ...and a second tensor on the same storage.
    u=_TensorRef(st, 0, (2,), (1,)),
    n=_TensorRef(counts, 0, (), ()),
  )
  path = tmp_path / 'x.pth'
  (write_pth_legacy if legacy else write_pth_zip)(path, obj, [st, counts])
  sd = torch_pickle.read_torch_state_dict(path)
  np.testing.assert_array_equal(sd['t'], base[2:14].reshape(4, 3).T)
  np.testing.assert_array_equal(sd['u'], [0.0, 1.0])
  assert sd['n'].dtype == np.int64 and sd['n'] == 7 and sd['n'].shape == ()


def test_reader_refuses_arbitrary_globals(tmp_path):
  path = tmp_path / 'evil.pth'
  with zipfile.ZipFile(path, 'w') as zf:
    zf.writestr('archive/data.pkl', pickle.dumps({'x': pathlib.Path('.')}, protocol=2))
  with pytest.raises(pickle.UnpicklingError, match='not allowed'):
    torch_pickle.read_torch_state_dict(path)


@pytest.mark.parametrize('legacy', [False, True])
def test_pth_roundtrip_covers_every_parameter(tmp_path, monkeypatch, variables, state_dict, legacy):
  monkeypatch.setenv(iw.CACHE_ENV, str(tmp_path / 'cache'))
  arrays = dict(state_dict)
  # Real torch state dicts carry this BatchNorm counter; it must be ignored.
  arrays['Conv2d_1a_3x3.bn.num_batches_tracked'] = np.array(0, np.int64)
  path = tmp_path / 'weights.pth'
  write_state_dict(path, arrays, legacy=legacy)
  cached = tmp_path / 'cache' / iw.CONVERTED_NAME
  # Not the official file: converted, flagged, and kept out of the cache.
  with pytest.warns(UserWarning, match='not comparable'):
    loaded = iw.load_inception_variables(path, allow_download=False)
  jax.tree_util.tree_map(
    np.testing.assert_array_equal, loaded, jax.tree_util.tree_map(np.asarray, variables)
  )
  assert not cached.exists()
  # Standing in for the official file (its hash prefix): cached once, and
  # later loads need neither the .pth nor torch.
  official = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
  iw.load_inception_variables(path, sha256_prefix=official)
  assert cached.is_file()
  path.unlink()
  again = iw.load_inception_variables(allow_download=False)
  jax.tree_util.tree_map(np.testing.assert_array_equal, again, loaded)
  np.testing.assert_array_equal(
    iw.load_inception_variables(cached)['params']['fc']['kernel'], state_dict['fc.weight'].T
  )


def test_state_dict_mapping_is_strict_and_oihw(state_dict, variables):
  assert len(state_dict) == 94 * 5 + 2  # 94 BasicConv2d (conv + 4 BN) + fc.
  # OIHW -> HWIO on a 1x7 kernel: shapes alone pin the axes.
  k = variables['params']['Mixed_6b']['branch7x7_2']['conv']['kernel']
  assert k.shape == (1, 7, 128, 128)
  assert state_dict['Mixed_6b.branch7x7_2.conv.weight'].shape == (128, 128, 1, 7)
  missing = dict(state_dict)
  del missing['Mixed_7c.branch_pool.bn.running_var']
  with pytest.raises(ValueError, match='missing Mixed_7c.branch_pool.bn'):
    iw.state_dict_to_variables(missing)
  extra = dict(state_dict, **{'AuxLogits.fc.weight': np.zeros((2, 2))})
  with pytest.raises(ValueError, match='unused AuxLogits.fc.weight'):
    iw.state_dict_to_variables(extra)
  wrong = dict(state_dict, **{'fc.weight': np.zeros((1000, 2048))})
  with pytest.raises(ValueError, match='fc.weight: shape'):
    iw.state_dict_to_variables(wrong)


def test_conv_output_through_pth_mapping():
  """A conv with torch (OIHW) weights read from a .pth gives conv2d's output."""
  rng = np.random.default_rng(8)
  w = rng.normal(size=(5, 3, 3, 2)).astype(np.float32)  # O=5, I=3, kh=3, kw=2.
  x = rng.normal(size=(1, 3, 6, 7))
  want = np_conv(x, w, pad=(1, 0))
  flax_path = ('params', 'Conv2d_1a_3x3', 'conv', 'kernel')
  kernel = iw._to_flax_layout(w, flax_path)
  got = jax.lax.conv_general_dilated(
    jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32),
    jnp.asarray(kernel),
    (1, 1),
    ((1, 1), (0, 0)),
    dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
    precision=jax.lax.Precision.HIGHEST,
  )
  _assert_close(np.asarray(got).transpose(0, 3, 1, 2), want)


# ----------------------------------------------------------------------------
# Resolution order and the missing-weights error.
# ----------------------------------------------------------------------------


def _assert_helpful(message, cache):
  assert iw.FID_WEIGHTS_URL in message
  assert '--inception_weights=' in message
  assert str(cache / iw.FID_WEIGHTS_NAME) in message


def test_missing_weights_error_without_download(tmp_path, monkeypatch):
  cache = tmp_path / 'empty_cache'
  monkeypatch.setenv(iw.CACHE_ENV, str(cache))
  with pytest.raises(iw.MissingWeightsError) as e:
    features.inception_extractor(allow_download=False)
  _assert_helpful(str(e.value), cache)
  assert 'download disabled' in str(e.value)


def test_missing_weights_error_when_download_fails(tmp_path, monkeypatch):
  cache = tmp_path / 'cache'
  monkeypatch.setenv(iw.CACHE_ENV, str(cache))
  url = (tmp_path / 'nowhere.pth').as_uri()  # Fails offline, instantly.
  with pytest.raises(iw.MissingWeightsError) as e:
    iw.load_inception_variables(url=url, timeout=5)
  _assert_helpful(str(e.value), cache)
  assert 'failed' in str(e.value)
  assert not any(cache.iterdir()), 'a partial download was left behind'


def test_missing_explicit_path(tmp_path, monkeypatch):
  monkeypatch.setenv(iw.CACHE_ENV, str(tmp_path / 'cache'))
  with pytest.raises(iw.MissingWeightsError, match='does not exist'):
    iw.load_inception_variables(tmp_path / 'typo.pth')


def test_download_path_verifies_hash(tmp_path, monkeypatch, state_dict, variables):
  """Exercises the download branch with a file:// URL (no network here)."""
  monkeypatch.setenv(iw.CACHE_ENV, str(tmp_path / 'cache'))
  served = tmp_path / 'served.pth'
  write_state_dict(served, state_dict)
  with pytest.raises(iw.MissingWeightsError, match='SHA-256'):
    iw.load_inception_variables(url=served.as_uri(), sha256_prefix='00000000')
  assert not any((tmp_path / 'cache').iterdir())
  prefix = hashlib.sha256(served.read_bytes()).hexdigest()[:8]
  loaded = iw.load_inception_variables(url=served.as_uri(), sha256_prefix=prefix)
  np.testing.assert_array_equal(loaded['params']['fc']['bias'], variables['params']['fc']['bias'])
  assert (tmp_path / 'cache' / iw.FID_WEIGHTS_NAME).is_file()
  assert (tmp_path / 'cache' / iw.CONVERTED_NAME).is_file()


# ----------------------------------------------------------------------------
# With PyTorch installed: its own files, and pytorch-fid parity.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('zip_format', [True, False])
def test_reader_on_torch_save(tmp_path, zip_format):
  torch = pytest.importorskip('torch')
  sd = collections.OrderedDict(
    w=torch.randn(4, 3, 2, 5),
    t=torch.randn(6, 7).t(),  # Non-contiguous.
    n=torch.tensor(3, dtype=torch.int64),
    h=torch.randn(3).half(),
  )
  path = tmp_path / 'torch.pth'
  torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
  got = torch_pickle.read_torch_state_dict(path)
  assert sorted(got) == sorted(sd)
  for k, v in sd.items():
    np.testing.assert_array_equal(got[k], v.numpy())
    assert got[k].dtype == v.numpy().dtype


def test_parity_with_pytorch_fid(monkeypatch, variables, extractor):
  """pool3 and logits of pytorch-fid's network on the same random weights."""
  torch = pytest.importorskip('torch')
  pytest.importorskip('torchvision')
  pfi = pytest.importorskip('pytorch_fid.inception')
  torch_sd = {k: torch.from_numpy(v) for k, v in iw.variables_to_state_dict(variables).items()}
  # fid_inception_v3() would download the real weights; hand it ours.
  monkeypatch.setattr(pfi, 'load_state_dict_from_url', lambda *args, **kwargs: torch_sd)
  net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
  full = pfi.fid_inception_v3().eval()
  rng = np.random.default_rng(9)
  cases = {
    # Upscaled grayscale, fed to pytorch-fid as RGB like its PNG loader.
    'gray 64x48': rng.integers(0, 256, (4, 64, 48, 1), np.uint8),
    # Downscaled RGB: where antialiasing would make the two disagree.
    'rgb 400x352': rng.integers(0, 256, (2, 400, 352, 3), np.uint8),
  }
  deltas = {}
  for case, images in cases.items():
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    x = x.expand(-1, 3, -1, -1)
    with torch.no_grad():
      want = net(x)[0].flatten(1).numpy()
      want_logits = full.fc(torch.from_numpy(want)).numpy()
    got, got_logits = extractor.features_and_logits(images, batch_size=4)
    deltas[case] = (
      float(np.abs(got - want).max()),
      float(np.abs(got_logits - want_logits).max()),
      float(np.abs(want).max()),
      float(np.abs(want_logits).max()),
    )
    print(
      f'pytorch-fid parity, {case}: max |Δ pool3| = {deltas[case][0]:.3g}'
      f' (|pool3| <= {deltas[case][2]:.3g}), max |Δ logits| = '
      f'{deltas[case][1]:.3g} (|logits| <= {deltas[case][3]:.3g})'
    )
  for d_pool3, d_logits, _, max_logits in deltas.values():
    assert d_pool3 < 1e-4
    assert d_logits < 1e-4 * max(1.0, max_logits)
