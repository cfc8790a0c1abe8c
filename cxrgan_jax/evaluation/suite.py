"""One whole evaluation: load generated / load reference / metrics per feature space / write.

Every feature-based measure runs in every space of `config.features`
('inception', 'cxr', 'pixels'); keys end in the space's name, e.g.
`fd_cxr`, `one_nn_accuracy_pixels`. The output folder receives metrics.json
(flat name -> number), report.md, evaluation_info.json (inputs, timings,
cache use) and PNGs (sample grids, closest generated/train pairs).
"""

import contextlib
import dataclasses
import pathlib
import time
from typing import Any

import ml_collections
import numpy as np

from cxrgan_jax import files
from cxrgan_jax import images as image_utils
from cxrgan_jax import sampling
from cxrgan_jax.evaluation import extractors
from cxrgan_jax.evaluation import folders
from cxrgan_jax.evaluation import real_cache
from cxrgan_jax.evaluation import report
from cxrgan_jax.metrics import diversity
from cxrgan_jax.metrics import frechet
from cxrgan_jax.metrics import memorization
from cxrgan_jax.metrics import scores
from cxrgan_jax.metrics import two_sample


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


@dataclasses.dataclass(frozen=True)
class Side:
  """One set of images being compared, and where it came from."""

  images: np.ndarray  # uint8 [N, R, R, 1]
  source: str
  spec: real_cache.SplitSpec | None = None  # Its TFDS split (features cached); None: a folder.


def _cap(value: int) -> int | None:
  return value if value and value > 0 else None


@contextlib.contextmanager
def _timed(info: dict[str, Any], name: str):
  start = time.time()
  yield
  info['seconds'][name] = time.time() - start


def load_generated(config: ml_collections.ConfigDict) -> Side:
  """The run's EMA generator sampled (`workdir`), a folder (`samples_dir`), or
  real images of another split (`generated_split`: what a perfect generator of
  that split would score, the floor of every measure)."""
  if config.get('generated_split'):
    spec = real_cache.SplitSpec(
      config.dataset,
      config.generated_split,
      config.data_dir,
      config.resolution,
      _cap(config.num_samples),
      config.seed,
    )
    return Side(spec.load(), f'{config.dataset} [{config.generated_split}] (real images)')
  if config.samples_dir:
    images = folders.load_image_folder(
      config.samples_dir,
      resolution=config.resolution or None,
      center_crop=config.center_crop,
      max_images=_cap(config.num_samples),
      seed=config.seed,
    )
    return Side(images, config.samples_dir)
  sampler = sampling.restore_sampler(
    config.workdir, which=config.which, step=config.step, batchnorm=config.batchnorm
  )
  images = sampler.images(config.num_samples, seed=config.seed, progress=True)
  if config.resolution and images.shape[1] != config.resolution:
    raise ValueError(
      f'The generator makes {images.shape[1]}px images but --resolution={config.resolution}.'
    )
  source = (
    f'{config.workdir} ({config.which} step {sampler.step}, seed {config.seed}, '
    f'BatchNorm {config.batchnorm})'
  )
  return Side(images, source)


def _load_side(config, folder: str, split: str, cap: int | None, resolution: int) -> Side:
  if folder:
    images = folders.load_image_folder(
      folder,
      resolution=resolution,
      center_crop=config.center_crop,
      max_images=cap,
      seed=config.seed,
    )
    return Side(images, folder)
  spec = real_cache.SplitSpec(config.dataset, split, config.data_dir, resolution, cap, config.seed)
  return Side(spec.load(), f'{config.dataset} [{split}]', spec)


def load_reference(config: ml_collections.ConfigDict, resolution: int) -> tuple[Side, Side | None]:
  """(held-out real images, training images for the memorisation audit or None)."""
  real = _load_side(config, config.real_dir, config.split, _cap(config.max_real), resolution)
  if not (config.train_dir or (config.train_split and not config.real_dir)):
    return real, None
  if not config.train_dir and config.train_split == config.split:
    raise ValueError(
      '--train_split equals --split: the memorisation yardstick needs held-out real images.'
    )
  cap = _cap(config.max_train)
  return real, _load_side(config, config.train_dir, config.train_split, cap, resolution)


def _side_features(config, extractor, side: Side, cache_info: dict[str, bool], name: str):
  """float32 [N, dim] features of one side; TFDS splits go through the cache."""
  if side.spec is None:
    feats, _ = extractors.extract(
      extractor, side.images, batch_size=config.batch_size, progress=True
    )
    return feats
  feats, _, cache_info[name] = real_cache.real_split_features(
    side.spec,
    extractor,
    config.cache_dir or None,
    images=side.images,
    batch_size=config.batch_size,
    progress=True,
  )
  return feats


def measure_space(
  space: str,
  config: ml_collections.ConfigDict,
  sides: tuple[Side, Side, Side | None],
  info: dict[str, Any],
  output_dir: pathlib.Path,
) -> tuple[dict[str, float], dict[str, str]]:
  """Metrics in one feature space, and the pictures written for it.

  A space not asked for in `config.features` is measured only for the
  memorisation audit (pixels: a copy is a copy whatever a feature net thinks).
  """
  fake, real, train = sides
  extractor = extractors.make_extractor(
    space,
    inception_weights=config.inception_weights,
    classifier_workdir=config.classifier_workdir,
    pixel_size=config.pixel_size,
  )
  fake_f, fake_logits = extractors.extract(
    extractor, fake.images, batch_size=config.batch_size, progress=True
  )
  real_f = _side_features(config, extractor, real, info['cache'], f'{space}_real')
  train_f = None
  if train is not None:
    train_f = _side_features(config, extractor, train, info['cache'], f'{space}_train')
  options = EvalOptions(
    num_permutations=config.num_permutations, ms_ssim_pairs=config.ms_ssim_pairs, seed=config.seed
  )
  if space in info['features']:
    values, audit = feature_metrics(space, real_f, fake_f, train=train_f, options=options)
  else:
    audit = memorization.memorization_audit(
      fake_f, train_f, real_f, percentiles=options.copy_percentiles
    )
    values = audit.as_dict(f'_{space}')
  if fake_logits is not None:
    is_score = scores.inception_score(fake_logits, num_splits=min(10, len(fake_f)))
    values['is_mean'], values['is_std'] = is_score.mean, is_score.std
  pictures = {}
  if audit is not None:
    name = f'closest_pairs_{space}.png'
    memorization.save_closest_pairs_png(
      output_dir / name, fake.images, train.images, audit, space=space
    )
    pictures[f'Closest generated/train pairs ({space})'] = name
  return values, pictures


def write_outputs(
  output_dir: pathlib.Path,
  metrics: dict[str, Any],
  info: dict[str, Any],
  pictures: dict[str, str],
  sides: tuple[Side, Side, Side | None],
) -> dict[str, float]:
  """Sample grids, metrics.json, evaluation_info.json and report.md; returns the metrics."""
  for title, name, side in (
    ('Generated samples', 'samples_fake.png', sides[0]),
    ('Real samples', 'samples_real.png', sides[1]),
  ):
    image_utils.write_png(output_dir / name, image_utils.make_grid(side.images[:64]))
    pictures[title] = name
  metrics = {k: (v if isinstance(v, int) else float(v)) for k, v in metrics.items()}
  files.write_json(output_dir / 'metrics.json', metrics)
  files.write_json(output_dir / 'evaluation_info.json', info)
  report.write_report(output_dir, metrics, info, pictures)
  return metrics


def check_generated_side(config: ml_collections.ConfigDict) -> None:
  """One generated side; a real split as that side must be another split than
  the held-out one and the audit's, at a stated resolution."""
  generated_split = config.get('generated_split', '')
  if sum(map(bool, (config.workdir, config.samples_dir, generated_split))) != 1:
    raise ValueError('Give exactly one of --workdir, --samples_dir and --generated_split.')
  if not generated_split:
    return
  if config.real_dir or config.train_dir:
    raise ValueError(
      '--generated_split reads a TFDS split of --dataset: use it with --split and '
      '--train_split, not --real_dir / --train_dir.'
    )
  for name in ('split', 'train_split'):
    if generated_split == config[name]:
      raise ValueError(
        f'--generated_split={generated_split!r} equals --{name}: its images would be '
        f'measured against themselves; use another split, or --train_split="" for no audit.'
      )
  if not config.resolution:
    raise ValueError("--generated_split needs --resolution (the TFDS records' size, e.g. 64).")


def run(config: ml_collections.ConfigDict) -> dict[str, float]:
  """Runs one evaluation (fields: configs/eval.py); writes the outputs, returns the metrics."""
  t_start = time.time()
  if not config.output_dir:
    raise ValueError('output_dir is required.')
  check_generated_side(config)
  info: dict[str, Any] = {'features': extractors.parse_names(config.features), 'seconds': {}}
  output_dir = pathlib.Path(config.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  with _timed(info, 'load_fake'):
    fake = load_generated(config)
  resolution = int(fake.images.shape[1])
  with _timed(info, 'load_real'):
    real, train = load_reference(config, resolution)
  if len(real.images) < 2 or len(fake.images) < 2:
    raise ValueError(
      f'Need >= 2 images per side; got {len(fake.images)} generated, {len(real.images)} real.'
    )
  sides = (fake, real, train)
  info.update(
    fake_source=fake.source,
    real_source=real.source,
    train_source=train.source if train else None,
    resolution=resolution,
    cache={},
    ms_ssim_num_scales=diversity.ms_ssim_num_scales(resolution),
    spaces=info['features'] + (['pixels'] if train and 'pixels' not in info['features'] else []),
  )
  metrics: dict[str, Any] = {'num_fake': len(fake.images), 'num_real': len(real.images)}
  if train is not None:
    metrics['num_train'] = len(train.images)
  pictures: dict[str, str] = {}
  for space in info['spaces']:
    with _timed(info, f'space_{space}'):
      values, space_pictures = measure_space(space, config, sides, info, output_dir)
    metrics.update(values)
    pictures.update(space_pictures)
  with _timed(info, 'ms_ssim'):
    for name, side in (('fake', fake), ('real', real)):
      metrics[f'ms_ssim_{name}'] = diversity.mean_ms_ssim(
        side.images, num_pairs=config.ms_ssim_pairs, seed=config.seed
      )
  info['seconds']['total'] = time.time() - t_start
  return write_outputs(output_dir, metrics, info, pictures, sides)
