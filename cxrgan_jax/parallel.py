"""Joining a multi-process run; host <-> device copies of pytrees for the pmapped step."""

import os
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


def launched_process_index() -> int:
  """This process's index in a launch.sh-style job (CXRGAN_PROCESS_ID); 0 outside one.

  For the offline binaries (sample, evaluate), which need no other process:
  process 0 does all the work as a plain single process and writes the one
  output folder; the others exit at once. They do not join the job, because
  every Orbax read of a joined process waits for all the others (measured).
  """
  if os.environ.get('CXRGAN_NUM_PROCESSES', '1') == '1':
    return 0
  return int(os.environ['CXRGAN_PROCESS_ID'])


def initialize_distributed() -> None:
  """Joins a multi-process run when launch.sh's CXRGAN_* variables ask for one.

  CXRGAN_COORDINATOR (host:port of process 0), CXRGAN_NUM_PROCESSES and
  CXRGAN_PROCESS_ID; a no-op when CXRGAN_NUM_PROCESSES is unset or 1. Call it
  before anything touches a jax device.

  CPU devices of several processes need a cross-process collectives library
  for the step's pmeans: gloo (jax 0.10's default) unless the user chose one
  (e.g. 'mpi') or the installed jax defaults to none.
  """
  if os.environ.get('CXRGAN_NUM_PROCESSES', '1') == '1':
    return
  if jax.config.jax_cpu_collectives_implementation is None:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(
    coordinator_address=os.environ['CXRGAN_COORDINATOR'],
    num_processes=int(os.environ['CXRGAN_NUM_PROCESSES']),
    process_id=int(os.environ['CXRGAN_PROCESS_ID']),
  )
