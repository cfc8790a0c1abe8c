"""Classifier-utility studies: is a classifier trained on synthetic X-rays as good as one on real?

Two kinds of study config (`study.kind`), both run by `python -m cxrgan_jax.study`:

  'utility'      Per class set (normal vs bacterial; the 3 classes with viral),
                 arms `real`, `synthetic` (train on synthetic, test on real:
                 TSTR) and `mixed` (real + synthetic per class), at each
                 real-data fraction (patients subsampled), over seeds. The
                 classifier of seed k reads the samples of GAN seed k, so the
                 intervals hold both the GAN's and the classifier's variation.
  'gan_utility'  For every arm of one GAN study per class (same arm names,
                 e.g. the noise or hyper-parameter study of each class): a TSTR
                 classifier on that arm's samples, set against the arm's
                 fd_cxr. Does the metric predict usefulness?

Everything is on disk under the study folder, so reruns skip what is done:
  gan/<class>/seed<k>/              GAN runs trained here (when no workdir is given)
  synthetic/<gan run>-<hash>/       its samples, in cxrgan_jax.sample's layout
  classifier/<cell>/seed<k>/        classifier workdirs; metrics.json when finished
"""

from collections.abc import Sequence
import dataclasses
import hashlib
import json
import pathlib
from typing import Any

from absl import logging
import ml_collections

from cxrgan_jax import checkpoints
from cxrgan_jax import sampling
from cxrgan_jax.classifier import inference as classifier_inference
from cxrgan_jax.classifier import train as classifier_train
from cxrgan_jax.study import results
from cxrgan_jax.study import runner
from cxrgan_jax.study import spec

KINDS = ('utility', 'gan_utility')
CLASSES = ('normal', 'bacterial', 'viral')  # Label order of the TFDS builder.
ARMS = ('real', 'synthetic', 'mixed')
# Test-split figures the report carries; higher is better for all of them.
METRICS = (
  'accuracy',
  'balanced_accuracy',
  'pneumonia_sensitivity',
  'pneumonia_specificity',
  'pneumonia_auc',
)


@dataclasses.dataclass(frozen=True)
class ClassifierRun:
  """One classifier to train: where, with what config, from which GAN workdirs."""

  cell: str  # Path-safe group name, e.g. 'normal+bacterial/mixed/fraction0.25'.
  seed: int
  group: dict[str, Any]  # What the report groups by: classes, arm, fraction or GAN arm.
  config: ml_collections.ConfigDict
  gans: tuple[tuple[str, str], ...]  # (class, GAN workdir) whose samples it reads.

  @property
  def name(self) -> str:
    return f'{self.cell}/seed{self.seed}'


def _classes(names: Sequence[str], where: str) -> list[str]:
  """The classes in label order: normal first, as the classifier's pneumonia
  figures take label 0 for normal (ConfigDict keys come back sorted by name)."""
  names = list(names)
  if len(names) < 2 or set(names) - set(CLASSES) or len(set(names)) != len(names):
    raise spec.StudyError(f'{where}: give 2 or 3 distinct classes of {CLASSES}, got {names}')
  return sorted(names, key=CLASSES.index)


def _classifier_config(study, classes: Sequence[str], seed: int) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(study.classifier.to_dict())
  config.classes = ','.join(classes)
  config.seed = seed
  return config


def gan_run(study, class_name: str, seed: int) -> spec.Run:
  """The GAN this study trains itself for `class_name` (no workdir given for it)."""
  config = ml_collections.ConfigDict(study.gan.base.to_dict())
  config.dataset = f'chest_xray_pneumonia/{class_name}'
  config.data_dir = config.data_dir or study.classifier.data_dir  # One flag sets both.
  config.seed = seed
  config.num_train_steps = int(study.gan.steps)
  config.checkpoint_every_steps = int(study.gan.steps)
  config.sample_every_steps = int(study.gan.steps)
  return spec.Run(arm=f'gan/{class_name}', seed=seed, overrides={}, config=config)


def gan_workdir(study, study_dir: pathlib.Path, class_name: str, seed: int) -> pathlib.Path:
  """`study.gan.workdirs.<class>` with {seed} filled in, or the study's own GAN run."""
  pattern = study.gan.workdirs.get(class_name, '')
  if pattern:
    return pathlib.Path(pattern.format(seed=seed))
  return study_dir / gan_run(study, class_name, seed).name


def utility_runs(study, study_dir: pathlib.Path) -> list[ClassifierRun]:
  """Study c: class sets x arms x real fractions x seeds (TSTR once per class set)."""
  out = []
  arms = list(study.arms)
  if not arms or set(arms) - set(ARMS):
    raise spec.StudyError(f'arms {arms!r}: use a subset of {ARMS}')
  fractions = [float(f) for f in study.real_fractions]
  if not fractions or not all(0.0 < f <= 1.0 for f in fractions):
    raise spec.StudyError(f'real_fractions {fractions!r} must lie in (0, 1]')
  for class_set in study.class_sets:
    classes = _classes([c for c in class_set.split(',') if c], f'class_sets entry {class_set!r}')
    tag = '+'.join(classes)
    for arm in arms:
      for fraction in [1.0] if arm == 'synthetic' else fractions:
        cell = f'{tag}/{arm}' + ('' if arm == 'synthetic' else f'/fraction{fraction:g}')
        for seed in study.seeds:
          config = _classifier_config(study, classes, seed)
          config.real_fraction = 0.0 if arm == 'synthetic' else fraction
          config.synthetic_per_real = float(study.synthetic_per_real) if arm == 'mixed' else 0.0
          gans = ()
          if arm != 'real':
            gans = tuple((c, str(gan_workdir(study, study_dir, c, seed))) for c in classes)
          group = {'classes': tag, 'arm': arm, 'fraction': None if arm == 'synthetic' else fraction}
          out.append(ClassifierRun(cell, seed, group, config, gans))
  return out


def _gan_study_runs(gan_study_dir: pathlib.Path) -> list[dict]:
  path = gan_study_dir / 'results.json'
  if not path.exists():
    raise spec.StudyError(f'{path} not found: run that GAN study (or its --report_only) first')
  return json.loads(path.read_text())['runs']


def gan_utility_runs(study, study_dir: pathlib.Path) -> list[ClassifierRun]:
  """Study d: one TSTR classifier per (arm, seed) finished in every class's GAN study."""
  del study_dir
  classes = _classes(study.gan_studies.keys(), 'gan_studies (one GAN study folder per class)')
  finished: dict[str, dict[tuple[str, int], str]] = {}
  order: list[str] = []
  for class_name in classes:
    folder = pathlib.Path(study.gan_studies[class_name])
    finished[class_name] = {}
    for record in _gan_study_runs(folder):
      # A peer run holds PyTorch generators, not a checkpoint `sample` restores.
      if record['status'] == results.FINISHED and not record['arm'].startswith(spec.PEER_PREFIX):
        finished[class_name][(record['arm'], record['seed'])] = str(folder / record['name'])
        if record['arm'] not in order:
          order.append(record['arm'])
  out = []
  for arm in order:
    for seed in sorted({s for (a, s) in finished[classes[0]] if a == arm}):
      if not all((arm, seed) in finished[c] for c in classes):
        continue
      config = _classifier_config(study, classes, seed)
      config.real_fraction = 0.0
      gans = tuple((c, finished[c][(arm, seed)]) for c in classes)
      out.append(ClassifierRun(f'tstr/{arm}', seed, {'gan_arm': arm}, config, gans))
  if not out:
    raise spec.StudyError(
      f'no (arm, seed) is finished in every GAN study of {dict(study.gan_studies)}'
    )
  return out


def classifier_runs(study, study_dir: pathlib.Path) -> list[ClassifierRun]:
  kind = study.get('kind')
  if kind not in KINDS:
    raise spec.StudyError(f'study.kind={kind!r}; classifier studies are one of {KINDS}')
  return (utility_runs if kind == 'utility' else gan_utility_runs)(study, study_dir)


def gans_to_train(study, runs: Sequence[ClassifierRun], study_dir: pathlib.Path) -> list[spec.Run]:
  """The study's own GAN runs that some classifier needs, in a stable order."""
  if study.kind != 'utility':
    return []
  needed = {(c, pathlib.Path(d)) for r in runs for c, d in r.gans}
  own = []
  for seed in study.seeds:
    for class_name in CLASSES:
      run = gan_run(study, class_name, seed)
      if (class_name, study_dir / run.name) in needed and not study.gan.workdirs.get(class_name):
        own.append(run)
  return own


def _in_study(run_dir: pathlib.Path) -> bool:
  """Whether run_dir is a study's run (<study>/<arm>/seed<k> or <study>/gan/<class>/seed<k>)."""
  return any((up / results.CONFIG_FILE).exists() for up in run_dir.parents[:3])


def gan_ready(gan_dir: pathlib.Path) -> bool:
  """A study's run once it has finished (never while it trains), or a plain
  training workdir with at least one checkpoint."""
  if (gan_dir / results.RUN_FILE).exists() or _in_study(gan_dir):
    return results.read_run(gan_dir)['status'] == results.FINISHED
  return bool(checkpoints.available_steps(gan_dir))


def synthetic_dir(study_dir: pathlib.Path, gan_dir: str) -> pathlib.Path:
  """Where a GAN workdir's samples go: one folder per GAN, shared by every cell."""
  gan_dir = pathlib.Path(gan_dir).absolute()
  readable = '__'.join(gan_dir.parts[-3:]).replace('=', '-')
  return (
    study_dir / 'synthetic' / f'{readable}-{hashlib.sha256(str(gan_dir).encode()).hexdigest()[:8]}'
  )


def export_samples(study, study_dir: pathlib.Path, gan_dir: str, seed: int) -> pathlib.Path | None:
  """The GAN's final samples on disk (exported once; reused by later calls).

  None when the GAN has not finished (another worker's, or still pending).
  """
  out = synthetic_dir(study_dir, gan_dir)
  if (out / 'manifest.json').exists():
    return out
  if not gan_ready(pathlib.Path(gan_dir)):
    return None
  sampler = sampling.restore_sampler(gan_dir, which='latest')
  logging.info('study: exporting %d samples of %s', study.num_synthetic, gan_dir)
  try:
    sampling.export_dataset(
      sampler, out, int(study.num_synthetic), seed=1000 + seed, progress=False
    )
  except FileExistsError:
    if not (out / 'manifest.json').exists():  # Another worker is halfway through it.
      return None
  return out


def train_classifier(
  run: ClassifierRun, run_dir: pathlib.Path, synthetic: list[pathlib.Path]
) -> dict:
  """Trains (or reads back) one classifier; its metrics.json marks it finished."""
  metrics_path = run_dir / classifier_inference.METRICS_FILE
  if metrics_path.exists():
    return json.loads(metrics_path.read_text())
  config = ml_collections.ConfigDict(run.config.to_dict())
  config.synthetic_dirs = ','.join(str(s) for s in synthetic)
  logging.info('study: training classifier %s', run.name)
  return classifier_train.train_and_evaluate(config, run_dir)


def collect(runs: Sequence[ClassifierRun], study_dir: pathlib.Path) -> list[dict]:
  """One record per classifier run: its group, seed and test figures (None if not done)."""
  out = []
  for run in runs:
    path = study_dir / 'classifier' / run.name / classifier_inference.METRICS_FILE
    record = {'name': run.name, 'seed': run.seed, **run.group, 'gans': dict(run.gans)}
    if path.exists():
      metrics = json.loads(path.read_text())
      record['test'] = {m: metrics['test'].get(m) for m in METRICS}
      record['train_seconds'] = metrics['train_seconds']
      record['train_images'] = int(sum(metrics['train_class_counts']))
    out.append(record)
  return out


def train_share(study, study_dir: pathlib.Path, runs: Sequence[ClassifierRun], worker) -> None:
  """This worker's GANs, then its classifiers (a classifier whose GAN is not ready waits)."""
  for gan in spec.share(gans_to_train(study, runs, study_dir), worker):
    record = runner.train_run(gan, study_dir / gan.name)
    if record['status'] == results.FAILED:
      logging.warning('study: GAN %s failed: %s', gan.name, record.get('error'))
  mine = spec.share(list(runs), worker)
  for i, run in enumerate(mine):
    synthetic = [export_samples(study, study_dir, d, run.seed) for _, d in run.gans]
    if any(s is None for s in synthetic):
      logging.warning('study: %s waits for its GANs %s', run.name, [d for _, d in run.gans])
      continue
    logging.info('study: classifier %d/%d: %s', i + 1, len(mine), run.name)
    train_classifier(run, study_dir / 'classifier' / run.name, synthetic)
