"""Classical per-candidate features measured on raw multi-band cutouts.

A dozen hand-made quantities of the kind an astronomer computes before
reaching for a network: the concentration index from photutils circular
apertures, colours and background-subtracted flux ratios in every band,
second moments (size, ellipticity), the number of peaks, the 180-degree
rotational asymmetry, and the signal-to-noise ratio. They are the inputs
of the feature baseline every accuracy table shows next to the CNN
(``benchmarks/features.py``), and cheap diagnostics on their own.

All features are measured around the cutout centre pixel ``S // 2`` (where
`~photutils_clusterclf.cutouts.extract_cutouts` puts the candidate), after
subtracting each band's background (median of the cutout border). NaN
pixels count as background. Every feature is finite.
"""

import itertools
import warnings

import numpy as np
from photutils.aperture import CircularAnnulus, CircularAperture

__all__ = ["FEATURE_RADII", "candidate_features", "feature_names"]

#: Aperture radii in pixels; the concentration index is mag(1 px) - mag(3 px).
FEATURE_RADII = (1.0, 2.0, 3.0, 5.0)

_BORDER = 3
_MAD_TO_SIGMA = 1.4826
_MOMENT_RADIUS = 5.0
_PEAK_RADIUS = 6.0
_PEAK_SIGMA = 5.0
_PEAK_FRACTION = 0.02
_WINGS = (5.0, 8.0)
# Flux floor in units of the aperture noise, so that magnitudes stay finite.
_FLOOR = 0.5


def feature_names(bands):
    """Names of the columns returned by `candidate_features` for these bands.

    Parameters
    ----------
    bands : sequence of str
        Band names in channel order.

    Returns
    -------
    list of str
    """
    bands = [str(b) for b in bands]
    names = [f"ci_{b}" for b in bands]
    names += [f"colour_{a}-{b}" for a, b in itertools.pairwise(bands)]
    names += [f"fraction_{b}" for b in bands]
    names += [f"ratio_r{r:g}_r5" for r in FEATURE_RADII[:-1]]
    names += ["wings", "size", "ellipticity", "centroid_offset", "n_peaks", "asymmetry", "snr"]
    return names


def _aperture_weights(size, radius, *, inner=None):
    """(S*S,) exact photutils aperture (or annulus) weights centred on pixel S // 2."""
    centre = (size // 2, size // 2)
    if inner is None:
        aperture = CircularAperture(centre, r=radius)
    else:
        aperture = CircularAnnulus(centre, r_in=inner, r_out=radius)
    return aperture.to_mask(method="exact").to_image((size, size)).ravel()


def _background_subtracted(cutouts):
    """Cutouts minus each band's border median, NaN -> 0, and each band's noise."""
    size = cutouts.shape[-1]
    mask = np.ones((size, size), dtype=bool)
    if size > 2 * _BORDER:
        mask[_BORDER:-_BORDER, _BORDER:-_BORDER] = False
    border = cutouts[..., mask]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN borders: handled below
        bkg = np.nan_to_num(np.nanmedian(border, axis=-1))
        noise = _MAD_TO_SIGMA * np.nanmedian(np.abs(border - bkg[..., None]), axis=-1)
    noise = np.nan_to_num(noise)
    data = np.nan_to_num(cutouts - bkg[..., None, None], nan=0.0, posinf=0.0, neginf=0.0)
    # Noise-free or empty cutouts: a tiny positive noise keeps ratios finite.
    floor = 1e-6 * np.maximum(np.abs(data).max(axis=(-2, -1)), 1e-30)
    return data, np.maximum(noise, floor)


def _moments(image, size):
    """Size, ellipticity and centroid offset from positive flux within 5 px."""
    yy, xx = np.mgrid[:size, :size].astype(float) - size // 2
    inside = (xx**2 + yy**2) <= _MOMENT_RADIUS**2
    w = np.clip(image, 0, None) * inside
    total = np.maximum(w.sum(axis=(-2, -1)), 1e-30)
    cx = (w * xx).sum(axis=(-2, -1)) / total
    cy = (w * yy).sum(axis=(-2, -1)) / total
    dx, dy = xx - cx[:, None, None], yy - cy[:, None, None]
    ixx = (w * dx**2).sum(axis=(-2, -1)) / total
    iyy = (w * dy**2).sum(axis=(-2, -1)) / total
    ixy = (w * dx * dy).sum(axis=(-2, -1)) / total
    trace = np.maximum(ixx + iyy, 1e-12)
    ellipticity = np.sqrt((ixx - iyy) ** 2 + 4 * ixy**2) / trace
    return np.sqrt(trace), ellipticity, np.hypot(cx, cy)


def _n_peaks(image, noise, size):
    """Local maxima (3 x 3) within 6 px of the centre, above 5 sigma and 2 % of the brightest."""
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    neighbours = np.stack(
        [
            padded[:, 1 + dy : 1 + dy + size, 1 + dx : 1 + dx + size]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if dy or dx
        ]
    )
    yy, xx = np.mgrid[:size, :size] - size // 2
    inside = (xx**2 + yy**2) <= _PEAK_RADIUS**2
    level = np.maximum(_PEAK_SIGMA * noise, _PEAK_FRACTION * (image * inside).max(axis=(-2, -1)))
    peaks = (image > neighbours.max(axis=0)) & (image > level[:, None, None])
    return (peaks & inside).sum(axis=(-2, -1))


def _asymmetry(image, size):
    """sum |I - I rotated by 180 deg| / (2 sum |I|) within 5 px of the centre pixel."""
    yy, xx = np.mgrid[:size, :size] - size // 2
    inside = (xx**2 + yy**2) <= _MOMENT_RADIUS**2
    if size % 2 == 0:
        # The rotation about pixel S // 2 of an even cutout drops row/column 0.
        inside[0, :] = inside[:, 0] = False
        rotated = np.zeros_like(image)
        rotated[:, 1:, 1:] = image[:, :0:-1, :0:-1]
    else:
        rotated = image[:, ::-1, ::-1]
    diff = (np.abs(image - rotated) * inside).sum(axis=(-2, -1))
    return diff / np.maximum(2 * (np.abs(image) * inside).sum(axis=(-2, -1)), 1e-30)


def candidate_features(cutouts, *, bands, reference_band=None):
    """Measure the classical features of each candidate.

    Parameters
    ----------
    cutouts : array-like, shape (N, B, S, S)
        Raw cutouts in flux units (NaN where there is no data), the
        candidate on pixel ``S // 2``; ``S >= 11`` so that the 5 px
        aperture fits.
    bands : sequence of str
        The ``B`` band names, in channel order (they name the columns).
    reference_band : str, optional
        Band of the morphology features (size, ellipticity, peaks,
        asymmetry, signal-to-noise); default ``F555W`` when present, else
        the middle band.

    Returns
    -------
    features : `numpy.ndarray`, shape (N, F)
        float64, finite; columns as in `feature_names`.
    names : list of str
        Column names.
    """
    data = np.asarray(cutouts, dtype=np.float64)
    bands = [str(b) for b in bands]
    if data.ndim != 4 or data.shape[-1] != data.shape[-2]:
        raise ValueError(f"cutouts must have shape (N, B, S, S), got {data.shape}")
    n, n_bands, size = data.shape[:3]
    if len(bands) != n_bands:
        raise ValueError(f"{len(bands)} band names given for cutouts with {n_bands} bands")
    if size < 2 * int(_MOMENT_RADIUS) + 1:
        raise ValueError(f"cutouts must be at least {2 * int(_MOMENT_RADIUS) + 1} px, got {size}")
    if reference_band is None:
        reference_band = "F555W" if "F555W" in bands else bands[n_bands // 2]
    if reference_band not in bands:
        raise ValueError(f"reference_band {reference_band!r} is not one of {bands}")
    ref = bands.index(reference_band)
    image, noise = _background_subtracted(data)
    flat = image.reshape(n, n_bands, -1)
    fluxes = np.stack([flat @ _aperture_weights(size, r) for r in FEATURE_RADII], axis=-1)
    areas = np.array([np.pi * r**2 for r in FEATURE_RADII])
    floor = _FLOOR * noise[..., None] * np.sqrt(areas)
    positive = np.maximum(fluxes, floor)  # (N, B, R)
    ci = -2.5 * np.log10(positive[..., 0] / positive[..., 2])
    mag3 = -2.5 * np.log10(positive[..., 2])
    colours = mag3[:, :-1] - mag3[:, 1:]
    fractions = positive[..., 2] / positive[..., 2].sum(axis=1, keepdims=True)
    total = positive.sum(axis=1)  # all bands, (N, R)
    ratios = total[:, :-1] / total[:, -1:]
    wings_flux = flat.sum(axis=1) @ _aperture_weights(size, _WINGS[1], inner=_WINGS[0])
    wings = wings_flux / total[:, -1]
    ref_image = image[:, ref]
    size_px, ellipticity, offset = _moments(ref_image, size)
    peaks = _n_peaks(ref_image, noise[:, ref], size)
    asym = _asymmetry(ref_image, size)
    snr = fluxes[:, ref, 2] / (noise[:, ref] * np.sqrt(areas[2]))
    out = np.column_stack(
        [ci, colours, fractions, ratios, wings, size_px, ellipticity, offset, peaks, asym, snr]
    ).astype(np.float64)
    np.copyto(out, 0.0, where=~np.isfinite(out))
    return out, feature_names(bands)
