"""evaluation/: image folders, extractors, the real-feature cache, the suite and its binary.

Real images against real images of another split must look like a perfect
generator: small FD, 1-NN accuracy near 0.5, few suspected copies.
"""

import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
from PIL import Image
import pytest

from configs import eval as eval_configs
from cxrgan_jax import images as image_utils
from cxrgan_jax import input_pipeline
from cxrgan_jax.evaluation import extractors
from cxrgan_jax.evaluation import folders
from cxrgan_jax.evaluation import in_training
from cxrgan_jax.evaluation import real_cache
from cxrgan_jax.evaluation import suite
from cxrgan_jax.metrics import frechet

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
DATASET = 'chest_xray_pneumonia/all'
RES = 64


def _write_folder(folder: pathlib.Path, images: np.ndarray) -> pathlib.Path:
  for i, im in enumerate(images):
    sub = folder / f'part{i % 2}'  # Nested, to exercise the recursive search.
    image_utils.write_png(sub / f'img_{i:04d}.png', im)
  return folder


@pytest.fixture(scope='module')
def setup(demo_tfds_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp('eval')
  load = lambda split: input_pipeline.load_images(
    DATASET, split, data_dir=demo_tfds_dir, resolution=RES
  )['image']
  splits = {s: load(s) for s in ('train', 'validation', 'test')}
  clf_dir = root / 'clf'
  # The classifier binary, with the flags it had before configs/classifier.py
  # (shorthands of --config.FIELD) and one --config. override.
  proc = subprocess.run(
    [sys.executable, '-m', 'cxrgan_jax.classifier', f'--workdir={clf_dir}']
    + [f'--data_dir={demo_tfds_dir}', f'--resolution={RES}', '--num_steps', '60']
    + ['--config.eval_every_steps=30', '--balance=sampling'],
    cwd=PROJECT_ROOT,
    env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'pneumonia vs normal' in proc.stdout
  saved = json.loads((clf_dir / 'classifier_config.json').read_text())
  assert (saved['num_steps'], saved['eval_every_steps'], saved['resolution']) == (60, 30, RES)
  return types.SimpleNamespace(
    root=root,
    data_dir=demo_tfds_dir,
    clf_dir=str(clf_dir),
    splits=splits,
    fake_dir=_write_folder(root / 'fake', splits['test']),
    real_dir=_write_folder(root / 'real', splits['validation']),
    train_dir=_write_folder(root / 'train', splits['train']),
  )


def _args(**overrides):
  # 16-px pixel space: FD's sqrtm on 32*32 dims alone takes ~10 s on 2 cores.
  config = eval_configs.get_config()
  config.update(ms_ssim_pairs=100, num_permutations=200, pixel_size=16, **overrides)
  return config


def test_binary_real_vs_real_folders(setup):
  out = setup.root / 'out_folders'
  cmd = [
    sys.executable,
    '-m',
    'cxrgan_jax.evaluate',
    f'--samples_dir={setup.fake_dir}',
    f'--real_dir={setup.real_dir}',
    f'--train_dir={setup.train_dir}',
    '--features=pixels,cxr',
    f'--classifier_workdir={setup.clf_dir}',
    f'--output_dir={out}',
    '--ms_ssim_pairs=100',
    '--num_permutations=200',
    '--pixel_size=16',
  ]
  env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
  proc = subprocess.run(
    cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  m = json.loads((out / 'metrics.json').read_text())
  n_fake, n_real = len(setup.splits['test']), len(setup.splits['validation'])
  assert m['num_fake'] == n_fake and m['num_real'] == n_real
  for space in ('pixels', 'cxr'):
    for key in (
      'fd',
      'kid_{}_mean',
      'one_nn_accuracy',
      'one_nn_real_accuracy',
      'precision',
      'recall',
      'memorization_copy_fraction',
      'diversity_ratio',
      'knn_same_set_fraction',
    ):
      name = key.format(space) if '{}' in key else f'{key}_{space}'
      assert name in m, name
      assert np.isfinite(m[name]), (name, m[name])
    # Real vs real: as good as a perfect generator, within small-n noise.
    assert 0.25 <= m[f'one_nn_accuracy_{space}'] <= 0.75
    assert m[f'memorization_copy_fraction_{space}'] < 0.3
    assert 0.7 < m[f'diversity_ratio_{space}'] < 1.4
    assert m[f'precision_{space}'] > 0.4 and m[f'recall_{space}'] > 0.4
  assert 0 < m['ms_ssim_fake'] < 1 and 0 < m['ms_ssim_real'] < 1
  assert abs(m['ms_ssim_fake'] - m['ms_ssim_real']) < 0.1
  # FD between two real splits is far below FD to featureless noise (with
  # 28 vs 60 images, small-sample bias keeps it well above 0).
  noise = np.random.default_rng(0).integers(0, 256, setup.splits['test'].shape, np.uint8)
  for space in ('pixels', 'cxr'):
    extractor = extractors.make_extractor(space, pixel_size=16, classifier_workdir=setup.clf_dir)
    fd_noise = frechet.frechet_distance_from_features(
      extractor(setup.splits['validation']), extractor(noise)
    )
    assert m[f'fd_{space}'] < 0.3 * fd_noise, (space, m[f'fd_{space}'], fd_noise)
  report = (out / 'report.md').read_text()
  assert '`fd_cxr`' in report and 'closest_pairs_pixels.png' in report
  for png in (
    'samples_fake.png',
    'samples_real.png',
    'closest_pairs_cxr.png',
    'closest_pairs_pixels.png',
  ):
    with Image.open(out / png) as im:
      assert im.size[0] > RES


def test_tfds_real_side_uses_cache_on_second_run(setup):
  cache = setup.root / 'cache'
  kw = dict(
    samples_dir=str(setup.fake_dir),
    dataset=DATASET,
    split='validation',
    data_dir=setup.data_dir,
    train_split='train',
    features='pixels,cxr',
    classifier_workdir=setup.clf_dir,
    cache_dir=str(cache),
  )
  first = suite.run(_args(output_dir=str(setup.root / 'run1'), **kw))
  info1 = json.loads((setup.root / 'run1/evaluation_info.json').read_text())
  assert not any(info1['cache'].values())
  files = sorted(cache.glob('*.npz'))
  assert len(files) == 4  # {validation, train} x {pixels, cxr}.
  mtimes = [f.stat().st_mtime_ns for f in files]
  second = suite.run(_args(output_dir=str(setup.root / 'run2'), **kw))
  info2 = json.loads((setup.root / 'run2/evaluation_info.json').read_text())
  assert info2['cache'] == {
    'pixels_real': True,
    'pixels_train': True,
    'cxr_real': True,
    'cxr_train': True,
  }
  assert [f.stat().st_mtime_ns for f in files] == mtimes
  assert first == second
  # A different number of real images is a different cache entry.
  suite.run(_args(output_dir=str(setup.root / 'run3'), max_real=20, **dict(kw, features='pixels')))
  assert len(list(cache.glob('*.npz'))) == 5


def test_copied_training_images_are_flagged(setup):
  out = setup.root / 'out_copies'
  m = suite.run(
    _args(
      samples_dir=str(setup.train_dir),
      train_dir=str(setup.train_dir),
      real_dir=str(setup.real_dir),
      features='cxr',
      classifier_workdir=setup.clf_dir,
      output_dir=str(out),
    )
  )
  # Only 'cxr' was asked for; the audit adds pixel space on its own.
  assert 'fd_pixels' not in m and 'fd_cxr' in m
  for space in ('cxr', 'pixels'):
    assert m[f'memorization_copy_fraction_{space}'] == 1.0
    assert m[f'memorization_copy_fraction_p1_{space}'] == 1.0
    assert m[f'memorization_fake_nn_distance_min_{space}'] < 1e-4
  assert (out / 'closest_pairs_pixels.png').is_file()


def test_real_split_statistics_and_fd_to_split(setup):
  extractor = extractors.make_extractor('pixels', pixel_size=16)
  spec = real_cache.SplitSpec(DATASET, 'validation', setup.data_dir, RES)
  stats = real_cache.real_split_statistics(spec, extractor, setup.root / 'cache_stats')
  assert stats.mu.shape == (extractor.dim,)
  fd_same = in_training.frechet_distance_to_split(
    setup.splits['validation'], extractor=extractor, real_stats=stats
  )
  fd_test = in_training.frechet_distance_to_split(
    setup.splits['test'], extractor=extractor, real_stats=stats
  )
  # sqrtm of a rank-27 covariance is only accurate to ~1e-5 here.
  assert abs(fd_same) < 1e-3 * fd_test


def test_folder_errors(tmp_path):
  with pytest.raises(ValueError, match='No .* images'):
    folders.load_image_folder(tmp_path)
  with pytest.raises(FileNotFoundError):
    folders.load_image_folder(tmp_path / 'missing')
  (tmp_path / 'bad.png').write_bytes(b'not a png')
  with pytest.raises(ValueError, match='Cannot read image'):
    folders.load_image_folder(tmp_path)
  (tmp_path / 'bad.png').unlink()
  image_utils.write_png(tmp_path / 'a.png', np.zeros((64, 64), np.uint8))
  image_utils.write_png(tmp_path / 'b.png', np.zeros((32, 32), np.uint8))
  with pytest.raises(ValueError, match='must be square 64x64'):
    folders.load_image_folder(tmp_path, center_crop=False)
  # By default mixed sizes are centre-cropped and resized, as the builder does.
  mixed = folders.load_image_folder(tmp_path, resolution=48)
  assert mixed.shape == (2, 48, 48, 1)
  # Hidden files, macOS debris and sample grids are skipped; RGB -> gray.
  (tmp_path / 'b.png').unlink()
  (tmp_path / '__MACOSX').mkdir()
  (tmp_path / '__MACOSX' / '._a.png').write_bytes(b'junk')
  image_utils.write_png(tmp_path / 'grid.png', np.zeros((10, 10), np.uint8))
  Image.new('RGB', (80, 40), (200, 100, 0)).save(tmp_path / 'c.jpg')
  imgs = folders.load_image_folder(tmp_path, resolution=64)
  assert imgs.shape == (2, 64, 64, 1) and imgs.dtype == np.uint8
  assert 110 < imgs[1].mean() < 140  # Luma of (200, 100, 0) is ~119.


def test_archive_folder_of_mixed_sizes_loads_by_default():
  folder = PROJECT_ROOT / 'data_prep/demo/chest_xray/test/NORMAL'
  with pytest.raises(ValueError, match='must be square'):
    folders.load_image_folder(folder, resolution=64, center_crop=False)
  imgs = folders.load_image_folder(folder, resolution=64)
  assert imgs.shape == (len(folders.list_image_files(folder)), 64, 64, 1)


def test_unknown_feature_and_missing_inputs(setup, tmp_path):
  with pytest.raises(ValueError, match='Unknown feature space'):
    extractors.make_extractor('vgg')
  with pytest.raises(ValueError, match='classifier_workdir'):
    extractors.make_extractor('cxr')
  with pytest.raises(ValueError, match='Unknown feature spaces'):
    suite.run(
      _args(
        samples_dir=str(setup.fake_dir),
        features='vgg',
        real_dir=str(setup.real_dir),
        output_dir=str(tmp_path),
      )
    )
  with pytest.raises(ValueError, match='exactly one'):
    suite.run(_args(output_dir=str(tmp_path)))


def test_a_real_split_as_the_generated_side_scores_the_floor(setup, tmp_path):
  """--generated_split: seeded random real images of another split are the generated side."""
  kw = dict(
    generated_split='train',
    num_samples=40,
    dataset=DATASET,
    split='validation',
    data_dir=setup.data_dir,
    train_split='',
    resolution=RES,
    features='pixels',
    cache_dir='',
  )
  first = suite.run(_args(output_dir=str(tmp_path / 'a'), seed=0, **kw))
  again = suite.run(_args(output_dir=str(tmp_path / 'b'), seed=0, **kw))
  other = suite.run(_args(output_dir=str(tmp_path / 'c'), seed=1, **kw))
  assert first == again and first['fd_pixels'] != other['fd_pixels']
  assert first['num_fake'] == 40 and first['num_real'] == len(setup.splits['validation'])
  info = json.loads((tmp_path / 'a/evaluation_info.json').read_text())
  assert info['fake_source'] == f'{DATASET} [train] (real images)'
  # Real against real: about as close as the ideal 0.5 as a 40-image 1-NN test allows.
  assert 0.3 <= first['one_nn_accuracy_pixels'] <= 0.75
  for bad, message in (
    (dict(split='train'), 'equals --split'),
    (dict(train_split='train'), 'equals --train_split'),
    (dict(resolution=0), 'needs --resolution'),
    (dict(samples_dir=str(setup.fake_dir)), 'exactly one'),
    (dict(real_dir=str(setup.real_dir)), 'not --real_dir'),
  ):
    with pytest.raises(ValueError, match=message):
      suite.run(_args(output_dir=str(tmp_path / 'bad'), **{**kw, **bad}))
