"""TFDS builder for the Kaggle `chest-xray-pneumonia` archive (Kermany 2018).

Build with the TFDS CLI (records default to array_record, so training reads
them through `tfds.data_source` without TensorFlow):

  tfds build data_prep/chest_xray_pneumonia --manual_dir=DIR [--config=normal]

Images are stored as grayscale uint8 `(image_size, image_size, 1)` PNGs: the
short side is resized to `image_size` (Lanczos) and the centre square is kept.
Cropping rather than padding or squashing keeps the anatomy's aspect ratio and
puts no artificial borders in front of the GAN; the cut-off margins of a
paediatric chest film are mostly arms, shoulders and background.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping
from concurrent import futures
import dataclasses
import hashlib
import io
import os
import re
import threading
import zipfile

from absl import logging
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

# Label ids are the same in every config, so a bacterial image is label 1 in
# `bacterial` and in `all`.
CLASS_NAMES = ('normal', 'bacterial', 'viral')
# Share of the archive's train+val patients carved out as `validation`.
VALIDATION_PERCENT = 10

_ARCHIVE_SPLITS = ('train', 'val', 'test')
_ARCHIVE_CLASSES = ('NORMAL', 'PNEUMONIA')
_IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png')
_ROOT = 'chest_xray'
_CHUNK = 256  # Images converted concurrently before being yielded.
# personN (pneumonia); IM-NNNN and NORMAL2-IM-NNNN (normal). Longest first.
_PATIENT_RE = re.compile(r'^(NORMAL2-IM-\d+|IM-\d+|person\d+)', re.IGNORECASE)
_16_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')

_WANTED_LAYOUT = """\
  DIR/archive.zip            (the Kaggle download, any single *.zip name), or
  DIR/chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg   (extracted)
PNEUMONIA files are named personN_bacteria_M.jpeg or personN_virus_M.jpeg."""

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download the Kaggle dataset `chest-xray-pneumonia` by paultimothymooney
(https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia),
e.g. `kaggle datasets download -d paultimothymooney/chest-xray-pneumonia`,
and put it in the manual dir (`--manual_dir=DIR`) in either form:
{_WANTED_LAYOUT}
The zip is read directly; there is no need to extract it.
"""


@dataclasses.dataclass(eq=False)
class ChestXrayPneumoniaConfig(tfds.core.BuilderConfig):
  """One config per GAN class, plus `all` for the 3-way classifier.

  Attributes:
    classes: class names (from CLASS_NAMES) whose images the config keeps.
    image_size: side of the stored square images, in pixels.
    min_image_side: source images whose shorter side is below this many
      pixels are skipped (as are constant images): upscaling a thumbnail or
      a 1x1 placeholder to `image_size` makes a blur no X-ray looks like.
      The archive's X-rays have shorter sides of 140 px and more.
  """

  classes: tuple[str, ...] = CLASS_NAMES
  image_size: int = 256
  min_image_side: int = 64


@dataclasses.dataclass(frozen=True)
class _Entry:
  """One image of the archive, wherever it was found."""

  key: str  # '{split}/{CLASS}/{name}', relative to the innermost chest_xray/.
  label: str  # One of CLASS_NAMES.
  patient_id: str
  zip_path: str | None  # Zip that holds it, or None for a plain file.
  member: str  # Path inside the zip, or the file's absolute path.

  @property
  def filename(self) -> str:
    return f'{_ROOT}/{self.key}'

  def read(self, zips: Mapping[str, zipfile.ZipFile]) -> bytes:
    if self.zip_path is None:
      with open(self.member, 'rb') as f:
        return f.read()
    return zips[self.zip_path].read(self.member)


def patient_id_from_name(name: str) -> str:
  """`personN`, `IM-NNNN` or `NORMAL2-IM-NNNN`; the stem for unknown names."""
  match = _PATIENT_RE.match(name)
  if match:
    return match.group(1)
  return os.path.splitext(name)[0]


def is_validation_patient(patient_id: str) -> bool:
  """Stable across runs, machines and Python versions (unlike `hash`)."""
  digest = hashlib.sha256(patient_id.encode('utf-8')).digest()
  return int.from_bytes(digest[:8], 'big') % 100 < VALIDATION_PERCENT


def _parse_path(path: str) -> tuple[str, str, str] | None:
  """`(split, CLASS, name)` for an image path in the archive layout, else None.

  Skips macOS debris (`__MACOSX/`, `._*` resource forks, `.DS_Store`) and
  anything not at `.../{train,val,test}/{NORMAL,PNEUMONIA}/<image>`.
  """
  parts = [p for p in path.replace('\\', '/').split('/') if p]
  if len(parts) < 3 or '__MACOSX' in parts:
    return None
  split, cls, name = parts[-3].lower(), parts[-2].upper(), parts[-1]
  if name.startswith('.') or not name.lower().endswith(_IMAGE_EXTENSIONS):
    return None
  if split not in _ARCHIVE_SPLITS or cls not in _ARCHIVE_CLASSES:
    return None
  return split, cls, name


def _label_from(cls: str, name: str) -> str | None:
  if cls == 'NORMAL':
    return 'normal'
  lower = name.lower()
  if 'bacteria' in lower:
    return 'bacterial'
  if 'virus' in lower:
    return 'viral'
  return None


def scan_manual_dir(manual_dir: str) -> list[_Entry]:
  """Every distinct image under `manual_dir` (folders and top-level zips).

  The Kaggle archive carries a second copy of the data under
  `chest_xray/chest_xray/`; copies are deduplicated by their path relative to
  the innermost `chest_xray/`, keeping the least nested one.

  Raises:
    FileNotFoundError: nothing under `manual_dir` has the archive's layout.
  """
  found: dict[str, list[tuple[int, str, _Entry]]] = collections.defaultdict(list)

  def add(path: str, zip_path: str | None, member: str) -> None:
    parsed = _parse_path(path)
    if parsed is None:
      return
    split, cls, name = parsed
    label = _label_from(cls, name)
    if label is None:
      logging.warning(
        'Skipping %s: a PNEUMONIA file name must contain "bacteria" or "virus".', path
      )
      return
    entry = _Entry(
      key=f'{split}/{cls}/{name}',
      label=label,
      patient_id=patient_id_from_name(name),
      zip_path=zip_path,
      member=member,
    )
    found[entry.key].append((path.count('/'), path, entry))

  if not os.path.isdir(manual_dir):
    raise FileNotFoundError(
      f'Manual dir {manual_dir!r} does not exist. Wanted layout:\n{_WANTED_LAYOUT}'
    )
  for root, dirs, files in os.walk(manual_dir):
    dirs[:] = sorted(d for d in dirs if d != '__MACOSX')
    for name in sorted(files):
      full = os.path.join(root, name)
      add(os.path.relpath(full, manual_dir), None, full)
  for name in sorted(os.listdir(manual_dir)):
    full = os.path.join(manual_dir, name)
    if name.lower().endswith('.zip') and os.path.isfile(full):
      try:
        with zipfile.ZipFile(full) as zf:
          members = [i.filename for i in zf.infolist() if not i.is_dir()]
      except zipfile.BadZipFile:
        logging.warning('Skipping %s: not a readable zip file.', full)
        continue
      for member in members:
        add(member, full, member)

  if not found:
    raise FileNotFoundError(
      f'No chest X-ray images found under manual dir {manual_dir!r}. '
      f'Wanted layout:\n{_WANTED_LAYOUT}'
    )
  return [min(copies, key=lambda c: c[:2])[2] for _, copies in sorted(found.items())]


def _to_gray(img: Image.Image) -> Image.Image:
  """8-bit grayscale; 16/32-bit integer images are scaled, not clipped."""
  if img.mode in _16_BIT_MODES:
    values = np.asarray(img).astype(np.float64) * (255.0 / 65535.0)
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
  if img.mode == 'F':
    values = np.asarray(img, dtype=np.float64)
    scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8))
  # Alpha (RGBA, LA, PA) is dropped: radiographs are opaque.
  return img.convert('L')


class DegenerateImageError(ValueError):
  """A readable image that is no radiograph: too small, or a single grey level."""


def encode_image(data: bytes, image_size: int, min_side: int | None = None) -> bytes:
  """Decodes any supported image and returns a gray square PNG.

  Args:
    data: bytes of a JPEG or PNG file, any mode and size.
    image_size: side of the output square.
    min_side: refuse images whose shorter side is below it, and constant
      images; None accepts both.

  Returns:
    PNG bytes of a uint8 (image_size, image_size) grayscale image: short side
    resized to `image_size` (Lanczos, antialiased), centre square kept.

  Raises:
    DegenerateImageError: too small or constant (only with `min_side`).
    OSError, ValueError, SyntaxError: the image is corrupt or truncated.
  """
  with Image.open(io.BytesIO(data)) as img:
    if min_side is not None and min(img.size) < min_side:
      raise DegenerateImageError(
        f'{img.size[0]}x{img.size[1]} px, shorter side below min_image_side={min_side}'
      )
    if img.format == 'JPEG':
      # Lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the image is large;
      # both sides stay >= image_size, so no resolution we keep is lost.
      img.draft('L', (image_size, image_size))
    img.load()
    gray = _to_gray(img)
  low, high = gray.getextrema()
  if min_side is not None and low == high:
    raise DegenerateImageError(f'constant image (every pixel is {low})')
  w, h = gray.size
  side = min(w, h)
  left, top = (w - side) / 2, (h - side) / 2
  square = gray.resize(
    (image_size, image_size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side)
  )
  out = io.BytesIO()
  # Level 1: ~4x faster to write than the default 6, files ~15% larger.
  square.save(out, format='PNG', compress_level=1)
  return out.getvalue()


class ChestXrayPneumonia(tfds.core.GeneratorBasedBuilder):
  """Paediatric chest X-rays: normal, bacterial and viral pneumonia.

  Splits: `test` is the archive's test folder; the archive's train and val
  folders are pooled and about VALIDATION_PERCENT % of their patients (by a
  SHA-256 hash of the patient id) form `validation`, the rest `train`, so no
  patient is in both. Images: short side resized to `image_size`, centre
  crop, 8-bit grayscale.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIG_CLASS = ChestXrayPneumoniaConfig
  BUILDER_CONFIGS = [
    ChestXrayPneumoniaConfig(
      name='normal', classes=('normal',), description='NORMAL images only (label 0).'
    ),
    ChestXrayPneumoniaConfig(
      name='bacterial',
      classes=('bacterial',),
      description='Bacterial pneumonia images only (label 1).',
    ),
    ChestXrayPneumoniaConfig(
      name='viral', classes=('viral',), description='Viral pneumonia images only (label 2).'
    ),
    ChestXrayPneumoniaConfig(
      name='all', classes=CLASS_NAMES, description='All images, 3-way label.'
    ),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = 'normal'

  def __init__(self, *, file_format: str | tfds.core.FileFormat | None = None, **kwargs):
    super().__init__(file_format=file_format, **kwargs)
    # array_record by default, so that `tfds.data_source` (random access, no
    # TensorFlow) can read the build. An explicit `file_format` (CLI flag
    # --file_format) wins, and an existing build keeps its recorded format.
    if file_format is None and not self.is_prepared():
      self.info.set_file_format(tfds.core.FileFormat.ARRAY_RECORD, override=True)

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {
          'image': tfds.features.Image(
            shape=(size, size, 1), dtype=np.uint8, encoding_format='png'
          ),
          'label': tfds.features.ClassLabel(names=CLASS_NAMES),
          'patient_id': tfds.features.Text(),
          'filename': tfds.features.Text(),
        }
      ),
      supervised_keys=('image', 'label'),
      homepage=('https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia'),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    unknown = set(config.classes) - set(CLASS_NAMES)
    if unknown or not config.classes:
      raise ValueError(
        f'config.classes must be a non-empty subset of {CLASS_NAMES}, got {config.classes}'
      )
    entries = [
      e for e in scan_manual_dir(os.fspath(dl_manager.manual_dir)) if e.label in config.classes
    ]
    by_split: dict[str, list[_Entry]] = {'train': [], 'validation': [], 'test': []}
    for e in entries:
      if e.key.startswith('test/'):
        by_split['test'].append(e)
      elif is_validation_patient(e.patient_id):
        by_split['validation'].append(e)
      else:
        by_split['train'].append(e)
    empty = [name for name, split_entries in by_split.items() if not split_entries]
    if empty:
      raise ValueError(
        f'No images of classes {config.classes} for split(s) {empty} under '
        f'{dl_manager.manual_dir}. Wanted layout:\n{_WANTED_LAYOUT}'
      )
    _warn_on_shared_patients(by_split)
    logging.info(
      'Found %s images for classes %s.', {k: len(v) for k, v in by_split.items()}, config.classes
    )
    return {
      name: self._generate_examples(name, split_entries) for name, split_entries in by_split.items()
    }

  def _generate_examples(
    self, split: str, entries: list[_Entry]
  ) -> Iterator[tuple[str, dict[str, object]]]:
    size = self.builder_config.image_size
    min_side = self.builder_config.min_image_side
    zip_paths = sorted({e.zip_path for e in entries if e.zip_path})
    # One handle per zip and thread: a ZipFile is not safe to share.
    local = threading.local()
    opened: list[zipfile.ZipFile] = []

    def convert(e: _Entry) -> bytes | Exception:
      if not hasattr(local, 'zips'):
        local.zips = {p: zipfile.ZipFile(p) for p in zip_paths}
        opened.extend(local.zips.values())
      try:
        return encode_image(e.read(local.zips), size, min_side)
      except (OSError, ValueError, SyntaxError, zipfile.BadZipFile) as err:
        return err

    skipped = collections.Counter()
    # PIL drops the GIL while decoding, resizing and encoding, so threads
    # scale over cores; chunks bound the memory held by finished images.
    try:
      with futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for start in range(0, len(entries), _CHUNK):
          chunk = entries[start : start + _CHUNK]
          for e, png in zip(chunk, pool.map(convert, chunk)):
            if isinstance(png, Exception):
              kind = 'degenerate' if isinstance(png, DegenerateImageError) else 'unreadable'
              skipped[kind] += 1
              logging.warning('Skipping %s image %s: %s', kind, e.filename, png)
              continue
            yield (
              e.key,
              {'image': png, 'label': e.label, 'patient_id': e.patient_id, 'filename': e.filename},
            )
    finally:
      for zf in opened:
        zf.close()
    total = sum(skipped.values())
    report = (
      f'Split {split}: {len(entries) - total} images written, {total} skipped '
      f'({skipped["unreadable"]} unreadable, {skipped["degenerate"]} degenerate).'
    )
    if total:
      logging.warning('%s', report)
    else:
      logging.info('%s', report)


def _warn_on_shared_patients(by_split: Mapping[str, list[_Entry]]) -> None:
  """The archive's own test split is taken as is; say if it leaks patients."""
  test = {e.patient_id for e in by_split['test']}
  pool = {e.patient_id for k in ('train', 'validation') for e in by_split[k]}
  shared = sorted(test & pool)
  if shared:
    logging.warning(
      '%d patient(s) appear in both the archive test split and train/val, e.g. %s.',
      len(shared),
      shared[:5],
    )
