"""Quality measures against NumPy references written here (plain, jitted and vmapped), and
properties that a wrong measure would fail: zero distance to itself, bright borders and
pixel grids detected, smooth images and noise not."""

import functools

import numpy as np
import pytest

from jaxstyle.io import images
from jaxstyle.nets import vgg
from jaxstyle.objective import metrics
from tests.conftest import VARIANTS, variants

RTOL, ATOL = 1e-4, 1e-6


# ------------------------------------------------------------------------- NumPy references


def np_gram(f):
  n, h, w, c = f.shape
  m = f.reshape(n, h * w, c).astype(np.float64)
  return np.einsum("npc,npd->ncd", m, m) / (h * w)


def np_gram_distance(f, t):
  g, a = np_gram(f), np_gram(t)
  return np.linalg.norm((g - a).reshape(len(g), -1), axis=1) / np.linalg.norm(a.reshape(len(a), -1), axis=1)


def np_feature_distance(f, t):
  f, t = f.astype(np.float64), t.astype(np.float64)
  return np.linalg.norm((f - t).reshape(len(f), -1), axis=1) / np.linalg.norm(t.reshape(len(t), -1), axis=1)


def np_swd(f, t, theta):
  """Sorted projections, quantiles by np.interp at levels (i + 1/2) / Q, Q the larger set."""
  theta = np.asarray(theta, np.float64)
  out = []
  for k in range(len(f)):
    x = np.sort(f[k].reshape(-1, f.shape[-1]).astype(np.float64) @ theta, axis=0)
    y = np.sort(t[min(k, len(t) - 1)].reshape(-1, t.shape[-1]).astype(np.float64) @ theta, axis=0)
    q = max(len(x), len(y))

    def quant(s, q=q):
      pos = np.clip((np.arange(q) + 0.5) * len(s) / q - 0.5, 0, len(s) - 1)
      return np.stack([np.interp(pos, np.arange(len(s)), s[:, j]) for j in range(s.shape[1])], axis=1)

    qx, qy = quant(x), quant(y)
    out.append(np.sqrt(np.mean((qx - qy) ** 2)) / np.sqrt(np.mean(qy**2)))
  return np.array(out)


def np_color_distance(x, r):
  out = []
  for k in range(len(x)):
    a = x[k].reshape(-1, 3).astype(np.float64)
    b = r[min(k, len(r) - 1)].reshape(-1, 3).astype(np.float64)
    dm = np.linalg.norm(a.mean(0) - b.mean(0))
    dc = np.linalg.norm(np.cov(a.T, bias=True) - np.cov(b.T, bias=True))
    out.append(dm + dc)
  return np.array(out)


def np_signed_laplacian(x):
  """4-neighbour Laplacian of Rec. 601 luma, by rolls, cropped to pixels with 4 neighbours."""
  y = x.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
  lap = 4 * y - sum(np.roll(y, s, axis=a) for s in (1, -1) for a in (1, 2))
  return lap[:, 1:-1, 1:-1]


def np_border(x, width):
  a = np.abs(np_signed_laplacian(x))
  h, w = a.shape[1:]
  frame = np.zeros((h, w), bool)
  frame[:width], frame[-width:], frame[:, :width], frame[:, -width:] = True, True, True, True
  return (a[:, frame].mean(1) + 1e-6) / (a[:, ~frame].mean(1) + 1e-6)


def np_periodic(x, periods, radius, tile):
  """Peaks of the tile-averaged 2-D spectra of the centred Laplacian and |Laplacian| over
  their local neighbourhoods, at the bins of exact period p, all found by explicit loops."""
  lap = np_signed_laplacian(x)
  eps = (1e-6 * tile * tile) ** 2
  out = np.zeros((len(x), len(periods)))
  for k in range(len(x)):
    spectra = []
    for m in (lap[k], np.abs(lap[k])):
      tiles = [
        m[i : i + tile, j : j + tile]
        for i in range(0, m.shape[0] - tile + 1, tile)
        for j in range(0, m.shape[1] - tile + 1, tile)
      ]
      spectra.append(np.mean([np.abs(np.fft.fft2(t - t.mean())) ** 2 for t in tiles], axis=0))
    for j, p in enumerate(periods):
      st = tile // p
      best = 0.0
      for s in spectra:
        ratios = []
        for a in range(p):
          for b in range(p):
            if np.gcd.reduce([a, b, p]) != 1:
              continue
            near = set()
            for du in range(-radius, radius + 1):
              for dv in range(-radius, radius + 1):
                if (du, dv) == (0, 0) or (a == 0 and du != 0) or (b == 0 and dv != 0):
                  continue  # an axis bin looks along its own axis line only
                u, v = (a * st + du) % tile, (b * st + dv) % tile
                if not (u % st == 0 and v % st == 0):
                  near.add((u, v))
            floor = np.mean([s[u, v] for u, v in near])
            ratios.append((s[a * st, b * st] + eps) / (floor + eps))
        best = max(best, np.mean(ratios))
      out[k, j] = best
  return out


def np_peak(x, periods, radius, gap):
  """The largest ratio of one whole-picture bin (Hann-windowed luminance) to its neighbours, by loops."""
  q = int(np.lcm.reduce(periods))
  y = (x.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))[:, : x.shape[1] // q * q, : x.shape[2] // q * q]
  h, w = y.shape[1:]
  win = np.hanning(h)[:, None] * np.hanning(w)[None, :]
  eps = (1e-6 * win.sum()) ** 2
  out = np.zeros((len(x), len(periods)))
  for k in range(len(x)):
    s = np.abs(np.fft.fft2((y[k] - y[k].mean()) * win)) ** 2
    for j, p in enumerate(periods):
      sh, sw = h // p, w // p
      best = 0.0
      for a in range(p):
        for b in range(p):
          if np.gcd.reduce([a, b, p]) != 1:
            continue
          near = set()
          for du in range(-radius, radius + 1):
            for dv in range(-radius, radius + 1):
              if max(abs(du), abs(dv)) <= gap or (a == 0 and du != 0) or (b == 0 and dv != 0):
                continue
              u, v = (a * sh + du) % h, (b * sw + dv) % w
              if not (u % sh == 0 and v % sw == 0):
                near.add((u, v))
          floor = np.mean([s[u, v] for u, v in near])
          best = max(best, (s[a * sh, b * sw] + eps) / (floor + eps))
      out[k, j] = best
  return out


def np_amplitude(x, periods):
  """The largest amplitude of a pattern of exact period p: c |sum w (y - mean) e^(-2 pi i (u i / h + v j / w))| / sum w
  by explicit sums over the pixels (no FFT), c = 1 where the bin is its own conjugate, else 2."""
  q = int(np.lcm.reduce(periods))
  y = (x.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))[:, : x.shape[1] // q * q, : x.shape[2] // q * q]
  h, w = y.shape[1:]
  win = np.hanning(h)[:, None] * np.hanning(w)[None, :]
  i, j = np.mgrid[:h, :w]
  out = np.zeros((len(x), len(periods)))
  for k in range(len(x)):
    z = (y[k] - y[k].mean()) * win
    for m, p in enumerate(periods):
      best = 0.0
      for a in range(p):
        for b in range(p):
          if np.gcd.reduce([a, b, p]) != 1:
            continue
          u, v = a * h // p, b * w // p
          c = 1.0 if (2 * u) % h == 0 and (2 * v) % w == 0 else 2.0
          best = max(best, c * abs(np.sum(z * np.exp(-2j * np.pi * (u * i / h + v * j / w)))) / win.sum())
      out[k, m] = best
  return out


def checkerboard(h, w):
  return ((np.add.outer(np.arange(h), np.arange(w)) % 2) * 2 - 1)[..., None].astype(np.float32)


# ------------------------------------------------------------------------------ test images


def smooth_image(seed, h, w, sigma=3.0):
  """Gaussian-blurred (periodic) white noise stretched to [0.1, 0.9]: smooth, no pixel grid."""
  noise = np.random.default_rng(seed).normal(size=(h, w, 3))
  fy, fx = np.fft.fftfreq(h)[:, None, None], np.fft.fftfreq(w)[None, :, None]
  gauss = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
  blur = np.real(np.fft.ifft2(np.fft.fft2(noise, axes=(0, 1)) * gauss, axes=(0, 1)))
  blur = (blur - blur.min()) / (blur.max() - blur.min())
  return (0.1 + 0.8 * blur).astype(np.float32)


def noise_image(seed, h, w):
  return np.random.default_rng(seed).uniform(size=(h, w, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def feats():
  rng = np.random.default_rng(0)
  return {
    "x": np.abs(rng.normal(size=(2, 6, 5, 4))).astype(np.float32),
    "same": np.abs(rng.normal(size=(1, 6, 5, 4))).astype(np.float32),
    "other": np.abs(rng.normal(size=(1, 4, 7, 4))).astype(np.float32) * 1.5,
  }


@pytest.fixture(scope="module")
def pics():
  x = np.stack([smooth_image(1, 40, 48), noise_image(2, 40, 48)])
  return {"x": x, "content": smooth_image(3, 40, 48)[None], "style": smooth_image(4, 32, 36)[None]}


# ------------------------------------------------------------------------ against NumPy


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("target", ["same", "other"])
def test_gram_distance_matches_numpy(feats, target, variant):
  got = variants(metrics.gram_distance)[variant](feats["x"], feats[target])
  assert got.shape == (2,)
  np.testing.assert_allclose(got, np_gram_distance(feats["x"], feats[target]), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_feature_distance_matches_numpy(feats, variant):
  got = variants(metrics.feature_distance)[variant](feats["x"], feats["same"])
  np.testing.assert_allclose(got, np_feature_distance(feats["x"], feats["same"]), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("target", ["same", "other"])  # 30 vs 30 positions, 30 vs 28 (interpolated)
def test_sliced_wasserstein_matches_numpy(feats, target, variant):
  fn = lambda f, t: metrics.sliced_wasserstein(f, t, num_projections=16, seed=3)
  got = variants(fn)[variant](feats["x"], feats[target])
  theta = metrics.swd_directions(4, num_projections=16, seed=3)
  assert got.shape == (2,)
  np.testing.assert_allclose(got, np_swd(feats["x"], feats[target], theta), rtol=RTOL, atol=ATOL)


def test_swd_directions_are_fixed_unit_vectors():
  a = np.asarray(metrics.swd_directions(8))
  assert a.shape == (8, metrics.SWD_PROJECTIONS)
  np.testing.assert_allclose(np.linalg.norm(a, axis=0), 1.0, rtol=1e-6)
  np.testing.assert_array_equal(a, np.asarray(metrics.swd_directions(8)))
  assert not np.allclose(a, np.asarray(metrics.swd_directions(8, seed=1)))


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_style_distance_matches_numpy(tiny_params, pics, variant):
  got = variants(lambda x, s: metrics.style_distance(tiny_params, x, s))[variant](pics["x"], pics["style"])
  fx = vgg.extract_features(tiny_params, pics["x"], metrics.STYLE_LAYERS)
  fs = vgg.extract_features(tiny_params, pics["style"], metrics.STYLE_LAYERS)
  want = np.mean([np_gram_distance(np.asarray(fx[n]), np.asarray(fs[n])) for n in metrics.STYLE_LAYERS], axis=0)
  assert got.shape == (2,)
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_style_swd_matches_numpy(tiny_params, pics, variant):
  fn = lambda x, s: metrics.style_swd(tiny_params, x, s, pooling="avg", num_projections=8)
  got = variants(fn)[variant](pics["x"], pics["style"])
  fx = vgg.extract_features(tiny_params, pics["x"], metrics.STYLE_LAYERS, pooling="avg")
  fs = vgg.extract_features(tiny_params, pics["style"], metrics.STYLE_LAYERS, pooling="avg")
  want = np.mean(
    [
      np_swd(np.asarray(fx[n]), np.asarray(fs[n]), metrics.swd_directions(fx[n].shape[-1], num_projections=8))
      for n in metrics.STYLE_LAYERS
    ],
    axis=0,
  )
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_content_distance_matches_numpy(tiny_params, pics, variant):
  got = variants(lambda x, c: metrics.content_distance(tiny_params, x, c))[variant](pics["x"], pics["content"])
  fx = vgg.extract_features(tiny_params, pics["x"], ["relu4_2"])["relu4_2"]
  fc = vgg.extract_features(tiny_params, pics["content"], ["relu4_2"])["relu4_2"]
  np.testing.assert_allclose(got, np_feature_distance(np.asarray(fx), np.asarray(fc)), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_color_distance_matches_numpy(pics, variant):
  got = variants(metrics.color_distance)[variant](pics["x"], pics["style"])
  np.testing.assert_allclose(got, np_color_distance(pics["x"], pics["style"]), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("width", [1, 2, 5])
def test_border_energy_matches_numpy(pics, width, variant):
  got = variants(lambda x: metrics.border_energy(x, width=width))[variant](pics["x"])
  np.testing.assert_allclose(got, np_border(pics["x"], width), rtol=RTOL, atol=ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
  "periods,radius,tile,want_tile", [(metrics.PERIODS, 3, None, 48), ((3, 6), 2, 12, 12), ((2, 4), 1, None, 48)]
)
def test_periodic_energy_matches_numpy(periods, radius, tile, want_tile, variant):
  """52 x 60 px images: one 48 px tile by default (under 66 px), 4 x 4 tiles of 12 px."""
  x, want = periodic_case(periods, radius, want_tile)
  got = variants(lambda im: metrics.periodic_energy(im, periods=periods, radius=radius, tile=tile))[variant](x)
  assert got.shape == (3, len(periods))
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


@functools.cache
def periodic_case(periods, radius, tile):
  """Images and their NumPy reference (slow loops), computed once for the three variants."""
  x = np.stack([smooth_image(5, 52, 60), noise_image(6, 52, 60), grid_image(52, 60, 4)])
  return x, np_periodic(x, periods, radius, tile)


def test_periodic_bins():
  bins = dict(metrics.periodic_bins(16, 24, 4, radius=2))
  # primitive bins of 4 px: (a, b) in units of (16/4, 24/4) with gcd(a, b, 4) = 1
  assert sorted(bins) == sorted((4 * a, 6 * b) for a in range(4) for b in range(4) if np.gcd.reduce([a, b, 4]) == 1)
  assert (8, 12) not in bins and (8, 0) not in bins  # the 2 px checkerboard's and stripes' bins
  np.testing.assert_array_equal(bins[(0, 6)], [[0, 4], [0, 5], [0, 7], [0, 8]])  # along its axis line
  np.testing.assert_array_equal(bins[(4, 0)], [[2, 0], [3, 0], [5, 0], [6, 0]])
  assert len(bins[(4, 6)]) == 24 and [4, 6] not in bins[(4, 6)].tolist()


# ----------------------------------------------------------------------------- properties


@pytest.mark.slow
def test_distance_to_itself_is_zero(tiny_params, pics):
  x = pics["x"]
  for n in range(len(x)):
    one = x[n : n + 1]
    assert float(metrics.style_distance(tiny_params, one, one)[0]) == 0.0
    assert float(metrics.style_swd(tiny_params, one, one)[0]) == 0.0
    assert float(metrics.content_distance(tiny_params, one, one)[0]) == 0.0
    assert float(metrics.color_distance(one, one)[0]) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_distances_are_positive_and_ordered(tiny_params, pics):
  """A different image is farther than itself, and a brightened copy is closer in colour
  than a far brighter one."""
  s = pics["style"]
  near, far = np.clip(s + 0.05, 0, 1), np.clip(s + 0.3, 0, 1)
  d = metrics.color_distance(np.concatenate([near, far]), s)
  assert 0.05 < d[0] < d[1]
  g = metrics.style_distance(tiny_params, np.concatenate([near, far, noise_image(2, 32, 36)[None]]), s)
  assert 0 < g[0] < g[1]
  assert g[2] > 0.05


def test_spatial_shuffle_keeps_style_measures(feats):
  """Gram and sliced Wasserstein ignore where features are: a shuffle of positions is 0 away."""
  f = feats["same"]
  perm = np.random.default_rng(7).permutation(30)
  shuffled = f.reshape(1, 30, 4)[:, perm].reshape(f.shape)
  assert float(metrics.gram_distance(shuffled, f)[0]) == pytest.approx(0.0, abs=1e-6)
  assert float(metrics.sliced_wasserstein(shuffled, f)[0]) == pytest.approx(0.0, abs=1e-6)
  assert float(metrics.feature_distance(shuffled, f)[0]) > 0.1  # content does care
  assert float(metrics.sliced_wasserstein(f * 1.2, f)[0]) == pytest.approx(0.2, rel=1e-4)


def test_sliced_wasserstein_interpolation_matches_repetition(feats):
  """Each value repeated twice is the same distribution: distance 0 across sizes."""
  f = np.abs(np.random.default_rng(4).normal(size=(1, 20, 20, 4))).astype(np.float32)
  twice = np.repeat(f, 2, axis=1)  # 800 positions against 400
  assert float(metrics.sliced_wasserstein(twice, f)[0]) < 0.01
  assert float(metrics.sliced_wasserstein(f[:, :10], f)[0]) < 0.1  # half the sample, same law
  assert float(metrics.sliced_wasserstein(f * 1.2 + 0.1, f)[0]) > 0.2


def stripe_image(h, w, width=2):
  x = smooth_image(8, h, w)
  x[:width], x[-width:], x[:, :width], x[:, -width:] = 1.0, 1.0, 1.0, 1.0
  return x


def test_border_energy_finds_bright_border():
  x = np.stack([stripe_image(48, 56), smooth_image(8, 48, 56), noise_image(9, 48, 56)])
  e = np.asarray(metrics.border_energy(x))
  assert e[0] > 3.0
  assert e[1] < 1.3
  assert e[2] == pytest.approx(1.0, abs=0.15)
  ramp = np.broadcast_to(np.linspace(0, 1, 56, dtype=np.float32)[None, :, None], (48, 56, 3))
  flat = np.full((48, 56, 3), 0.4, np.float32)
  np.testing.assert_allclose(metrics.border_energy(np.stack([ramp, flat])), 1.0, atol=0.05)


def grid_image(h, w, period, strength=0.3):
  x = smooth_image(10, h, w)
  i, j = np.mgrid[:h, :w]
  x[(i % period == 0) | (j % period == 0)] += strength
  return np.clip(x, 0, 1)


def block_image(h, w, block=8, strength=0.08):
  """JPEG-like blocking: a random offset per block on a smooth image."""
  offs = np.random.default_rng(11).uniform(-strength, strength, (h // block + 1, w // block + 1, 1))
  offs = np.repeat(np.repeat(offs, block, 0), block, 1)[:h, :w]
  return np.clip(smooth_image(12, h, w) + offs, 0, 1).astype(np.float32)


@pytest.mark.slow
def test_periodic_energy_finds_pixel_grids():
  h, w = 130, 162  # 2 x 2 tiles of 64 px
  x = np.stack([grid_image(h, w, 8), block_image(h, w), smooth_image(13, h, w), noise_image(14, h, w)])
  e = np.asarray(metrics.periodic_energy(x))  # columns: periods 2, 4, 8, 16
  grid, blocks, smooth, noise = e
  base = np.maximum(np.maximum(smooth, noise), 1.0)
  assert np.all(smooth < 3) and np.all(noise < 3)
  assert grid[2] > 100 * base[2] and grid[1] > 100 * base[1]
  assert grid[3] < 3  # an 8 px pattern has no 16 px harmonics
  assert blocks[2] > 5 * base[2] and blocks[1] > 5 * base[1]
  checker = smooth_image(15, h, w) + 0.05 * ((np.add.outer(np.arange(h), np.arange(w)) % 2) * 2 - 1)[..., None]
  e2 = np.asarray(metrics.periodic_energy(np.clip(checker, 0, 1)[None].astype(np.float32)))[0]
  assert e2[0] > 100 * base[0]
  assert np.all(e2[1:] < 3)  # a 2 px checkerboard does not score at 4, 8 or 16


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("periods,radius,gap", [(metrics.PEAK_PERIODS, 4, 1), ((2, 4), 2, 0), ((3,), 3, 2)])
def test_periodic_peak_matches_numpy(periods, radius, gap, variant):
  """Noise, 4 px grid lines and a faint checkerboard on a smooth image, 50 x 62 px (cropped to the periods)."""
  x = np.stack([noise_image(6, 50, 62), grid_image(50, 62, 4), smooth_image(7, 50, 62) + 0.01 * checkerboard(50, 62)])
  got = variants(lambda im: metrics.periodic_peak(im, periods=periods, radius=radius, gap=gap))[variant](x)
  assert got.shape == (3, len(periods))
  np.testing.assert_allclose(got, np_peak(x, periods, radius, gap), rtol=1e-3, atol=1e-4)


def test_periodic_peak_sees_a_checkerboard_below_one_grey_level():
  """A one-pixel checkerboard (or 2 px stripes) of 0.3/255 on a smooth 256 px picture, invisible, stands
  far above its neighbourhood: not capped by the window's leakage onto the next bins (which would
  hold any peak under about 38x). The clean picture and noise stay near 1."""
  h, w = 192, 256
  clean, noise = smooth_image(21, h, w), noise_image(22, h, w)
  faint = clean + (0.3 / 255) * checkerboard(h, w)
  stripes = clean + (0.3 / 255) * ((np.arange(w) % 2) * 2 - 1)[None, :, None].astype(np.float32)
  peak = np.asarray(metrics.periodic_peak(np.stack([clean, noise, faint, stripes])))[:, 0]
  assert peak[0] < 1.5 and peak[1] < 3, peak
  assert peak[2] > 1000 and peak[3] > 1000, peak


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("periods", [metrics.PEAK_PERIODS, (2, 4), (3,)])
def test_periodic_amplitude_matches_numpy(periods, variant):
  x = np.stack([noise_image(8, 48, 60), smooth_image(9, 48, 60) + 0.01 * checkerboard(48, 60)])
  got = variants(lambda im: metrics.periodic_amplitude(im, periods=periods))[variant](x)
  assert got.shape == (2, len(periods))
  np.testing.assert_allclose(got, np_amplitude(x, periods), rtol=1e-3, atol=1e-6)


def test_periodic_amplitude_reads_a_pattern_in_grey_levels():
  """0.3 grey levels of checkerboard, 0.5 of 2 px stripes and 0.7 of a 4 px cosine on a smooth picture
  (whose own power there is nil) read back as those amplitudes."""
  h, w = 96, 128
  clean = smooth_image(23, h, w)
  i, j = np.mgrid[:h, :w]
  rows = (i % 2 * 2 - 1)[..., None].astype(np.float32)
  wave = np.cos(2 * np.pi * (i + j) / 4)[..., None].astype(np.float32)
  x = np.stack([clean, clean + 0.3 / 255 * checkerboard(h, w), clean + 0.5 / 255 * rows, clean + 0.7 / 255 * wave])
  amp = 255 * np.asarray(metrics.periodic_amplitude(x, periods=(2, 4)))
  np.testing.assert_allclose(amp[1:, 0], [0.3, 0.5, 0.0], atol=1e-3)
  np.testing.assert_allclose(amp[:, 1], [0.0, 0.0, 0.0, 0.7], atol=1e-3)
  assert amp[0, 0] < 1e-3


def test_measures_reject_bad_shapes(feats):
  with pytest.raises(ValueError, match="images"):
    metrics.border_energy(np.zeros((8, 8, 3), np.float32))
  with pytest.raises(ValueError, match="larger"):
    metrics.border_energy(np.zeros((1, 6, 30, 3), np.float32))
  with pytest.raises(ValueError, match="at least"):
    metrics.periodic_energy(np.zeros((1, 20, 40, 3), np.float32))
  with pytest.raises(ValueError, match="at least 66 px"):
    metrics.periodic_energy(np.zeros((1, 50, 80, 3), np.float32), tile=64)
  with pytest.raises(ValueError, match="multiple of 16"):
    metrics.periodic_energy(np.zeros((1, 80, 80, 3), np.float32), tile=40)
  with pytest.raises(ValueError, match="at least 18 px"):
    metrics.periodic_peak(np.zeros((1, 12, 80, 3), np.float32))
  with pytest.raises(ValueError, match="batch"):
    metrics.gram_distance(feats["x"], np.concatenate([feats["x"], feats["x"]]))
  with pytest.raises(ValueError, match="same H, W, C"):
    metrics.feature_distance(feats["x"], feats["other"])


# -------------------------------------------------------------------------------- scoring


@pytest.mark.slow
def test_score_self_and_compiles_once(tiny_params, pics):
  content, style = pics["content"][0], pics["style"][0]
  style_at_content = images.resize(style, content.shape[:2])
  bigger = images.resize(pics["x"][1], (50, 60))  # resized to the content's size first
  out = metrics.score(tiny_params, content, style_at_content, [content, style_at_content, bigger])
  assert set(out) == set(metrics.METRICS)
  assert all(v.shape == (3,) and np.all(np.isfinite(v)) for v in out.values())
  assert out["content"][0] < 1e-6 and out["content"][1] > 0.1
  assert out["style_gram"][1] < 1e-6 and out["style_swd"][1] < 1e-6
  assert out["style_gram"][0] > out["style_gram"][1] and out["style_swd"][0] > 0.0
  assert out["color_to_content"][0] == pytest.approx(0.0, abs=1e-6)
  assert out["color_to_style"][1] == pytest.approx(0.0, abs=1e-6)
  # the same as the measures called one by one
  x = np.stack([content, style_at_content, images.resize(bigger, content.shape[:2])])
  want = metrics.style_distance(tiny_params, x, style_at_content[None])
  np.testing.assert_allclose(out["style_gram"], want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["border"], metrics.border_energy(x), rtol=1e-5)
  np.testing.assert_allclose(out["periodic_8"], metrics.periodic_energy(x)[:, 2], rtol=1e-5)
  np.testing.assert_allclose(out["peak_2"], metrics.periodic_peak(x)[:, 0], rtol=1e-5)
  # amplitudes near zero: float32 FFT rounding (~1e-7 of the picture's energy) bounds the absolute error
  np.testing.assert_allclose(out["peak_2_grey"], 255 * metrics.periodic_amplitude(x)[:, 0], rtol=1e-5, atol=1e-4)
  # features compiled once per shape: content, style (here the same shape: one entry) and images
  before = metrics.features._cache_size()
  metrics.score(tiny_params, content, style_at_content, [bigger, pics["x"][0]])
  assert metrics.features._cache_size() == before


def test_score_table(tiny_params, pics, tmp_path):
  path = tmp_path / "a.png"
  images.save_image(path, pics["x"][0])
  table = metrics.score_table(tiny_params, pics["content"][0], pics["style"][0], [str(path), pics["x"][1]])
  lines = table.splitlines()
  assert len(lines) == 3
  assert lines[0].split() == ["image"] + list(metrics.METRICS)
  assert lines[1].startswith(str(path)) and lines[2].startswith("image 1")
  assert len(lines[1].split()) == 1 + len(metrics.METRICS)
  with pytest.raises(ValueError, match="names"):
    metrics.score_table(tiny_params, pics["content"][0], pics["style"][0], [pics["x"][1]], names=["a", "b"])


@pytest.mark.real_weights
def test_real_photo_scores(real_params, shared_images):
  content = images.load_image(shared_images / "tubingen.jpg", size=96)
  style = images.resize(images.load_image(shared_images / "starry_night.jpg"), content.shape[:2])
  out = metrics.score(real_params, content, style, [content, style])
  assert out["content"][0] < 1e-5 and out["content"][1] > 0.5
  assert out["style_gram"][1] < 1e-5 and out["style_swd"][1] < 1e-5
  assert out["style_gram"][0] > 0.3 and out["style_swd"][0] > 0.1
  assert out["color_to_content"][0] < 1e-6 and out["color_to_style"][1] < 1e-6
  assert out["color_to_style"][0] > 0.05
  assert np.all(out["border"] < 2.0) and np.all(out["periodic_8"] < 5.0)
