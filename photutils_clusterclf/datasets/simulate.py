"""Simulated PHANGS-HST-like fields with star-cluster candidates of known class.

The physical ranges are listed on the developer page of the docs; how pixels are rendered is
described in `photutils_clusterclf.datasets.render`. Everything random
comes from one `numpy.random.Generator` seeded by ``seed``, so the same
seed gives identical arrays and byte-identical files.
"""

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import QTable
from astropy.wcs import WCS
from scipy import ndimage
from scipy.signal import fftconvolve
from scipy.spatial import cKDTree

from ..classes import CLASSES, fold_classes
from ..connect import write_fits_table
from ..fileio import atomic_output
from .detect import concentration_index, detected_catalog
from .labels import label_noise_matrix, noisy_labels
from .render import PSFTable, add_stamp, render_eff, render_sersic

__all__ = [
    "ACS_BANDS",
    "BAND_SPECS",
    "DEFAULT_CLASS_MIX",
    "PIXEL_SCALE",
    "READ_NOISE",
    "SimulatedField",
    "WFC3_BANDS",
    "mock_from_catalog",
    "simulate_field",
]

#: Pixel scale of the PHANGS-HST drizzled mosaics (arcsec / px).
PIXEL_SCALE = 0.03962
#: Parsecs per pixel at 1 Mpc.
_PC_PER_PX_AT_1MPC = PIXEL_SCALE / 206264.806 * 1e6
#: Read noise per exposure (e-).
READ_NOISE = 3.1

WFC3_BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")
ACS_BANDS = ("F275W", "F336W", "F435W", "F555W", "F814W")
#: Default fractions of classes 1-4.
DEFAULT_CLASS_MIX = (0.19, 0.16, 0.28, 0.37)


@dataclass(frozen=True)
class BandSpec:
    """Photometric and instrumental properties of one simulated band."""

    instrument: str  # INSTRUME keyword
    detector: str
    zeropoint: float  # Vega magnitude of 1 e-/s
    exptime: float  # total exposure (s)
    n_exp: int  # exposures combined (read noise is added per exposure)
    photflam: float  # erg / cm2 / A / e-
    photplam: float  # pivot wavelength (A)
    sky: float  # e- / s / px
    extinction: float  # A_band / A_V (Cardelli et al. 1989, R_V = 3.1)
    fwhm_range: tuple  # PSF FWHM range (px)
    full_well: float  # e- per exposure, for saturation

    @property
    def file_instrument(self):
        """Instrument part of the PHANGS file name."""
        return "wfc3-uvis" if self.instrument == "WFC3" else "acs-wfc"


_WFC3 = dict(instrument="WFC3", detector="UVIS", fwhm_range=(1.7, 2.0), full_well=63000.0)
#: Band properties (zeropoints and exposure times typical of PHANGS-HST / LEGUS).
BAND_SPECS = {
    "F275W": BandSpec(
        zeropoint=22.64,
        exptime=2190.0,
        n_exp=3,
        photflam=3.19e-18,
        photplam=2710.0,
        sky=0.002,
        extinction=1.96,
        **_WFC3,
    ),
    "F336W": BandSpec(
        zeropoint=23.53,
        exptime=1110.0,
        n_exp=3,
        photflam=1.30e-18,
        photplam=3355.0,
        sky=0.004,
        extinction=1.60,
        **_WFC3,
    ),
    "F438W": BandSpec(
        zeropoint=24.99,
        exptime=1050.0,
        n_exp=3,
        photflam=6.75e-19,
        photplam=4326.0,
        sky=0.015,
        extinction=1.34,
        **_WFC3,
    ),
    "F555W": BandSpec(
        zeropoint=25.83,
        exptime=670.0,
        n_exp=3,
        photflam=1.87e-19,
        photplam=5308.0,
        sky=0.045,
        extinction=1.02,
        **_WFC3,
    ),
    "F814W": BandSpec(
        zeropoint=24.70,
        exptime=830.0,
        n_exp=3,
        photflam=1.50e-19,
        photplam=8040.0,
        sky=0.050,
        extinction=0.59,
        **_WFC3,
    ),
    "F435W": BandSpec(
        instrument="ACS",
        detector="WFC",
        zeropoint=25.78,
        exptime=1360.0,
        n_exp=3,
        photflam=3.15e-19,
        photplam=4330.0,
        sky=0.020,
        extinction=1.33,
        fwhm_range=(2.5, 3.3),
        full_well=84000.0,
    ),
}

# Colours m_band - V in the band order (NUV, U, B, V, I). Young: U-B -1.4,
# V-I 0.4; old: U-B 0.0, V-I 1.15 (Turner et al. 2021; developer page of the docs).
_COLOURS = {
    "young": np.array([-1.7, -1.3, 0.1, 0.0, -0.4]),
    "intermediate": np.array([-0.2, -0.3, 0.25, 0.0, -0.7]),
    "old": np.array([2.0, 0.85, 0.85, 0.0, -1.15]),
    "blue_star": np.array([-1.0, -0.9, 0.0, 0.0, -0.1]),
    "red_star": np.array([3.5, 2.6, 1.4, 0.0, -1.6]),
    "galaxy": np.array([3.0, 1.6, 1.1, 0.0, -1.5]),
}
_AGES = ("young", "intermediate", "old")
# Age mix per cluster class: associations are young, round clusters older.
_AGE_MIX = {1: (0.3, 0.35, 0.35), 2: (0.45, 0.35, 0.2), 3: (0.8, 0.2, 0.0)}
# Kinds of class-4 object and their shares.
_CLASS4_KINDS = ("star", "pair", "saturated", "galaxy", "artefact")
_CLASS4_MIX = (0.35, 0.20, 0.10, 0.20, 0.15)

_MARGIN = 12  # candidates keep this far from the edges (px)
_MIN_SEPARATION = 8  # px between candidates
_FIELD_STAR_EXCLUSION = 5  # px: no field star this close to a candidate centre
_BRIGHT_STAMP = 40  # px: half-size of saturated-star stamps
_POISSON_LIMIT = 20.0  # e-: exact Poisson draws below, Gaussian above


def _truncated_lf(rng, n, bright, faint, slope):
    """Magnitudes with dN/dm proportional to 10**(slope m) on [bright, faint]."""
    span = 10.0 ** (slope * (faint - bright)) - 1.0
    return bright + np.log10(1.0 + rng.random(n) * span) / slope


def _cluster_v(rng):
    # slope 0.13 puts the median near V = 23 on 19-24.8 (the simulator table of the developer page)
    return float(_truncated_lf(rng, 1, 19.0, 24.8, 0.13)[0])


class _Context:
    """What object generators need: generator, bands and the distance."""

    def __init__(self, rng, bands, distance_mpc):
        self.rng = rng
        self.bands = bands
        self.specs = [BAND_SPECS[b] for b in bands]
        self.zeropoints = np.array([s.zeropoint for s in self.specs])
        self.extinction = np.array([s.extinction for s in self.specs])
        self.px_per_pc = 1.0 / (_PC_PER_PX_AT_1MPC * distance_mpc)

    def fluxes(self, v_mag, colour, ebv=0.0, scatter=0.08):
        """Count rates (e-/s) per band for an observed V magnitude, colours and reddening."""
        # reddening changes the colours; v_mag is the observed (extincted) V
        mags = v_mag + _COLOURS[colour] + 3.1 * ebv * (self.extinction - self.extinction[3])
        mags = mags + self.rng.normal(0.0, scatter, mags.size)
        mags[3] = v_mag
        return 10.0 ** (-0.4 * (mags - self.zeropoints))

    def reddening(self, age):
        scale = {"young": 0.2, "intermediate": 0.1, "old": 0.05}[age]
        return float(min(self.rng.exponential(scale), 1.0))

    def r_eff_px(self):
        """Cluster half-light radius: log-normal around 2.5 pc, 1-10 pc."""
        r_pc = float(np.clip(self.rng.lognormal(math.log(2.5), 0.5), 1.0, 10.0))
        return r_pc, r_pc * self.px_per_pc


@dataclass
class _Object:
    """One candidate: its components relative to the centre, and catalogue facts."""

    true_class: int
    morphology: str
    age: str = ""
    r_eff_pc: float = float("nan")
    exclusion: float = _MIN_SEPARATION
    points: list = field(default_factory=list)  # (dx, dy, flux[B])
    bright: list = field(default_factory=list)  # saturated stars: (dx, dy, flux[B])
    extended: list = field(default_factory=list)  # (kind, dx, dy, params, flux[B])
    spikes: list = field(default_factory=list)  # (flux[B], length)
    artefacts: list = field(default_factory=list)  # (band index, [(dx, dy)], rate)

    def total_flux(self, n_bands):
        total = np.zeros(n_bands)
        for *_, flux in self.points + self.bright:
            total += flux
        for *_, flux in self.extended:
            total += flux
        for band, pixels, rate in self.artefacts:
            total[band] += rate * len(pixels)
        return total

    def scale_to(self, mags, zeropoints):
        """Rescale every band with a finite target magnitude to that total."""
        total = self.total_flux(len(zeropoints))
        target = 10.0 ** (-0.4 * (mags - zeropoints))
        ratio = np.where(
            np.isfinite(mags) & (total > 0), target / np.where(total > 0, total, 1.0), 1.0
        )
        self.points = [(dx, dy, f * ratio) for dx, dy, f in self.points]
        self.bright = [(dx, dy, f * ratio) for dx, dy, f in self.bright]
        self.extended = [(k, dx, dy, p, f * ratio) for k, dx, dy, p, f in self.extended]
        self.spikes = [(f * ratio, length) for f, length in self.spikes]
        self.artefacts = [(b, pix, rate * ratio[b]) for b, pix, rate in self.artefacts]


def _eff(r_eff_px, eta, q, theta, dx=0.0, dy=0.0):
    return ("eff", dx, dy, dict(r_eff=r_eff_px, eta=eta, q=q, theta=theta))


def _make_class1(ctx, v_mag):
    rng = ctx.rng
    age = _AGES[rng.choice(3, p=_AGE_MIX[1])]
    r_pc, r_px = ctx.r_eff_px()
    obj = _Object(1, "round", age, r_pc, _MIN_SEPARATION + 2 * r_px)
    kind = _eff(r_px, rng.uniform(1.0, 2.5), rng.uniform(0.8, 1.0), rng.uniform(0, np.pi))
    obj.extended.append((*kind, ctx.fluxes(v_mag, age, ctx.reddening(age))))
    return obj


def _make_class2(ctx, v_mag):
    rng = ctx.rng
    age = _AGES[rng.choice(3, p=_AGE_MIX[2])]
    r_pc, r_px = ctx.r_eff_px()
    eta, theta = rng.uniform(1.0, 2.5), rng.uniform(0, np.pi)
    ebv = ctx.reddening(age)
    if rng.random() < 0.5:
        obj = _Object(2, "elongated", age, r_pc, _MIN_SEPARATION + 3 * r_px)
        obj.extended.append(
            (*_eff(r_px, eta, rng.uniform(0.3, 0.7), theta), ctx.fluxes(v_mag, age, ebv))
        )
        return obj
    # lopsided: a fainter, broader companion 1-2 px off the peak
    frac = rng.uniform(0.2, 0.5)
    gradient = rng.random() < 0.5
    age2 = ("intermediate" if age == "young" else "young") if gradient else age
    obj = _Object(
        2, "lopsided-gradient" if gradient else "lopsided", age, r_pc, _MIN_SEPARATION + 3 * r_px
    )
    v_main = v_mag - 2.5 * math.log10(1 - frac)
    v_comp = v_mag - 2.5 * math.log10(frac)
    obj.extended.append(
        (*_eff(r_px, eta, rng.uniform(0.6, 1.0), theta), ctx.fluxes(v_main, age, ebv))
    )
    angle, offset = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 2.0)
    obj.extended.append(
        (
            *_eff(
                r_px * rng.uniform(1.0, 2.0),
                rng.uniform(1.0, 2.0),
                rng.uniform(0.5, 1.0),
                rng.uniform(0, np.pi),
                offset * math.cos(angle),
                offset * math.sin(angle),
            ),
            ctx.fluxes(v_comp, age2, ebv),
        )
    )
    return obj


def _make_class3(ctx, v_mag):
    rng = ctx.rng
    age = _AGES[rng.choice(3, p=_AGE_MIX[3])]
    n_peaks = int(rng.integers(2, 7))
    # peak weights: the central peak is the brightest, so it is the local maximum
    # and the most compact, with the others at least 3 px away
    weights = np.concatenate([[1.0], rng.uniform(0.25, 0.6, n_peaks - 1)])
    offsets = [(0.0, 0.0)]
    while len(offsets) < n_peaks:
        radius, angle = rng.uniform(3.0, 6.0), rng.uniform(0, 2 * np.pi)
        cand = (radius * math.cos(angle), radius * math.sin(angle))
        if all(math.hypot(cand[0] - ox, cand[1] - oy) >= 2.5 for ox, oy in offsets):
            offsets.append(cand)
    wing_frac = rng.uniform(0.3, 0.6)
    v_total_flux = 10.0 ** (-0.4 * v_mag)
    peak_flux = v_total_flux * (1 - wing_frac) * weights / weights.sum()
    ebv = ctx.reddening(age)
    spread = max(math.hypot(ox, oy) for ox, oy in offsets)
    obj = _Object(3, f"association-{n_peaks}", age, float("nan"), _MIN_SEPARATION + spread + 4)
    r_peak = rng.uniform(0.5, 1.0) * ctx.px_per_pc
    for (ox, oy), flux in zip(offsets, peak_flux):
        r_px = r_peak * (1.0 if ox == oy == 0.0 else rng.uniform(1.0, 1.5))
        obj.extended.append(
            (
                *_eff(
                    r_px,
                    rng.uniform(1.5, 2.5),
                    rng.uniform(0.7, 1.0),
                    rng.uniform(0, np.pi),
                    ox,
                    oy,
                ),
                ctx.fluxes(-2.5 * math.log10(flux), age, ebv),
            )
        )
    cx, cy = np.mean(offsets, axis=0)
    obj.extended.append(
        (
            *_eff(
                spread * rng.uniform(1.0, 1.6),
                rng.uniform(1.0, 1.5),
                rng.uniform(0.5, 1.0),
                rng.uniform(0, np.pi),
                cx,
                cy,
            ),
            ctx.fluxes(
                -2.5 * math.log10(v_total_flux * wing_frac),
                "intermediate" if age == "young" else age,
                ebv,
            ),
        )
    )
    return obj


def _star_colour(rng):
    return "blue_star" if rng.random() < 0.6 else "red_star"


def _make_class4(ctx, v_mag):
    rng = ctx.rng
    kind = _CLASS4_KINDS[rng.choice(len(_CLASS4_KINDS), p=_CLASS4_MIX)]
    if kind == "star":
        obj = _Object(4, "star")
        obj.points.append((0.0, 0.0, ctx.fluxes(v_mag, _star_colour(rng), 0.0)))
    elif kind == "pair":
        n = 2 if rng.random() < 0.7 else 3
        obj = _Object(4, "pair" if n == 2 else "triple", exclusion=_MIN_SEPARATION + 5)
        obj.points.append((0.0, 0.0, ctx.fluxes(v_mag, _star_colour(rng), 0.0)))
        for _ in range(n - 1):
            sep, angle = rng.uniform(2.0, 5.0), rng.uniform(0, 2 * np.pi)
            v2 = v_mag - 2.5 * math.log10(rng.uniform(0.3, 0.9))
            obj.points.append(
                (
                    sep * math.cos(angle),
                    sep * math.sin(angle),
                    ctx.fluxes(v2, _star_colour(rng), 0.0),
                )
            )
    elif kind == "saturated":
        obj = _Object(4, "saturated", exclusion=40.0)
        flux = ctx.fluxes(rng.uniform(15.0, 17.5), _star_colour(rng), 0.0)
        obj.bright.append((0.0, 0.0, flux))
        obj.spikes.append((0.015 * flux, rng.uniform(25.0, 45.0)))
    elif kind == "galaxy":
        r_px = rng.uniform(2.5, 10.0)
        obj = _Object(4, "galaxy", exclusion=_MIN_SEPARATION + 2 * r_px)
        obj.extended.append(
            (
                "sersic",
                0.0,
                0.0,
                dict(
                    r_eff=r_px,
                    n=rng.uniform(0.8, 4.0),
                    ellip=rng.uniform(0.0, 0.6),
                    theta=rng.uniform(0, np.pi),
                ),
                ctx.fluxes(v_mag, "galaxy", rng.uniform(0.0, 0.2)),
            )
        )
    else:
        band = int(rng.integers(len(ctx.bands)))
        obj = _Object(4, f"artefact-{ctx.bands[band]}")
        pixels = [(0, 0)]
        for _ in range(int(rng.integers(0, 5))):  # a short random walk: CR-like track
            dx, dy = pixels[-1]
            step = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1)][int(rng.integers(5))]
            if (dx + step[0], dy + step[1]) not in pixels:
                pixels.append((dx + step[0], dy + step[1]))
        total = 10.0 ** (-0.4 * (rng.uniform(19.0, 22.5) - ctx.zeropoints[band]))
        obj.artefacts.append((band, pixels, total / len(pixels)))
    return obj


_MAKERS = {1: _make_class1, 2: _make_class2, 3: _make_class3, 4: _make_class4}


def _make_object(ctx, true_class, v_mag=None):
    if v_mag is None:
        v_mag = (
            _cluster_v(ctx.rng)
            if true_class != 4
            else float(_truncated_lf(ctx.rng, 1, 19.5, 24.8, 0.13)[0])
        )
    return _MAKERS[true_class](ctx, v_mag)


def _class_counts(n, class_mix):
    """Integer counts per class matching the fractions (largest remainder)."""
    mix = np.asarray(class_mix, dtype=float)
    if mix.shape != (4,) or np.any(~np.isfinite(mix)) or np.any(mix < 0) or mix.sum() <= 0:
        raise ValueError(
            f"class_mix must be 4 non-negative fractions for classes 1-4, got {class_mix!r}"
        )
    mix = mix / mix.sum()
    counts = np.floor(mix * n).astype(int)
    remainder = mix * n - counts
    counts[np.argsort(-remainder, kind="stable")[: n - counts.sum()]] += 1
    return counts


def _diffuse_maps(shape, ctx, factor=16):
    """Low-resolution maps of an exponential disk and clumpy spiral arms."""
    rng = ctx.rng
    ny, nx = shape
    ly, lx = ny // factor + 2, nx // factor + 2
    yy, xx = np.mgrid[0:ly, 0:lx].astype(float)
    yy *= ny / (ly - 1)
    xx *= nx / (lx - 1)
    cx, cy = nx * rng.uniform(0.2, 0.8), ny * rng.uniform(0.2, 0.8)
    h_px = 3000.0 * ctx.px_per_pc * rng.uniform(0.7, 1.3)  # 3 kpc scale length
    r = np.hypot(xx - cx, yy - cy)
    phi = np.arctan2(yy - cy, xx - cx)
    pitch = math.radians(rng.uniform(12.0, 25.0))
    disk = np.exp(-r / h_px)
    arm = np.cos(
        2 * (phi - np.log((r + 0.05 * h_px) / h_px) / math.tan(pitch)) - rng.uniform(0, 2 * np.pi)
    )
    clumps = ndimage.gaussian_filter(rng.standard_normal((ly, lx)), 1.5)
    clumps = np.exp(0.8 * clumps / clumps.std())
    arms = disk * np.clip(arm, 0.0, None) ** 3 * clumps
    disk = disk * np.exp(0.1 * clumps)
    return disk, arms


def _smooth_disk(disk, arms):
    """The disk without arms or clumps: the same total light, smoothly distributed."""
    smooth = ndimage.gaussian_filter(disk + arms, 8.0)
    return smooth * ((disk + arms).sum() / smooth.sum()), np.zeros_like(arms)


def _placement_weight(disk, arms):
    """Where candidates and field stars are drawn: disk light plus (3x) the arms."""
    return disk / disk.max() + 3.0 * arms / max(arms.max(), 1e-30)


def _upsample(low, shape):
    return ndimage.zoom(low, (shape[0] / low.shape[0], shape[1] / low.shape[1]), order=1).astype(
        np.float32
    )[: shape[0], : shape[1]]


def _place(objects, shape, weight, rng):
    """Positions honouring each object's exclusion radius, drawn from ``weight``."""
    ny, nx = shape
    if ny <= 2 * _MARGIN or nx <= 2 * _MARGIN:
        raise ValueError(f"shape {shape} is too small; need more than {2 * _MARGIN} px a side")
    prob = (weight / weight.sum()).ravel()
    cell_y, cell_x = (ny - 1) / (weight.shape[0] - 1), (nx - 1) / (weight.shape[1] - 1)
    cell = 48.0
    grid = {}
    xs, ys = np.empty(len(objects)), np.empty(len(objects))
    order = np.argsort([-o.exclusion for o in objects], kind="stable")
    batch = []
    for i in order:
        radius = min(objects[i].exclusion, cell)
        for _ in range(500):
            if not batch:
                n = 256
                k = rng.choice(prob.size, size=n, p=prob)
                by = (k // weight.shape[1] + rng.uniform(-0.5, 0.5, n)) * cell_y
                bx = (k % weight.shape[1] + rng.uniform(-0.5, 0.5, n)) * cell_x
                uniform = rng.random(n) < 0.3  # some candidates anywhere
                by[uniform] = rng.uniform(0, ny, uniform.sum())
                bx[uniform] = rng.uniform(0, nx, uniform.sum())
                keep = (bx >= _MARGIN) & (bx < nx - _MARGIN) & (by >= _MARGIN) & (by < ny - _MARGIN)
                batch = list(zip(bx[keep], by[keep]))[::-1]
                continue
            x, y = batch.pop()
            gx, gy = int(x // cell), int(y // cell)
            clash = any(
                math.hypot(x - px, y - py) < max(radius, pr)
                for ddx in (-1, 0, 1)
                for ddy in (-1, 0, 1)
                for px, py, pr in grid.get((gx + ddx, gy + ddy), ())
            )
            if not clash:
                grid.setdefault((gx, gy), []).append((x, y, radius))
                xs[i], ys[i] = x, y
                break
        else:
            raise ValueError(
                f"cannot place {len(objects)} candidates {_MIN_SEPARATION} px "
                f"apart in a {shape} field; use fewer candidates or a larger shape"
            )
    return xs, ys


def _field_stars(shape, density, weight, cand_x, cand_y, cand_v, ctx):
    """Field stars following the disk light, kept off the candidate centres."""
    rng = ctx.rng
    ny, nx = shape
    n = int(rng.poisson(density * ny * nx))
    if n == 0:
        return np.empty(0), np.empty(0), np.empty((0, len(ctx.bands)))
    prob = (weight / weight.sum()).ravel()
    k = rng.choice(prob.size, size=n, p=prob)
    y = (k // weight.shape[1] + rng.uniform(-0.5, 0.5, n)) * (ny - 1) / (weight.shape[0] - 1)
    x = (k % weight.shape[1] + rng.uniform(-0.5, 0.5, n)) * (nx - 1) / (weight.shape[1] - 1)
    v = _truncated_lf(rng, n, 21.5, 26.5, 0.3)
    blue = rng.random(n) < 0.6
    colours = np.where(blue[:, None], _COLOURS["blue_star"], _COLOURS["red_star"])
    mags = v[:, None] + colours + rng.normal(0, 0.1, (n, len(ctx.bands)))
    mags[:, 3] = v
    keep = (x > -5) & (x < nx + 5) & (y > -5) & (y < ny + 5)
    if cand_x.size:
        # no star at a candidate centre, and none nearby that outshines it
        dist, idx = cKDTree(np.column_stack([cand_x, cand_y])).query(
            np.column_stack([x, y]), k=min(4, cand_x.size), distance_upper_bound=12.0
        )
        dist, idx = dist.reshape(n, -1), idx.reshape(n, -1)
        near = np.isfinite(dist)
        cand_v_ext = np.append(cand_v, np.inf)
        too_close = near & (dist < _FIELD_STAR_EXCLUSION)
        outshines = near & (v[:, None] < cand_v_ext[idx] + 1.5)
        keep &= ~np.any(too_close | outshines, axis=1)
    return x[keep], y[keep], 10.0 ** (-0.4 * (mags[keep] - ctx.zeropoints))


def _spike_pixels(x, y, length, angle):
    """Pixel indices and weights of four diffraction spikes (1/s^1.5 along each arm)."""
    s = np.arange(1.0, length, 0.5)
    weight = (1.0 + s / 3.0) ** -1.5
    weight /= 4 * weight.sum()
    px, py, w = [], [], []
    for k in range(4):
        a = angle + k * np.pi / 2
        px.append(np.round(x + s * math.cos(a)).astype(int))
        py.append(np.round(y + s * math.sin(a)).astype(int))
        w.append(weight)
    return np.concatenate(px), np.concatenate(py), np.concatenate(w)


def _render(shape, objects, xs, ys, stars, psfs, diffuse, ctx, noise, spike_angle):
    """Model (and noisy) images per band, in e-/s."""
    rng = ctx.rng
    ny, nx = shape
    # intrinsic stamps of extended components, computed once for all bands
    stamps, ext_flux = [], []
    points_x, points_y, points_flux = list(stars[0]), list(stars[1]), list(stars[2])
    bright, spikes, artefacts = [], [], []
    for obj, x, y in zip(objects, xs, ys):
        for kind, dx, dy, p, flux in obj.extended:
            if kind == "eff":
                stamps.append(render_eff(x + dx, y + dy, p["r_eff"], p["eta"], p["q"], p["theta"]))
            else:
                stamps.append(
                    render_sersic(x + dx, y + dy, p["r_eff"], p["n"], p["ellip"], p["theta"])
                )
            ext_flux.append(flux)
        for dx, dy, flux in obj.points:
            points_x.append(x + dx)
            points_y.append(y + dy)
            points_flux.append(flux)
        for dx, dy, flux in obj.bright:
            bright.append((x + dx, y + dy, flux))
        for flux, length in obj.spikes:
            spikes.append((_spike_pixels(x, y, length, spike_angle), flux))
        for band, pixels, rate in obj.artefacts:
            artefacts.append(
                (band, [(int(round(x)) + dx, int(round(y)) + dy) for dx, dy in pixels], rate)
            )
    images = {}
    for b, band in enumerate(ctx.bands):
        spec = ctx.specs[b]
        model = np.zeros(shape, dtype=np.float32)
        for (ix0, iy0, stamp), flux in zip(stamps, ext_flux):
            add_stamp(model, stamp, ix0, iy0, flux[b])
        for (px, py, w), flux in spikes:
            inside = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
            np.add.at(model, (py[inside], px[inside]), (w[inside] * flux[b]).astype(np.float32))
        model = fftconvolve(model, psfs[band].kernel.astype(np.float32), mode="same")
        np.maximum(model, 0.0, out=model)  # FFT round-off
        for x, y, flux in zip(points_x, points_y, points_flux):
            ix0, iy0, stamp = psfs[band].stamp(x, y)
            add_stamp(model, stamp, ix0, iy0, flux[b])
        for x, y, flux in bright:  # wide stamps: their PSF wings are visible
            ix0, iy0, stamp = psfs[band].wide_stamp(x, y, _BRIGHT_STAMP)
            add_stamp(model, stamp, ix0, iy0, flux[b])
        model += diffuse[band]
        for a_band, pixels, rate in artefacts:
            if a_band == b:
                for px, py in pixels:
                    if 0 <= px < nx and 0 <= py < ny:
                        model[py, px] += rate
        # saturation: the per-exposure full well, as a count rate
        np.minimum(model, spec.full_well * spec.n_exp / spec.exptime, out=model)
        images[band] = _add_noise(model, spec, rng) if noise else model
    return images


def _add_noise(model, spec, rng):
    """Sky, photon and read noise; returns the sky-subtracted image in e-/s.

    Photon counts are Poisson where fewer than `_POISSON_LIMIT` e- are
    expected and Gaussian (variance = mean) above, where the two agree and
    the Gaussian draw is several times faster.
    """
    expected = (model + np.float32(spec.sky)) * np.float32(spec.exptime)
    read = np.float32(READ_NOISE * math.sqrt(spec.n_exp))
    z = rng.standard_normal(model.shape, dtype=np.float32)
    counts = expected + np.sqrt(expected + read * read) * z
    low = expected < _POISSON_LIMIT
    if low.any():
        counts[low] = rng.poisson(expected[low]) + read * z[low]
    counts /= np.float32(spec.exptime)
    counts -= np.float32(spec.sky)
    return counts


def _make_wcs(shape, center):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(center[0]), float(center[1])]
    wcs.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    scale = PIXEL_SCALE / 3600.0
    wcs.wcs.cd = [[-scale, 0.0], [0.0, scale]]  # north up, east left
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.cunit = ["deg", "deg"]
    return wcs


def _bands_for(instrument):
    key = str(instrument).lower()
    if key in ("wfc3", "wfc3-uvis", "uvis"):
        return WFC3_BANDS
    if key in ("acs", "acs-wfc", "wfc"):
        return ACS_BANDS
    raise ValueError(
        f"unknown instrument {instrument!r}; use 'wfc3' or 'acs' (ACS F435W instead of WFC3 F438W)"
    )


def _check_common(shape, distance_mpc, field_star_density):
    if len(tuple(shape)) != 2 or any(int(s) != s or s <= 2 * _MARGIN for s in shape):
        raise ValueError(
            f"shape must be two integers > {2 * _MARGIN} (height, width), got {shape!r}"
        )
    if not (np.isfinite(distance_mpc) and distance_mpc > 0):
        raise ValueError(f"distance_mpc must be a positive number of Mpc, got {distance_mpc!r}")
    if not (np.isfinite(field_star_density) and field_star_density >= 0):
        raise ValueError(
            f"field_star_density must be >= 0 stars per px^2, got {field_star_density!r}"
        )


def _build(
    shape,
    objects,
    xs,
    ys,
    ctx,
    *,
    distance_mpc,
    label_noise,
    target,
    field_star_density,
    noise,
    center,
    disk,
    arms,
    seed,
    extra_columns=None,
    human=None,
    psf_scale=1.0,
):
    """Render a field from placed objects and assemble the `SimulatedField`."""
    # The draws from ctx.rng keep their order (PSFs, disk, field stars,
    # spikes, noise, labels): the same seed must give the same field.
    rng = ctx.rng
    psfs = _draw_psfs(ctx, psf_scale)
    diffuse = _diffuse_light(shape, ctx, disk, arms)
    weight = _placement_weight(disk, arms)
    mags = _object_magnitudes(objects, ctx)
    v_for_stars = np.nan_to_num(mags[:, 3], nan=30.0)
    stars = _field_stars(shape, field_star_density, weight, xs, ys, v_for_stars, ctx)
    images = _render(
        shape,
        objects,
        xs,
        ys,
        stars,
        psfs,
        diffuse,
        ctx,
        noise,
        spike_angle=rng.uniform(0, np.pi / 2),
    )
    wcs = _make_wcs(shape, center)
    true, human = _labels(objects, human, label_noise, rng)
    catalog = _field_catalog(objects, xs, ys, wcs, mags, images, ctx.bands, true=true, human=human)
    for name, values in (extra_columns or {}).items():
        catalog[name] = values
    catalog.meta.update(_catalog_meta(target, distance_mpc, label_noise))
    psf = {band: {"fwhm": t.fwhm, "beta": t.beta} for band, t in psfs.items()}
    return SimulatedField(
        images=images,
        wcs=wcs,
        catalog=catalog,
        target=target,
        distance_mpc=float(distance_mpc),
        bands=tuple(ctx.bands),
        psf=psf,
        seed=seed,
    )


def _labels(objects, human, label_noise, rng):
    """True classes, and human labels: noisy where inspected (``human`` > 0, default all), else 0."""
    true = np.array([o.true_class for o in objects], dtype=np.int16)
    if human is None:
        human = true
    human = np.where(human > 0, noisy_labels(true, label_noise, rng), 0).astype(np.int16)
    return true, human


def _catalog_meta(target, distance_mpc, label_noise):
    """The catalogue's meta: pixel origin, target, distance and the label noise applied."""
    return {
        "origin": 0,
        "TARGET": target,
        "DISTANCE": float(distance_mpc),
        "LABNOISE": "none"
        if label_noise_matrix(label_noise) is None
        else (label_noise if isinstance(label_noise, str) else "matrix"),
    }


def _draw_psfs(ctx, psf_scale):
    """One Moffat PSF per band, FWHM drawn in the band's range (times ``psf_scale``)."""
    psfs = {}
    for band, spec in zip(ctx.bands, ctx.specs):
        # FWHM ranges are those of the Moffat PSF itself; a star's pixel-integrated
        # image measures about 0.2 px broader. beta 1.5-2.0 gives star CI about 1.2.
        psfs[band] = PSFTable(
            psf_scale * ctx.rng.uniform(*spec.fwhm_range), ctx.rng.uniform(1.5, 2.0)
        )
    return psfs


def _diffuse_light(shape, ctx, disk, arms):
    """Per-band images (e-/s) of the old disk and the young arms' light."""
    disk_up, arms_up = _upsample(disk, shape), _upsample(arms, shape)
    mu_v = ctx.rng.uniform(20.0, 21.0)  # central disk surface brightness (V mag / arcsec^2)
    disk_v = 10.0 ** (-0.4 * (mu_v - ctx.zeropoints[3])) * PIXEL_SCALE**2
    disk_rates = (
        disk_v
        * 10.0 ** (-0.4 * _COLOURS["old"])
        * 10.0 ** (-0.4 * (ctx.zeropoints[3] - ctx.zeropoints))
    )
    arm_rates = (
        0.6
        * disk_v
        * 10.0 ** (-0.4 * _COLOURS["young"])
        * 10.0 ** (-0.4 * (ctx.zeropoints[3] - ctx.zeropoints))
    )
    return {
        band: np.float32(disk_rates[b]) * disk_up + np.float32(arm_rates[b]) * arms_up
        for b, band in enumerate(ctx.bands)
    }


def _object_magnitudes(objects, ctx):
    """Vega magnitudes (n_objects, n_bands) of the objects' total light; NaN where none."""
    n_bands = len(ctx.bands)
    totals = np.array([o.total_flux(n_bands) for o in objects]).reshape(-1, n_bands)
    with np.errstate(divide="ignore"):
        return np.where(
            totals > 0, ctx.zeropoints - 2.5 * np.log10(np.where(totals > 0, totals, 1.0)), np.nan
        )


def _field_catalog(objects, xs, ys, wcs, mags, images, bands, *, true, human):
    """The candidate catalogue of a field in PHANGS-HST columns, plus the simulation's truth."""
    sky = wcs.pixel_to_world(xs, ys)
    catalog = QTable()
    catalog["ID_PHANGS_CLUSTER"] = np.arange(1, len(objects) + 1, dtype=np.int32)
    catalog["PHANGS_X"] = xs.astype(float)
    catalog["PHANGS_Y"] = ys.astype(float)
    catalog["PHANGS_RA"] = sky.ra.to(u.deg)
    catalog["PHANGS_DEC"] = sky.dec.to(u.deg)
    catalog["PHANGS_CLUSTER_CLASS_HUMAN"] = human
    catalog["CLASS_TRUE"] = true
    for b, band in enumerate(bands):
        catalog[f"PHANGS_{band}_VEGA"] = mags[:, b]
    catalog["PHANGS_CI"] = concentration_index(images["F555W"], xs, ys)
    catalog["SIM_MORPHOLOGY"] = [o.morphology for o in objects]
    catalog["SIM_AGE"] = [o.age for o in objects]
    catalog["SIM_REFF_PC"] = np.array([o.r_eff_pc for o in objects], dtype=float)
    return catalog


def simulate_field(
    *,
    shape=(2048, 2048),
    n_candidates=800,
    distance_mpc=10.0,
    class_mix=DEFAULT_CLASS_MIX,
    label_noise=None,
    seed=None,
    target="sim-galaxy",
    instrument="wfc3",
    field_star_density=3e-4,
    noise=True,
    center=(64.9746, -54.9380),
    psf_scale=1.0,
    disk_structure=True,
    candidates="injected",
):
    """Simulate a PHANGS-HST-like 5-band field with cluster candidates of known class.

    Parameters
    ----------
    shape : tuple of int, optional
        (height, width) in pixels at 0.03962"/px.
    n_candidates : int, optional
        Number of catalogue candidates (classes 1-4). The default density
        (800 in 2048^2 px) is that of a PHANGS-HST galaxy.
    distance_mpc : float, optional
        Distance of the galaxy; sets the pixel size of clusters
        (1 px = 0.192 pc x D / Mpc).
    class_mix : sequence of 4 float, optional
        Fractions of classes 1-4 (normalised); counts are exact up to
        rounding.
    label_noise : None, "none", "human" or array-like (4, 4), optional
        Noise applied to ``PHANGS_CLUSTER_CLASS_HUMAN`` only (see
        `noisy_labels`); ``CLASS_TRUE`` always holds the true class.
    seed : int or None, optional
        Seed of the single random generator: the same seed gives
        identical images and catalogue.
    target : str, optional
        Target name (file names, TARGNAME).
    instrument : {"wfc3", "acs"}, optional
        "acs" replaces WFC3 F438W by ACS F435W (broader PSF).
    field_star_density : float, optional
        Field stars per px^2 (0 for none): crowding.
    noise : bool, optional
        Add sky, Poisson and read noise (sky-subtracted images). Without
        it the images are the noiseless models.
    center : tuple of float, optional
        (RA, Dec) in degrees of the field centre.
    psf_scale : float, optional
        Factor on every band's PSF FWHM (1: the instruments' ranges in
        `BAND_SPECS`; e.g. 1.2 simulates a domain shift outside them).
    disk_structure : bool, optional
        Spiral arms and clumpy star-forming light; False leaves a smooth
        exponential disk.
    candidates : {"injected", "detected"}, optional
        ``"injected"``: the catalogue lists the ``n_candidates`` injected
        objects. ``"detected"``: it lists what a PHANGS-like pipeline finds
        in the images (`~photutils_clusterclf.datasets.detected_catalog`
        with its defaults: DAOStarFinder on F555W, CI cut), each with the
        true class of the injected object it recovers (class 4 for
        detections of nothing injected).

    Returns
    -------
    field : `SimulatedField`
    """
    if candidates not in ("injected", "detected"):
        raise ValueError(f"candidates must be 'injected' or 'detected', got {candidates!r}")
    if not (np.isfinite(psf_scale) and psf_scale > 0):
        raise ValueError(f"psf_scale must be a positive number, got {psf_scale!r}")
    n_candidates = int(n_candidates)
    if n_candidates < 0:
        raise ValueError(f"n_candidates must be >= 0, got {n_candidates}")
    _check_common(shape, distance_mpc, field_star_density)
    shape = (int(shape[0]), int(shape[1]))
    bands = _bands_for(instrument)
    counts = _class_counts(n_candidates, class_mix)
    label_noise_matrix(label_noise)  # validate before the long work
    rng = np.random.default_rng(seed)
    ctx = _Context(rng, bands, distance_mpc)
    disk, arms = _diffuse_maps(shape, ctx)
    if not disk_structure:
        disk, arms = _smooth_disk(disk, arms)
    classes = rng.permutation(np.repeat(CLASSES, counts))
    objects = [_make_object(ctx, int(c)) for c in classes]
    xs, ys = _place(objects, shape, _placement_weight(disk, arms), rng)
    field = _build(
        shape,
        objects,
        xs,
        ys,
        ctx,
        distance_mpc=distance_mpc,
        label_noise=label_noise,
        target=target,
        field_star_density=field_star_density,
        noise=noise,
        center=center,
        disk=disk,
        arms=arms,
        seed=seed,
        psf_scale=float(psf_scale),
    )
    if candidates == "detected" and n_candidates:
        field.catalog = detected_catalog(
            field, label_noise=label_noise, seed=int(rng.integers(2**31))
        )
    return field


def _find_column(table, given, aliases, what):
    if given is not None:
        if given not in table.colnames:
            raise KeyError(
                f"column {given!r} ({what}) not in the table; it has {', '.join(table.colnames)}"
            )
        return given
    for name in aliases:
        if name in table.colnames:
            return name
    raise KeyError(
        f"no {what} column found; name it with the keyword or use one of " + ", ".join(aliases)
    )


#: Class columns `mock_from_catalog` looks for, in this order.
_CLASS_ALIASES = ["class", "class_final", "PHANGS_CLUSTER_CLASS_HUMAN", "CLASS_TRUE", "class_human"]


def _band_aliases(band):
    low = band.lower()
    return [
        f"PHANGS_{band}_VEGA",
        f"mag_{low}",
        f"{low}_mag",
        f"{band}_VEGA",
        f"{low}_vega",
        band,
        low,
    ]


def mock_from_catalog(
    table,
    *,
    origin=None,
    x_column=None,
    y_column=None,
    mag_columns=None,
    class_column=None,
    region=None,
    distance_mpc=10.0,
    label_noise=None,
    seed=None,
    target="mock",
    instrument="wfc3",
    field_star_density=3e-4,
    noise=True,
    center=(64.9746, -54.9380),
):
    """Simulate a field whose candidates have the positions, magnitudes and classes of a catalogue.

    Each row becomes a candidate of its catalogue class (morphology drawn
    as in `simulate_field`) scaled to its catalogue magnitudes. Missing
    magnitudes (NaN, masked, or >= 90 such as LEGUS 99.999) keep the
    colours of the drawn morphology. Rows of class 0 (not inspected) get
    a class drawn from `DEFAULT_CLASS_MIX`, stored in ``CLASS_TRUE``, and
    human label 0.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalogue.
    origin : {0, 1}, optional
        Origin of the pixel columns: 1 for LEGUS ``x``/``y``; taken from
        ``table.meta["origin"]`` or 0 for ``PHANGS_X`` when not given.
    x_column, y_column : str, optional
        Pixel columns; default the first of ``x``/``X``/``PHANGS_X``/
        ``x_centroid`` (``y`` likewise).
    mag_columns : dict, optional
        Band -> column of Vega magnitudes; default per band the first of
        ``PHANGS_<BAND>_VEGA``, ``mag_<band>``, ``<band>_mag``, ...
        (a band with none is drawn from the morphology's colours).
    class_column : str, optional
        Class column (codes 5-19 fold to 4); default the first of
        ``class``, ``class_final``, ``PHANGS_CLUSTER_CLASS_HUMAN``,
        ``CLASS_TRUE``, ``class_human``.
    region : tuple of int, optional
        ``(xmin, xmax, ymin, ymax)``: the half-open 0-based pixel window of
        the catalogue to simulate; rows outside are dropped and positions
        shifted into the window. Default: from 0 to the largest position
        plus a margin.
    distance_mpc, label_noise, seed, target, instrument, field_star_density, noise, center
        As in `simulate_field`.

    Returns
    -------
    field : `SimulatedField`
        Its catalogue also has ``SOURCE_ROW``, the row index in ``table``.
    """
    _check_common((100, 100), distance_mpc, field_star_density)
    x, y = _catalog_pixels(table, x_column, y_column, origin)
    cls_col = _find_column(table, class_column, _CLASS_ALIASES, "class")
    bands = _bands_for(instrument)
    xmin, xmax, ymin, ymax = _catalog_window(x, y, region)
    shape = (ymax - ymin, xmax - xmin)
    _check_common(shape, distance_mpc, field_star_density)
    rows = np.flatnonzero((x >= xmin) & (x < xmax) & (y >= ymin) & (y < ymax))
    classes = fold_classes(table[cls_col])[rows]
    mags = _catalog_magnitudes(table, mag_columns, bands, rows)
    label_noise_matrix(label_noise)
    rng = np.random.default_rng(seed)
    ctx = _Context(rng, bands, distance_mpc)
    disk, arms = _diffuse_maps(shape, ctx)
    # Rows not inspected (class 0) get a class drawn from the default mix.
    drawn = rng.choice(
        CLASSES, size=rows.size, p=np.asarray(DEFAULT_CLASS_MIX) / np.sum(DEFAULT_CLASS_MIX)
    )
    true = np.where(classes > 0, classes, drawn).astype(np.int16)
    objects = [_object_like(ctx, int(t), m) for t, m in zip(true, mags)]
    return _build(
        shape,
        objects,
        x[rows] - xmin,
        y[rows] - ymin,
        ctx,
        distance_mpc=distance_mpc,
        label_noise=label_noise,
        target=target,
        field_star_density=field_star_density,
        noise=noise,
        center=center,
        disk=disk,
        arms=arms,
        seed=seed,
        human=classes,
        extra_columns={"SOURCE_ROW": rows.astype(np.int64)},
    )


def _catalog_pixels(table, x_column, y_column, origin):
    """0-based pixel positions of a catalogue's rows (NaN where masked)."""
    x_col = _find_column(
        table, x_column, ["x", "X", "PHANGS_X", "x_centroid", "xcentroid"], "x pixel"
    )
    y_col = _find_column(
        table, y_column, ["y", "Y", "PHANGS_Y", "y_centroid", "ycentroid"], "y pixel"
    )
    if origin is None:
        origin = table.meta.get(
            "origin", table.meta.get("ORIGIN", 0 if x_col == "PHANGS_X" else None)
        )
    if origin not in (0, 1):
        raise ValueError(
            f"origin of the pixel columns {x_col}/{y_col} is unknown; "
            "pass origin=0 or origin=1 (LEGUS x/y are 1-based)"
        )
    x = np.ma.filled(np.ma.asarray(table[x_col], dtype=float), np.nan) - origin
    y = np.ma.filled(np.ma.asarray(table[y_col], dtype=float), np.nan) - origin
    return x, y


def _catalog_window(x, y, region):
    """``(xmin, xmax, ymin, ymax)`` of the field: ``region``, or 0 to the last position + margin."""
    if region is None:
        finite = np.isfinite(x) & np.isfinite(y)
        region = (
            0,
            int(np.nanmax(x[finite], initial=0)) + _MARGIN + 1,
            0,
            int(np.nanmax(y[finite], initial=0)) + _MARGIN + 1,
        )
    return tuple(int(v) for v in region)


def _catalog_magnitudes(table, mag_columns, bands, rows):
    """Vega magnitudes (len(rows), n_bands) of the catalogue; NaN where unmeasured (>= 90)."""
    mag_columns = dict(mag_columns or {})
    for band in bands:
        if band not in mag_columns:
            found = [c for c in _band_aliases(band) if c in table.colnames]
            mag_columns[band] = found[0] if found else None
    mags = np.full((rows.size, len(bands)), np.nan)
    for b, band in enumerate(bands):
        if mag_columns[band] is not None:
            values = np.ma.filled(np.ma.asarray(table[mag_columns[band]], dtype=float), np.nan)
            mags[:, b] = np.where(values[rows] < 90.0, values[rows], np.nan)
    return mags


def _object_like(ctx, true_class, mags):
    """An object of ``true_class`` scaled to the catalogue magnitudes ``mags``."""
    v = mags[3] if np.isfinite(mags[3]) else None
    for _ in range(50):
        obj = _make_object(ctx, true_class, v)
        # a morphology must have light in every band the catalogue measured
        # (a single-band artefact cannot carry a 5-band detection)
        if np.all(obj.total_flux(len(ctx.bands))[np.isfinite(mags)] > 0):
            break
    obj.scale_to(mags, ctx.zeropoints)
    return obj


@dataclass
class SimulatedField:
    """A simulated multi-band field and its candidate catalogue.

    Attributes
    ----------
    images : dict
        Band -> 2-D float32 image in e-/s (sky subtracted), all on the grid
        of ``wcs``.
    wcs : `~astropy.wcs.WCS`
        Shared celestial TAN WCS, 0.03962"/px, north up.
    catalog : `~astropy.table.QTable`
        One row per candidate: ``ID_PHANGS_CLUSTER`` (int32, from 1),
        ``PHANGS_X``/``PHANGS_Y`` (float64, 0-based), ``PHANGS_RA``/
        ``PHANGS_DEC`` (deg), ``PHANGS_CLUSTER_CLASS_HUMAN`` (int16, label
        noise applied), ``CLASS_TRUE`` (int16), ``PHANGS_<BAND>_VEGA``
        (input total Vega magnitude; NaN where the object has no light in
        the band), ``PHANGS_CI`` (measured on the F555W image, 1 px vs 3 px
        apertures, local background), ``SIM_MORPHOLOGY``, ``SIM_AGE``,
        ``SIM_REFF_PC`` (simulation truth).
    target : str
    distance_mpc : float
    bands : tuple of str
    psf : dict
        Band -> {"fwhm": px, "beta": Moffat index} actually used.
    seed : int or None
    """

    images: dict
    wcs: WCS
    catalog: QTable
    target: str
    distance_mpc: float
    bands: tuple = WFC3_BANDS
    psf: dict = field(default_factory=dict)
    seed: object = None

    @property
    def shape(self):
        """(height, width) of the images."""
        return next(iter(self.images.values())).shape

    def to_multiband_image(self):
        """The images as a `~photutils_clusterclf.images.MultiBandImage` (reference band F555W)."""
        from ..images import MultiBandImage

        return MultiBandImage.from_arrays(self.images, wcs=self.wcs, reference_band="F555W")

    def filenames(self):
        """PHANGS-style file names: band -> image file, plus "catalog"."""
        target = self.target.lower()
        names = {
            band: f"hlsp_phangs-hst_hst_{BAND_SPECS[band].file_instrument}_{target}_"
            f"{band.lower()}_v1_exp-drc-sci.fits"
            for band in self.bands
        }
        names["catalog"] = f"hlsp_phangs-cat_hst_uvis_{target}_multi_v1_obs-sim-candidates.fits"
        return names

    def header(self, band):
        """FITS header of one band image (WCS, photometry, target; no date)."""
        spec = BAND_SPECS[band]
        header = self.wcs.to_header()
        header["TELESCOP"] = "HST"
        header["INSTRUME"] = spec.instrument
        header["DETECTOR"] = spec.detector
        header["FILTER"] = band
        header["EXPTIME"] = (spec.exptime, "total exposure time (s)")
        header["BUNIT"] = "ELECTRONS/S"
        header["PHOTFLAM"] = (spec.photflam, "inverse sensitivity (erg/cm2/A/e-)")
        header["PHOTPLAM"] = (spec.photplam, "pivot wavelength (Angstrom)")
        header["ZP_VEGA"] = (spec.zeropoint, "Vega magnitude of 1 e-/s")
        header["TARGNAME"] = self.target
        header["DISTANCE"] = (self.distance_mpc, "distance (Mpc)")
        header["PIXSCALE"] = (PIXEL_SCALE, "arcsec / pixel")
        if band in self.psf:
            header["PSFFWHM"] = (round(self.psf[band]["fwhm"], 4), "Moffat FWHM (px)")
            header["PSFBETA"] = (round(self.psf[band]["beta"], 4), "Moffat beta")
        header["SIMULATD"] = (True, "simulated by photutils_clusterclf.datasets")
        return header

    def write(self, directory, *, overwrite=False):
        """Write the band images and the catalogue as PHANGS-named FITS files.

        Parameters
        ----------
        directory : str or `~pathlib.Path`
            Existing output directory.
        overwrite : bool, optional
            Replace existing files. Without it, nothing is written if any
            of the outputs exists.

        Returns
        -------
        paths : dict
            Band -> image path, and "catalog" -> catalogue path.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"output directory {directory} does not exist")
        paths = {key: directory / name for key, name in self.filenames().items()}
        # Entering every atomic_output checks every path before anything is
        # written; all files go to temporaries first and are renamed together
        # at the end, so an interrupted write leaves the directory as it was.
        with contextlib.ExitStack() as stack:
            tmps = {
                key: stack.enter_context(atomic_output(path, overwrite=overwrite))
                for key, path in paths.items()
            }
            for band in self.bands:
                hdu = fits.PrimaryHDU(
                    np.asarray(self.images[band], dtype=np.float32), header=self.header(band)
                )
                hdu.writeto(tmps[band])
            write_fits_table(self.catalog, tmps["catalog"])
        return paths
