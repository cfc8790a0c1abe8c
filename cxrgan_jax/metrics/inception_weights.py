"""pytorch-fid's Inception weights, without PyTorch.

The only weights that give comparable FIDs are pytorch-fid's port of the TF
2015-12-05 graph, released as a PyTorch state dict
(`pt_inception-2015-12-05-6726825d.pth`). This module reads that file with the
torch-free unpickler of `torch_pickle`, maps it one to one onto the Flax `InceptionV3`
variables, checking that no parameter is missing or left over, and caches the
official file's conversion once as a plain .npz that loads with NumPy alone.

Resolution order of `load_inception_variables`: an explicit path (.pth or a
converted .npz) -> the cache ($CXRGAN_CACHE or ~/.cache/cxrgan_jax) -> a
download of the public release -> a `MissingWeightsError` that says how to get
the file. There is never a silent fallback to random weights.
"""

from collections.abc import Mapping
import os
import pathlib
import shutil
from typing import Any
import urllib.error
import urllib.request
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from cxrgan_jax import files
from cxrgan_jax.metrics import inception
from cxrgan_jax.metrics import torch_pickle

FID_WEIGHTS_URL = (
  'https://github.com/mseitzer/pytorch-fid/releases/download/'
  'fid_weights/pt_inception-2015-12-05-6726825d.pth'
)
FID_WEIGHTS_NAME = 'pt_inception-2015-12-05-6726825d.pth'
# torch.hub convention: the hex digits in the name start the file's SHA-256.
FID_WEIGHTS_SHA256_PREFIX = '6726825d'
CONVERTED_NAME = 'pt_inception-2015-12-05-6726825d.npz'
CACHE_ENV = files.CACHE_ENV
# torch BatchNorm bookkeeping with no role at inference; allowed, not needed.
_IGNORED_SUFFIXES = ('.num_batches_tracked',)

Variables = dict[str, Any]


class MissingWeightsError(FileNotFoundError):
  """The FID Inception weights are nowhere to be found or fetched."""


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
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  arrays = {'/'.join(p.key for p in fp): np.asarray(leaf, np.float32) for fp, leaf in flat}
  with files.atomic_write(path) as f:
    np.savez(f, **arrays)


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
  """The project's cache root (see `files.cache_root`)."""
  return files.cache_root()


def download(
  url: str,
  dest: pathlib.Path,
  *,
  timeout: float = 60.0,
  sha256_prefix: str | None = FID_WEIGHTS_SHA256_PREFIX,
) -> pathlib.Path:
  """Downloads url to dest via a temp file; renames only once verified."""
  with files.atomic_write(dest) as f:
    with urllib.request.urlopen(url, timeout=timeout) as response:
      shutil.copyfileobj(response, f)
    f.flush()
    if sha256_prefix is not None:
      digest = files.sha256(f.name)
      if not digest.startswith(sha256_prefix):
        raise ValueError(f'downloaded {url} has SHA-256 {digest}, expected {sha256_prefix}...')
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
  variables = state_dict_to_variables(torch_pickle.read_torch_state_dict(pth_path))
  if npz_path is not None:
    save_npz(variables, npz_path)
  return variables


def _from_pth(path: pathlib.Path, cached_npz: pathlib.Path, sha256_prefix: str | None) -> Variables:
  """Converts a .pth; only the official file may fill the shared cache.

  Caching any other .pth under the official name would silently change every
  later FID that relies on the cache, so other files are converted each time
  and flagged.
  """
  digest = files.sha256(path)
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
