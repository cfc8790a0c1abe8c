"""Regenerates the bundled demo sample from a full copy of the archive.

The demo lets tests, CI and first-time users build every config of the TFDS
builder in seconds, with no download. Selection is deterministic (sorted file
lists, seeded choice), keeps the archive's split of each file (the source
splits are already patient-disjoint) and its original file name.

  python data_prep/demo/make_demo.py --src=/path/to/chest_xray \
      --dst=data_prep/demo/chest_xray
"""

import argparse
import os
import pathlib

import numpy as np
from PIL import Image

# Images per (archive split, class). Validation is carved from train+val by
# patient hash, so the pool must be large enough for every class to land
# some patients there (checked by tests/test_builder.py).
COUNTS = {
    'train': {'normal': 70, 'bacteria': 70, 'virus': 70},
    'val': {'normal': 10, 'bacteria': 10, 'virus': 10},
    'test': {'normal': 20, 'bacteria': 20, 'virus': 20},
}
SHORT_SIDE = 128
JPEG_QUALITY = 90


def _class_of(folder: str, name: str) -> str:
  if folder == 'NORMAL':
    return 'normal'
  return 'bacteria' if '_bacteria_' in name else 'virus'


def make_demo(src: pathlib.Path, dst: pathlib.Path, seed: int = 0) -> int:
  """Writes the sample under `dst`; returns the number of images."""
  rng = np.random.default_rng(seed)
  written = 0
  for split, per_class in COUNTS.items():
    for cls, count in per_class.items():
      folder = 'NORMAL' if cls == 'normal' else 'PNEUMONIA'
      names = sorted(n for n in os.listdir(src / split / folder)
                     if _class_of(folder, n) == cls)
      picked = sorted(rng.choice(names, size=count, replace=False))
      (dst / split / folder).mkdir(parents=True, exist_ok=True)
      for name in picked:
        with Image.open(src / split / folder / name) as img:
          gray = img.convert('L')
        scale = SHORT_SIDE / min(gray.size)
        size = (max(1, round(gray.width * scale)),
                max(1, round(gray.height * scale)))
        gray = gray.resize(size, Image.Resampling.LANCZOS)
        gray.save(dst / split / folder / name, format='JPEG',
                  quality=JPEG_QUALITY)
        written += 1
  return written


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--src', type=pathlib.Path, required=True,
                      help='chest_xray/ folder of the full archive.')
  parser.add_argument('--dst', type=pathlib.Path, required=True)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  print(f'wrote {make_demo(args.src, args.dst, args.seed)} images to '
        f'{args.dst}')


if __name__ == '__main__':
  main()
