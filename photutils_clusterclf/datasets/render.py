"""Source profiles and pixel rendering for the field simulator.

How an image is made (see `~photutils_clusterclf.datasets.simulate_field`):

* **Point sources** (stars, star pairs, saturated stars) are drawn from a
  table of pixel-integrated Moffat PSFs (`photutils.psf.MoffatPSF`,
  integrated over each pixel by 5x5 sub-sampling) precomputed at sub-pixel
  offsets quantised to 1/10 px (the idea of a gridded PSF / ePSF). Adding
  a star is then a slice-add of a small stamp.
* **Extended sources** (EFF clusters, Sersic galaxies, diffraction spikes)
  are rendered *intrinsically* (pixel-integrated by sub-sampling, no PSF)
  into one full-frame image per band, which is then convolved once per
  band with the centred pixel-integrated PSF (`scipy.signal.oaconvolve`,
  about 0.4 s for a 4000 x 4000 frame). Because both the intrinsic image
  and the kernel are pixel integrated, extended sources get one extra
  pixel-box blur (sigma 0.29 px in quadrature with the PSF); this keeps
  every cluster at least as extended as a star, which is the physical
  ordering, and is far cheaper than rendering on a sub-pixel grid.
* The PSF is truncated at `PSF_RADIUS` px and renormalised, for stars and
  clusters alike, so that the two stay photometrically consistent.

EFF profiles (Elson, Fall & Freeman 1987) have the Moffat form
``(1 + r**2 / a**2) ** -eta`` and are evaluated with
`astropy.modeling.functional_models.Moffat2D` (``gamma = a``,
``alpha = eta``) on elliptical radii. For ``eta <= 1`` their total flux
diverges, so every EFF is truncated at ``EFF_TRUNCATION * r_eff`` along
the major axis and ``r_eff`` is the half-light radius *of the truncated
profile*; `eff_core_radius` solves for ``a``.
"""

import functools
import math

import numpy as np
from astropy.modeling.functional_models import Moffat2D, Sersic2D
from astropy.nddata import NoOverlapError, overlap_slices
from photutils.psf import MoffatPSF
from scipy.optimize import brentq

__all__ = [
    "EFF_TRUNCATION",
    "PSF_RADIUS",
    "PSFTable",
    "eff_core_radius",
    "moffat_alpha",
    "render_eff",
    "render_sersic",
    "add_stamp",
]

#: Half-size of the PSF stamp (px); the PSF is truncated there.
PSF_RADIUS = 12

#: EFF profiles are truncated at this multiple of the half-light radius.
EFF_TRUNCATION = 6.0

#: Sub-pixel quantisation of point-source positions (steps per pixel).
_PSF_STEPS = 10
_PSF_OVERSAMPLE = 5


def moffat_alpha(fwhm, beta):
    """Moffat core radius ``alpha`` giving a full width at half maximum ``fwhm``."""
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def _half_light_ratio(eta, truncation):
    """r_eff / a of a truncated EFF profile (independent of the scale)."""

    def enclosed(u):  # light inside the radius where 1 + r^2/a^2 = u, up to a constant
        if abs(eta - 1.0) < 1e-9:
            return math.log(u)
        return (u ** (1.0 - eta) - 1.0) / (1.0 - eta)

    def half_light(x):  # x = r_eff / a
        return enclosed(1 + x * x) / enclosed(1 + (truncation * x) ** 2) - 0.5

    # a pure power law (a -> 0) is the most extended case: below this eta even
    # it holds less than half its light inside r_eff
    if half_light(1e6) <= 0:
        raise ValueError(
            f"an EFF profile with eta={eta} truncated at {truncation} r_eff "
            f"cannot have half its light inside r_eff; use eta > "
            f"{1 - math.log(2) / (2 * math.log(truncation)):.3f}"
        )
    return brentq(half_light, 1e-6, 1e6, xtol=1e-12, rtol=1e-10)


@functools.cache
def _ratio_table():
    # r_eff / a is smooth in eta: tabulate once for the default truncation
    etas = np.linspace(0.85, 4.0, 1261)
    return etas, np.log([_half_light_ratio(e, EFF_TRUNCATION) for e in etas])


def eff_core_radius(r_eff, eta, *, truncation=EFF_TRUNCATION):
    """Core radius ``a`` of a truncated EFF profile with half-light radius ``r_eff``.

    The profile is ``(1 + r**2 / a**2) ** -eta`` out to
    ``truncation * r_eff`` and zero beyond; its enclosed light is
    analytic, so ``a`` is the root of a one-dimensional equation (solved
    once on a grid of ``eta`` for the default truncation and interpolated,
    relative error < 1e-3).

    Parameters
    ----------
    r_eff : float
        Half-light radius (any unit; ``a`` comes back in the same unit).
    eta : float
        Power-law index (> 0); ``eta <= 1`` is allowed thanks to the
        truncation.
    truncation : float, optional
        Truncation radius in units of ``r_eff`` (> 1).

    Returns
    -------
    a : float
        The core radius.
    """
    if not (r_eff > 0 and eta > 0 and truncation > 1):
        raise ValueError(
            f"need r_eff > 0, eta > 0 and truncation > 1; got "
            f"r_eff={r_eff}, eta={eta}, truncation={truncation}"
        )
    etas, ratios = _ratio_table()
    if truncation == EFF_TRUNCATION and etas[0] <= eta <= etas[-1]:
        return r_eff / math.exp(float(np.interp(eta, etas, ratios)))
    return r_eff / _half_light_ratio(eta, truncation)


def _grid(x, y, half, oversample):
    """Sub-pixel sample coordinates around (x, y) for a (2 half + 1)^2 stamp.

    Returns the stamp's lower-left pixel (ix0, iy0) and the sample offsets
    (dx, dy) from the source centre, shaped (n * o, n * o).
    """
    ix, iy = int(round(x)), int(round(y))
    n = 2 * half + 1
    sub = (np.arange(n * oversample) + 0.5) / oversample - 0.5 - half
    dx = sub[None, :] + (ix - x)
    dy = sub[:, None] + (iy - y)
    return ix - half, iy - half, dx, dy


def _bin(samples, oversample):
    """Average ``oversample`` x ``oversample`` sample blocks into pixels."""
    if oversample == 1:
        return samples
    n = samples.shape[0] // oversample
    return samples.reshape(n, oversample, n, oversample).mean(axis=(1, 3))


def render_eff(x, y, r_eff, eta, q=1.0, theta=0.0, *, max_half=80):
    """Pixel-integrated, unit-sum stamp of a truncated elliptical EFF profile.

    Parameters
    ----------
    x, y : float
        Centre (0-based pixels).
    r_eff : float
        Circularised half-light radius in pixels (the major-axis radius is
        ``r_eff / sqrt(q)``).
    eta : float
        EFF power-law index.
    q : float, optional
        Axis ratio (minor / major), 0 < q <= 1.
    theta : float, optional
        Position angle of the major axis (radians, from +x towards +y).
    max_half : int, optional
        Largest stamp half-size; the profile is cut there.

    Returns
    -------
    ix0, iy0 : int
        Image pixel of the stamp's first column / row.
    stamp : `~numpy.ndarray`
        The profile, summing to 1.
    """
    r_major = r_eff / math.sqrt(q)
    a = eff_core_radius(r_major, eta)
    r_trunc = EFF_TRUNCATION * r_major
    half = int(min(max(math.ceil(r_trunc) + 1, 2), max_half))
    # sub-sample finely where the core is unresolved
    oversample = 7 if r_major < 1.0 else (3 if r_major < 4.0 else 1)
    ix0, iy0, dx, dy = _grid(x, y, half, oversample)
    cos, sin = math.cos(theta), math.sin(theta)
    u = dx * cos + dy * sin
    v = (-dx * sin + dy * cos) / q
    samples = Moffat2D.evaluate(u, v, 1.0, 0.0, 0.0, a, eta)
    samples[u * u + v * v > r_trunc * r_trunc] = 0.0
    stamp = _bin(samples, oversample)
    return ix0, iy0, stamp / stamp.sum()


def render_sersic(x, y, r_eff, n, ellip=0.0, theta=0.0, *, max_half=60):
    """Pixel-integrated, unit-sum stamp of a Sersic profile (`~astropy.modeling.models.Sersic2D`).

    The stamp reaches ``4 r_eff`` (at most ``max_half``); light beyond is
    dropped and the stamp renormalised.

    Returns
    -------
    ix0, iy0 : int
        Image pixel of the stamp's first column / row.
    stamp : `~numpy.ndarray`
        The profile, summing to 1.
    """
    half = int(min(max(math.ceil(4 * r_eff), 3), max_half))
    ix0, iy0, dx, dy = _grid(x, y, half, 3)
    samples = Sersic2D.evaluate(dx, dy, 1.0, r_eff, n, 0.0, 0.0, ellip, theta)
    stamp = _bin(samples, 3)
    return ix0, iy0, stamp / stamp.sum()


def add_stamp(image, stamp, ix0, iy0, scale=1.0):
    """Add ``scale * stamp`` to ``image`` with its first pixel at (ix0, iy0), clipped to the image.

    The clipping is `astropy.nddata.overlap_slices`, the helper behind
    `astropy.nddata.add_array` (which refuses a stamp larger than the image,
    as on the small fields of the tests). It takes the stamp's centre, which
    is ``(iy0 + sy / 2, ix0 + sx / 2)`` for a stamp of shape (sy, sx) whose
    first pixel is at (ix0, iy0) (exact in floating point). A stamp
    entirely off the image adds nothing.
    """
    sy, sx = stamp.shape
    try:
        large, small = overlap_slices(image.shape, stamp.shape, (iy0 + sy / 2, ix0 + sx / 2))
    except NoOverlapError:
        return
    image[large] += scale * stamp[small]


class PSFTable:
    """Pixel-integrated Moffat PSF of one band at quantised sub-pixel offsets.

    Parameters
    ----------
    fwhm : float
        Full width at half maximum in pixels.
    beta : float
        Moffat power-law index (> 1).

    Attributes
    ----------
    stamps : `~numpy.ndarray`
        (steps + 1, steps + 1, 2 R + 1, 2 R + 1) unit-sum stamps, R =
        `PSF_RADIUS`, indexed by the quantised (y, x) offset of the source
        from the stamp's central pixel, from -0.5 to +0.5 px.
    kernel : `~numpy.ndarray`
        The centred stamp, the convolution kernel for extended light.
    """

    def __init__(self, fwhm, beta):
        self.fwhm = float(fwhm)
        self.beta = float(beta)
        self.model = model = MoffatPSF(flux=1.0, alpha=moffat_alpha(fwhm, beta), beta=beta)
        offsets = np.linspace(-0.5, 0.5, _PSF_STEPS + 1)
        n = 2 * PSF_RADIUS + 1
        o = _PSF_OVERSAMPLE
        self.stamps = np.empty((offsets.size, offsets.size, n, n))
        for i, oy in enumerate(offsets):
            for j, ox in enumerate(offsets):
                _, _, dx, dy = _grid(ox, oy, PSF_RADIUS, o)
                stamp = _bin(model(dx, dy), o)
                self.stamps[i, j] = stamp / stamp.sum()
        self.kernel = self.stamps[_PSF_STEPS // 2, _PSF_STEPS // 2]

    def stamp(self, x, y):
        """Stamp for a point source at (x, y); returns (ix0, iy0, stamp)."""
        ix, iy = int(round(x)), int(round(y))
        j = int(round((x - ix + 0.5) * _PSF_STEPS))
        i = int(round((y - iy + 0.5) * _PSF_STEPS))
        return ix - PSF_RADIUS, iy - PSF_RADIUS, self.stamps[i, j]

    def wide_stamp(self, x, y, half):
        """Untruncated stamp of half-size ``half`` for a bright (saturated) star.

        Sampled at pixel centres and normalised to the whole plane, so the
        light beyond the stamp is simply missing; the core, which this
        sampling gets slightly wrong, is clipped by saturation anyway.
        """
        ix0, iy0, dx, dy = _grid(x, y, half, 1)
        return ix0, iy0, self.model(dx, dy)
