"""The 3-class X-ray classifier learns on the demo data; its 'cxr' features."""

import json

import numpy as np
import pytest

from configs import classifier as classifier_configs
from cxrgan_jax import input_pipeline
from cxrgan_jax.classifier import data
from cxrgan_jax.classifier import inference
from cxrgan_jax.classifier import train
from cxrgan_jax.evaluation import extractors

CLASS_NAMES = ('normal', 'bacterial', 'viral')


def _config(**overrides):
  config = classifier_configs.get_config()
  config.update(overrides)
  return config


@pytest.fixture(scope='module')
def trained(demo_tfds_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('clf')
  config = _config(
    data_dir=demo_tfds_dir, resolution=64, num_steps=150, batch_size=32, eval_every_steps=50, seed=0
  )
  metrics = train.train_and_evaluate(config, workdir)
  return workdir, config, metrics


def test_classification_metrics_by_hand():
  labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
  preds = np.array([0, 0, 1, 1, 2, 2, 2, 0])
  m = train.classification_metrics(labels, preds, CLASS_NAMES)
  assert m['accuracy'] == pytest.approx(5 / 8)
  assert m['confusion_matrix'] == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
  assert m['sensitivity_normal'] == pytest.approx(2 / 3)
  assert m['specificity_normal'] == pytest.approx(4 / 5)  # 1 FP of 5 negatives.
  assert m['sensitivity_viral'] == pytest.approx(2 / 3)
  # Pneumonia = bacterial or viral: 4 of 5 detected; 2 of 3 normals cleared.
  assert m['pneumonia_sensitivity'] == pytest.approx(4 / 5)
  assert m['pneumonia_specificity'] == pytest.approx(2 / 3)


def test_learns_above_chance(trained):
  workdir, _, metrics = trained
  test = metrics['test']
  # Three balanced classes: chance is 1/3; normal vs pneumonia is the easy part.
  assert test['accuracy'] > 0.5, test
  assert test['pneumonia_accuracy'] > 0.75, test
  history = metrics['history']
  assert history[-1]['train_loss'] < history[0]['train_loss']
  saved = json.loads((workdir / inference.METRICS_FILE).read_text())
  assert saved['test']['accuracy'] == test['accuracy']
  assert saved['config']['class_names'] == list(CLASS_NAMES)
  assert (workdir / inference.CONFIG_FILE).is_file()


def test_restored_checkpoint_reproduces_test_accuracy(trained, demo_tfds_dir):
  workdir, config, metrics = trained
  clf = inference.load_classifier(workdir)
  as_json = lambda c: json.loads(json.dumps(c.to_dict()))
  assert as_json(clf.config) == dict(as_json(config), class_names=list(CLASS_NAMES))
  data = input_pipeline.load_images(config.dataset, 'test', data_dir=demo_tfds_dir, resolution=64)
  acc = float((clf.predict(data['image']) == data['label']).mean())
  assert acc == pytest.approx(metrics['test']['accuracy'])


def test_classifier_saved_before_class_names_still_loads(trained, tmp_path):
  import shutil  # noqa: PLC0415

  workdir, _, _ = trained
  old = tmp_path / 'old'
  shutil.copytree(workdir, old)
  config = json.loads((old / inference.CONFIG_FILE).read_text())
  del config['class_names']
  (old / inference.CONFIG_FILE).write_text(json.dumps(config))
  clf = inference.load_classifier(old)
  assert list(clf.config.class_names) == list(CLASS_NAMES)
  images = np.zeros((2, 64, 64, 1), np.uint8)
  np.testing.assert_array_equal(
    clf.features(images), inference.load_classifier(workdir).features(images)
  )


def test_cxr_extractor(trained, demo_tfds_dir):
  workdir, config, _ = trained
  extractor = extractors.make_extractor('cxr', classifier_workdir=str(workdir))
  feature_dim = config.widths[-1]
  assert extractor.name == 'cxr' and extractor.dim == feature_dim
  images = input_pipeline.load_images(
    config.dataset, 'validation', data_dir=demo_tfds_dir, resolution=128, max_images=10
  )['image']
  feats = extractor(images, batch_size=4)
  assert feats.shape == (10, feature_dim) and feats.dtype == np.float32
  # 128-px inputs are resized to the classifier's 64 px inside the extractor.
  direct = inference.load_classifier(workdir).features(images)
  np.testing.assert_allclose(feats, direct, rtol=1e-4, atol=1e-5)
  assert np.std(feats, axis=0).max() > 0  # Not a constant embedding.


def test_missing_workdir_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='No trained classifier'):
    inference.load_classifier(tmp_path)


@pytest.mark.slow
@pytest.mark.shared_data
def test_shared_data_reaches_useful_accuracy(shared_chest_xray_dir, tmp_path):
  """The documented figure: ~0.77 3-class, >0.95 pneumonia-vs-normal."""
  import conftest  # pylint: disable=g-import-not-at-top

  data_dir = tmp_path / 'tfds'
  conftest.build_dataset(shared_chest_xray_dir.parent, data_dir, 'all')
  metrics = train.train_and_evaluate(
    _config(data_dir=str(data_dir), resolution=64, num_steps=1500), tmp_path / 'clf'
  )
  test = metrics['test']
  assert test['accuracy'] > 0.7, test
  assert test['pneumonia_sensitivity'] > 0.9, test
  assert test['pneumonia_specificity'] > 0.85, test


def test_roc_auc_by_hand():
  # Positives 0.9, 0.4; negatives 0.5, 0.1: 3 of 4 pairs ordered right.
  assert train.roc_auc([0.9, 0.5, 0.4, 0.1], [1, 0, 1, 0]) == pytest.approx(0.75)
  assert train.roc_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)  # A tie counts half.
  assert np.isnan(train.roc_auc([0.1, 0.2], [0, 0]))
  probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.85, 0.1, 0.05], [0.1, 0.1, 0.8]])
  m = train.classification_metrics(np.array([0, 1, 2, 2]), probs.argmax(1), CLASS_NAMES, probs)
  assert m['pneumonia_auc'] == pytest.approx(
    2 / 3
  )  # 1 - p(normal): pneumonia 0.8, 0.15, 0.9 vs normal 0.2.


def _write_synthetic_folder(root, data_dir):
  """A folder in the layout cxrgan_jax.sample writes, from real test-free images."""
  from PIL import Image  # noqa: PLC0415

  for label, (folder, name) in enumerate(
    [
      ('NORMAL', 'SYNTH-IM-{i:06d}-0001.png'),
      ('PNEUMONIA', 'person900001_bacteria_{i}.png'),
      ('PNEUMONIA', 'person900002_virus_{i}.png'),
    ]
  ):
    images = input_pipeline.load_images(
      f'chest_xray_pneumonia/{CLASS_NAMES[label]}', 'train', data_dir=data_dir, resolution=64
    )
    (root / folder).mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images['image'][:20]):
      Image.fromarray(image[..., 0]).save(root / folder / name.format(i=i))


def test_trains_on_synthetic_only_and_on_a_mix(demo_tfds_dir, tmp_path):
  synthetic = tmp_path / 'synthetic'
  _write_synthetic_folder(synthetic, demo_tfds_dir)
  common = dict(
    data_dir=demo_tfds_dir,
    resolution=64,
    num_steps=20,
    batch_size=16,
    eval_every_steps=20,
    classes='normal,bacterial',
  )
  tstr = train.train_and_evaluate(
    _config(real_fraction=0.0, synthetic_dirs=str(synthetic), **common), tmp_path / 'tstr'
  )
  # The viral folder is dropped in a 2-class study; 20 per class remain.
  assert tstr['train_class_counts'] == [20, 20]
  assert tstr['config']['class_names'] == ['normal', 'bacterial']
  assert set(tstr['test']) >= {'accuracy', 'pneumonia_auc', 'pneumonia_sensitivity'}
  assert tstr['test']['num_examples'] > 0

  # Mixing: the real half of the patients plus 0.25 synthetic per real image, per class.
  _, real = data.splits(_config(real_fraction=0.5, **common))
  _, mixed = data.splits(
    _config(real_fraction=0.5, synthetic_dirs=str(synthetic), synthetic_per_real=0.25, **common)
  )
  for label in (0, 1):
    n_real = np.sum(real['train'].label == label)
    assert np.sum((mixed['train'].label == label) & ~mixed['train'].synthetic) == n_real
    assert np.sum((mixed['train'].label == label) & mixed['train'].synthetic) == round(
      0.25 * n_real
    )


def test_synthetic_without_ratio_is_refused(demo_tfds_dir, tmp_path):
  synthetic = tmp_path / 'synthetic'
  _write_synthetic_folder(synthetic, demo_tfds_dir)
  with pytest.raises(ValueError, match='synthetic_per_real is 0'):
    train.train_and_evaluate(
      _config(data_dir=demo_tfds_dir, synthetic_dirs=str(synthetic), num_steps=1), tmp_path / 'w'
    )
