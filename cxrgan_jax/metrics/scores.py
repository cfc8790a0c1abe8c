"""Inception Score and Kernel Inception Distance.

IS (Salimans et al. 2016, "Improved Techniques for Training GANs"):
exp(E_x KL(p(y|x) || p(y))) over the 1008-way softmax of the FID Inception,
computed on 10 equal consecutive splits and reported as mean ± std across
splits, as in the authors' code.

KID (Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased estimator
of the squared MMD with the cubic polynomial kernel k(x, y) = (x·y/d + 1)³,
averaged over random subsets (100 subsets of min(1000, n) points by default),
reported as mean ± std across subsets. Unlike FID it is unbiased in the number
of samples, so it can be slightly negative when both sets share a law.
"""

import dataclasses

import numpy as np
import scipy.special


@dataclasses.dataclass(frozen=True)
class MeanStd:
  """A score over splits/subsets: mean and (population) std."""

  mean: float
  std: float

  def __str__(self) -> str:
    return f'{self.mean:.4f} ± {self.std:.4f}'


def inception_score(logits: np.ndarray, num_splits: int = 10) -> MeanStd:
  """IS of [N, C] logits (C = 1008 for the FID Inception), N >= num_splits.

  Split i holds rows [i N / s, (i + 1) N / s) (integer division), as in the
  reference implementation; log-probabilities come from a float64
  log-softmax so that confident predictions do not underflow to log 0.
  """
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2:
    raise ValueError(f'expected [N, C] logits, got {logits.shape}')
  n = logits.shape[0]
  if n < num_splits:
    raise ValueError(f'{n} samples cannot fill {num_splits} splits')
  log_p = scipy.special.log_softmax(logits, axis=1)
  scores = []
  for i in range(num_splits):
    part = log_p[i * n // num_splits : (i + 1) * n // num_splits]
    # log p(y) of the split's marginal, computed stably in log space.
    log_py = scipy.special.logsumexp(part, axis=0) - np.log(part.shape[0])
    kl = np.sum(np.exp(part) * (part - log_py), axis=1)
    scores.append(np.exp(np.mean(kl)))
  return MeanStd(float(np.mean(scores)), float(np.std(scores)))


def polynomial_kernel(
  x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0
) -> np.ndarray:
  """(x·y / d + coef0) ** degree for [n, d] x and [m, d] y -> [n, m]."""
  d = x.shape[1]
  return (x @ y.T / d + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD² with the cubic polynomial kernel (diagonals excluded)."""
  m, n = x.shape[0], y.shape[0]
  k_xx = polynomial_kernel(x, x)
  k_yy = polynomial_kernel(y, y)
  k_xy = polynomial_kernel(x, y)
  term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
  term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
  return float(term_xx + term_yy - 2.0 * k_xy.mean())


def kernel_inception_distance(
  real: np.ndarray,
  fake: np.ndarray,
  *,
  num_subsets: int = 100,
  subset_size: int = 1000,
  seed: int = 0,
) -> MeanStd:
  """KID between [N, d] and [M, d] features (pool3 for the standard KID).

  Each subset draws min(subset_size, N, M) rows without replacement from
  each set independently; `seed` makes the draw reproducible.
  """
  real = np.asarray(real, np.float64)
  fake = np.asarray(fake, np.float64)
  if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
    raise ValueError(f'feature shapes {real.shape} and {fake.shape} differ')
  size = min(subset_size, real.shape[0], fake.shape[0])
  if size < 2:
    raise ValueError('KID needs at least 2 samples in each set')
  rng = np.random.default_rng(seed)
  values = np.array(
    [
      mmd2_unbiased(
        real[rng.choice(real.shape[0], size, replace=False)],
        fake[rng.choice(fake.shape[0], size, replace=False)],
      )
      for _ in range(num_subsets)
    ]
  )
  return MeanStd(float(values.mean()), float(values.std()))
