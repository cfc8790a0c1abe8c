"""Tests of the TFDS builder on made-up archives, the demo and the shared data."""

import collections
import io
import logging
import os
import pathlib
import subprocess
import sys
import zipfile

import conftest
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

builder_lib = conftest.import_builder_module()
NAME = 'chest_xray_pneumonia'
SIZE = 32  # Small stored size keeps the made-up builds fast.


def _config(classes=builder_lib.CLASS_NAMES, size=SIZE, name=None):
  return builder_lib.ChestXrayPneumoniaConfig(
    name=name or f'{"_".join(classes)}_{size}', classes=tuple(classes), image_size=size
  )


def _png(img: Image.Image) -> bytes:
  out = io.BytesIO()
  img.save(out, format='PNG')
  return out.getvalue()


def _jpeg(img: Image.Image, size=(80, 64)) -> bytes:
  out = io.BytesIO()
  img.convert('RGB').resize(size).save(out, format='JPEG', quality=90)
  return out.getvalue()


def _noise(seed: int, mode='L', size=(80, 72)) -> Image.Image:
  rng = np.random.default_rng(seed)
  arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
  return Image.fromarray(arr).convert(mode)


def _uint16(value: int, size=(30, 20), right: int | None = None) -> Image.Image:
  """16-bit gray at `value`; its right half at `right`, if given."""
  arr = np.full((size[1], size[0]), value, np.uint16)
  if right is not None:
    arr[:, size[0] // 2 :] = right
  return Image.fromarray(arr, 'I;16')


def _find_patient(validation: bool, prefix: str, start: int) -> str:
  """A patient id the split hash puts in (or out of) validation."""
  for i in range(start, start + 1000):
    if builder_lib.is_validation_patient(f'{prefix}{i}') == validation:
      return f'{prefix}{i}'
  raise AssertionError('no such patient id')


def _quirky_files() -> tuple[dict[str, bytes], dict[str, tuple[str, str]]]:
  """Files of a small archive, and what the build should make of them.

  Returns:
    ({relative path: bytes}, {relative path of each readable image:
    (label, split)}).
  """
  val_normal = _find_patient(True, 'IM-', 1000)
  val_person = _find_patient(True, 'person', 500)
  train_person = _find_patient(False, 'person', 600)
  files = {
    # Train/val pool: RGB, gray, 16-bit, palette, RGBA; mixed-case names.
    'train/NORMAL/IM-0001-0001.jpeg': _jpeg(_noise(1, 'RGB')),
    'train/NORMAL/IM-0002-0001.JPEG': _jpeg(_noise(2, 'L')),
    'train/NORMAL/NORMAL2-IM-0004-0001.png': _png(_uint16(0x8080, (96, 64), right=0xFFFF)),
    'train/NORMAL/IM-0004-0001.png': _png(_noise(4, 'P')),
    'train/NORMAL/IM-0005-0001.PNG': _png(_noise(5, 'RGBA')),
    f'val/NORMAL/{val_normal}-0001.jpeg': _jpeg(_noise(6)),
    f'train/PNEUMONIA/{train_person}_bacteria_1.jpeg': _jpeg(_noise(7)),
    f'train/PNEUMONIA/{train_person}_virus_2.jpg': _jpeg(_noise(8)),
    f'val/PNEUMONIA/{val_person}_bacteria_3.jpeg': _jpeg(_noise(9)),
    f'val/PNEUMONIA/{val_person}_virus_4.jpeg': _jpeg(_noise(10)),
    'test/NORMAL/IM-0100-0001.jpeg': _jpeg(_noise(11)),
    'test/PNEUMONIA/person50_bacteria_9.jpeg': _jpeg(_noise(12)),
    'test/PNEUMONIA/person51_virus_9.jpeg': _jpeg(_noise(13)),
    # Unreadable: random bytes, and a JPEG cut in half.
    'train/PNEUMONIA/person70_bacteria_5.jpeg': b'not an image at all',
    'test/PNEUMONIA/person71_virus_6.jpeg': _jpeg(_noise(14), size=(200, 200))[:1500],
    # Degenerate: 1x1, shorter side 63 < min_image_side=64, one grey level.
    'train/NORMAL/IM-0006-0001.png': _png(_noise(15, size=(1, 1))),
    'train/NORMAL/IM-0007-0001.jpeg': _jpeg(_noise(16), size=(200, 63)),
    'test/NORMAL/IM-0101-0001.png': _png(Image.new('L', (300, 300), 90)),
  }
  expected = {
    'train/NORMAL/IM-0001-0001.jpeg': ('normal', 'train'),
    'train/NORMAL/IM-0002-0001.JPEG': ('normal', 'train'),
    'train/NORMAL/NORMAL2-IM-0004-0001.png': ('normal', 'train'),
    'train/NORMAL/IM-0004-0001.png': ('normal', 'train'),
    'train/NORMAL/IM-0005-0001.PNG': ('normal', 'train'),
    f'val/NORMAL/{val_normal}-0001.jpeg': ('normal', 'validation'),
    f'train/PNEUMONIA/{train_person}_bacteria_1.jpeg': ('bacterial', 'train'),
    f'train/PNEUMONIA/{train_person}_virus_2.jpg': ('viral', 'train'),
    f'val/PNEUMONIA/{val_person}_bacteria_3.jpeg': ('bacterial', 'validation'),
    f'val/PNEUMONIA/{val_person}_virus_4.jpeg': ('viral', 'validation'),
    'test/NORMAL/IM-0100-0001.jpeg': ('normal', 'test'),
    'test/PNEUMONIA/person50_bacteria_9.jpeg': ('bacterial', 'test'),
    'test/PNEUMONIA/person51_virus_9.jpeg': ('viral', 'test'),
  }
  # The fixed train-pool ids must not hash into validation, or the expected
  # splits above would be wrong.
  train_pool = ('IM-0001', 'IM-0002', 'NORMAL2-IM-0004', 'IM-0004', 'IM-0005', 'IM-0006', 'IM-0007')
  for pid in (*train_pool, 'person70'):
    assert not builder_lib.is_validation_patient(pid), pid
  return files, expected


def _archive_tree(files: dict[str, bytes]) -> dict[str, bytes]:
  """Adds the Kaggle download's copies and debris around the real files."""
  tree = {}
  for rel, data in files.items():
    tree[f'chest_xray/{rel}'] = data
    tree[f'chest_xray/chest_xray/{rel}'] = data  # Nested duplicate tree.
    folder, name = rel.rsplit('/', 1)
    tree[f'__MACOSX/chest_xray/{folder}/._{name}'] = b'\x00\x05\x16\x07junk'
  tree['chest_xray/train/NORMAL/._IM-0001-0001.jpeg'] = b'\x00\x05\x16\x07'
  tree['chest_xray/.DS_Store'] = b'\x00\x00\x00\x01Bud1'
  tree['chest_xray/train/.DS_Store'] = b'\x00\x00\x00\x01Bud1'
  return tree


def _write_folder(root: pathlib.Path, tree: dict[str, bytes]) -> None:
  for rel, data in tree.items():
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def _write_zip(path: pathlib.Path, tree: dict[str, bytes]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with zipfile.ZipFile(path, 'w') as zf:
    for rel, data in tree.items():
      zf.writestr(rel, data)


def _read_all(data_dir, config_name: str) -> dict[str, dict[str, dict]]:
  """split -> filename -> record, via the TensorFlow-free data source."""
  out = {}
  for split in ('train', 'validation', 'test'):
    source = tfds.data_source(f'{NAME}/{config_name}', split=split, data_dir=str(data_dir))
    records = [source[i] for i in range(len(source))]
    out[split] = {r['filename'].decode(): r for r in records}
  return out


@pytest.fixture(scope='module')
def quirky_files():
  return _quirky_files()


@pytest.mark.parametrize('form', ['zip', 'folder'])
def test_quirky_archive(form, quirky_files, tmp_path, caplog):
  files, expected = quirky_files
  manual = tmp_path / 'manual'
  if form == 'zip':
    _write_zip(manual / 'archive.zip', _archive_tree(files))
  else:
    _write_folder(manual, _archive_tree(files))
  caplog.set_level(logging.INFO)
  config = _config(name=f'all_{form}')
  conftest.build_dataset(manual, tmp_path / 'tfds', config)

  got = _read_all(tmp_path / 'tfds', config.name)
  got_splits = {
    f: (builder_lib.CLASS_NAMES[r['label']], split)
    for split, records in got.items()
    for f, r in records.items()
  }
  assert got_splits == {f'chest_xray/{k}': v for k, v in expected.items()}
  for records in got.values():
    for filename, r in records.items():
      assert r['image'].shape == (SIZE, SIZE, 1)
      assert r['image'].dtype == np.uint8
      name = filename.rsplit('/', 1)[1]
      assert r['patient_id'].decode() == builder_lib.patient_id_from_name(name)
  # 16-bit 0x8080 is scaled to 128, not clipped to 255.
  sixteen = got['train']['chest_xray/train/NORMAL/NORMAL2-IM-0004-0001.png']['image']
  np.testing.assert_array_equal(sixteen[:, :4], 128)
  np.testing.assert_array_equal(sixteen[:, -4:], 255)

  log = caplog.text
  assert 'Skipping unreadable image chest_xray/train/PNEUMONIA/person70' in log
  assert 'Skipping unreadable image chest_xray/test/PNEUMONIA/person71' in log
  assert 'Skipping degenerate image chest_xray/train/NORMAL/IM-0006-0001.png: 1x1 px' in log
  assert 'Skipping degenerate image chest_xray/train/NORMAL/IM-0007-0001.jpeg: 200x63 px' in log
  assert (
    'Skipping degenerate image chest_xray/test/NORMAL/IM-0101-0001.png: constant image '
    '(every pixel is 90)'
  ) in log
  assert 'Split train: 7 images written, 3 skipped (1 unreadable, 2 degenerate).' in log
  assert 'Split test: 3 images written, 2 skipped (1 unreadable, 1 degenerate).' in log
  assert 'Split validation: 3 images written, 0 skipped (0 unreadable, 0 degenerate).' in log


def test_single_class_configs_keep_their_class(quirky_files, tmp_path):
  files, expected = quirky_files
  _write_zip(tmp_path / 'manual' / 'kaggle-download.zip', _archive_tree(files))
  for label in builder_lib.CLASS_NAMES:
    config = _config(classes=(label,))
    conftest.build_dataset(tmp_path / 'manual', tmp_path / 'tfds', config)
    got = _read_all(tmp_path / 'tfds', config.name)
    want = {f'chest_xray/{k}': split for k, (lab, split) in expected.items() if lab == label}
    assert {f: s for s, recs in got.items() for f in recs} == want
    labels = {r['label'] for recs in got.values() for r in recs.values()}
    assert labels == {builder_lib.CLASS_NAMES.index(label)}


def test_no_layout_error_shows_wanted_layout(tmp_path):
  manual = tmp_path / 'manual'
  _write_folder(
    manual, {'images/xray1.jpeg': _jpeg(_noise(0)), 'NORMAL/IM-0001-0001.jpeg': _jpeg(_noise(1))}
  )
  with pytest.raises(FileNotFoundError) as err:
    conftest.build_dataset(manual, tmp_path / 'tfds', _config())
  assert 'No chest X-ray images found' in str(err.value)
  assert 'chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg' in str(err.value)


def test_encode_image_crops_centre_and_converts_modes():
  # 300x200 image whose centre 200x200 square is white, margins black.
  arr = np.zeros((200, 300), np.uint8)
  arr[:, 50:250] = 255
  out = Image.open(io.BytesIO(builder_lib.encode_image(_png(Image.fromarray(arr)), 64)))
  assert out.mode == 'L' and out.size == (64, 64)
  # Margins cropped away, not squashed in (the filter's support reaches one
  # source pixel past the crop, hence not exactly 255 at the border).
  assert np.asarray(out).min() > 200
  assert np.asarray(out)[:, 2:-2].min() >= 250

  # Tall image: the centre of the long (vertical) side is kept.
  tall = np.zeros((300, 100), np.uint8)
  tall[100:200] = 255
  out = np.asarray(
    Image.open(io.BytesIO(builder_lib.encode_image(_png(Image.fromarray(tall)), 16)))
  )
  assert out.min() > 200

  rgba = Image.new('RGBA', (20, 20), (200, 100, 50, 0))
  assert _decoded(rgba) == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
  palette = Image.new('P', (20, 20), 3)
  palette.putpalette([0, 0, 0] * 3 + [90, 90, 90] + [0, 0, 0] * 252)
  assert _decoded(palette) == 90
  assert _decoded(_uint16(65535)) == 255
  assert _decoded(_uint16(257 * 10)) == 10


def test_encode_image_refuses_small_and_constant_images_when_asked():
  small = _png(_noise(0, size=(200, 63)))
  with pytest.raises(builder_lib.DegenerateImageError, match='200x63 px.*min_image_side=64'):
    builder_lib.encode_image(small, 32, min_side=64)
  assert Image.open(io.BytesIO(builder_lib.encode_image(small, 32, min_side=63))).size == (32, 32)
  flat = _png(_uint16(0x8080, (100, 100)))
  with pytest.raises(builder_lib.DegenerateImageError, match='every pixel is 128'):
    builder_lib.encode_image(flat, 32, min_side=64)
  # Without min_side (and only then) both are accepted.
  builder_lib.encode_image(flat, 32)
  assert {c.min_image_side for c in builder_lib.ChestXrayPneumonia.BUILDER_CONFIGS} == {64}


def _decoded(img: Image.Image) -> int:
  """The single gray level of a uniform image after encode_image."""
  arr = np.asarray(Image.open(io.BytesIO(builder_lib.encode_image(_png(img), 8))))
  assert arr.min() == arr.max(), (arr.min(), arr.max())
  return int(arr[0, 0])


def test_patient_ids_and_stable_split_hash():
  assert builder_lib.patient_id_from_name('person12_virus_44.jpeg') == 'person12'
  assert builder_lib.patient_id_from_name('IM-0115-0001.jpeg') == 'IM-0115'
  assert builder_lib.patient_id_from_name('NORMAL2-IM-0395-0001-0002.jpeg') == 'NORMAL2-IM-0395'
  assert builder_lib.patient_id_from_name('odd.png') == 'odd'
  # Pinned: a changed hash would silently move patients between splits.
  in_validation = [
    p for p in (f'person{i}' for i in range(40)) if builder_lib.is_validation_patient(p)
  ]
  assert in_validation == ['person13', 'person18', 'person32']


def test_demo_configs_have_every_split(demo_tfds_dir):
  counts = {}
  for config in conftest.DEMO_CONFIGS:
    builder = tfds.builder(f'{NAME}/{config}', data_dir=demo_tfds_dir)
    assert builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD
    counts[config] = {
      s: builder.info.splits[s].num_examples for s in ('train', 'validation', 'test')
    }
    assert all(n > 0 for n in counts[config].values()), counts
  for split in ('train', 'validation', 'test'):
    assert counts['all'][split] == sum(counts[c][split] for c in ('normal', 'bacterial', 'viral'))
  assert sum(counts['all'].values()) == 300


def test_demo_folder_is_small():
  files = [p for p in conftest.DEMO_MANUAL_DIR.rglob('*') if p.is_file()]
  assert sum(p.stat().st_size for p in files) < 5 * 2**20
  assert len([p for p in files if p.suffix == '.jpeg']) == 300


@pytest.mark.slow
def test_tfds_build_cli(quirky_files, tmp_path):
  files, expected = quirky_files
  _write_zip(tmp_path / 'manual' / 'archive.zip', _archive_tree(files))
  data_dir = tmp_path / 'tfds'
  tfds_cli = pathlib.Path(sys.executable).parent / 'tfds'
  cmd = [
    str(tfds_cli),
    'build',
    str(conftest.PROJECT_ROOT / 'data_prep' / NAME),
    '--config=viral',
    f'--manual_dir={tmp_path / "manual"}',
    f'--data_dir={data_dir}',
  ]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  version_dir = data_dir / NAME / 'viral' / '1.0.0'
  shards = sorted(p.name for p in version_dir.iterdir() if '.array_record-' in p.name)
  assert [s.split('.')[0] for s in shards] == [
    f'{NAME}-test',
    f'{NAME}-train',
    f'{NAME}-validation',
  ]
  source = tfds.data_source(f'{NAME}/viral', split='train', data_dir=str(data_dir))
  assert len(source) == 1
  assert source[0]['image'].shape == (256, 256, 1)
  assert source[0]['label'] == builder_lib.CLASS_NAMES.index('viral')


@pytest.mark.slow
@pytest.mark.shared_data
def test_shared_data_counts_and_patient_split(shared_chest_xray_dir, tmp_path):
  # The builder wants DIR holding chest_xray/; image_size 16 keeps it quick.
  config = _config(size=16, name='all_16')
  conftest.build_dataset(shared_chest_xray_dir.parent, tmp_path, config)
  got = _read_all(tmp_path, config.name)
  counts = collections.Counter(
    (split, builder_lib.CLASS_NAMES[r['label']])
    for split, records in got.items()
    for r in records.values()
  )
  for label, pool, test in (('normal', 1010, 134), ('bacterial', 1940, 217), ('viral', 1013, 137)):
    assert counts['train', label] + counts['validation', label] == pool
    assert counts['test', label] == test
    # About VALIDATION_PERCENT % of the pool, carved by patient.
    assert 0.05 < counts['validation', label] / pool < 0.15
  patients = {split: {r['patient_id'] for r in records.values()} for split, records in got.items()}
  assert not patients['train'] & patients['validation']
  assert not patients['train'] & patients['test']
  assert not patients['validation'] & patients['test']


def test_copy_of_demo_as_zip_matches_folder(tmp_path):
  """The demo zipped (as Kaggle ships it) builds the same records."""
  zip_tree = {}
  for path in sorted(conftest.DEMO_MANUAL_DIR.rglob('*.jpeg')):
    rel = path.relative_to(conftest.DEMO_MANUAL_DIR).as_posix()
    if '/train/' not in rel:  # A smaller archive; val alone is the pool.
      zip_tree[rel] = path.read_bytes()
  _write_zip(tmp_path / 'zip' / 'archive.zip', zip_tree)
  _write_folder(tmp_path / 'folder', zip_tree)
  config = _config(size=16, name='all_16')
  conftest.build_dataset(tmp_path / 'zip', tmp_path / 'tfds_zip', config)
  conftest.build_dataset(tmp_path / 'folder', tmp_path / 'tfds_folder', config)
  from_zip = _read_all(tmp_path / 'tfds_zip', config.name)
  from_folder = _read_all(tmp_path / 'tfds_folder', config.name)
  assert sum(len(v) for v in from_zip.values()) == 90
  for split in from_zip:
    assert from_zip[split].keys() == from_folder[split].keys()
    for f, r in from_zip[split].items():
      np.testing.assert_array_equal(r['image'], from_folder[split][f]['image'])


def test_empty_split_error_names_split(tmp_path):
  _write_folder(
    tmp_path / 'manual',
    {
      'chest_xray/train/NORMAL/IM-0001-0001.jpeg': _jpeg(_noise(0)),
      'chest_xray/test/NORMAL/IM-0002-0001.jpeg': _jpeg(_noise(1)),
    },
  )
  with pytest.raises(ValueError, match=r"split\(s\) \['validation'\]"):
    conftest.build_dataset(tmp_path / 'manual', tmp_path / 'tfds', _config(classes=('normal',)))


def test_array_record_is_the_default_file_format(tmp_path):
  default = builder_lib.ChestXrayPneumonia(config='viral', data_dir=tmp_path)
  assert default.info.file_format == tfds.core.FileFormat.ARRAY_RECORD
  explicit = builder_lib.ChestXrayPneumonia(
    config='viral', data_dir=tmp_path, file_format='tfrecord'
  )
  assert explicit.info.file_format == tfds.core.FileFormat.TFRECORD
