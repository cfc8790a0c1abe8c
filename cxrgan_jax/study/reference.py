"""What real X-rays score: the floor under every arm of a study.

Random subsets of the training split, as many images as a run's scored
sample, are scored exactly as a run's checkpoints are (the same measures, the
same held-out split). That is what a generator reproducing its training data
would reach. Fréchet distances at a few hundred images are biased upwards,
and the test split's patients differ from the training split's, so the floor
is not 0: the report shows how far each arm is from it, not from 0.

The scores are kept in `reference.json` in the study folder with the settings
that made them, and are scored again only when those settings change.
"""

import json
import pathlib

from absl import logging
import ml_collections

from cxrgan_jax import files
from cxrgan_jax.evaluation import suite
from cxrgan_jax.study import scoring

REFERENCE_FILE = 'reference.json'
EVAL_DIR = 'reference_eval'
SPLIT = 'train'


def num_subsets(study: ml_collections.ConfigDict) -> int:
  return int(study.eval.get('reference_subsets', 0) or 0)


def eval_config(
  study: ml_collections.ConfigDict, study_dir: pathlib.Path, subset: int
) -> ml_collections.ConfigDict:
  """The study's scoring settings with `subset`'s real training images as the generated side."""
  config = scoring.suite_config(study.eval)
  config.workdir = ''
  config.samples_dir = ''
  config.generated_split = SPLIT
  config.train_split = ''  # The audit would find every image in its own split.
  config.dataset = study.base.dataset
  config.data_dir = study.base.data_dir
  config.resolution = study.base.resolution
  config.seed = subset  # Which random training images.
  config.output_dir = str(study_dir / EVAL_DIR / f'subset_{subset}')
  return config


def _settings(study: ml_collections.ConfigDict) -> dict:
  """What the scores depend on (the folder and the subset aside); the paths of the
  data and the classifier are left out, so a moved folder keeps its scores."""
  config = eval_config(study, pathlib.Path('.'), 0).to_dict()
  for name in (
    'output_dir',
    'seed',
    'data_dir',
    'classifier_workdir',
    'inception_weights',
    'cache_dir',
  ):
    config.pop(name, None)
  return config


def read(study: ml_collections.ConfigDict, study_dir: pathlib.Path) -> list[dict]:
  """The saved scores of the study's subsets: [] when none are saved or the
  study's settings changed since."""
  path = pathlib.Path(study_dir) / REFERENCE_FILE
  if not num_subsets(study) or not path.exists():
    return []
  saved = json.loads(path.read_text())
  if saved.get('settings') != _settings(study):
    return []
  return saved['subsets'][: num_subsets(study)]


def score(study: ml_collections.ConfigDict, study_dir: pathlib.Path) -> list[dict]:
  """Scores the subsets not saved yet, saving after each; returns all of them."""
  study_dir = pathlib.Path(study_dir)
  subsets = read(study, study_dir)
  for k in range(len(subsets), num_subsets(study)):
    logging.info(
      'study: scoring %d real %s images (reference subset %d)', study.eval.num_samples, SPLIT, k
    )
    metrics = suite.run(eval_config(study, study_dir, k))
    subsets.append(scoring.finite_numbers(metrics))
    save(study, study_dir, subsets)
  return subsets


def save(study: ml_collections.ConfigDict, study_dir: pathlib.Path, subsets: list[dict]) -> None:
  """reference.json: the subsets' scores with the settings that made them."""
  payload = {'settings': _settings(study), 'split': SPLIT, 'subsets': subsets}
  files.write_json(pathlib.Path(study_dir) / REFERENCE_FILE, payload)


def summarize(subsets: list[dict], metrics: list[str]) -> dict | None:
  """{'split', 'num_images', 'subsets', 'values': {metric: [one per subset]}} for the report."""
  if not subsets:
    return None
  return {
    'split': SPLIT,
    'num_images': int(subsets[0].get('num_fake', 0)),
    'subsets': len(subsets),
    'values': {m: [s[m] for s in subsets] for m in metrics if all(m in s for s in subsets)},
  }
