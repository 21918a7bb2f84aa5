"""Tests of detection-based simulated catalogues (`datasets.detected_catalog`)."""

import numpy as np
import pytest
from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry

from photutils_clusterclf.datasets import detected_catalog, simulate_field

KW = {"shape": (700, 700), "n_candidates": 90, "distance_mpc": 8.0, "seed": 11}


@pytest.fixture(scope="module")
def fields():
    return simulate_field(**KW), simulate_field(candidates="detected", **KW)


def test_detections_stand_out_and_keep_true_classes(fields):
    injected, detected = fields
    cat, inj = detected.catalog, injected.catalog
    assert 0 < len(cat) and cat.meta["CANDIDATES"] == "detected"
    # Same images: the option only changes the catalogue.
    np.testing.assert_array_equal(detected.images["F555W"], injected.images["F555W"])
    assert np.all(cat["PHANGS_CI"] >= 1.3)
    np.testing.assert_array_equal(cat["ID_PHANGS_CLUSTER"], np.arange(1, len(cat) + 1))
    # Every matched detection carries the class of the injected object it lies on.
    matched = np.asarray(cat["SIM_INJECTED_ID"]) > 0
    assert matched.mean() > 0.8
    src = inj[np.asarray(cat["SIM_INJECTED_ID"])[matched] - 1]
    np.testing.assert_array_equal(cat["CLASS_TRUE"][matched], src["CLASS_TRUE"])
    offset = np.hypot(
        np.asarray(cat["PHANGS_X"])[matched] - np.asarray(src["PHANGS_X"]),
        np.asarray(cat["PHANGS_Y"])[matched] - np.asarray(src["PHANGS_Y"]),
    )
    assert offset.max() <= 2.5
    assert len(set(cat["SIM_INJECTED_ID"][matched])) == matched.sum()  # one row per object
    assert np.all(cat["CLASS_TRUE"][~matched] == 4)
    # Each row stands out from its local annulus in F555W (r = 2 px vs 7-10 px).
    xy = np.column_stack([cat["PHANGS_X"], cat["PHANGS_Y"]])
    image = detected.images["F555W"]
    ap, ann = CircularAperture(xy, 2.0), CircularAnnulus(xy, 7.0, 10.0)
    stats = aperture_photometry(image, [ap, ann])
    bkg = np.asarray(stats["aperture_sum_1"]) / ann.area
    signal = np.asarray(stats["aperture_sum_0"]) - bkg * ap.area
    masks = ann.to_mask(method="center")
    noise = np.array([np.std(m.get_values(image)) for m in masks]) * np.sqrt(ap.area)
    assert np.mean(signal > 3 * noise) > 0.95


def test_detected_catalog_options(fields):
    injected, _ = fields
    strict = detected_catalog(injected, threshold=10.0, seed=0)
    loose = detected_catalog(injected, threshold=3.0, seed=0)
    assert len(strict) < len(loose)
    with pytest.raises(ValueError, match="band 'F999W' not in the field"):
        detected_catalog(injected, band="F999W")
    with pytest.raises(ValueError, match="candidates must be 'injected' or 'detected'"):
        simulate_field(candidates="found", **KW)
