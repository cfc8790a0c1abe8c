"""Input pipelines: grain over `tfds.data_source` (array_record, no TensorFlow).

Records come from the TFDS builder in data_prep/chest_xray_pneumonia: gray
uint8 images `(image_size, image_size, 1)` with a `label`, `patient_id` and
`filename`. Training gets an infinite, checkpointable iterator of
device-shaped float batches; evaluation gets whole splits as uint8 arrays.
"""

from __future__ import annotations

import os

from absl import flags
import grain
import jax
import ml_collections
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

RESOLUTIONS = (64, 128, 256)
# Where the builder lives, relative to the project root (for error messages).
BUILDER_PATH = 'data_prep/chest_xray_pneumonia'


def _resolve_data_dir(data_dir: str | None) -> str:
  """'' or None means TFDS's default ($TFDS_DATA_DIR or ~/tensorflow_datasets)."""
  return data_dir or tfds.core.constants.get_default_data_dir()


def _not_built_error(dataset: str, data_dir: str) -> FileNotFoundError:
  name = dataset.split(':')[0]
  config = name.split('/')[1] if '/' in name else 'normal'
  return FileNotFoundError(
    f'Dataset {dataset!r} is not built under data_dir {data_dir!r}. Build it '
    f'with:\n  tfds build {BUILDER_PATH} --config={config} '
    f'--manual_dir=DIR --data_dir={data_dir}\nwhere DIR holds the Kaggle '
    '`chest-xray-pneumonia` archive (archive.zip or chest_xray/), or use '
    '--manual_dir=data_prep/demo for the bundled demo sample.'
  )


def _builder(dataset: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """The prepared builder, whether or not the builder code is importable."""
  data_dir = _resolve_data_dir(data_dir)
  try:
    builder = tfds.builder(dataset, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as err:
    raise _not_built_error(dataset, data_dir) from err
  if not builder.is_prepared():
    raise _not_built_error(dataset, data_dir)
  return builder


def _data_source(dataset: str, split: str, data_dir: str | None):
  """Random-access source of decoded records (dicts of numpy values)."""
  return _builder(dataset, data_dir).as_data_source(split=split)


def num_examples(dataset: str, split: str, data_dir: str | None) -> int:
  """Examples in a split (slices like 'train[:10%]' work too)."""
  return _builder(dataset, data_dir).info.splits[split].num_examples


def _resize(image: np.ndarray, resolution: int) -> np.ndarray:
  """uint8 [S, S, 1] -> uint8 [R, R, 1]; antialiased (Lanczos) if S != R."""
  if image.shape[0] == resolution and image.shape[1] == resolution:
    return image
  resized = Image.fromarray(image[..., 0]).resize(
    (resolution, resolution), Image.Resampling.LANCZOS
  )
  return np.asarray(resized)[..., None]


def _check_resolution(resolution: int, name: str) -> None:
  if resolution not in RESOLUTIONS:
    raise ValueError(f'{name} must be one of {RESOLUTIONS}, got {resolution}.')


class _Decoded:
  """Random-access records as {'image': uint8 [R, R, 1], 'label': int32}.

  Decoding a PNG and resizing it costs about as much CPU as a small model's
  train step per image (bench/README.md), so with `cache` each record is
  decoded once per process and kept: later epochs only index memory
  (N * R * R bytes: 7 MB for the 1,748 bacterial training images at 64^2).
  The cache fills lazily, so a run starts as fast as without it; a record
  decoded twice by two threads at once is the same array written twice.
  """

  def __init__(self, source, resolution: int, cache: bool):
    self._source = source
    self._resolution = resolution
    self._cache = cache
    if cache:
      self._images = np.zeros((len(source), resolution, resolution, 1), np.uint8)
      self._labels = np.zeros((len(source),), np.int32)
      self._filled = np.zeros((len(source),), bool)

  def __len__(self) -> int:
    return len(self._source)

  def _decode(self, index: int) -> tuple[np.ndarray, np.int32]:
    record = self._source[index]
    return _resize(np.asarray(record['image']), self._resolution), np.int32(record['label'])

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not self._cache:
      image, label = self._decode(index)
    else:
      if not self._filled[index]:
        self._images[index], self._labels[index] = self._decode(index)
        self._filled[index] = True  # Only after the image is whole.
      image, label = self._images[index], self._labels[index]
    return {'image': image, 'label': label}


class _Normalize(grain.transforms.Map):
  """{'image': uint8 [R, R, 1]} -> {'image': float32 [R, R, 1] in [-1, 1]}."""

  def map(self, record: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return dict(record, image=record['image'].astype(np.float32) * (2.0 / 255.0) - 1.0)


class _PersistentNoise(grain.transforms.MapWithIndex):
  """Fixed Gaussian noise per training image, keyed by its index in the split.

  The noise study's corruption of the data itself (not instance noise on D's
  inputs): image i always carries the same noise, so the GAN never sees a
  clean image, as with a noisy scanner. Clipped to [-1, 1] like a stored image.
  """

  def __init__(self, std: float, seed: int, num_records: int):
    self._std = std
    self._seed = seed
    self._num_records = num_records

  def map_with_index(self, index: int, element: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Past the first epoch grain passes epoch * num_records + record index.
    rng = np.random.default_rng([self._seed, index % self._num_records])
    noise = rng.standard_normal(element['image'].shape, dtype=np.float32) * self._std
    return dict(element, image=np.clip(element['image'] + noise, -1.0, 1.0))


class _RandomFlip(grain.transforms.RandomMap):
  """Horizontal flip with probability 1/2 (off by default: see configs)."""

  def random_map(
    self, element: dict[str, np.ndarray], rng: np.random.Generator
  ) -> dict[str, np.ndarray]:
    if rng.random() < 0.5:
      element = dict(element, image=np.ascontiguousarray(element['image'][:, ::-1]))
    return element


class _ToDevices(grain.transforms.Map):
  """Splits a host batch [B, ...] into [local_devices, B // devices, ...]."""

  def __init__(self, num_devices: int):
    self._num_devices = num_devices

  def map(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.reshape((self._num_devices, -1) + v.shape[1:]) for k, v in batch.items()}


def train_dataset(
  config: ml_collections.ConfigDict,
  *,
  seed: int,
  process_index: int,
  process_count: int,
  local_device_count: int,
) -> grain.IterDataset:
  """The training pipeline of one host; see `create_train_iterator`.

  Every host builds the same global stream (the whole split shuffled with
  `seed`, a new permutation each epoch, flips keyed by the example's position
  in that stream), cuts it into global batches, and reads only its contiguous
  slice of each: host i gets examples [i * B/H, (i + 1) * B/H) of every global
  batch. The global batches, and so the training run, do not depend on the
  number of hosts, and the iterator state (global batches consumed) restores
  on any host count. Only a host's own slice is ever decoded.
  """
  _check_resolution(config.resolution, 'config.resolution')
  devices = process_count * local_device_count
  if config.batch_size % devices:
    raise ValueError(
      f'config.batch_size={config.batch_size} must be divisible by the '
      f'number of devices over all hosts ({process_count} hosts x '
      f'{local_device_count} local devices = {devices}).'
    )
  host_batch = config.batch_size // process_count

  source = _data_source(config.dataset, config.train_split, config.data_dir)
  if len(source) == 0:  # pylint: disable=g-explicit-length-test
    raise ValueError(
      f'{config.dataset} split {config.train_split!r} has no examples; rebuild it '
      f'with `tfds build {BUILDER_PATH}` (see README).'
    )
  decoded = _Decoded(source, config.resolution, cache=config.get('cache_images', True))
  ds = grain.MapDataset.source(decoded).map(_Normalize())
  noise_std = config.get('data_noise_std', 0.0)
  if noise_std > 0:
    ds = ds.map_with_index(_PersistentNoise(noise_std, seed, len(source)))
  ds = ds.shuffle(seed=seed).repeat()  # Repeat reseeds the shuffle per epoch.
  if config.random_flip:
    ds = ds.random_map(_RandomFlip(), seed=seed)
  # Lazy: batches of B/H consecutive examples, of which every H-th (offset by
  # this host's index) is this host's slice of one global batch.
  ds = ds.batch(host_batch, drop_remainder=True)[process_index::process_count]
  ds = ds.map(_ToDevices(local_device_count))
  # Threads overlap PNG decoding (PIL drops the GIL); order stays fixed.
  threads = min(8, os.cpu_count() or 1)
  ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=threads))
  if config.num_data_workers > 0:
    # grain's workers read absl flags; outside an absl app (tests, notebooks)
    # they are unparsed and reading them raises. Use their defaults.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.num_data_workers))
  return ds


def create_train_iterator(config: ml_collections.ConfigDict, *, seed: int) -> grain.DatasetIterator:
  """Infinite, checkpointable iterator of this host's training batches.

  Args:
    config: reads dataset, data_dir, train_split, resolution, batch_size
      (global over all devices of all hosts), random_flip, data_noise_std,
      cache_images, num_data_workers.
    seed: seeds the shuffle (and flips); same seed, same batches.

  Returns:
    An iterator of {'image': float32 [local_devices, per_device_batch, R, R, 1]
    in [-1, 1], 'label': int32 [local_devices, per_device_batch]}.
    `get_state()` is a JSON-serialisable dict; `set_state(state)` on a fresh
    iterator resumes with exactly the batches the original would yield next.
  """
  ds = train_dataset(
    config,
    seed=seed,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
    local_device_count=jax.local_device_count(),
  )
  return iter(ds)


def load_images(
  dataset: str,
  split: str,
  *,
  data_dir: str | None,
  resolution: int,
  max_images: int | None = None,
  seed: int = 0,
) -> dict[str, np.ndarray]:
  """A whole split (or a seeded subsample) in the builder's record order.

  Args:
    dataset: e.g. 'chest_xray_pneumonia/normal'.
    split: e.g. 'validation' or 'test'.
    data_dir: TFDS data_dir; '' or None for TFDS's default.
    resolution: side of the returned images (64, 128 or 256).
    max_images: if smaller than the split, keep this many records chosen with
      `seed` (returned in record order).
    seed: seeds the subsample only.

  Returns:
    {'image': uint8 [N, R, R, 1], 'label': int32 [N], 'patient_id': str [N],
    'filename': str [N]}.
  """
  _check_resolution(resolution, 'resolution')
  source = _data_source(dataset, split, data_dir)
  n = len(source)
  if max_images is not None and max_images < n:
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(n, size=max_images, replace=False))
  else:
    indices = np.arange(n)
  # One batched read is ~1.7x faster than reading records one by one.
  records = source.__getitems__([int(i) for i in indices])

  def text(value: bytes | str) -> str:
    return value.decode('utf-8') if isinstance(value, bytes) else str(value)

  images = np.zeros((len(records), resolution, resolution, 1), np.uint8)
  for i, record in enumerate(records):
    images[i] = _resize(np.asarray(record['image']), resolution)
  return {
    'image': images,
    'label': np.asarray([r['label'] for r in records], np.int32),
    'patient_id': np.asarray([text(r['patient_id']) for r in records], dtype=str),
    'filename': np.asarray([text(r['filename']) for r in records], dtype=str),
  }


def class_names(dataset: str, data_dir: str | None) -> tuple[str, ...]:
  """Names of the built dataset's labels, in label order (e.g. normal, bacterial, viral)."""
  return tuple(_builder(dataset, data_dir).info.features['label'].names)
