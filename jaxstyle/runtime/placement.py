"""Placement over devices and hosts: spreading, replicating, gathering, and agreeing across processes.

With several ``jax.distributed`` processes every process runs the same program (SPMD); these helpers keep
them in step: inputs compared by fingerprint, replicated arrays built from each process's own copy, results
gathered with collectives that every process reaches at the same point, and a flag that is true everywhere
once it is true anywhere (a stop).
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxstyle.errors import InputError


class AlongFrames(NamedTuple):
  """One problem whose variable is sharded along its first axis (a clip's frames over devices): outputs shaped
  like the variable, or like a stack of it (L-BFGS's memory), keep that sharding along the same axis; every
  other output is replicated on the mesh.

  Attributes:
    sharding: the variable's sharding (a 1-D mesh, its first axis split).
    shape: the variable's shape.
  """

  sharding: NamedSharding
  shape: tuple[int, ...]

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.sharding.mesh, P())

  def of(self, shapes):
    """The sharding of each leaf of ``shapes`` (arrays or ``jax.ShapeDtypeStruct``)."""

    def one(a):
      k = len(a.shape) - len(self.shape)
      if k >= 0 and tuple(a.shape[k:]) == tuple(self.shape):
        return NamedSharding(self.sharding.mesh, P(*([None] * k), *self.sharding.spec))
      return self.replicated

    return jax.tree.map(one, shapes)


def all_devices() -> tuple[jax.Device, ...]:
  """This process's devices, or with several ``jax.distributed`` processes every process's (one program)."""
  return tuple(jax.devices() if jax.process_count() > 1 else jax.local_devices())


def replicated(devices) -> NamedSharding:
  """The sharding that holds a whole copy on each of ``devices`` (a 1-D mesh, axis ``"tiles"``)."""
  return NamedSharding(jax.sharding.Mesh(np.asarray(devices), ("tiles",)), P())


def put_replicated(tree, sharding: NamedSharding):
  """``tree`` replicated on ``sharding``'s devices: placed directly in one process; with several, checked to be
  the same in every process and built from each process's own copy (no transfer between them)."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  same_in_every_process(tree, "the image, targets, weights or VGG params")
  return replicate(tree, sharding)


def to_host(tree):
  """``tree``'s arrays as NumPy arrays, whole. A sweep sharded over several processes'
  devices (``jax.distributed``) is not addressable from one process: it is gathered with
  ``process_allgather``, a collective that every process reaches at the same point."""

  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      if a.sharding.is_fully_replicated:  # a tiled run's replicated output: this process's copy
        return np.asarray(a.addressable_data(0))
      return multihost_utils.process_allgather(a, tiled=True)
    return np.asarray(a)

  return jax.tree.map(get, tree)


def local(tree):
  """``tree`` with every replicated array that spans several processes replaced by this
  process's copy (a single-device array, no transfer), so callbacks can read it."""

  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable and a.sharding.is_fully_replicated:
      return a.addressable_data(0)
    return a

  return jax.tree.map(get, tree)


def any_process(flag: bool) -> bool:
  """Whether ``flag`` is true in any process: with several processes a collective that
  every process reaches, so that they all take the same branch (a stop requested by a
  signal on one host ends the run on all of them)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def fingerprint(tree) -> np.ndarray:
  # CRC32 of every leaf's bytes (and shape), to compare processes' inputs cheaply.
  out = []
  for a in jax.tree.leaves(tree):
    a = np.ascontiguousarray(np.asarray(a))
    out.append(zlib.crc32(a.tobytes(), zlib.crc32(repr((a.shape, a.dtype.str)).encode())))
  return np.asarray(out, np.uint32)


def same_in_every_process(tree, what: str) -> None:
  """Raises ``InputError`` unless every process holds the same ``tree`` (one small collective)."""
  mine = fingerprint(tree)
  every = multihost_utils.process_allgather(mine)
  if not np.all(every == mine[None]):
    raise InputError(f"{what} differ between the {jax.process_count()} processes; every process must be given the same")


def same_everywhere(image: jax.Array) -> jax.Array:
  """This process's copy of a replicated image, after checking that every copy (every
  device of every process) holds the same bits: the processes computed the same update
  independently, and a silent difference would make their results disagree."""
  copies = [np.asarray(s.data) for s in image.addressable_shards]
  mine = fingerprint(copies[0])
  every = multihost_utils.process_allgather(mine)
  if not all(np.array_equal(a, copies[0]) for a in copies[1:]) or not np.all(every == mine[None]):
    raise RuntimeError("the replicated image differs between devices or processes: the run is not reproducible here")
  return jnp.asarray(copies[0])


def replicate(tree, sharding: NamedSharding):
  """``tree`` as global arrays replicated on ``sharding``'s devices, each process placing
  its own value on its own devices (no transfer between processes; ``jax.device_put``
  would compare every leaf across processes, and refuses arrays already committed)."""
  mine = [d for d in sharding.mesh.devices.flat if d.process_index == jax.process_index()]

  def put(a):
    a = jnp.asarray(a)
    return jax.make_array_from_single_device_arrays(a.shape, sharding, [jax.device_put(a, d) for d in mine])

  return jax.tree.map(put, tree)
