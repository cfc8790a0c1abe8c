"""Chunked exact nearest-neighbour search shared by the sample-based metrics.

The 1-NN two-sample test, the memorisation audit, diversity and
precision/recall all need Euclidean distances between two sets of up to ~10k
points of up to 128*128 = 16384 dims. The full [N, M] matrix never exists: rows
are processed `chunk_size` at a time (a 1024 x 10000 float64 block is 80 MB).

Distances use ||x||^2 + ||y||^2 - 2 x.y in float64 after centring both sets on
the reference mean, which keeps the cancellation error far below the distances
between distinct images (an exact copy comes out at ~0, not at sqrt(eps*|x|^2)).
"""

from typing import Iterator

import numpy as np

DEFAULT_CHUNK_SIZE = 1024


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f'{name} must be [N, D] features, got shape {x.shape}.')
  if x.shape[0] == 0:
    raise ValueError(f'{name} is empty.')
  if not np.all(np.isfinite(x)):
    raise ValueError(f'{name} contains NaN or Inf.')
  return x.astype(np.float64, copy=False)


def _centred(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  query = _as_matrix(query, 'query')
  reference = _as_matrix(reference, 'reference')
  if query.shape[1] != reference.shape[1]:
    raise ValueError(
      f'Feature dims differ: query {query.shape[1]}, reference {reference.shape[1]}.'
    )
  centre = reference.mean(axis=0, keepdims=True)
  return query - centre, reference - centre


def distance_chunks(
  query: np.ndarray, reference: np.ndarray, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[tuple[int, np.ndarray]]:
  """Yields (row offset, float64 [rows, M] Euclidean distances) by chunks."""
  query, reference = _centred(query, reference)
  ref_sq = np.einsum('md,md->m', reference, reference)
  for start in range(0, query.shape[0], chunk_size):
    q = query[start : start + chunk_size]
    sq = np.einsum('nd,nd->n', q, q)[:, None] + ref_sq[None, :]
    sq -= 2.0 * (q @ reference.T)
    np.maximum(sq, 0.0, out=sq)
    yield start, np.sqrt(sq, out=sq)


def pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """float64 [N, M] Euclidean distances; only for sets that fit in memory."""
  return np.concatenate([d for _, d in distance_chunks(x, y)], axis=0)


def nearest_neighbours(
  query: np.ndarray,
  reference: np.ndarray,
  k: int = 1,
  *,
  exclude_self: bool = False,
  chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
  """k nearest reference points of every query point.

  Args:
    query: [N, D] features.
    reference: [M, D] features.
    k: neighbours per query point.
    exclude_self: query IS reference (same rows); row i never matches column
      i, so leave-one-out statistics exclude the point itself but keep its
      exact duplicates.
    chunk_size: query rows per distance block.

  Returns:
    (distances float64 [N, k] ascending, indices int64 [N, k] into reference).
  """
  n, m = np.shape(query)[0], np.shape(reference)[0]
  if exclude_self and n != m:
    raise ValueError('exclude_self needs query and reference to be one set.')
  available = m - 1 if exclude_self else m
  if not 1 <= k <= available:
    raise ValueError(f'k={k} needs 1 <= k <= {available} reference points.')
  dists = np.empty((n, k), np.float64)
  index = np.empty((n, k), np.int64)
  for start, d in distance_chunks(query, reference, chunk_size=chunk_size):
    rows = np.arange(d.shape[0])
    if exclude_self:
      d[rows, start + rows] = np.inf
    if k < m:
      part = np.argpartition(d, k - 1, axis=1)[:, :k]
    else:
      part = np.broadcast_to(np.arange(m), (d.shape[0], m))
    part_d = np.take_along_axis(d, part, axis=1)
    # Stable sort on (distance, index) so ties resolve to the lowest index.
    order = np.lexsort((part, part_d), axis=1)
    index[start : start + d.shape[0]] = np.take_along_axis(part, order, axis=1)
    dists[start : start + d.shape[0]] = np.take_along_axis(part_d, order, axis=1)
  return dists, index
