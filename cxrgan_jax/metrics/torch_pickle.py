"""Reads a PyTorch state dict (.pth) into NumPy arrays without PyTorch.

Both the zip format of torch >= 1.6 and the older "legacy" stream format.
The unpickler resolves only the few globals a state dict needs, so reading a
file cannot run arbitrary code (torch's own `weights_only=True` rule).
"""

import collections
from collections.abc import Mapping
import io
import os
import pathlib
import pickle
import struct
from typing import Any
import zipfile

import numpy as np

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
