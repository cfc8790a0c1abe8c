"""Images/s of the training input pipeline alone (no model), per worker count,
decoding every image or from the in-memory cache (config.cache_images).

  python bench/bench_input_pipeline.py --data_dir=/tmp/tfds \
      [--manual_dir=data_prep/demo] [--dataset=chest_xray_pneumonia/normal]

Builds the dataset from --manual_dir first if it is not under --data_dir.
The first batches (worker start-up, file opening) are excluded from timing;
with the cache, so is the whole first epoch, which fills it: the figure is
the steady state of every later epoch.
"""

import argparse
import itertools
import os
import pathlib
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / 'data_prep')]

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import tensorflow_datasets as tfds

from configs import base
from cxrgan_jax import input_pipeline

# pylint: enable=g-import-not-at-top,wrong-import-position


def ensure_built(dataset: str, data_dir: str, manual_dir: str) -> None:
  """Builds `dataset` under data_dir from manual_dir unless already there."""
  try:
    input_pipeline.num_examples(dataset, 'train', data_dir)
    return
  except FileNotFoundError:
    pass
  import chest_xray_pneumonia  # pylint: disable=g-import-not-at-top

  config = dataset.split('/')[1]
  print(f'building {dataset} from {manual_dir} into {data_dir} ...')
  start = time.perf_counter()
  builder = chest_xray_pneumonia.ChestXrayPneumonia(config=config, data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  print(f'built in {time.perf_counter() - start:.1f} s')


def measure(config, *, warmup: int, steps: int) -> tuple[float, float]:
  """(images/s, CPU ms per image of this process, all its threads)."""
  iterator = input_pipeline.create_train_iterator(config, seed=0)
  try:
    for _ in range(warmup):
      next(iterator)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
      batch = next(iterator)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    assert batch['image'].shape[-3:] == (config.resolution,) * 2 + (1,)
  finally:
    iterator.close()
  images = steps * config.batch_size
  return images / elapsed, 1000 * cpu / images


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--manual_dir', default=str(ROOT / 'data_prep' / 'demo'))
  parser.add_argument('--dataset', default='chest_xray_pneumonia/normal')
  parser.add_argument('--resolution', type=int, default=128)
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--workers', type=int, nargs='+', default=[0, 2])
  parser.add_argument('--warmup', type=int, default=5)
  parser.add_argument('--steps', type=int, default=50)
  args = parser.parse_args()

  ensure_built(args.dataset, args.data_dir, args.manual_dir)
  n = input_pipeline.num_examples(args.dataset, 'train', args.data_dir)
  print(
    f'{args.dataset} train: {n} images; {jax.local_device_count()} '
    f'local device(s); {os.cpu_count()} CPU(s); resolution '
    f'{args.resolution}; global batch {args.batch_size}'
  )
  # Other work on the machine skews the figures; the load says how much.
  print('load average (1, 5, 15 min): %.1f %.1f %.1f' % os.getloadavg())
  # With workers, decoding runs in child processes: the main process's CPU
  # time then shows only what is left on the training host's main thread.
  print(f'{"workers":>8} {"cache":>6} {"images/s":>10} {"main-process CPU ms/image":>26}')
  for workers, cache in itertools.product(args.workers, (False, True)):
    config = base.get_config()
    config.cache_images = cache
    config.dataset = args.dataset
    config.data_dir = args.data_dir
    config.resolution = args.resolution
    config.batch_size = args.batch_size
    config.num_data_workers = workers
    warmup = args.warmup + (-(-n // args.batch_size) if cache else 0)
    rate, cpu_ms = measure(config, warmup=warmup, steps=args.steps)
    print(f'{workers:>8} {str(cache):>6} {rate:>10.0f} {cpu_ms:>26.2f}')


if __name__ == '__main__':
  main()
