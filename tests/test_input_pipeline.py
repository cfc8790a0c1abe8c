"""Tests of cxrgan_jax.input_pipeline on the bundled demo sample."""

import hashlib
import itertools
import json
import subprocess
import sys

import conftest
import jax
import numpy as np
import pytest

from configs import tiny
from cxrgan_jax import input_pipeline


def _config(data_dir: str, **overrides):
  config = tiny.get_config()
  config.data_dir = data_dir
  config.dataset = 'chest_xray_pneumonia/normal'
  config.update(overrides)
  return config


def _take(iterator, n: int) -> list[dict[str, np.ndarray]]:
  return list(itertools.islice(iterator, n))


def _digest(image: np.ndarray) -> str:
  return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x['image'], y['image'])
    np.testing.assert_array_equal(x['label'], y['label'])


def test_batch_shapes_dtypes_and_range(demo_tfds_dir):
  assert jax.local_device_count() == 2  # From conftest's XLA_FLAGS.
  config = _config(demo_tfds_dir, dataset='chest_xray_pneumonia/all')
  batches = _take(input_pipeline.create_train_iterator(config, seed=0), 5)
  for batch in batches:
    assert set(batch) == {'image', 'label'}
    assert batch['image'].shape == (2, 4, 64, 64, 1)
    assert batch['image'].dtype == np.float32
    assert batch['label'].shape == (2, 4)
    assert batch['label'].dtype == np.int32
    assert batch['image'].min() >= -1.0 and batch['image'].max() <= 1.0
  images = np.stack([b['image'] for b in batches])
  assert images.min() < -0.9 and images.max() > 0.9  # Uses the full range.
  labels = np.concatenate([b['label'].ravel() for b in batches])
  assert set(labels) <= {0, 1, 2} and len(set(labels)) > 1


@pytest.mark.parametrize('resolution', [128, 256])
def test_resolutions(demo_tfds_dir, resolution):
  config = _config(
    demo_tfds_dir, dataset='chest_xray_pneumonia/viral', resolution=resolution, batch_size=2
  )
  batch = next(input_pipeline.create_train_iterator(config, seed=0))
  assert batch['image'].shape == (2, 1, resolution, resolution, 1)
  np.testing.assert_array_equal(batch['label'], 2)


def test_same_seed_same_batches_other_seed_differs(demo_tfds_dir):
  config = _config(demo_tfds_dir)
  first = _take(input_pipeline.create_train_iterator(config, seed=3), 4)
  again = _take(input_pipeline.create_train_iterator(config, seed=3), 4)
  other = _take(input_pipeline.create_train_iterator(config, seed=4), 4)
  _assert_batches_equal(first, again)
  assert not np.array_equal(first[0]['image'], other[0]['image'])


def test_resumed_iterator_yields_the_same_batches(demo_tfds_dir):
  # 12 batches of 8 cross the end of the first epoch (72 demo train images).
  config = _config(demo_tfds_dir)
  iterator = input_pipeline.create_train_iterator(config, seed=0)
  _take(iterator, 7)
  state = json.loads(json.dumps(iterator.get_state()))
  expected = _take(iterator, 5)
  resumed = input_pipeline.create_train_iterator(config, seed=0)
  resumed.set_state(state)
  _assert_batches_equal(_take(resumed, 5), expected)


def _examples(config, n: int, **kwargs) -> list[str]:
  """Digests of the first n examples of a host pipeline, batch of one."""
  ds = input_pipeline.train_dataset(config, seed=0, local_device_count=1, **kwargs)
  return [_digest(b['image'][0, 0]) for b in itertools.islice(iter(ds), n)]


def test_every_epoch_is_a_new_permutation(demo_tfds_dir):
  config = _config(demo_tfds_dir, batch_size=1)
  n = input_pipeline.num_examples(config.dataset, 'train', demo_tfds_dir)
  examples = _examples(config, 2 * n, process_index=0, process_count=1)
  epoch1, epoch2 = examples[:n], examples[n:]
  assert len(set(epoch1)) == n  # Every image once per epoch.
  assert set(epoch1) == set(epoch2)
  assert epoch1 != epoch2  # Reshuffled.


def test_hosts_read_disjoint_slices_of_the_same_global_batches(demo_tfds_dir):
  # Flips on: they must be keyed by the example's place in the global stream.
  # 12 global batches of 8 cross the end of the first epoch (72 images).
  config = _config(demo_tfds_dir, random_flip=True)

  def host_batches(process_index, process_count, state=None):
    ds = input_pipeline.train_dataset(
      config,
      seed=0,
      process_index=process_index,
      process_count=process_count,
      local_device_count=1,
    )
    iterator = iter(ds)
    if state is not None:
      iterator.set_state(state)
    return _take(iterator, 12), iterator.get_state()

  one_host, state = host_batches(0, 1)
  host0, state0 = host_batches(0, 2)
  host1, state1 = host_batches(1, 2)
  assert state == state0 == state1  # Global batches consumed: any host count resumes.
  for whole, a, b in zip(one_host, host0, host1):
    assert a['image'].shape == (1, 4, 64, 64, 1)
    for key in ('image', 'label'):
      np.testing.assert_array_equal(np.concatenate([a[key], b[key]], axis=1), whole[key])
    assert not {_digest(x) for x in a['image'][0]} & {_digest(x) for x in b['image'][0]}
  # Two hosts resume where one host stopped, and vice versa.
  one_more, _ = host_batches(0, 1, state0)
  more0, _ = host_batches(0, 2, state)
  more1, _ = host_batches(1, 2, state)
  for whole, a, b in zip(one_more, more0, more1):
    np.testing.assert_array_equal(np.concatenate([a['image'], b['image']], axis=1), whole['image'])


def test_random_flip_mirrors_some_images(demo_tfds_dir):
  plain = _take(input_pipeline.create_train_iterator(_config(demo_tfds_dir), seed=0), 3)
  flipped = _take(
    input_pipeline.create_train_iterator(_config(demo_tfds_dir, random_flip=True), seed=0), 3
  )
  a = np.concatenate([b['image'].reshape(-1, 64, 64, 1) for b in plain])
  b = np.concatenate([b['image'].reshape(-1, 64, 64, 1) for b in flipped])
  same = [np.array_equal(x, y) for x, y in zip(a, b)]
  mirrored = [np.array_equal(x[:, ::-1], y) for x, y in zip(a, b)]
  assert all(s or m for s, m in zip(same, mirrored))
  assert 0 < sum(mirrored) < len(mirrored)


def test_persistent_noise_is_fixed_per_image_and_never_off(demo_tfds_dir):
  """The noise study's corrupted data: same noise on an image in every epoch."""
  config = _config(demo_tfds_dir, batch_size=2)
  n = input_pipeline.num_examples(config.dataset, 'train', demo_tfds_dir)
  clean = _take(input_pipeline.create_train_iterator(config, seed=0), n)  # 2 epochs.
  config.data_noise_std = 0.1
  noisy = _take(input_pipeline.create_train_iterator(config, seed=0), n)
  clean = np.concatenate([b['image'].reshape(-1, 64, 64) for b in clean])
  noisy = np.concatenate([b['image'].reshape(-1, 64, 64) for b in noisy])
  # Same order of images (noise does not touch the shuffle); every image noisy.
  diff = noisy - clean
  unclipped = (np.abs(noisy) < 1.0) & (np.abs(clean) < 1.0)
  assert np.all(np.abs(diff).reshape(2 * n, -1).max(axis=1) > 0)
  assert np.std(diff[unclipped]) == pytest.approx(0.1, rel=0.1)
  assert noisy.min() >= -1.0 and noisy.max() <= 1.0
  # The same image in epoch 1 and epoch 2 carries the same noise.
  first = {_digest(c): d for c, d in zip(clean[:n], diff[:n])}
  for c, d in zip(clean[n:], diff[n:]):
    np.testing.assert_array_equal(first[_digest(c)], d)


def test_config_errors_name_the_field(demo_tfds_dir, tmp_path):
  with pytest.raises(ValueError, match='config.batch_size'):
    input_pipeline.create_train_iterator(_config(demo_tfds_dir, batch_size=3), seed=0)
  with pytest.raises(ValueError, match='config.resolution'):
    input_pipeline.create_train_iterator(_config(demo_tfds_dir, resolution=100), seed=0)
  missing = str(tmp_path / 'empty')
  with pytest.raises(FileNotFoundError) as err:
    input_pipeline.create_train_iterator(
      _config(missing, dataset='chest_xray_pneumonia/viral'), seed=0
    )
  assert (
    f'tfds build data_prep/chest_xray_pneumonia --config=viral '
    f'--manual_dir=DIR --data_dir={missing}'
  ) in str(err.value)


def test_load_images(demo_tfds_dir):
  data = input_pipeline.load_images(
    'chest_xray_pneumonia/all', 'test', data_dir=demo_tfds_dir, resolution=128
  )
  n = input_pipeline.num_examples('chest_xray_pneumonia/all', 'test', demo_tfds_dir)
  assert n == 60
  assert data['image'].shape == (n, 128, 128, 1)
  assert data['image'].dtype == np.uint8
  assert data['label'].dtype == np.int32
  np.testing.assert_array_equal(np.bincount(data['label']), [20, 20, 20])
  assert len(set(data['filename'])) == n
  assert all(f.startswith('chest_xray/test/') for f in data['filename'])
  assert all(p in f for p, f in zip(data['patient_id'], data['filename']))

  again = input_pipeline.load_images(
    'chest_xray_pneumonia/all', 'test', data_dir=demo_tfds_dir, resolution=128
  )
  np.testing.assert_array_equal(again['image'], data['image'])
  np.testing.assert_array_equal(again['filename'], data['filename'])

  def sample(seed):
    return input_pipeline.load_images(
      'chest_xray_pneumonia/all',
      'test',
      data_dir=demo_tfds_dir,
      resolution=64,
      max_images=10,
      seed=seed,
    )['filename']

  assert len(sample(0)) == 10
  assert set(sample(0)) <= set(data['filename'])
  np.testing.assert_array_equal(sample(0), sample(0))
  assert set(sample(0)) != set(sample(1))


def test_cached_images_give_the_same_batches_and_decode_once(demo_tfds_dir):
  """The in-memory cache changes only the cost: the same batches over three
  epochs (and after a resume) as decoding every time, one decode per record."""
  config = _config(demo_tfds_dir, batch_size=4, resolution=64)
  n = input_pipeline.num_examples(config.dataset, 'train', demo_tfds_dir)
  steps = 3 * n // 4
  config.cache_images = False
  uncached = _take(input_pipeline.create_train_iterator(config, seed=0), steps)
  config.cache_images = True
  cached_iterator = input_pipeline.create_train_iterator(config, seed=0)
  cached = _take(cached_iterator, steps // 2)
  state = json.loads(json.dumps(cached_iterator.get_state()))
  cached += _take(cached_iterator, steps - steps // 2)
  _assert_batches_equal(cached, uncached)
  resumed = input_pipeline.create_train_iterator(config, seed=0)
  resumed.set_state(state)
  _assert_batches_equal(_take(resumed, steps - steps // 2), uncached[steps // 2 :])

  reads = []

  class CountingSource:
    def __init__(self, source):
      self._source = source

    def __len__(self):
      return len(self._source)

    def __getitem__(self, index):
      reads.append(index)
      return self._source[index]

  source = input_pipeline._data_source(config.dataset, 'train', demo_tfds_dir)
  decoded = input_pipeline._Decoded(CountingSource(source), 64, cache=True)
  first = [decoded[i % n]['image'].copy() for i in range(3 * n)]
  assert sorted(reads) == list(range(n))  # Each record read once.
  for i in range(n):
    np.testing.assert_array_equal(first[i], first[i + 2 * n])
    assert first[i].shape == (64, 64, 1) and first[i].dtype == np.uint8


def test_pipeline_pixels_match_stored_images(demo_tfds_dir):
  """At the stored size the pipeline only rescales uint8 to [-1, 1]."""
  stored = input_pipeline.load_images(
    'chest_xray_pneumonia/normal', 'train', data_dir=demo_tfds_dir, resolution=256
  )
  config = _config(demo_tfds_dir, resolution=256, batch_size=2)
  batch = next(input_pipeline.create_train_iterator(config, seed=0))
  by_digest = {_digest(img): img for img in stored['image']}
  for image in batch['image'].reshape(-1, 256, 256, 1):
    as_uint8 = np.rint((image + 1.0) * 127.5).astype(np.uint8)
    assert _digest(as_uint8) in by_digest


@pytest.mark.slow
def test_worker_processes_give_the_same_batches(demo_tfds_dir):
  config = _config(demo_tfds_dir)
  inline = _take(input_pipeline.create_train_iterator(config, seed=0), 6)
  config.num_data_workers = 2
  iterator = input_pipeline.create_train_iterator(config, seed=0)
  _assert_batches_equal(_take(iterator, 3), inline[:3])
  state = json.loads(json.dumps(iterator.get_state()))
  iterator.close()
  resumed = input_pipeline.create_train_iterator(config, seed=0)
  resumed.set_state(state)
  _assert_batches_equal(_take(resumed, 3), inline[3:])
  resumed.close()


_WITHOUT_TENSORFLOW = """
import importlib.machinery, sys
BLOCKED = ('tensorflow', 'apache_beam', 'mlcroissant')

class NotInstalled(importlib.machinery.PathFinder):
  @classmethod
  def find_spec(cls, name, path=None, target=None):
    if name.split('.')[0] in BLOCKED:
      return None
    return super().find_spec(name, path, target)

sys.meta_path[:] = [NotInstalled if f is importlib.machinery.PathFinder
                    else f for f in sys.meta_path]
sys.path.insert(0, {root!r})
from configs import base
from cxrgan_jax import input_pipeline
config = base.get_config()
config.data_dir = {data_dir!r}
config.batch_size = 4
batch = next(input_pipeline.create_train_iterator(config, seed=0))
images = input_pipeline.load_images(config.dataset, 'test', resolution=64,
                                    data_dir=config.data_dir, max_images=3)
assert images['image'].shape == (3, 64, 64, 1)
print('loaded', sys.modules.get('tensorflow'), batch['image'].shape)
"""


def test_reading_needs_no_tensorflow(demo_tfds_dir):
  """Training hosts may lack TensorFlow: array_record + grain suffice."""
  code = _WITHOUT_TENSORFLOW.format(root=str(conftest.PROJECT_ROOT), data_dir=demo_tfds_dir)
  run = subprocess.run(
    [sys.executable, '-c', code], capture_output=True, text=True, timeout=120, check=False
  )
  assert run.returncode == 0, run.stderr[-3000:]
  assert 'loaded None (2, 2, 128, 128, 1)' in run.stdout  # 2 CPU devices.
