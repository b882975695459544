"""How programs run: compiled once, fitted in memory, cut into tiles, placed on devices and hosts.

- :mod:`~jaxstyle.runtime.compilation`: ahead-of-time executables kept per shapes and settings; the disk cache.
- :mod:`~jaxstyle.runtime.memory`: what a program needs and what is free; refusing what does not fit; the one
  rule that picks a tile (``--tile auto``).
- :mod:`~jaxstyle.runtime.tiles`: the one tile plan of every tiled computation.
- :mod:`~jaxstyle.runtime.placement`: devices, replication, gathering, agreement across processes.

Imports: :mod:`jaxstyle.errors` and :mod:`jaxstyle.io.files` (the cache folder), and JAX.
"""
