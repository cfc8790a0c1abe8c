"""Folders of PNG/JPEG images (generated samples or real X-rays) as uint8 arrays."""

import pathlib

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
# Written by `cxrgan_jax.sample` next to the samples; not a sample itself.
SKIPPED_FILES = ('grid.png',)


def _to_gray_uint8(im: Image.Image) -> np.ndarray:
  """Any PIL mode -> uint8 [H, W]; 16-bit images are scaled, not clipped."""
  if im.mode in ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I', 'F'):
    a = np.asarray(im, np.float64)
    lo, hi = float(a.min()), float(a.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.round((a - lo) * scale).astype(np.uint8)
  if im.mode in ('RGBA', 'LA', 'P', 'PA'):
    im = im.convert('RGBA').convert('RGB')
  return np.asarray(im.convert('L'), np.uint8)


def _center_crop_resize(image: np.ndarray, resolution: int) -> np.ndarray:
  """uint8 [H, W] -> [R, R]: short side to R (Lanczos), centre square kept."""
  h, w = image.shape
  scale = resolution / min(h, w)
  nh, nw = max(resolution, round(h * scale)), max(resolution, round(w * scale))
  im = Image.fromarray(image).resize((nw, nh), Image.Resampling.LANCZOS)
  top, left = (nh - resolution) // 2, (nw - resolution) // 2
  return np.asarray(im)[top : top + resolution, left : left + resolution]


def list_image_files(folder: str | pathlib.Path) -> list[pathlib.Path]:
  """Sorted image files under `folder`, skipping hidden files and __MACOSX."""
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(f'Image folder {folder} does not exist.')
  files = []
  for path in folder.rglob('*'):
    rel = path.relative_to(folder)
    if any(p.startswith('.') or p == '__MACOSX' for p in rel.parts):
      continue
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and path.name not in SKIPPED_FILES:
      files.append(path)
  if not files:
    raise ValueError(f'No {"/".join(IMAGE_SUFFIXES)} images found under {folder}.')
  return sorted(files)


def load_image_folder(
  folder: str | pathlib.Path,
  *,
  resolution: int | None = None,
  center_crop: bool = True,
  max_images: int | None = None,
  seed: int = 0,
) -> np.ndarray:
  """Images of a folder tree as uint8 [N, R, R, 1] grayscale.

  Args:
    folder: searched recursively for PNG/JPEG (see `list_image_files`).
    resolution: side of the returned images; None takes the first image's
      shorter side.
    center_crop: resize the short side to `resolution` and keep the centre
      square, as the TFDS builder does (the default: the archive's images
      have mixed sizes); False requires square images of one size.
    max_images: keep a `seed`ed random subset of this many files.
    seed: seeds the subset.

  Raises:
    ValueError: no images, an unreadable file, or (without center_crop) an
      image whose size differs from the others / from `resolution`.
  """
  files = list_image_files(folder)
  if max_images is not None and 0 < max_images < len(files):
    keep = np.random.default_rng(seed).choice(len(files), max_images, replace=False)
    files = [files[i] for i in np.sort(keep)]
  out = None
  for i, path in enumerate(files):
    try:
      with Image.open(path) as im:
        im.load()
        gray = _to_gray_uint8(im)
    except (OSError, ValueError) as err:
      raise ValueError(f'Cannot read image {path}: {err}') from err
    if resolution is None:
      resolution = min(gray.shape)
    if center_crop:
      if gray.shape != (resolution, resolution):
        gray = _center_crop_resize(gray, resolution)
    elif gray.shape != (resolution, resolution):
      raise ValueError(
        f'{path} is {gray.shape[1]}x{gray.shape[0]} but the images must be square '
        f"{resolution}x{resolution} (the first image's size or --resolution) when "
        'center_crop is off; leave it on to crop and resize them as the TFDS builder does.'
      )
    if out is None:
      out = np.empty((len(files), resolution, resolution, 1), np.uint8)
    out[i, ..., 0] = gray
  return out
