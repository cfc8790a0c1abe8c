r"""Evaluates generated chest X-rays against real ones; writes metrics + report.

  python -m cxrgan_jax.evaluate --workdir=RUN --num_samples=1000 \
      --dataset=chest_xray_pneumonia/normal --split=test --data_dir=TFDS \
      --features=cxr,pixels --classifier_workdir=CLF --output_dir=OUT

Generated side: `--workdir` (samples the run's EMA generator) or
`--samples_dir` (PNG/JPEG files, searched recursively). Real side: a TFDS split
(`--dataset/--split`) or `--real_dir`. Training side for the memorisation
audit: `--train_split` of the same dataset or `--train_dir` ('' disables).

Every feature-based measure runs in every space of `--features`
('inception', 'cxr', 'pixels'); keys end in the space's name, e.g.
`fd_cxr`, `one_nn_accuracy_pixels`. OUT receives metrics.json (flat
name -> number), report.md, evaluation_info.json (inputs, timings, cache use)
and PNGs (sample grids, closest generated/train pairs).

Features of TFDS splits are cached under `--cache_dir`, keyed by dataset,
split, data_dir, resolution, number of images and the feature net's identity
(name, dim, hash of its weights), so re-evaluating another checkpoint only
extracts features of the generated images.
"""

from collections.abc import Sequence
import dataclasses
import hashlib
import json
import os
import pathlib
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np
from PIL import Image

from cxrgan_jax import files
from cxrgan_jax import images as image_utils
from cxrgan_jax.metrics import diversity
from cxrgan_jax.metrics import features as features_lib
from cxrgan_jax.metrics import frechet
from cxrgan_jax.metrics import memorization
from cxrgan_jax.metrics import scores
from cxrgan_jax.metrics import two_sample

KNOWN_FEATURES = ('inception', 'cxr', 'pixels')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
# Written by `cxrgan_jax.sample` next to the samples; not a sample itself.
SKIPPED_FILES = ('grid.png',)
CACHE_VERSION = 1
DEFAULT_CACHE_DIR = str(files.cache_root() / 'real_features')


# --------------------------------------------------------------------------
# Image folders.


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
  center_crop: bool = False,
  max_images: int | None = None,
  seed: int = 0,
) -> np.ndarray:
  """Images of a folder tree as uint8 [N, R, R, 1] grayscale.

  Args:
    folder: searched recursively for PNG/JPEG (see `list_image_files`).
    resolution: required side; None takes it from the first image.
    center_crop: resize the short side to `resolution` and keep the centre
      square (as the TFDS builder does), instead of requiring square images
      of exactly `resolution`.
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
  if center_crop and resolution is None:
    raise ValueError('center_crop needs an explicit resolution.')
  out = None
  for i, path in enumerate(files):
    try:
      with Image.open(path) as im:
        im.load()
        gray = _to_gray_uint8(im)
    except (OSError, ValueError) as err:
      raise ValueError(f'Cannot read image {path}: {err}') from err
    if center_crop:
      gray = _center_crop_resize(gray, resolution)
    else:
      if resolution is None:
        resolution = gray.shape[0]
      if gray.shape != (resolution, resolution):
        raise ValueError(
          f'{path} is {gray.shape[1]}x{gray.shape[0]} but the images must '
          f"be square {resolution}x{resolution} (the first image's size or "
          '--resolution); pass --center_crop to crop and resize them.'
        )
    if out is None:
      out = np.empty((len(files), resolution, resolution, 1), np.uint8)
    out[i, ..., 0] = gray
  return out


# --------------------------------------------------------------------------
# Feature extractors and the on-disk cache of real features.


def _hash_variables(variables: Any) -> str:
  """sha256 over a pytree's leaves (for extractors built from arrays)."""
  h = hashlib.sha256()
  for leaf in jax.tree_util.tree_leaves(variables):
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(str((a.shape, a.dtype)).encode())
    h.update(a.tobytes())
  return h.hexdigest()


def extractor_fingerprint(extractor: features_lib.FeatureExtractor) -> str:
  """Identity of a feature net for cache keys: name, dim and weights hash.

  Extractors that hold their weights (`variables`, as every BatchedExtractor
  does) are hashed by value, so retraining the classifier or swapping the
  Inception file invalidates cached real features.
  """
  variables = getattr(extractor, 'variables', None)
  weights = _hash_variables(variables) if variables is not None else 'none'
  return f'{extractor.name}-{extractor.dim}-{weights[:16]}'


def make_extractor(
  name: str, *, inception_weights: str = '', classifier_workdir: str = '', pixel_size: int = 32
) -> features_lib.FeatureExtractor:
  """One extractor of `KNOWN_FEATURES`, with a clear error for what's missing."""
  if name == 'inception':
    return features_lib.get_extractor('inception', weights_path=inception_weights or None)
  if name == 'cxr':
    if not classifier_workdir:
      raise ValueError(
        "Features 'cxr' need --classifier_workdir (train one "
        'with `python -m cxrgan_jax.classifier`).'
      )
    # Importing the module registers the "cxr" extractor.
    from cxrgan_jax import classifier  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

    return features_lib.get_extractor('cxr', workdir=classifier_workdir)
  if name == 'pixels':
    return features_lib.get_extractor('pixels', size=pixel_size)
  raise ValueError(f'Unknown feature space {name!r}; choose from {", ".join(KNOWN_FEATURES)}.')


def _cache_path(cache_dir: str | pathlib.Path, key: dict[str, Any]) -> pathlib.Path:
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
  dataset = key['dataset'].replace('/', '_')
  return (
    pathlib.Path(cache_dir) / f'{dataset}-{key["split"]}-r{key["resolution"]}-{key["extractor"]}-'
    f'{digest[:12]}.npz'
  )


def real_split_features(
  dataset: str,
  split: str,
  data_dir: str,
  resolution: int,
  extractor: features_lib.FeatureExtractor,
  cache_dir: str | pathlib.Path | None,
  *,
  max_images: int | None = None,
  seed: int = 0,
  images: np.ndarray | None = None,
  batch_size: int = 64,
  progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, bool]:
  """Features of a TFDS split, from the cache when possible.

  Args:
    dataset, split, data_dir: the TFDS split (see input_pipeline.load_images).
    resolution: image side the split is loaded at.
    extractor: feature net.
    cache_dir: where cached features live; None disables the cache.
    max_images, seed: a seeded subset of the split (part of the cache key).
    images: the split's images if already loaded (skips loading on a miss).
    batch_size, progress: passed to the extractor.

  Returns:
    (features float32 [N, dim], extra outputs or None (Inception logits
    [N, 1008] when the extractor has them), cache hit?).
  """
  from cxrgan_jax import input_pipeline  # pylint: disable=g-import-not-at-top

  # The split's size is part of the key so a rebuilt, different-size dataset
  # misses; the seed only matters when it picks a subset.
  key = dict(
    version=CACHE_VERSION,
    dataset=dataset,
    split=split,
    data_dir=os.path.abspath(data_dir) if data_dir else '',
    num_examples=input_pipeline.num_examples(dataset, split, data_dir),
    resolution=int(resolution),
    max_images=max_images,
    seed=seed if max_images is not None else None,
    extractor=extractor.name,
    fingerprint=extractor_fingerprint(extractor),
  )
  path = _cache_path(cache_dir, key) if cache_dir else None
  if path is not None and path.is_file():
    try:
      with np.load(path, allow_pickle=False) as f:
        if json.loads(str(f['key'])) == key:
          extra = f['extra'] if 'extra' in f.files else None
          logging.info('Real features from cache %s', path)
          return f['features'], extra, True
    except (OSError, ValueError, KeyError) as err:
      logging.warning('Ignoring unreadable cache %s: %s', path, err)
  if images is None:
    images = input_pipeline.load_images(
      dataset, split, data_dir=data_dir, resolution=resolution, max_images=max_images, seed=seed
    )['image']
  feats, extra = _extract(extractor, images, batch_size=batch_size, progress=progress)
  if path is not None:
    arrays = dict(features=feats, key=np.asarray(json.dumps(key)))
    if extra is not None:
      arrays['extra'] = extra
    with files.atomic_write(path) as f:
      np.savez(f, **arrays)
  return feats, extra, False


def real_split_statistics(
  dataset: str,
  split: str,
  data_dir: str,
  resolution: int,
  extractor: features_lib.FeatureExtractor,
  cache_dir: str | pathlib.Path | None,
  *,
  max_images: int | None = None,
) -> frechet.FeatureStats:
  """Gaussian fit (float64 mu [d], sigma [d, d]) of a split's features, cached."""
  feats, _, _ = real_split_features(
    dataset, split, data_dir, resolution, extractor, cache_dir, max_images=max_images
  )
  return frechet.feature_statistics(feats)


def frechet_distance_to_split(
  fake_images: np.ndarray,
  *,
  extractor: features_lib.FeatureExtractor,
  real_stats: frechet.FeatureStats,
  batch_size: int = 64,
) -> float:
  """FD between uint8 [N, R, R, 1] generated images and precomputed real stats.

  For in-training evaluation: compute `real_stats` once with
  `real_split_statistics`, then call this every N steps on a small sample
  (FD is biased upwards for small N; compare only runs with equal N).
  """
  feats = extractor(fake_images, batch_size=batch_size)
  return frechet.frechet_distance_from_stats(frechet.feature_statistics(feats), real_stats)


def _extract(
  extractor: features_lib.FeatureExtractor, images: np.ndarray, *, batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray | None]:
  """(features, Inception logits or None) in one pass."""
  if isinstance(extractor, features_lib.InceptionExtractor):
    return extractor.features_and_logits(images, batch_size=batch_size, progress=progress)
  return extractor(images, batch_size=batch_size, progress=progress), None


# --------------------------------------------------------------------------
# Metrics.

DESCRIPTIONS = {
  'fd': 'Fréchet distance between Gaussian fits of real and generated '
  'features (FID for inception); lower is better.',
  'kid': 'Kernel (cubic polynomial MMD²) distance; unbiased, lower is '
  'better, ~0 for one distribution.',
  'is': 'Inception Score over 10 splits; ImageNet classes, so only a rough '
  'sharpness/diversity signal for X-rays.',
  'one_nn_accuracy': 'Leave-one-out 1-NN real-vs-fake accuracy; 0.5 ideal, '
  '1 separable, <0.5 copies.',
  'one_nn_real_accuracy': 'Share of real images whose nearest neighbour is '
  'real (missed modes raise it).',
  'one_nn_fake_accuracy': 'Share of generated images whose nearest '
  'neighbour is generated (artefacts raise it).',
  'one_nn_p_value': 'Permutation p-value of the 1-NN accuracy under "same distribution".',
  'knn_same_set_fraction': "Mean share of each point's k nearest "
  'neighbours from its own set; ~0.5 ideal.',
  'precision': 'Share of generated images inside the real k=3 manifold (fidelity).',
  'recall': 'Share of real images inside the generated k=3 manifold (coverage).',
  'mean_pairwise_distance_fake': 'Mean feature distance between generated images.',
  'mean_pairwise_distance_real': 'Mean feature distance between real images.',
  'diversity_ratio': 'Generated / real mean pairwise distance; <1 means less diverse than real.',
  'memorization_copy_fraction': 'Share of generated images nearer to a '
  'training image than 95% of held-out real '
  'images are (chance 0.05).',
  'memorization_copy_fraction_p5': 'Same as memorization_copy_fraction '
  '(5th percentile rule; chance 0.05).',
  'memorization_copy_fraction_p1': 'Share nearer to train than 99% of '
  'held-out real images (chance 0.01).',
  'memorization_threshold_p5': 'Copy threshold: 5th percentile of test->train nearest distances.',
  'memorization_threshold_p1': 'Copy threshold: 1st percentile of test->train nearest distances.',
  'memorization_fake_nn_distance_median': 'Median generated->nearest training image distance.',
  'memorization_fake_nn_distance_min': 'Smallest generated->train distance (~0 = exact copy).',
  'memorization_test_nn_distance_median': 'Median held-out real->nearest training image distance.',
  'memorization_median_distance_ratio': 'Median generated->train over '
  'median test->train NN distance; '
  '<1 = closer than new patients.',
  'knn_same_set_fraction_real': "Mean share of a real point's k nearest "
  'neighbours that are real; ~0.5 ideal.',
  'knn_same_set_fraction_fake': "Mean share of a generated point's k "
  'nearest neighbours that are generated.',
  'num_fake': 'Generated images evaluated.',
  'num_real': 'Held-out real images.',
  'num_train': 'Training images searched by the memorisation audit.',
  'ms_ssim_fake': 'Mean MS-SSIM of random generated pairs; higher = less diverse.',
  'ms_ssim_real': 'Mean MS-SSIM of random real pairs (reference for ms_ssim_fake).',
}


def _equal_subsets(a: np.ndarray, b: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Seeded random subsets of equal size min(len(a), len(b))."""
  n = min(len(a), len(b))
  rng = np.random.default_rng(seed)
  pick = lambda x: x if len(x) == n else x[np.sort(rng.choice(len(x), n, replace=False))]
  return pick(a), pick(b)


@dataclasses.dataclass(frozen=True)
class EvalOptions:
  """Knobs of the sample-based measures."""

  knn_k: int = 5
  pr_k: int = 3
  num_permutations: int = 1000
  ms_ssim_pairs: int = 1000
  kid_subsets: int = 100
  kid_subset_size: int = 1000
  copy_percentiles: tuple[float, ...] = memorization.DEFAULT_PERCENTILES
  seed: int = 0


def feature_metrics(
  space: str,
  real: np.ndarray,
  fake: np.ndarray,
  *,
  train: np.ndarray | None = None,
  options: EvalOptions = EvalOptions(),
) -> tuple[dict[str, float], memorization.MemorizationResult | None]:
  """Every feature-based measure in one space; keys end in `_{space}`.

  Args:
    space: suffix of the keys ('cxr', 'pixels', 'inception').
    real: [N, d] held-out real features (TEST split, never the GAN's train).
    fake: [M, d] generated features.
    train: [T, d] the GAN's training images' features for the audit, or None.
    options: EvalOptions.

  Returns:
    (flat metrics, the memorisation audit or None).
  """
  s = f'_{space}'
  out = {}
  out[f'fd{s}'] = frechet.frechet_distance_from_features(real, fake)
  kid = scores.kernel_inception_distance(
    real,
    fake,
    num_subsets=options.kid_subsets,
    subset_size=options.kid_subset_size,
    seed=options.seed,
  )
  out[f'kid{s}_mean'], out[f'kid{s}_std'] = kid.mean, kid.std
  real_eq, fake_eq = _equal_subsets(real, fake, options.seed)
  res = two_sample.one_nn_two_sample_test(
    real_eq, fake_eq, k=options.knn_k, num_permutations=options.num_permutations, seed=options.seed
  )
  out.update(res.as_dict(s))
  out[f'precision{s}'], out[f'recall{s}'] = diversity.precision_recall(
    real_eq, fake_eq, k=options.pr_k
  )
  spread_fake = diversity.mean_pairwise_distance(fake)
  spread_real = diversity.mean_pairwise_distance(real)
  out[f'mean_pairwise_distance_fake{s}'] = spread_fake
  out[f'mean_pairwise_distance_real{s}'] = spread_real
  out[f'diversity_ratio{s}'] = spread_fake / max(spread_real, 1e-12)
  audit = None
  if train is not None:
    audit = memorization.memorization_audit(fake, train, real, percentiles=options.copy_percentiles)
    out.update(audit.as_dict(s))
  return out, audit


# --------------------------------------------------------------------------
# Report.


def _describe(key: str) -> str:
  """One-line meaning of a metrics.json key (space suffix stripped)."""
  for space in KNOWN_FEATURES:
    key = key.replace(f'_{space}', '') if key.endswith(f'_{space}') or f'_{space}_' in key else key
  std = key.endswith('_std')
  if key.endswith(('_mean', '_std')) and key.startswith(('kid', 'is')):
    key = key.rsplit('_', 1)[0]
  text = DESCRIPTIONS.get(key, '')
  return text + (' Std over subsets/splits.' if std and text else '')


def write_report(
  output_dir: pathlib.Path,
  metrics: dict[str, float],
  info: dict[str, Any],
  pictures: dict[str, str],
) -> pathlib.Path:
  """report.md: inputs, a table of every figure with its meaning, pictures."""
  lines = [
    '# Evaluation of generated chest X-rays',
    '',
    f'- generated: {info["fake_source"]} ({metrics["num_fake"]} images)',
    f'- real (held-out): {info["real_source"]} ({metrics["num_real"]} images)',
    f'- train (memorisation audit): {info.get("train_source") or "none"}',
    f'- resolution: {info["resolution"]}; feature spaces: {", ".join(info["features"])}',
    f'- MS-SSIM: {info["ms_ssim_num_scales"]} scales (standard 5 need '
    '>= 176 px; coarsest scales dropped, weights renormalised), '
    '11-px Gaussian window, sigma 1.5',
    '',
    '| metric | value | meaning |',
    '|---|---:|---|',
  ]
  for key in sorted(metrics):
    value = metrics[key]
    text = f'{value:.4g}' if isinstance(value, float) else str(value)
    lines.append(f'| `{key}` | {text} | {_describe(key)} |')
  lines += [
    '',
    'Copy rule: a generated image is a suspected copy when its '
    'nearest training image is closer than the 5th (p5) or 1st (p1) '
    "percentile of held-out real images' nearest-training distances "
    '(chance rates 0.05 / 0.01). 1-NN and precision/recall use equal-'
    'size random subsets of real and generated features.',
    '',
  ]
  for title, name in pictures.items():
    lines += [f'## {title}', '', f'![{title}]({name})', '']
  path = output_dir / 'report.md'
  files.write_text(path, '\n'.join(lines))
  return path


# --------------------------------------------------------------------------
# The binary.


@dataclasses.dataclass
class EvalArgs:
  """Inputs of one evaluation; the binary's flags have the same names."""

  output_dir: str = ''  # Where metrics.json, report.md and PNGs go.
  workdir: str = ''  # GAN run to sample (EMA generator).
  step: int | None = None  # Checkpoint step of workdir (None = latest).
  samples_dir: str = ''  # Folder of generated PNG/JPEG images instead.
  num_samples: int = 1000  # Images to generate; with samples_dir a cap (0=all).
  seed: int = 0  # Seed of sampling and of every random subset.
  dataset: str = 'chest_xray_pneumonia/normal'  # TFDS dataset of the real side.
  split: str = 'test'  # Held-out real split.
  data_dir: str = ''  # TFDS data_dir.
  real_dir: str = ''  # Folder of real images instead of TFDS.
  max_real: int = 0  # Cap on real images (0 = all).
  train_split: str = 'train'  # GAN's training split, for the audit ('' = none).
  train_dir: str = ''  # Folder of training images instead.
  max_train: int = 0  # Cap on training images (0 = all).
  features: Sequence[str] = ('pixels',)  # Subset of KNOWN_FEATURES.
  inception_weights: str = ''  # pytorch-fid weights (.pth or .npz).
  classifier_workdir: str = ''  # cxrgan_jax.classifier workdir for 'cxr'.
  pixel_size: int = 32  # 'pixels' side; FD's sqrtm is O(side**6).
  resolution: int = 0  # Image side; 0 = that of the generated images.
  center_crop: bool = False  # Crop+resize folder images of other sizes.
  cache_dir: str = DEFAULT_CACHE_DIR  # Real-split feature cache ('' = off).
  batch_size: int = 64  # Feature-extraction batch size.
  ms_ssim_pairs: int = 1000  # Random pairs per set for MS-SSIM.
  num_permutations: int = 1000  # Draws of the 1-NN permutation test.


_HELP = {
  'output_dir': 'Where metrics.json, report.md and the PNGs go.',
  'workdir': 'GAN run to sample (EMA generator).',
  'step': 'Checkpoint step of --workdir (default latest).',
  'samples_dir': 'Folder of generated PNG/JPEG images (recursive).',
  'num_samples': 'Images to generate from --workdir; with --samples_dir a cap (0 = all).',
  'seed': 'Seed of sampling and of random subsets.',
  'dataset': 'TFDS dataset of the real (and train) side.',
  'split': 'Held-out real split.',
  'data_dir': 'TFDS data_dir.',
  'real_dir': 'Folder of real images instead of TFDS.',
  'max_real': 'Cap on real images (0 = all).',
  'train_split': "Split the GAN trained on, for the memorisation audit ('' "
  'and no --train_dir = no audit).',
  'train_dir': 'Folder of training images (needed for the audit when the real side is --real_dir).',
  'max_train': 'Cap on training images (0 = all).',
  'features': 'Feature spaces, comma-separated: ' + ','.join(KNOWN_FEATURES),
  'inception_weights': 'pytorch-fid Inception weights (.pth or .npz).',
  'classifier_workdir': "cxrgan_jax.classifier workdir (for 'cxr').",
  'pixel_size': "Side the 'pixels' space resizes to (FD's sqrtm costs "
  'O(side**6): 64 takes minutes, 32 seconds).',
  'resolution': 'Image side; 0 = that of the generated images.',
  'center_crop': 'Crop+resize folder images of other sizes to --resolution instead of failing.',
  'cache_dir': "Cache of real-split features ('' disables).",
  'batch_size': 'Feature-extraction batch size.',
  'ms_ssim_pairs': 'Random pairs per set for MS-SSIM.',
  'num_permutations': 'Draws of the 1-NN permutation test.',
}


def define_flags() -> None:
  """Flags of the binary, one per EvalArgs field (only when run as main)."""
  for field in dataclasses.fields(EvalArgs):
    name, default, help_ = field.name, field.default, _HELP[field.name]
    if name == 'features':
      flags.DEFINE_list(name, list(default), help_)
    elif name == 'step':
      flags.DEFINE_integer(name, default, help_)
    elif isinstance(default, bool):
      flags.DEFINE_bool(name, default, help_)
    elif isinstance(default, int):
      flags.DEFINE_integer(name, default, help_)
    else:
      flags.DEFINE_string(name, default, help_)


def _positive_or_none(v: int) -> int | None:
  return v if v and v > 0 else None


def run(args: EvalArgs) -> dict[str, float]:
  """Runs one evaluation; writes the outputs and returns the metrics."""
  t_start = time.time()
  if not args.output_dir:
    raise ValueError('output_dir is required.')
  if bool(args.workdir) == bool(args.samples_dir):
    raise ValueError('Give exactly one of --workdir and --samples_dir.')
  features = [f.strip() for f in args.features if f.strip()]
  unknown = [f for f in features if f not in KNOWN_FEATURES]
  if unknown or not features:
    raise ValueError(f'Unknown feature spaces {unknown}; choose from {", ".join(KNOWN_FEATURES)}.')
  output_dir = pathlib.Path(args.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  resolution = args.resolution or None
  info: dict[str, Any] = {'features': features, 'cache': {}, 'seconds': {}}

  # Generated images.
  t = time.time()
  if args.workdir:
    from cxrgan_jax import sampling  # pylint: disable=g-import-not-at-top

    fake = sampling.generate(
      args.workdir, args.num_samples, seed=args.seed, step=args.step, progress=True
    )
    info['fake_source'] = f'{args.workdir} (step {args.step or "latest"}, seed {args.seed})'
    if resolution and fake.shape[1] != resolution:
      raise ValueError(
        f'The generator makes {fake.shape[1]}px images but --resolution={resolution}.'
      )
  else:
    fake = load_image_folder(
      args.samples_dir,
      resolution=resolution,
      center_crop=args.center_crop,
      max_images=_positive_or_none(args.num_samples),
      seed=args.seed,
    )
    info['fake_source'] = args.samples_dir
  resolution = int(fake.shape[1])
  info['resolution'] = resolution
  info['seconds']['load_fake'] = time.time() - t

  # Real (held-out) and training images.
  t = time.time()
  max_real = _positive_or_none(args.max_real)
  max_train = _positive_or_none(args.max_train)
  from cxrgan_jax import input_pipeline  # pylint: disable=g-import-not-at-top

  if args.real_dir:
    real = load_image_folder(
      args.real_dir,
      resolution=resolution,
      center_crop=args.center_crop,
      max_images=max_real,
      seed=args.seed,
    )
    info['real_source'] = args.real_dir
  else:
    real = input_pipeline.load_images(
      args.dataset,
      args.split,
      data_dir=args.data_dir,
      resolution=resolution,
      max_images=max_real,
      seed=args.seed,
    )['image']
    info['real_source'] = f'{args.dataset} [{args.split}]'
  train = None
  if args.train_dir:
    train = load_image_folder(
      args.train_dir,
      resolution=resolution,
      center_crop=args.center_crop,
      max_images=max_train,
      seed=args.seed,
    )
    info['train_source'] = args.train_dir
  elif args.train_split and not args.real_dir:
    if args.train_split == args.split:
      raise ValueError(
        '--train_split equals --split: the memorisation yardstick needs held-out real images.'
      )
    train = input_pipeline.load_images(
      args.dataset,
      args.train_split,
      data_dir=args.data_dir,
      resolution=resolution,
      max_images=max_train,
      seed=args.seed,
    )['image']
    info['train_source'] = f'{args.dataset} [{args.train_split}]'
  if len(real) < 2 or len(fake) < 2:
    raise ValueError(f'Need >= 2 images per side; got {len(fake)} generated, {len(real)} real.')
  info['seconds']['load_real'] = time.time() - t

  options = EvalOptions(
    num_permutations=args.num_permutations, ms_ssim_pairs=args.ms_ssim_pairs, seed=args.seed
  )
  metrics: dict[str, float] = {'num_fake': len(fake), 'num_real': len(real)}
  if train is not None:
    metrics['num_train'] = len(train)
  pictures = {}
  cache_dir = args.cache_dir or None
  # The memorisation audit always looks at pixels too: a copy is a copy
  # whatever a feature net thinks of it.
  spaces = list(features)
  pixel_audit_only = train is not None and 'pixels' not in spaces
  if pixel_audit_only:
    spaces.append('pixels')
  info['spaces'] = spaces
  for space in spaces:
    t = time.time()
    extractor = make_extractor(
      space,
      inception_weights=args.inception_weights,
      classifier_workdir=args.classifier_workdir,
      pixel_size=args.pixel_size,
    )
    fake_f, fake_logits = _extract(extractor, fake, batch_size=args.batch_size, progress=True)
    if args.real_dir:
      real_f, _ = _extract(extractor, real, batch_size=args.batch_size, progress=True)
    else:
      real_f, _, hit = real_split_features(
        args.dataset,
        args.split,
        args.data_dir,
        resolution,
        extractor,
        cache_dir,
        max_images=max_real,
        seed=args.seed,
        images=real,
        batch_size=args.batch_size,
        progress=True,
      )
      info['cache'][f'{space}_real'] = hit
    train_f = None
    if train is not None:
      if args.train_dir:
        train_f, _ = _extract(extractor, train, batch_size=args.batch_size, progress=True)
      else:
        train_f, _, hit = real_split_features(
          args.dataset,
          args.train_split,
          args.data_dir,
          resolution,
          extractor,
          cache_dir,
          max_images=max_train,
          seed=args.seed,
          images=train,
          batch_size=args.batch_size,
          progress=True,
        )
        info['cache'][f'{space}_train'] = hit
    info['seconds'][f'features_{space}'] = time.time() - t
    t = time.time()
    if pixel_audit_only and space == 'pixels':
      audit = memorization.memorization_audit(
        fake_f, train_f, real_f, percentiles=options.copy_percentiles
      )
      values = audit.as_dict('_pixels')
    else:
      values, audit = feature_metrics(space, real_f, fake_f, train=train_f, options=options)
    metrics.update(values)
    if fake_logits is not None:
      is_score = scores.inception_score(fake_logits, num_splits=min(10, len(fake)))
      metrics['is_mean'], metrics['is_std'] = is_score.mean, is_score.std
    if audit is not None:
      name = f'closest_pairs_{space}.png'
      memorization.save_closest_pairs_png(output_dir / name, fake, train, audit, space=space)
      pictures[f'Closest generated/train pairs ({space})'] = name
    info['seconds'][f'metrics_{space}'] = time.time() - t

  t = time.time()
  metrics['ms_ssim_fake'] = diversity.mean_ms_ssim(
    fake, num_pairs=options.ms_ssim_pairs, seed=args.seed
  )
  metrics['ms_ssim_real'] = diversity.mean_ms_ssim(
    real, num_pairs=options.ms_ssim_pairs, seed=args.seed
  )
  info['ms_ssim_num_scales'] = diversity.ms_ssim_num_scales(resolution)
  info['seconds']['ms_ssim'] = time.time() - t

  for title, name, images in (
    ('Generated samples', 'samples_fake.png', fake),
    ('Real samples', 'samples_real.png', real),
  ):
    image_utils.write_png(output_dir / name, image_utils.make_grid(images[:64]))
    pictures[title] = name
  metrics = {k: (float(v) if not isinstance(v, int) else v) for k, v in metrics.items()}
  info['seconds']['total'] = time.time() - t_start
  files.write_json(output_dir / 'metrics.json', metrics)
  files.write_json(output_dir / 'evaluation_info.json', info)
  write_report(output_dir, metrics, info, pictures)
  return metrics


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  args = EvalArgs(**{f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(EvalArgs)})
  metrics = run(args)
  width = max(len(k) for k in metrics)
  for key in sorted(metrics):
    print(f'{key:<{width}}  {metrics[key]:.6g}')
  print(f'Wrote {args.output_dir}/metrics.json and report.md')


if __name__ == '__main__':
  define_flags()
  app.run(main)
