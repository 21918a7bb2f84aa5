"""Tests of the field simulator: they measure the simulated images, not the parameters."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.modeling import fitting, models
from astropy.table import Table
from astropy.wcs import WCS
from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry

from photutils_clusterclf.datasets import (
    HUMAN_LABEL_NOISE,
    eff_core_radius,
    mock_from_catalog,
    noisy_labels,
    plot_field,
    simulate_field,
)
from photutils_clusterclf.datasets.render import render_eff

from helpers import NGC1566_CATALOG


@pytest.fixture(scope="module")
def noiseless():
    """A high-S/N (noiseless) field without field stars, for measurements."""
    return simulate_field(
        shape=(400, 400), n_candidates=60, seed=11, noise=False, field_star_density=0
    )


@pytest.fixture(scope="module")
def noisy():
    return simulate_field(shape=(300, 300), n_candidates=40, seed=5, label_noise="human")


def _photometry(image, catalog, radii):
    xy = np.column_stack([catalog["PHANGS_X"], catalog["PHANGS_Y"]])
    apertures = [CircularAperture(xy, r) for r in radii] + [CircularAnnulus(xy, 7.0, 10.0)]
    phot = aperture_photometry(image, apertures)
    bkg = np.asarray(phot[f"aperture_sum_{len(radii)}"]) / apertures[-1].area
    return [
        np.asarray(phot[f"aperture_sum_{i}"]) - bkg * apertures[i].area for i in range(len(radii))
    ]


def _ci(image, catalog):
    f1, f3 = _photometry(image, catalog, (1.0, 3.0))
    good = (f1 > 0) & (f3 > 0)
    return np.where(good, -2.5 * np.log10(np.where(good, f1 / f3, 1.0)), np.nan)


def test_images_catalog_and_wcs(noisy):
    assert noisy.bands == ("F275W", "F336W", "F438W", "F555W", "F814W")
    for band, image in noisy.images.items():
        assert image.shape == (300, 300) and image.dtype == np.float32
        assert np.all(np.isfinite(image))
    scale = np.abs(noisy.wcs.pixel_scale_matrix.diagonal()) * 3600
    assert np.allclose(scale, 0.03962)
    cat = noisy.catalog
    for name in (
        "ID_PHANGS_CLUSTER",
        "PHANGS_X",
        "PHANGS_Y",
        "PHANGS_RA",
        "PHANGS_DEC",
        "PHANGS_CLUSTER_CLASS_HUMAN",
        "CLASS_TRUE",
        "PHANGS_F555W_VEGA",
        "PHANGS_CI",
    ):
        assert name in cat.colnames
    assert len(cat) == 40 and cat["CLASS_TRUE"].dtype == np.int16
    assert set(np.unique(cat["CLASS_TRUE"])) <= {1, 2, 3, 4}
    clusters = np.isin(cat["CLASS_TRUE"], (1, 2, 3))
    v = np.asarray(cat["PHANGS_F555W_VEGA"])[clusters]
    assert np.all((v > 18.5) & (v < 25.5))
    # candidates keep apart so that each is its own peak
    xy = np.column_stack([cat["PHANGS_X"], cat["PHANGS_Y"]])
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).T)
    assert d[np.triu_indices(len(xy), 1)].min() >= 8


def test_acs_band_has_broader_psf():
    field = simulate_field(shape=(120, 120), n_candidates=5, seed=2, instrument="acs", noise=False)
    assert "F435W" in field.bands and "F438W" not in field.bands
    assert 2.5 <= field.psf["F435W"]["fwhm"] <= 3.3


def _fit_fwhm(image, x, y, half=7):
    ix, iy = int(round(x)), int(round(y))
    stamp = image[iy - half : iy + half + 1, ix - half : ix + half + 1]
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    model = models.Moffat2D(
        amplitude=stamp.max(), x_0=x - ix, y_0=y - iy, gamma=1.5, alpha=2.0
    ) + models.Const2D(0.0)
    fit = fitting.LevMarLSQFitter()(model, xx, yy, stamp)
    return fit[0].fwhm


@pytest.mark.filterwarnings("ignore:The fit may be unsuccessful")
@pytest.mark.parametrize("instrument", ["wfc3", "acs"])
def test_measured_psf_fwhm_in_range(instrument):
    field = simulate_field(
        shape=(300, 300),
        n_candidates=40,
        seed=21,
        noise=False,
        field_star_density=0,
        class_mix=(0, 0, 0, 1),
        instrument=instrument,
    )
    cat = field.catalog
    stars = [
        i
        for i in range(len(cat))
        if cat["SIM_MORPHOLOGY"][i] == "star"
        and 10 < cat["PHANGS_X"][i] < 290
        and 10 < cat["PHANGS_Y"][i] < 290
    ]
    assert len(stars) >= 3
    for band in field.bands:
        fwhm = np.median(
            [_fit_fwhm(field.images[band], cat["PHANGS_X"][i], cat["PHANGS_Y"][i]) for i in stars]
        )
        low, high = (2.5, 3.3) if band == "F435W" else (1.7, 2.0)
        # the ranges are the Moffat's; the pixel response adds about 0.2 px
        assert low <= fwhm <= high + 0.3, (band, fwhm)


def test_concentration_index_stars_and_clusters(noiseless):
    cat = noiseless.catalog
    ci = _ci(noiseless.images["F555W"], cat)
    stars = np.asarray(cat["SIM_MORPHOLOGY"]) == "star"
    clusters = np.isin(cat["CLASS_TRUE"], (1, 2))
    assert stars.sum() >= 3 and clusters.sum() >= 10
    assert 1.05 <= np.median(ci[stars]) <= 1.3
    assert np.mean((ci[clusters] >= 1.3) & (ci[clusters] <= 2.3)) >= 0.9
    # (a few clusters have a bright neighbour in the background annulus)
    assert np.nanpercentile(ci[clusters], 10) > np.median(ci[stars]) + 0.1
    # the catalogue CI is that measurement
    assert np.allclose(cat["PHANGS_CI"], ci, equal_nan=True)


def test_young_clusters_are_bluer_than_old():
    field = simulate_field(
        shape=(400, 400),
        n_candidates=80,
        seed=4,
        noise=False,
        field_star_density=0,
        class_mix=(1, 1, 0, 0),
    )
    cat = field.catalog
    flux = {b: _photometry(field.images[b], cat, (3.0,))[0] for b in field.bands}
    with np.errstate(invalid="ignore"):
        ub = -2.5 * np.log10(flux["F336W"] / flux["F438W"]) + (23.53 - 24.99)
        vi = -2.5 * np.log10(flux["F555W"] / flux["F814W"]) + (25.83 - 24.70)
    age = np.asarray(cat["SIM_AGE"])
    bright = np.asarray(cat["PHANGS_F555W_VEGA"]) < 24.0
    young, old = (age == "young") & bright, (age == "old") & bright
    assert young.sum() >= 5 and old.sum() >= 5
    ub_young, ub_old = np.nanmedian(ub[young]), np.nanmedian(ub[old])
    vi_young, vi_old = np.nanmedian(vi[young]), np.nanmedian(vi[old])
    assert ub_young < ub_old - 0.7 and vi_young < vi_old - 0.4
    assert -1.9 < ub_young < -0.7 and 0.8 < vi_old < 1.6


def test_class_fractions_as_asked():
    mix = (0.1, 0.2, 0.3, 0.4)
    field = simulate_field(shape=(300, 300), n_candidates=50, seed=8, class_mix=mix, noise=False)
    counts = np.bincount(field.catalog["CLASS_TRUE"], minlength=5)[1:]
    assert np.all(np.abs(counts - 50 * np.array(mix)) <= 1)
    default = simulate_field(shape=(300, 300), n_candidates=100, seed=8, noise=False)
    counts = np.bincount(default.catalog["CLASS_TRUE"], minlength=5)[1:]
    assert np.all(np.abs(counts - 100 * np.array([0.19, 0.16, 0.28, 0.37])) <= 1)


def test_clusters_are_local_peaks_in_f555w():
    field = simulate_field(
        shape=(400, 400), n_candidates=70, seed=13, noise=False, field_star_density=1e-3
    )
    cat = field.catalog
    image = field.images["F555W"]
    for row in cat[np.isin(cat["CLASS_TRUE"], (1, 2, 3))]:
        ix, iy = int(round(row["PHANGS_X"])), int(round(row["PHANGS_Y"]))
        window = image[iy - 2 : iy + 3, ix - 2 : ix + 3]
        jy, jx = np.unravel_index(np.argmax(window), window.shape)
        assert max(abs(jy - 2), abs(jx - 2)) <= 1, row["SIM_MORPHOLOGY"]


def test_write_files_wcs_round_trip_and_no_clobber(noisy, tmp_path):
    paths = noisy.write(tmp_path)
    assert set(paths) == set(noisy.bands) | {"catalog"}
    assert (
        paths["F555W"].name == "hlsp_phangs-hst_hst_wfc3-uvis_sim-galaxy_f555w_v1_exp-drc-sci.fits"
    )
    assert paths["catalog"].name == (
        "hlsp_phangs-cat_hst_uvis_sim-galaxy_multi_v1_obs-sim-candidates.fits"
    )
    with fits.open(paths["F555W"]) as hdul:
        header, data = hdul[0].header, hdul[0].data
        assert header["FILTER"] == "F555W" and header["BUNIT"] == "ELECTRONS/S"
        assert header["TELESCOP"] == "HST" and header["INSTRUME"] == "WFC3"
        for key in ("PHOTFLAM", "EXPTIME", "TARGNAME", "DISTANCE"):
            assert key in header
        assert "DATE" not in header
        np.testing.assert_array_equal(data, noisy.images["F555W"])
        wcs = WCS(header)
    assert wcs.has_celestial
    cat = Table.read(paths["catalog"])
    sky = wcs.pixel_to_world(cat["PHANGS_X"], cat["PHANGS_Y"])
    ra, dec = np.asarray(cat["PHANGS_RA"]), np.asarray(cat["PHANGS_DEC"])
    sep = sky.separation(sky.__class__(ra, dec, unit="deg")).arcsec
    assert sep.max() < 0.01
    # an existing output refuses the whole write, before anything is written
    other = tmp_path / "other"
    other.mkdir()
    paths["catalog"].rename(other / paths["catalog"].name)
    for band in noisy.bands:
        paths[band].unlink()
    with pytest.raises(FileExistsError):
        noisy.write(other)
    assert sorted(p.name for p in other.iterdir()) == [paths["catalog"].name]
    assert set(noisy.write(other, overwrite=True)) == set(paths)


def test_same_seed_gives_identical_files(tmp_path):
    kwargs = dict(shape=(150, 150), n_candidates=15, seed=99, label_noise="human")
    a, b = simulate_field(**kwargs), simulate_field(**kwargs)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pa, pb = a.write(tmp_path / "a"), b.write(tmp_path / "b")
    for key in pa:
        assert pa[key].read_bytes() == pb[key].read_bytes()
    c = simulate_field(**{**kwargs, "seed": 100})
    assert not np.array_equal(a.images["F555W"], c.images["F555W"])


def test_label_noise_matrix_reproduced():
    rng = np.random.default_rng(0)
    true = np.repeat([1, 2, 3, 4], 5000)
    labels = noisy_labels(true, "human", rng)
    assert labels.dtype == np.int16
    for i in range(4):
        row = np.bincount(labels[true == i + 1], minlength=5)[1:] / 5000
        sigma = np.sqrt(HUMAN_LABEL_NOISE[i] * (1 - HUMAN_LABEL_NOISE[i]) / 5000)
        assert np.all(np.abs(row - HUMAN_LABEL_NOISE[i]) <= 4 * sigma + 1e-9)
    # independent labellers disagree; unlabelled rows stay 0; None is the identity
    assert np.mean(noisy_labels(true, "human", rng) != labels) > 0.3
    assert np.all(noisy_labels([0, 0], "human", rng) == 0)
    np.testing.assert_array_equal(noisy_labels(true, None, rng), true)
    with pytest.raises(ValueError, match="rows must sum|row must sum"):
        noisy_labels(true, np.full((4, 4), 0.3), rng)
    with pytest.raises(ValueError, match="human"):
        noisy_labels(true, "experts", rng)


def test_label_noise_only_on_human_column(noisy):
    cat = noisy.catalog
    assert np.any(cat["PHANGS_CLUSTER_CLASS_HUMAN"] != cat["CLASS_TRUE"])
    clean = simulate_field(shape=(300, 300), n_candidates=40, seed=5)
    np.testing.assert_array_equal(clean.catalog["CLASS_TRUE"], cat["CLASS_TRUE"])
    np.testing.assert_array_equal(
        clean.catalog["PHANGS_CLUSTER_CLASS_HUMAN"], clean.catalog["CLASS_TRUE"]
    )


def test_eff_core_radius_gives_half_light_at_r_eff():
    for eta in (1.0, 1.5, 2.5):
        r_eff = 6.0
        ix0, iy0, stamp = render_eff(50.0, 50.0, r_eff, eta)
        centre = (50 - ix0, 50 - iy0)
        inside = aperture_photometry(stamp, CircularAperture(centre, r_eff))["aperture_sum"][0]
        assert abs(inside - 0.5) < 0.02, eta
    # without truncation r_eff = a sqrt(2**(1 / (eta - 1)) - 1); a far truncation tends to it
    assert np.isclose(eff_core_radius(1.0, 2.0, truncation=1e4), 1.0, rtol=1e-3)
    with pytest.raises(ValueError, match="eta"):
        eff_core_radius(1.0, 0.5)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="instrument"):
        simulate_field(shape=(100, 100), n_candidates=2, instrument="nircam")
    with pytest.raises(ValueError, match="class_mix"):
        simulate_field(shape=(100, 100), n_candidates=2, class_mix=(1, 1))
    with pytest.raises(ValueError, match="shape"):
        simulate_field(shape=(10, 100), n_candidates=2)
    with pytest.raises(ValueError, match="cannot place"):
        simulate_field(shape=(60, 60), n_candidates=200)


def _read_legus():
    data = np.loadtxt(NGC1566_CATALOG)
    names = {
        "x": 1,
        "y": 2,
        "mag_f275w": 5,
        "mag_f336w": 7,
        "mag_f438w": 9,
        "mag_f555w": 11,
        "mag_f814w": 13,
        "class": 33,
    }
    return Table({name: data[:, col] for name, col in names.items()})


def test_mock_from_legus_catalog():
    table = _read_legus()
    x0, y0 = int(np.median(table["x"])) - 200, int(np.median(table["y"])) - 200
    region = (x0, x0 + 400, y0, y0 + 400)
    field = mock_from_catalog(table, origin=1, region=region, seed=3, noise=False)
    cat = field.catalog
    rows = np.asarray(cat["SOURCE_ROW"])
    assert len(cat) >= 10
    np.testing.assert_allclose(cat["PHANGS_X"], table["x"][rows] - 1 - x0)
    np.testing.assert_allclose(cat["PHANGS_Y"], table["y"][rows] - 1 - y0)
    human = np.asarray(table["class"][rows]).astype(int)
    np.testing.assert_array_equal(cat["PHANGS_CLUSTER_CLASS_HUMAN"], human)
    labelled = human > 0
    np.testing.assert_array_equal(cat["CLASS_TRUE"][labelled], human[labelled])
    v = np.asarray(table["mag_f555w"][rows])
    good = v < 90
    np.testing.assert_allclose(cat["PHANGS_F555W_VEGA"][good], v[good], atol=1e-6)
    # the objects are in the image: light above the surroundings at the positions
    f3 = _photometry(field.images["F555W"], cat, (3.0,))[0]
    assert np.mean(f3[good] > 0) > 0.9
    with pytest.raises(ValueError, match="origin"):
        mock_from_catalog(table, region=region)


def test_plot_field_writes_png(noisy, tmp_path):
    path = tmp_path / "field.png"
    plot_field(noisy, path, n_per_class=3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        plot_field(noisy, path)


def test_to_multiband_image(noisy):
    images = noisy.to_multiband_image()
    assert tuple(images.bands) == noisy.bands
    np.testing.assert_array_equal(images["F555W"], noisy.images["F555W"])


@pytest.mark.parametrize("shape", [(3, 3), (4, 2)])
def test_add_stamp_clips_at_the_edges(shape):
    from photutils_clusterclf.datasets.render import add_stamp

    stamp = np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape)
    image = np.zeros((6, 5))
    add_stamp(image, stamp, -1, 4, scale=2.0)  # one column off the left, rows off the bottom
    sy, sx = shape
    expected = np.zeros((6, 5))
    expected[4:6, 0 : sx - 1] = 2.0 * stamp[:2, 1:]
    assert np.array_equal(image, expected)
    add_stamp(image, stamp, 5, 0)  # entirely off the right edge: nothing added
    add_stamp(image, stamp, -sx, -sy)  # entirely off the top-left corner
    assert np.array_equal(image, expected)


def test_add_stamp_larger_than_the_image():
    from photutils_clusterclf.datasets.render import add_stamp

    stamp = np.arange(48.0).reshape(6, 8)
    image = np.zeros((3, 4))
    add_stamp(image, stamp, -2, -1)
    assert np.array_equal(image, stamp[1:4, 2:6])
