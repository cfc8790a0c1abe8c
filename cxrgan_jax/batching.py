"""Runs a jitted function over an array in fixed-size batches.

Feature extraction, classifier inference and sampling all feed N items
through a compiled function. Padding the last batch to the same size keeps
it to one compilation per input shape; the padding is dropped from the
outputs.
"""

import collections
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import tqdm

# inputs [B, ...] -> one array [B, ...] or a tuple of them.
BatchFn = Callable[[Any], Any]


def map_batches(
  fn: BatchFn,
  inputs: np.ndarray,
  *,
  batch_size: int = 64,
  progress: bool = False,
  desc: str = 'batches',
) -> Any:
  """fn over `inputs` [N, ...] in batches of min(batch_size, N); outputs concatenated.

  Returns what `fn` returns (an array or a tuple of arrays) with leading
  dimension N, as host NumPy arrays. Dispatch is asynchronous: the next
  batch is prepared while one runs, and at most two stay in flight so
  device memory stays bounded.
  """
  inputs = np.asarray(inputs)
  n = len(inputs)
  if n == 0:
    spec = jax.ShapeDtypeStruct((1,) + inputs.shape[1:], inputs.dtype)
    shapes = jax.eval_shape(fn, spec)
    return jax.tree.map(lambda s: np.zeros((0,) + s.shape[1:], s.dtype), shapes)
  batch_size = max(1, min(batch_size, n))
  pending = collections.deque()
  done = []

  def collect():
    valid, out = pending.popleft()
    done.append(jax.tree.map(lambda x: np.asarray(x)[:valid], out))

  for start in tqdm.trange(0, n, batch_size, disable=not progress, desc=desc, unit='batch'):
    batch = inputs[start : start + batch_size]
    valid = len(batch)
    if valid < batch_size:
      pad = np.zeros((batch_size - valid,) + batch.shape[1:], batch.dtype)
      batch = np.concatenate([batch, pad])
    pending.append((valid, fn(batch)))
    if len(pending) > 2:
      collect()
  while pending:
    collect()
  return jax.tree.map(lambda *parts: np.concatenate(parts), *done)
