"""1-nearest-neighbour two-sample test and k-NN set clustering.

A classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017) with the 1-NN
classifier, as used for GANs by Xu et al. (2018, "An empirical study on
evaluation metrics of generative adversarial networks"): pool n real and n
generated feature vectors, label each by its set, and classify every point by
the set of its nearest other point (leave-one-out). Its accuracy is

- ~0.5 when the two sets come from one distribution (ideal generator);
- near 1.0 when they are separable (generated images are easy to tell apart);
- well below 0.5 when generated points sit on top of real ones: each real
  point's nearest neighbour is its own copy, a sign of memorisation.

Real and fake accuracies are reported apart: the real accuracy is the share
of real images whose closest neighbour is real (real modes the generator
misses push it up), the fake accuracy the share of generated images whose
closest neighbour is generated (artefacts and over-dense modes push it up).

Since the leave-one-out nearest-neighbour graph of the pooled set does not
depend on the labels, a permutation p-value of the accuracy costs only label
shuffles, not new distance computations.
"""

import dataclasses

import numpy as np

from cxrgan_jax.metrics import neighbours


@dataclasses.dataclass(frozen=True)
class TwoSampleResult:
  """Figures of one 1-NN two-sample test; all fractions in [0, 1]."""

  accuracy: float  # Leave-one-out 1-NN accuracy over all 2n points.
  real_accuracy: float  # Fraction of real points whose 1-NN is real.
  fake_accuracy: float  # Fraction of fake points whose 1-NN is fake.
  p_value: float  # One-sided permutation p-value of accuracy (H0: same law).
  knn_k: int
  knn_same_set_real: float  # Mean fraction of a real point's k-NN that are real.
  knn_same_set_fake: float  # Mean fraction of a fake point's k-NN that are fake.
  num_per_set: int

  @property
  def knn_same_set(self) -> float:
    return 0.5 * (self.knn_same_set_real + self.knn_same_set_fake)

  def as_dict(self, suffix: str = '') -> dict[str, float]:
    """Flat metric names, e.g. one_nn_accuracy_cxr with suffix '_cxr'."""
    return {
      f'one_nn_accuracy{suffix}': self.accuracy,
      f'one_nn_real_accuracy{suffix}': self.real_accuracy,
      f'one_nn_fake_accuracy{suffix}': self.fake_accuracy,
      f'one_nn_p_value{suffix}': self.p_value,
      f'knn_same_set_fraction{suffix}': self.knn_same_set,
      f'knn_same_set_fraction_real{suffix}': self.knn_same_set_real,
      f'knn_same_set_fraction_fake{suffix}': self.knn_same_set_fake,
    }


def one_nn_two_sample_test(
  real: np.ndarray,
  fake: np.ndarray,
  *,
  k: int = 5,
  num_permutations: int = 1000,
  seed: int = 0,
  chunk_size: int = neighbours.DEFAULT_CHUNK_SIZE,
) -> TwoSampleResult:
  """Leave-one-out 1-NN accuracy and k-NN same-set fractions.

  Args:
    real: [n, D] features of real images.
    fake: [n, D] features of generated images; same n, so 0.5 is chance.
    k: neighbours for the clustering fraction (its chance level is
      (n - 1) / (2n - 1), about 0.5).
    num_permutations: label shuffles for the p-value; 0 skips it (NaN).
    seed: seed of the shuffles.
    chunk_size: rows per distance block (memory ~ chunk_size * 2n * 8 bytes).

  Returns:
    A TwoSampleResult.
  """
  real = np.asarray(real)
  fake = np.asarray(fake)
  if real.ndim != 2 or fake.ndim != 2:
    raise ValueError(f'Expected [n, D] features, got {real.shape} and {fake.shape}.')
  if real.shape[0] != fake.shape[0]:
    raise ValueError(
      'The 1-NN test needs equal-size sets (chance is 0.5 only '
      f'then); got {real.shape[0]} real and {fake.shape[0]} '
      'fake. Subsample the larger set.'
    )
  n = real.shape[0]
  if n < 2:
    raise ValueError('The 1-NN test needs at least 2 points per set.')
  k = min(k, 2 * n - 1)
  pooled = np.concatenate([real, fake], axis=0)
  labels = np.concatenate([np.zeros(n, np.int8), np.ones(n, np.int8)])
  _, index = neighbours.nearest_neighbours(
    pooled, pooled, k, exclude_self=True, chunk_size=chunk_size
  )

  correct = labels[index[:, 0]] == labels
  same = (labels[index] == labels[:, None]).mean(axis=1)
  accuracy = float(correct.mean())

  p_value = float('nan')
  if num_permutations > 0:
    rng = np.random.default_rng(seed)
    nn = index[:, 0]
    hits = 0
    for _ in range(num_permutations):
      perm = rng.permutation(labels)
      hits += (perm[nn] == perm).mean() >= accuracy
    p_value = (hits + 1) / (num_permutations + 1)

  return TwoSampleResult(
    accuracy=accuracy,
    real_accuracy=float(correct[:n].mean()),
    fake_accuracy=float(correct[n:].mean()),
    p_value=float(p_value),
    knn_k=int(k),
    knn_same_set_real=float(same[:n].mean()),
    knn_same_set_fake=float(same[n:].mean()),
    num_per_set=int(n),
  )
