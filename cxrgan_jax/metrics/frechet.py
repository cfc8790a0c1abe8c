"""Feature statistics and the Fréchet distance (FID when features are pool3).

Heusel et al. 2017 ("GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium") fit a Gaussian to each feature set and report

  d² = |μ1 - μ2|² + tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^{1/2}).

The numerics follow pytorch-fid's `calculate_frechet_distance` so that numbers
match it: float64 statistics with the unbiased (N - 1) covariance,
`scipy.linalg.sqrtm` of the (non-symmetric) product Σ1 Σ2, eps·I added to
both covariances only when that square root is not finite, and an error when
the result's diagonal has a non-negligible imaginary part.

Cost: `sqrtm` of a 2048x2048 product takes about a minute on two CPU cores.
"""

import dataclasses
import warnings

import numpy as np
import scipy.linalg

# Largest |imag| tolerated on the diagonal of sqrtm(Σ1 Σ2) (pytorch-fid).
IMAG_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class FeatureStats:
  """Gaussian fit of a feature set: mu [d] and sigma [d, d], float64."""

  mu: np.ndarray
  sigma: np.ndarray
  num_samples: int

  def save(self, path: str) -> None:
    np.savez(path, mu=self.mu, sigma=self.sigma, num_samples=self.num_samples)

  @classmethod
  def load(cls, path: str) -> 'FeatureStats':
    with np.load(path, allow_pickle=False) as f:
      return cls(f['mu'], f['sigma'], int(f['num_samples']))


def feature_statistics(features: np.ndarray) -> FeatureStats:
  """Mean and unbiased covariance of [N, d] features, in float64."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f'need [N >= 2, d] features, got {features.shape}')
  mu = features.mean(axis=0)
  sigma = np.cov(features, rowvar=False)
  return FeatureStats(mu, np.atleast_2d(sigma), features.shape[0])


def _sqrtm(m: np.ndarray) -> np.ndarray:
  # SciPy reports singular inputs as a LinAlgWarning; the finiteness check
  # below is what decides, exactly as pytorch-fid does.
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
    return scipy.linalg.sqrtm(m)


def frechet_distance(
  mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
  """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

  Args:
    mu1, mu2: [d] means.
    sigma1, sigma2: [d, d] covariances.
    eps: ridge added to both covariances iff sqrtm(sigma1 sigma2) is not
      finite (a singular product, e.g. fewer samples than dimensions).

  Returns:
    The squared Fréchet distance as a Python float.

  Raises:
    ValueError: shapes disagree, or sqrtm has an imaginary diagonal entry
      larger than 1e-3 (the covariances are not valid / badly conditioned).
  """
  mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or mu1.ndim != 1:
    raise ValueError(f'mean shapes differ: {mu1.shape} vs {mu2.shape}')
  if sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(
      f'covariance shapes {sigma1.shape}, {sigma2.shape} do not match means of shape {mu1.shape}'
    )

  diff = mu1 - mu2
  covmean = _sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))

  if np.iscomplexobj(covmean):
    imag = np.abs(np.diagonal(covmean).imag).max()
    if imag > IMAG_TOLERANCE:
      raise ValueError(f'sqrtm(sigma1 @ sigma2) has imaginary component {imag:.3g} on its diagonal')
    covmean = covmean.real

  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_from_stats(a: FeatureStats, b: FeatureStats, eps: float = 1e-6) -> float:
  return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, eps=eps)


def frechet_distance_from_features(x: np.ndarray, y: np.ndarray, eps: float = 1e-6) -> float:
  """FD between the Gaussian fits of [N, d] and [M, d] feature sets."""
  return frechet_distance_from_stats(feature_statistics(x), feature_statistics(y), eps=eps)
