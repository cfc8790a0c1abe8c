"""CPU throughput of FID Inception feature extraction: Flax vs PyTorch.

Times the whole per-batch pipeline (uint8 -> resize to 299 -> network ->
pool3) on the same random gray images for our jitted Flax network and, when
torch and torchvision are importable, pytorch-fid's network (or torchvision's
Inception v3 when pytorch-fid is absent) loaded with the same random weights.
Weights are random: this measures speed, not features.

  python bench/bench_inception.py --batch_size=32 --size=128 --batches=3
"""

import argparse
import os
import pathlib
import platform
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import numpy as np

from cxrgan_jax.metrics import features
from cxrgan_jax.metrics import inception
from cxrgan_jax.metrics import inception_weights


def _time(fn, batches: int) -> tuple[float, float]:
  """(first call seconds, mean seconds of `batches` further calls)."""
  start = time.perf_counter()
  fn()
  first = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(batches):
    fn()
  return first, (time.perf_counter() - start) / batches


def _torch_runner(variables, images: np.ndarray):
  """(label, pool3 callable, threads) for PyTorch, or None without torch."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
    import torchvision  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  state = {
    k: torch.from_numpy(v) for k, v in inception_weights.variables_to_state_dict(variables).items()
  }
  try:
    # pylint: disable-next=g-import-not-at-top
    from pytorch_fid import inception as pfi

    pfi.load_state_dict_from_url = lambda *a, **k: state  # No download.
    net = pfi.InceptionV3([3]).eval()
    label = f'pytorch-fid InceptionV3 (torch {torch.__version__})'
    forward = lambda x: net(x)[0].flatten(1)  # [N, 2048, 1, 1] -> [N, 2048].
  except ImportError:
    # Same weights, but torchvision's pools differ from the FID network's,
    # so only the speed is comparable.
    net = torchvision.models.inception_v3(
      weights=None, aux_logits=False, init_weights=False, num_classes=inception.NUM_CLASSES
    ).eval()
    net.load_state_dict(state)
    net.fc = torch.nn.Identity()  # Return pool3 [N, 2048].
    label = f'torchvision inception_v3 (torch {torch.__version__})'

    def forward(x):
      x = F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
      return net(2 * x - 1)

  x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
  x = x.repeat(1, 3, 1, 1)

  def run():
    with torch.no_grad():
      return forward(x).numpy()

  return label, run, torch.get_num_threads()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--size', type=int, default=128, help='input side')
  parser.add_argument('--batches', type=int, default=3, help='timed batches')
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (args.batch_size, args.size, args.size, 1), dtype=np.uint8)
  variables = inception.init_variables(0)
  ours = features.inception_extractor(variables=variables)
  run_ours = lambda: ours(images, batch_size=args.batch_size)

  rows = []
  first, per_batch = _time(run_ours, args.batches)
  rows.append((f'cxrgan_jax Flax (jax {jax.__version__}, jit)', first, per_batch))
  torch_side = _torch_runner(variables, images)
  if torch_side is not None:
    label, run_torch, threads = torch_side
    first_t, per_batch_t = _time(run_torch, args.batches)
    rows.append((f'{label}, {threads} threads', first_t, per_batch_t))
    ours_pool3, torch_pool3 = run_ours(), run_torch()
    assert ours_pool3.shape == torch_pool3.shape, (ours_pool3.shape, torch_pool3.shape)
    delta = np.abs(ours_pool3 - torch_pool3).max()

  print(
    f'# {platform.processor() or platform.machine()}, '
    f'{os.cpu_count()} CPUs, backend {jax.default_backend()}; '
    f'batch {args.batch_size} x {args.size}x{args.size} gray uint8 -> '
    f'299x299 -> pool3; {args.batches} timed batches after one warm-up'
  )
  print(f'| {"network":58s} | first call s | ms/batch | images/s | vs Flax |')
  print(f'|{"-" * 60}|-------------:|---------:|---------:|--------:|')
  for label, first_s, batch_s in rows:
    print(
      f'| {label:58s} | {first_s:12.2f} | {batch_s * 1e3:8.0f} | '
      f'{args.batch_size / batch_s:8.1f} | '
      f'{rows[0][2] / batch_s:6.2f}x |'
    )
  if torch_side is None:
    print('(torch/torchvision not importable: PyTorch column skipped)')
  elif label.startswith('pytorch-fid'):
    print(f'max |pool3 Flax - pytorch-fid| on these weights: {delta:.3g}')


if __name__ == '__main__':
  main()
