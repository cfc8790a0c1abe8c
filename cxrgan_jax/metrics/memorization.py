"""Creativity audit: are generated X-rays copies of training X-rays?

A generator trained on a few thousand images can reproduce training images
instead of sampling new ones, which would leak patients' radiographs into a
"synthetic" data set. Distances alone cannot say what "close" means, so the
yardstick is fresh real data: held-out real images (the TEST split, whose
patients never appear in TRAIN) show how close a genuinely new X-ray of the same
population lands to its nearest training image.

Rule. Let d_test(i) be the distance from held-out image i to its nearest
training image and d_gen(j) the same for generated image j, in one space
(pixels or a feature net). Generated image j is a *suspected copy* at level q
when d_gen(j) < percentile_q(d_test). A generator that is as novel as new
patients flags a fraction q/100 by chance; a fraction well above that, or a
median ratio d_gen/d_test well below 1, means it sits nearer to its training
set than new real data does. We report q = 5 (the headline, stable with ~100+
held-out images) and q = 1 (strict; noisy below ~500 held-out images).
Flagged images are candidates for visual review (see `save_closest_pairs_png`),
not proof: a plain, typical X-ray can be close to many training images.
"""

import dataclasses
import pathlib

import numpy as np
from PIL import Image
from PIL import ImageDraw

from cxrgan_jax.metrics import neighbours

DEFAULT_PERCENTILES = (5.0, 1.0)


@dataclasses.dataclass(frozen=True)
class MemorizationResult:
  """Nearest-training-image distances of generated and held-out real images."""

  fake_nn_distance: np.ndarray  # float64 [G]: generated -> nearest train.
  fake_nn_index: np.ndarray  # int64 [G]: index of that training image.
  test_nn_distance: np.ndarray  # float64 [S]: held-out real -> nearest train.
  thresholds: dict[float, float]  # percentile q -> percentile_q(d_test).
  copy_fractions: dict[float, float]  # q -> fraction of generated flagged.

  @property
  def median_distance_ratio(self) -> float:
    """median d_gen / median d_test; < 1 means closer to train than new data."""
    return float(np.median(self.fake_nn_distance) / max(np.median(self.test_nn_distance), 1e-12))

  def suspected_copies(self, percentile: float = DEFAULT_PERCENTILES[0]) -> np.ndarray:
    """int64 indices of generated images flagged at `percentile`, closest first."""
    flagged = np.flatnonzero(self.fake_nn_distance < self.thresholds[percentile])
    return flagged[np.argsort(self.fake_nn_distance[flagged], kind='stable')]

  def as_dict(self, suffix: str = '') -> dict[str, float]:
    """Flat names; the first percentile is the headline copy fraction."""
    out = {}
    headline = next(iter(self.copy_fractions))
    out[f'memorization_copy_fraction{suffix}'] = self.copy_fractions[headline]
    for q, frac in self.copy_fractions.items():
      tag = f'p{q:g}'.replace('.', '_')
      out[f'memorization_copy_fraction_{tag}{suffix}'] = frac
      out[f'memorization_threshold_{tag}{suffix}'] = self.thresholds[q]
    out[f'memorization_fake_nn_distance_median{suffix}'] = float(np.median(self.fake_nn_distance))
    out[f'memorization_fake_nn_distance_min{suffix}'] = float(np.min(self.fake_nn_distance))
    out[f'memorization_test_nn_distance_median{suffix}'] = float(np.median(self.test_nn_distance))
    out[f'memorization_median_distance_ratio{suffix}'] = self.median_distance_ratio
    return out


def memorization_audit(
  fake: np.ndarray,
  train: np.ndarray,
  test: np.ndarray,
  *,
  percentiles: tuple[float, ...] = DEFAULT_PERCENTILES,
  chunk_size: int = neighbours.DEFAULT_CHUNK_SIZE,
) -> MemorizationResult:
  """Nearest-training distances of generated vs held-out real images.

  Args:
    fake: [G, D] generated images' features (or flattened pixels).
    train: [T, D] the generator's training images, same space.
    test: [S, D] held-out real images (patients disjoint from train).
    percentiles: levels q of the copy rule (module docstring); first = headline.
    chunk_size: rows per distance block.

  Returns:
    A MemorizationResult.
  """
  if not percentiles:
    raise ValueError('Need at least one percentile.')
  if len(np.asarray(test)) < 2:
    raise ValueError('Need at least 2 held-out real images for the threshold.')
  fake_d, fake_i = neighbours.nearest_neighbours(fake, train, 1, chunk_size=chunk_size)
  test_d, _ = neighbours.nearest_neighbours(test, train, 1, chunk_size=chunk_size)
  fake_d, fake_i, test_d = fake_d[:, 0], fake_i[:, 0], test_d[:, 0]
  thresholds = {float(q): float(np.percentile(test_d, q)) for q in percentiles}
  fractions = {q: float(np.mean(fake_d < t)) for q, t in thresholds.items()}
  return MemorizationResult(fake_d, fake_i, test_d, thresholds, fractions)


def _to_rgb_tile(image: np.ndarray, size: int) -> Image.Image:
  """uint8 [H, W, 1] or [H, W] -> RGB PIL image of size x size."""
  image = np.asarray(image)
  if image.ndim == 3:
    image = image[..., 0]
  tile = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
  if tile.size != (size, size):
    tile = tile.resize((size, size), Image.Resampling.BICUBIC)
  return tile.convert('RGB')


def save_closest_pairs_png(
  path: str | pathlib.Path,
  fake_images: np.ndarray,
  train_images: np.ndarray,
  result: MemorizationResult,
  *,
  num_pairs: int = 8,
  tile_size: int = 128,
  space: str = '',
) -> pathlib.Path:
  """Writes the `num_pairs` closest generated|training pairs, one per row.

  Each row shows the generated image, its nearest training image, and the
  distance with its rank among the held-out yardstick (red when the pair is a
  suspected copy at the headline percentile).

  Args:
    path: PNG file to write.
    fake_images: uint8 [G, H, W, 1] generated images, same order as the audit.
    train_images: uint8 [T, H', W', 1] training images, same order.
    result: the audit of these images.
    num_pairs: rows to draw (capped at G).
    tile_size: side of each drawn image in pixels.
    space: name of the distance space for the caption (e.g. 'pixels').

  Returns:
    The path written.
  """
  path = pathlib.Path(path)
  order = np.argsort(result.fake_nn_distance, kind='stable')[:num_pairs]
  headline = next(iter(result.thresholds))
  threshold = result.thresholds[headline]
  label_w, header_h, pad = 230, 22, 4
  width = 2 * tile_size + 3 * pad + label_w
  height = header_h + len(order) * (tile_size + pad) + pad
  canvas = Image.new('RGB', (width, height), 'white')
  draw = ImageDraw.Draw(canvas)
  draw.text(
    (pad, 4),
    f'generated | nearest train  ({space or "distance"}; '
    f'copy if d < {threshold:.4g} = p{headline:g} of test->train)',
    fill='black',
  )
  for row, j in enumerate(order):
    y = header_h + row * (tile_size + pad)
    canvas.paste(_to_rgb_tile(fake_images[j], tile_size), (pad, y))
    canvas.paste(
      _to_rgb_tile(train_images[result.fake_nn_index[j]], tile_size), (2 * pad + tile_size, y)
    )
    d = result.fake_nn_distance[j]
    rank = float(np.mean(result.test_nn_distance < d))
    copy = d < threshold
    lines = [
      f'gen #{j}  train #{result.fake_nn_index[j]}',
      f'd = {d:.4g}',
      f'test->train below d: {100 * rank:.1f}%',
      'SUSPECTED COPY' if copy else '',
    ]
    draw.text(
      (3 * pad + 2 * tile_size, y + 4), '\n'.join(lines), fill=(200, 0, 0) if copy else 'black'
    )
  path.parent.mkdir(parents=True, exist_ok=True)
  canvas.save(path)
  return path
