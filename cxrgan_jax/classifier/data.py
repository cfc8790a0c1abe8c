"""The classifier's training set for the utility study: real, synthetic, or both.

Real data is subsampled by patient (a patient's images are all in or all
out), because images of one child are near-duplicates and a per-image
subsample would overstate how much data a fraction holds. Synthetic data
comes from folders that `cxrgan_jax.sample` exports in the Kaggle layout;
the class is read from the path exactly as for the real archive.
"""

from collections.abc import Sequence
import dataclasses
import pathlib
import re

import ml_collections
import numpy as np

from cxrgan_jax import input_pipeline
from cxrgan_jax.evaluation import folders

# Same ids as the TFDS builder's labels.
LABELS = {'normal': 0, 'bacterial': 1, 'viral': 2}


@dataclasses.dataclass(frozen=True)
class LabelledImages:
  image: np.ndarray  # uint8 [N, R, R, 1]
  label: np.ndarray  # int32 [N]
  patient_id: np.ndarray  # str [N]; synthetic images get 'synthetic-<i>'
  synthetic: np.ndarray  # bool [N]

  def __len__(self) -> int:
    return len(self.label)

  def take(self, indices: np.ndarray) -> 'LabelledImages':
    return LabelledImages(*(getattr(self, f.name)[indices] for f in dataclasses.fields(self)))


def concatenate(parts: list[LabelledImages]) -> LabelledImages:
  return LabelledImages(
    *(
      np.concatenate([getattr(p, f.name) for p in parts])
      for f in dataclasses.fields(LabelledImages)
    )
  )


def label_from_path(path: str | pathlib.Path) -> int:
  """NORMAL/... -> 0, PNEUMONIA/*bacteria* -> 1, PNEUMONIA/*virus* -> 2 (the archive's rule)."""
  path = pathlib.Path(path)
  folder, name = path.parent.name.upper(), path.name.lower()
  if folder == 'NORMAL':
    return LABELS['normal']
  if folder == 'PNEUMONIA' and re.search(r'bacteria', name):
    return LABELS['bacterial']
  if folder == 'PNEUMONIA' and re.search(r'virus', name):
    return LABELS['viral']
  raise ValueError(
    f'{path}: cannot tell its class; expected NORMAL/<name> or PNEUMONIA/<name> with '
    '"bacteria" or "virus" in the name (the layout cxrgan_jax.sample writes)'
  )


def subsample_patients(data: LabelledImages, fraction: float, seed: int) -> LabelledImages:
  """All images of a seeded `fraction` of the patients of each class (at least one)."""
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f'real-data fraction {fraction} must be in (0, 1]')
  if fraction == 1.0:
    return data
  rng = np.random.default_rng(seed)
  keep = np.zeros(len(data), bool)
  for label in np.unique(data.label):
    patients = np.unique(data.patient_id[data.label == label])
    chosen = rng.choice(patients, max(1, round(fraction * len(patients))), replace=False)
    keep |= (data.label == label) & np.isin(data.patient_id, chosen)
  return data.take(np.flatnonzero(keep))


def mix(
  real: LabelledImages | None,
  synthetic: LabelledImages | None,
  synthetic_per_real: float,
  seed: int,
) -> LabelledImages:
  """Real + round(synthetic_per_real x len(real)) synthetic images, per class.

  Per class, so the mix keeps the real class balance; synthetic images are
  drawn without replacement and the call fails if a class has too few.
  With no real data (TSTR) every synthetic image is used.
  """
  if real is None and synthetic is None:
    raise ValueError('the classifier needs real or synthetic training data')
  if synthetic is None or (real is not None and synthetic_per_real == 0):
    return real
  if real is None:
    return synthetic
  rng = np.random.default_rng(seed)
  picks = []
  for label in np.unique(real.label):
    want = round(synthetic_per_real * int(np.sum(real.label == label)))
    pool = np.flatnonzero(synthetic.label == label)
    if want > len(pool):
      raise ValueError(
        f'mixing {synthetic_per_real} synthetic per real image needs {want} synthetic images '
        f'of class {label}, but the synthetic folders hold {len(pool)}; sample more'
      )
    picks.append(rng.choice(pool, want, replace=False))
  return concatenate([real, synthetic.take(np.sort(np.concatenate(picks)))])


def check_patient_disjoint(train: LabelledImages, test_patient_ids: np.ndarray) -> None:
  """Raises if a real training patient is also in the test set (it would leak)."""
  shared = np.intersect1d(train.patient_id[~train.synthetic], test_patient_ids)
  if shared.size:
    raise ValueError(f'{shared.size} patients are in both train and test, e.g. {shared[:3]}')


def _from_split(config, split: str, class_names: Sequence[str], max_images: int = 0):
  data = input_pipeline.load_images(
    config.dataset,
    split,
    data_dir=config.data_dir,
    resolution=config.resolution,
    max_images=max_images or None,
    seed=config.seed,
  )
  return LabelledImages(
    data['image'],
    np.asarray(data['label'], np.int32),
    data['patient_id'],
    np.zeros(len(data['label']), bool),
  )


def keep_classes(data: LabelledImages, names: Sequence[str], keep: Sequence[str]) -> LabelledImages:
  """Only the images of classes `keep`, relabelled 0..len(keep)-1 in that order."""
  unknown = set(keep) - set(names)
  if unknown:
    raise ValueError(f"config.classes names {sorted(unknown)}, not among the dataset's {names}")
  old = np.asarray([names.index(k) for k in keep])
  picked = data.take(np.flatnonzero(np.isin(data.label, old)))
  remap = np.full(len(names), -1, np.int32)
  remap[old] = np.arange(len(keep), dtype=np.int32)
  return dataclasses.replace(picked, label=remap[picked.label])


def synthetic_folders(
  dirs: Sequence[str], resolution: int, class_names: Sequence[str]
) -> LabelledImages:
  """Every image of the exported folders, labelled from its path; classes outside
  `class_names` are dropped (a viral GAN's folder in a 2-class study)."""
  parts = []
  for folder in dirs:
    paths = folders.list_image_files(folder)
    by_id = {v: k for k, v in LABELS.items()}
    names = [by_id[label_from_path(p)] for p in paths]
    images = folders.load_image_folder(folder, resolution=resolution)
    keep = np.asarray([n in class_names for n in names])
    labels = np.asarray([class_names.index(n) if n in class_names else -1 for n in names], np.int32)
    ids = np.asarray([f'synthetic-{folder}-{i}' for i in range(len(paths))])
    parts.append(LabelledImages(images[keep], labels[keep], ids[keep], np.ones(keep.sum(), bool)))
  return concatenate(parts)


def splits(config: ml_collections.ConfigDict) -> tuple[tuple[str, ...], dict[str, LabelledImages]]:
  """(class names, {'train', 'validation', 'test'}) as config asks: real, synthetic or both.

  Validation and test are always real and patient-disjoint from the real part
  of train (checked): a synthetic-only classifier is scored on real X-rays.
  """
  names = tuple(input_pipeline.class_names(config.dataset, config.data_dir))
  keep = tuple(c for c in config.classes.split(',') if c) if config.classes else names
  out = {
    s: keep_classes(_from_split(config, s, names), names, keep) for s in ('validation', 'test')
  }
  real = None
  if config.real_fraction > 0:
    real = keep_classes(_from_split(config, 'train', names, config.max_train_images), names, keep)
    real = subsample_patients(real, config.real_fraction, config.seed)
  dirs = [d for d in config.synthetic_dirs.split(',') if d]
  synthetic = synthetic_folders(dirs, config.resolution, keep) if dirs else None
  if real is not None and synthetic is not None and config.synthetic_per_real <= 0:
    raise ValueError(
      'config.synthetic_dirs is set but config.synthetic_per_real is 0; '
      'give the ratio, or set real_fraction=0 to train on synthetic only'
    )
  out['train'] = mix(real, synthetic, config.synthetic_per_real, config.seed)
  for split in ('validation', 'test'):
    check_patient_disjoint(out['train'], out[split].patient_id)
  return keep, out
