"""pytorch-fid's Inception weights, without PyTorch.

The only weights that give comparable FIDs are pytorch-fid's port of the TF
2015-12-05 graph, released as a PyTorch state dict
(`pt_inception-2015-12-05-6726825d.pth`). This module reads that file with a
small torch-free unpickler (both the zip format of torch >= 1.6 and the older
"legacy" stream format), maps it one to one onto the Flax `InceptionV3`
variables, checking that no parameter is missing or left over, and caches the
official file's conversion once as a plain .npz that loads with NumPy alone.

Resolution order of `load_inception_variables`: an explicit path (.pth or a
converted .npz) -> the cache ($CXRGAN_CACHE or ~/.cache/cxrgan_jax) -> a
download of the public release -> a `MissingWeightsError` that says how to get
the file. There is never a silent fallback to random weights.
"""

import collections
from collections.abc import Mapping
import hashlib
import io
import os
import pathlib
import pickle
import shutil
import struct
import tempfile
from typing import Any
import urllib.error
import urllib.request
import warnings
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from cxrgan_jax.metrics import inception

FID_WEIGHTS_URL = (
  'https://github.com/mseitzer/pytorch-fid/releases/download/'
  'fid_weights/pt_inception-2015-12-05-6726825d.pth'
)
FID_WEIGHTS_NAME = 'pt_inception-2015-12-05-6726825d.pth'
# torch.hub convention: the hex digits in the name start the file's SHA-256.
FID_WEIGHTS_SHA256_PREFIX = '6726825d'
CONVERTED_NAME = 'pt_inception-2015-12-05-6726825d.npz'
CACHE_ENV = 'CXRGAN_CACHE'
# torch BatchNorm bookkeeping with no role at inference; allowed, not needed.
_IGNORED_SUFFIXES = ('.num_batches_tracked',)

Variables = dict[str, Any]


class MissingWeightsError(FileNotFoundError):
  """The FID Inception weights are nowhere to be found or fetched."""


# ----------------------------------------------------------------------------
# Torch-free .pth reader.
# ----------------------------------------------------------------------------

_STORAGE_DTYPES = {
  'FloatStorage': np.float32,
  'DoubleStorage': np.float64,
  'HalfStorage': np.float16,
  'LongStorage': np.int64,
  'IntStorage': np.int32,
  'ShortStorage': np.int16,
  'CharStorage': np.int8,
  'ByteStorage': np.uint8,
  'BoolStorage': np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _StorageType:
  """Stands for `torch.FloatStorage` & co.: just the element dtype."""

  def __init__(self, name: str):
    if name not in _STORAGE_DTYPES:
      raise pickle.UnpicklingError(f'unsupported torch storage type {name}')
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
  """A flat torch storage; `data` is filled when its bytes are read."""

  def __init__(self, dtype: np.dtype, numel: int):
    self.dtype, self.numel = dtype, numel
    self.data: np.ndarray | None = None


class _PendingTensor:
  """`_rebuild_tensor_v2` arguments, materialised once storages are read."""

  def __init__(
    self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
  ):
    self.storage, self.offset = storage, offset
    self.size, self.stride = tuple(size), tuple(stride)

  def materialise(self) -> np.ndarray:
    flat = self.storage.data
    if any(s == 0 for s in self.size):
      return np.zeros(self.size, flat.dtype)
    last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
    if self.offset < 0 or min(self.stride, default=0) < 0 or last >= flat.size:
      raise ValueError('tensor view out of its storage bounds')
    view = np.lib.stride_tricks.as_strided(
      flat[self.offset :], self.size, [s * flat.itemsize for s in self.stride], writeable=False
    )
    return np.array(view)  # Contiguous copy, independent of the file buffer.


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
  del unused  # requires_grad, backward_hooks[, metadata]: irrelevant here.
  return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
  del unused  # requires_grad, backward_hooks.
  return data


class _TorchUnpickler(pickle.Unpickler):
  """Resolves only the handful of globals a state dict needs.

  Anything else raises, so reading a .pth cannot execute arbitrary code (the
  reason torch itself now defaults to `weights_only=True`).
  """

  def __init__(self, file, storage_loader):
    super().__init__(file)
    self._storage_loader = storage_loader

  def find_class(self, module: str, name: str) -> Any:
    if module == 'torch._utils' and name == '_rebuild_tensor_v2':
      return _rebuild_tensor_v2
    if module == 'torch._utils' and name == '_rebuild_parameter':
      return _rebuild_parameter
    if module == 'torch' and name.endswith('Storage'):
      return _StorageType(name)
    if module == 'collections' and name == 'OrderedDict':
      return collections.OrderedDict
    raise pickle.UnpicklingError(f'global {module}.{name} is not allowed in a weights file')

  def persistent_load(self, pid: Any) -> Any:
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
      raise pickle.UnpicklingError(f'unsupported persistent id {pid!r}')
    return self._storage_loader(*pid[1:])


def _materialise(obj: Any) -> Any:
  if isinstance(obj, _PendingTensor):
    return obj.materialise()
  if isinstance(obj, Mapping):
    return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v) for v in obj)
  return obj


def _read_zip_format(path: pathlib.Path) -> Any:
  """torch >= 1.6: `<prefix>/data.pkl` plus one raw entry per storage."""
  with zipfile.ZipFile(path) as zf:
    pkl = [n for n in zf.namelist() if n.endswith('data.pkl')]
    if len(pkl) != 1:
      raise ValueError(f'{path}: expected one data.pkl, found {pkl}')
    prefix = pkl[0][: -len('data.pkl')]
    order = '<'
    if prefix + 'byteorder' in zf.namelist():
      order = '>' if zf.read(prefix + 'byteorder').strip() == b'big' else '<'
    storages: dict[str, _Storage] = {}

    def load(storage_type, key, location, numel, *unused):
      del location, unused
      if key not in storages:
        dtype = storage_type.dtype.newbyteorder(order)
        st = _Storage(dtype, numel)
        raw = zf.read(f'{prefix}data/{key}')
        st.data = np.frombuffer(raw, dtype, count=numel).astype(storage_type.dtype)
        storages[key] = st
      return storages[key]

    obj = _TorchUnpickler(io.BytesIO(zf.read(pkl[0])), load).load()
  return _materialise(obj)


def _read_legacy_format(path: pathlib.Path) -> Any:
  """torch < 1.6 stream: magic, protocol, sys_info, pickle, keys, storages."""
  with open(path, 'rb') as f:
    if pickle.load(f) != _LEGACY_MAGIC:
      raise ValueError(f'{path}: neither a zip nor a legacy torch file')
    if pickle.load(f) != _LEGACY_PROTOCOL:
      raise ValueError(f'{path}: unsupported legacy torch protocol')
    sys_info = pickle.load(f)
    if not sys_info.get('little_endian', True):
      raise ValueError(f'{path}: big-endian legacy files are not supported')
    roots: dict[str, _Storage] = {}
    views: list[tuple[_Storage, _Storage, int]] = []

    def load(storage_type, root_key, location, numel, view_metadata=None):
      del location
      if root_key not in roots:
        roots[root_key] = _Storage(storage_type.dtype, numel)
      if view_metadata is None:
        return roots[root_key]
      _, view_offset, view_size = view_metadata
      view = _Storage(storage_type.dtype, view_size)
      views.append((view, roots[root_key], view_offset))
      return view

    obj = _TorchUnpickler(f, load).load()
    for key in pickle.load(f):
      st = roots[key]
      (numel,) = struct.unpack('<q', f.read(8))
      raw = f.read(numel * st.dtype.itemsize)
      if len(raw) != numel * st.dtype.itemsize:
        raise ValueError(f'{path}: truncated storage {key}')
      st.data = np.frombuffer(raw, st.dtype).copy()
    for view, root, offset in views:
      view.data = root.data[offset : offset + view.numel]
  return _materialise(obj)


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a PyTorch state dict file into {name: ndarray} without torch."""
  path = pathlib.Path(path)
  if zipfile.is_zipfile(path):
    obj = _read_zip_format(path)
  else:
    obj = _read_legacy_format(path)
  if not isinstance(obj, Mapping):
    raise ValueError(f'{path}: expected a state dict, got {type(obj)}')
  out = {}
  for k, v in obj.items():
    if not isinstance(v, np.ndarray):
      raise ValueError(f'{path}: entry {k!r} is not a tensor')
    out[str(k)] = v
  return out


# ----------------------------------------------------------------------------
# torch state dict <-> Flax variables.
# ----------------------------------------------------------------------------

# Flax leaf name -> (torch suffix, collection).
_LEAF_TO_TORCH = {
  ('conv', 'kernel'): ('weight', 'params'),
  ('bn', 'scale'): ('weight', 'params'),
  ('bn', 'bias'): ('bias', 'params'),
  ('bn', 'mean'): ('running_mean', 'batch_stats'),
  ('bn', 'var'): ('running_var', 'batch_stats'),
  ('fc', 'kernel'): ('weight', 'params'),
  ('fc', 'bias'): ('bias', 'params'),
}


def _variable_shapes() -> dict[tuple[str, ...], tuple[int, ...]]:
  """{(collection, *module path, leaf): shape} of `InceptionV3` variables."""
  shapes = jax.eval_shape(
    inception.InceptionV3().init,
    jax.random.PRNGKey(0),
    jax.ShapeDtypeStruct((1, 75, 75, 3), jnp.float32),
  )
  flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
  return {tuple(p.key for p in path): leaf.shape for path, leaf in flat}


def _torch_name(flax_path: tuple[str, ...]) -> str:
  """('params', 'Mixed_5b', 'branch1x1', 'conv', 'kernel') -> torch key."""
  suffix, _ = _LEAF_TO_TORCH[flax_path[-2:]]
  return '.'.join(flax_path[1:-1] + (suffix,))


def _to_flax_layout(array: np.ndarray, flax_path: tuple[str, ...]) -> np.ndarray:
  if flax_path[-1] == 'kernel' and array.ndim == 4:
    return array.transpose(2, 3, 1, 0)  # OIHW -> HWIO.
  if flax_path[-1] == 'kernel' and array.ndim == 2:
    return array.T  # Linear [out, in] -> Dense [in, out].
  return array


def _to_torch_layout(array: np.ndarray, flax_path: tuple[str, ...]) -> np.ndarray:
  if flax_path[-1] == 'kernel' and array.ndim == 4:
    return array.transpose(3, 2, 0, 1)  # HWIO -> OIHW.
  if flax_path[-1] == 'kernel' and array.ndim == 2:
    return array.T
  return array


def _unflatten(flat: Mapping[tuple[str, ...], np.ndarray]) -> Variables:
  tree: Variables = {}
  for path, value in flat.items():
    node = tree
    for p in path[:-1]:
      node = node.setdefault(p, {})
    node[path[-1]] = value
  return tree


def state_dict_to_variables(state_dict: Mapping[str, np.ndarray]) -> Variables:
  """Maps a pytorch-fid state dict onto `InceptionV3` variables, strictly.

  Raises ValueError listing missing keys, unused keys (other than BatchNorm's
  `num_batches_tracked`) and shape mismatches, so that a wrong file can never
  produce features.
  """
  expected = _variable_shapes()
  flat, used, problems = {}, set(), []
  for path, shape in expected.items():
    name = _torch_name(path)
    if name not in state_dict:
      problems.append(f'missing {name}')
      continue
    used.add(name)
    value = _to_flax_layout(np.asarray(state_dict[name]), path)
    if value.shape != shape:
      problems.append(f'{name}: shape {value.shape} (Flax layout), expected {shape}')
      continue
    flat[path] = np.ascontiguousarray(value, dtype=np.float32)
  unused = sorted(k for k in state_dict if k not in used and not k.endswith(_IGNORED_SUFFIXES))
  problems += [f'unused {k}' for k in unused]
  if problems:
    raise ValueError(
      'state dict does not match the FID Inception network: '
      + '; '.join(problems[:20])
      + (f' (+{len(problems) - 20} more)' if len(problems) > 20 else '')
    )
  return _unflatten(flat)


def variables_to_state_dict(variables: Variables) -> dict[str, np.ndarray]:
  """Inverse of `state_dict_to_variables` (torch names and OIHW layout)."""
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  out = {}
  for path, leaf in flat:
    path = tuple(p.key for p in path)
    out[_torch_name(path)] = np.ascontiguousarray(
      _to_torch_layout(np.asarray(leaf, np.float32), path)
    )
  return out


def save_npz(variables: Variables, path: str | os.PathLike) -> None:
  """Writes variables as '/'-joined flat keys; atomic (temp file + rename)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  arrays = {'/'.join(p.key for p in fp): np.asarray(leaf, np.float32) for fp, leaf in flat}
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix='.tmp')
  try:
    with os.fdopen(fd, 'wb') as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def load_npz(path: str | os.PathLike) -> Variables:
  """Loads `save_npz` output (no pickle) and checks it is complete."""
  with np.load(path, allow_pickle=False) as data:
    flat = {tuple(k.split('/')): data[k] for k in data.files}
  expected = _variable_shapes()
  bad = sorted(set(expected) ^ set(flat))
  bad += [p for p in expected if p in flat and flat[p].shape != expected[p]]
  if bad:
    raise ValueError(
      f'{path}: not a converted FID Inception file '
      f'(mismatched entries: {["/".join(b) for b in bad[:5]]})'
    )
  return _unflatten(flat)


# ----------------------------------------------------------------------------
# Resolution: explicit path -> cache -> download -> clear error.
# ----------------------------------------------------------------------------


def cache_dir() -> pathlib.Path:
  """$CXRGAN_CACHE, else ~/.cache/cxrgan_jax."""
  env = os.environ.get(CACHE_ENV)
  return pathlib.Path(env) if env else pathlib.Path.home() / '.cache' / 'cxrgan_jax'


def _sha256(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def download(
  url: str,
  dest: pathlib.Path,
  *,
  timeout: float = 60.0,
  sha256_prefix: str | None = FID_WEIGHTS_SHA256_PREFIX,
) -> pathlib.Path:
  """Downloads url to dest via a temp file; renames only once verified."""
  dest.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix='.part')
  try:
    with os.fdopen(fd, 'wb') as f, urllib.request.urlopen(url, timeout=timeout) as response:
      shutil.copyfileobj(response, f)
    if sha256_prefix is not None:
      digest = _sha256(pathlib.Path(tmp))
      if not digest.startswith(sha256_prefix):
        raise ValueError(f'downloaded {url} has SHA-256 {digest}, expected {sha256_prefix}...')
    os.replace(tmp, dest)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return dest


def _missing_weights_message(cache: pathlib.Path, reason: str) -> str:
  return (
    'FID Inception weights not found, and they could not be downloaded '
    f'({reason}). They are required: FID/KID/IS computed with any other '
    'weights are meaningless. To fix, on a machine with internet:\n'
    f'  wget {FID_WEIGHTS_URL}\n'
    'then either pass the file explicitly with '
    f'--inception_weights=/path/to/{FID_WEIGHTS_NAME} '
    '(inception_extractor(weights_path=...)), or copy it to\n'
    f'  {cache / FID_WEIGHTS_NAME}\n'
    f'(the cache folder; set ${CACHE_ENV} to move it). The .pth is '
    f'converted once to {CONVERTED_NAME} beside it; that .npz can be '
    'passed or cached in place of the .pth and needs no PyTorch.'
  )


def convert_pth(
  pth_path: str | os.PathLike, npz_path: str | os.PathLike | None = None
) -> Variables:
  """Reads a pytorch-fid .pth, checks it, optionally caches it as .npz."""
  variables = state_dict_to_variables(read_torch_state_dict(pth_path))
  if npz_path is not None:
    save_npz(variables, npz_path)
  return variables


def _from_pth(path: pathlib.Path, cached_npz: pathlib.Path, sha256_prefix: str | None) -> Variables:
  """Converts a .pth; only the official file may fill the shared cache.

  Caching any other .pth under the official name would silently change every
  later FID that relies on the cache, so other files are converted each time
  and flagged.
  """
  digest = _sha256(path)
  official = sha256_prefix is None or digest.startswith(sha256_prefix)
  if official and cached_npz.is_file():
    return load_npz(cached_npz)
  variables = convert_pth(path)
  if not official:
    warnings.warn(
      f"{path} (SHA-256 {digest[:12]}...) is not pytorch-fid's "
      f'{FID_WEIGHTS_NAME}: its FIDs are not comparable to published ones, '
      'and it is not cached.',
      stacklevel=3,
    )
    return variables
  try:
    save_npz(variables, cached_npz)
  except OSError as e:  # A read-only cache only costs a re-conversion.
    warnings.warn(f'could not cache {cached_npz}: {e}', stacklevel=3)
  return variables


def load_inception_variables(
  weights_path: str | os.PathLike | None = None,
  *,
  allow_download: bool = True,
  url: str = FID_WEIGHTS_URL,
  sha256_prefix: str | None = FID_WEIGHTS_SHA256_PREFIX,
  timeout: float = 60.0,
) -> Variables:
  """FID Inception variables: explicit path -> cache -> download -> error.

  Args:
    weights_path: a pytorch-fid .pth or a converted .npz. The official .pth
      is converted once into the cache, so later runs need neither the .pth
      nor this path; any other .pth is converted with a warning, uncached.
    allow_download: whether to try `url` when nothing is found locally.
    url: where to download the .pth from.
    sha256_prefix: SHA-256 prefix of the official .pth, checked on download
      and before caching (None: trust any file).
    timeout: seconds for the download's socket operations.

  Returns:
    {'params': ..., 'batch_stats': ...} float32 NumPy arrays.

  Raises:
    MissingWeightsError: nothing local and the download is off or failed; the
      message says how to get the file and where to put it.
  """
  cache = cache_dir()
  cached_npz = cache / CONVERTED_NAME
  if weights_path is not None:
    path = pathlib.Path(weights_path).expanduser()
    if not path.is_file():
      raise MissingWeightsError(
        _missing_weights_message(cache, f'--inception_weights={path} does not exist')
      )
    if path.suffix == '.npz':
      return load_npz(path)
    return _from_pth(path, cached_npz, sha256_prefix)
  if cached_npz.is_file():
    return load_npz(cached_npz)
  cached_pth = cache / FID_WEIGHTS_NAME
  if not cached_pth.is_file():
    if not allow_download:
      raise MissingWeightsError(_missing_weights_message(cache, 'download disabled'))
    try:
      download(url, cached_pth, timeout=timeout, sha256_prefix=sha256_prefix)
    except (OSError, ValueError, urllib.error.URLError) as e:
      raise MissingWeightsError(
        _missing_weights_message(cache, f'download of {url} failed: {e}')
      ) from e
  return _from_pth(cached_pth, cached_npz, sha256_prefix)
