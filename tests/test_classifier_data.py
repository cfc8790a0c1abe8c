"""The utility study's training sets: patient subsampling, real/synthetic mixing."""

import numpy as np
import pytest

from cxrgan_jax.classifier import data as cd


def fake_real(num_patients=40, images_per_patient=3, seed=0) -> cd.LabelledImages:
  rng = np.random.default_rng(seed)
  pids = np.repeat([f'person{i}' for i in range(num_patients)], images_per_patient)
  labels = np.repeat(rng.integers(0, 3, num_patients), images_per_patient).astype(np.int32)
  n = len(pids)
  return cd.LabelledImages(
    image=rng.integers(0, 255, (n, 8, 8, 1), dtype=np.uint8),
    label=labels,
    patient_id=pids,
    synthetic=np.zeros(n, bool),
  )


def fake_synthetic(per_class=50) -> cd.LabelledImages:
  labels = np.repeat(np.arange(3, dtype=np.int32), per_class)
  n = len(labels)
  return cd.LabelledImages(
    image=np.full((n, 8, 8, 1), 7, np.uint8),
    label=labels,
    patient_id=np.asarray([f'synthetic-{i}' for i in range(n)]),
    synthetic=np.ones(n, bool),
  )


@pytest.mark.parametrize('fraction', [0.1, 0.25, 1.0])
def test_subsample_keeps_whole_patients_of_every_class(fraction):
  real = fake_real()
  sub = cd.subsample_patients(real, fraction, seed=1)
  for pid in np.unique(sub.patient_id):  # All or none of a patient's images.
    assert np.sum(sub.patient_id == pid) == np.sum(real.patient_id == pid)
  for label in range(3):
    patients = np.unique(real.patient_id[real.label == label])
    kept = np.unique(sub.patient_id[sub.label == label])
    assert len(kept) == max(1, round(fraction * len(patients)))
  again = cd.subsample_patients(real, fraction, seed=1)
  np.testing.assert_array_equal(sub.patient_id, again.patient_id)  # Seeded.


def test_subsample_rejects_bad_fractions():
  for bad in (0.0, -0.1, 1.5):
    with pytest.raises(ValueError, match='fraction'):
      cd.subsample_patients(fake_real(), bad, seed=0)


def test_mix_adds_synthetic_per_class_at_the_ratio():
  real, synth = fake_real(), fake_synthetic()
  mixed = cd.mix(real, synth, 0.5, seed=0)
  for label in range(3):
    n_real = np.sum(real.label == label)
    assert np.sum((mixed.label == label) & ~mixed.synthetic) == n_real
    assert np.sum((mixed.label == label) & mixed.synthetic) == round(0.5 * n_real)
  assert len(np.unique(mixed.patient_id[mixed.synthetic])) == mixed.synthetic.sum()  # No repeats.
  assert cd.mix(None, synth, 1.0, seed=0) is synth  # TSTR: all synthetic.
  assert cd.mix(real, None, 1.0, seed=0) is real
  with pytest.raises(ValueError, match='needs .* synthetic images'):
    cd.mix(real, fake_synthetic(per_class=2), 1.0, seed=0)


def test_patient_leak_is_refused():
  real = fake_real()
  cd.check_patient_disjoint(real, np.asarray(['person999']))
  with pytest.raises(ValueError, match='1 patients are in both'):
    cd.check_patient_disjoint(real, np.asarray(['person3', 'nobody']))


@pytest.mark.parametrize(
  'path, label',
  [
    ('out/NORMAL/SYNTH-IM-000001-0001.png', 0),
    ('x/PNEUMONIA/person900001_bacteria_3.png', 1),
    ('x/PNEUMONIA/person900001_virus_3.png', 2),
  ],
)
def test_label_from_path(path, label):
  assert cd.label_from_path(path) == label


def test_unknown_layout_is_refused_naming_the_file():
  with pytest.raises(ValueError, match='COVID/a.png: cannot tell its class'):
    cd.label_from_path('x/COVID/a.png')
