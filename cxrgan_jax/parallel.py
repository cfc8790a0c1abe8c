"""Host <-> device copies of pytrees for the pmapped step, and its axis name."""

from typing import Any

import flax
import jax

PyTree = Any
# The pmap axis of the train step; collectives (pmean) and BatchNorm name it.
AXIS = 'batch'


def replicate(tree: PyTree, devices=None) -> PyTree:
  """Copies a host pytree to every device, sharded exactly like pmap's outputs.

  Naming the mesh axis as the pmap's keeps the second step from recompiling
  (an input sharded over another axis name is a different cache key).
  """
  return flax.jax_utils.replicate(tree, devices, axis_name=AXIS)


def unreplicate(tree: PyTree) -> PyTree:
  """Device 0's copy of a pmapped pytree.

  flax.jax_utils.unreplicate keeps the leading axis when pmap ran on a subset
  of one device, so take the first local shard ourselves.
  """

  def first(x):
    if hasattr(x, 'addressable_shards') and x.ndim > 0:
      return x.addressable_shards[0].data[0]
    return x[0] if getattr(x, 'ndim', 0) else x

  return jax.tree.map(first, tree)
