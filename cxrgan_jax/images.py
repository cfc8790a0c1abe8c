"""Conversions between model outputs and pictures on disk."""

import os

import numpy as np
from PIL import Image

from cxrgan_jax import files


def to_uint8(images: np.ndarray) -> np.ndarray:
  """float [-1, 1] -> uint8 [0, 255], same shape."""
  images = np.asarray(images, np.float32)
  return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
  """uint8 [N, H, W, 1] -> one uint8 [rows*(H+pad)-pad, cols*(W+pad)-pad] mosaic."""
  images = np.asarray(images)
  n, h, w = images.shape[:3]
  columns = columns or int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / columns))
  grid = np.zeros((rows * (h + pad) - pad, columns * (w + pad) - pad), np.uint8)
  for i in range(n):
    r, c = divmod(i, columns)
    grid[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = images[i, ..., 0]
  return grid


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
  """Writes a uint8 [H, W] or [H, W, 1] PNG atomically (temp name, then rename)."""
  image = np.asarray(image)
  if image.ndim == 3:
    image = image[..., 0]
  with files.atomic_write(path) as f:
    Image.fromarray(image.astype(np.uint8)).save(f, format='PNG')
