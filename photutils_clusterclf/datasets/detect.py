"""Candidate catalogues as a detection pipeline selects them.

In PHANGS-HST a candidate is a source found in the images (DAOStarFinder on
the V band), then kept by a concentration-index cut, so every catalogue row
stands out from its local background. `detected_catalog` builds such a
catalogue for a simulated field and gives each detection the true class of
the injected source it recovers; `concentration_index` is the CI both it
and the simulated catalogues measure.
"""

import astropy.units as u
import numpy as np
from astropy.stats import sigma_clipped_stats
from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry
from photutils.detection import DAOStarFinder
from scipy.spatial import cKDTree

from .labels import label_noise_matrix, noisy_labels

__all__ = ["concentration_index", "detected_catalog"]

# Pixel-integrated stars measure about 0.2 px broader than the Moffat FWHM.
_PIXEL_BROADENING = 0.2


def concentration_index(image, x, y):
    """CI = mag(r = 1 px) - mag(r = 3 px), the background being the mean of a 7-10 px annulus.

    Returns an array of the CI at the pixel positions ``x``, ``y`` of
    ``image`` (NaN where a flux is not positive).
    """
    ci = np.full(x.size, np.nan)
    if x.size == 0:
        return ci
    xy = np.column_stack([x, y])
    apertures = [
        CircularAperture(xy, 1.0),
        CircularAperture(xy, 3.0),
        CircularAnnulus(xy, 7.0, 10.0),
    ]
    phot = aperture_photometry(image, apertures)
    bkg = np.asarray(phot["aperture_sum_2"], dtype=float) / apertures[2].area
    f1 = np.asarray(phot["aperture_sum_0"], dtype=float) - bkg * apertures[0].area
    f3 = np.asarray(phot["aperture_sum_1"], dtype=float) - bkg * apertures[1].area
    good = (f1 > 0) & (f3 > 0)
    ci[good] = -2.5 * np.log10(f1[good] / f3[good])
    return ci


def _detect(image, *, fwhm, threshold, ci_min):
    """Positions and CIs of the compact sources DAOStarFinder finds in ``image``."""
    _, _, std = sigma_clipped_stats(image, sigma=3.0, maxiters=5)
    sources = DAOStarFinder(fwhm=fwhm, threshold=threshold * std)(image)
    if sources is None:
        xs = ys = np.zeros(0)
    else:
        # photutils >= 3 names them x_centroid (xcentroid is deprecated there).
        names = (
            ("x_centroid", "y_centroid")
            if "x_centroid" in sources.colnames
            else ("xcentroid", "ycentroid")
        )
        xs, ys = (np.asarray(sources[n], dtype=float) for n in names)
    ci = concentration_index(image, xs, ys)
    keep = np.isfinite(ci) & (ci >= ci_min)
    return xs[keep], ys[keep], ci[keep]


def _match(xs, ys, injected, *, match_radius, merge_radius):
    """Match detections to the injected candidates.

    Returns the detections kept (indices into ``xs``), the nearest injected
    candidate of each detection and whether each kept detection is a
    match. Detections near a candidate that is already matched are merged
    into that match (dropped).
    """
    inj_xy = np.column_stack([np.asarray(injected["PHANGS_X"]), np.asarray(injected["PHANGS_Y"])])
    if xs.size:
        dist, near = cKDTree(inj_xy).query(np.column_stack([xs, ys]))
    else:
        dist, near = np.zeros(0), np.zeros(0, dtype=int)
    matched = dist <= match_radius
    # The nearest detection of each injected candidate is its match.
    first = np.zeros(xs.size, dtype=bool)
    order = np.argsort(dist)
    _, first_of = np.unique(near[order[matched[order]]], return_index=True)
    first[order[matched[order]][first_of]] = True
    merged = ~first & (dist <= merge_radius) & np.isin(near, near[first])
    rows = np.flatnonzero(~merged & (first | ~matched))
    return rows, near, first[rows]


def detected_catalog(
    field,
    *,
    band="F555W",
    threshold=3.0,
    ci_min=1.3,
    match_radius=2.5,
    merge_radius=6.0,
    label_noise=None,
    seed=None,
):
    """The candidate catalogue of a simulated field, built from detections.

    1. `~photutils.detection.DAOStarFinder` on the ``band`` image (FWHM of
       that band's PSF), threshold ``threshold`` times the sigma-clipped
       standard deviation of the image;
    2. concentration index (``PHANGS_CI``, 1 px vs 3 px apertures, local
       background) measured at each detection; detections with
       ``CI < ci_min`` (point sources) are dropped, as in PHANGS;
    3. each remaining detection is matched to the nearest injected
       candidate within ``match_radius`` px and takes over its row (true
       class, human-like label, magnitudes, simulation truth) at the
       detected position. Of several detections of one injected candidate
       only the nearest is kept, and further detections within
       ``merge_radius`` px of an injected candidate are merged into it
       (the peaks of one association). The other detections (field stars,
       neighbours, noise) are class 4 with ``SIM_MORPHOLOGY = "detection"``
       and a human-like label drawn with ``label_noise``.

    Injected candidates without a detection are not in the catalogue.

    Parameters
    ----------
    field : `~photutils_clusterclf.datasets.SimulatedField`
        A simulated field (its ``catalog`` is the injected list).
    band : str, optional
        Detection band.
    threshold : float, optional
        Detection threshold in units of the image noise.
    ci_min : float, optional
        Smallest concentration index kept (stars are about 1.2).
    match_radius, merge_radius : float, optional
        Pixels; see above.
    label_noise : None, "human" or array-like (4, 4), optional
        Noise of the human-like labels of unmatched detections; default the
        field's own (``catalog.meta["LABNOISE"]`` when it is a name).
    seed : int, optional
        Seed of those labels.

    Returns
    -------
    `~astropy.table.QTable`
        The columns of ``field.catalog``, one row per kept detection,
        ``ID_PHANGS_CLUSTER`` renumbered from 1, plus ``SIM_INJECTED_ID``
        (0 for unmatched detections).
    """
    if band not in field.images:
        raise ValueError(f"band {band!r} not in the field; bands are {list(field.images)}")
    injected = field.catalog
    if not len(injected):
        raise ValueError("the field has no injected candidates to match detections to")
    if label_noise is None:
        label_noise = injected.meta.get("LABNOISE", "none")
        if label_noise == "matrix":
            raise ValueError("the field's label noise was a matrix: pass label_noise")
    matrix = label_noise_matrix(label_noise)
    fwhm = field.psf.get(band, {}).get("fwhm", 1.8) + _PIXEL_BROADENING
    xs, ys, ci = _detect(field.images[band], fwhm=fwhm, threshold=threshold, ci_min=ci_min)
    rows, near, is_match = _match(
        xs, ys, injected, match_radius=match_radius, merge_radius=merge_radius
    )
    other = ~is_match

    out = injected[near[rows]]
    rng = np.random.default_rng(seed)
    out["CLASS_TRUE"][other] = 4
    out["PHANGS_CLUSTER_CLASS_HUMAN"][other] = (
        noisy_labels(np.full(int(other.sum()), 4), matrix, rng) if matrix is not None else 4
    )
    out["SIM_MORPHOLOGY"] = np.where(
        is_match, np.asarray(out["SIM_MORPHOLOGY"], dtype=str), "detection"
    )
    out["SIM_AGE"] = np.where(is_match, np.asarray(out["SIM_AGE"], dtype=str), "")
    for name in out.colnames:
        if name.endswith("_VEGA") or name == "SIM_REFF_PC":
            out[name][other] = np.nan
    out["ID_PHANGS_CLUSTER"] = np.arange(1, rows.size + 1, dtype=np.int32)
    out["PHANGS_X"], out["PHANGS_Y"] = xs[rows], ys[rows]
    sky = field.wcs.pixel_to_world(xs[rows], ys[rows])
    out["PHANGS_RA"], out["PHANGS_DEC"] = sky.ra.to(u.deg), sky.dec.to(u.deg)
    out["PHANGS_CI"] = ci[rows]
    out["SIM_INJECTED_ID"] = np.where(
        is_match, np.asarray(injected["ID_PHANGS_CLUSTER"])[near[rows]], 0
    ).astype(np.int32)
    out.meta["CANDIDATES"] = "detected"
    return out
