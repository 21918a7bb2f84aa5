"""Tests of photutils_clusterclf.positions."""

import warnings

import astropy.units as u
import helpers
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, QTable, Table
from astropy.utils.exceptions import AstropyUserWarning
from regions import (
    CirclePixelRegion,
    CircleSkyRegion,
    EllipsePixelRegion,
    PixCoord,
    PointPixelRegion,
    PointSkyRegion,
    Regions,
)

from photutils_clusterclf.catalogs import read_candidates
from photutils_clusterclf.columns import PIXEL_COLUMNS, SKY_COLUMNS
from photutils_clusterclf.images import MultiBandImage
from photutils_clusterclf.positions import (
    Positions,
    band_pixel_positions,
    resolve_positions,
)

SHAPE = (60, 80)


def make_wcs(*, crpix=(40.0, 30.0), scale=0.0396, crval=(150.1, 2.2), radesys="ICRS", rot=0.0):
    return helpers.make_wcs(
        crpix=crpix, crval=crval, scale_arcsec=scale, rotation_deg=rot, radesys=radesys
    )


@pytest.fixture
def wcs():
    return make_wcs()


@pytest.fixture
def images(wcs):
    arrays = {b: np.zeros(SHAPE, dtype=np.float32) for b in ("F438W", "F555W", "F814W")}
    return MultiBandImage.from_arrays(arrays, wcs=wcs)


@pytest.fixture
def xy():
    rng = np.random.default_rng(1)
    return rng.uniform(0, 79, 20), rng.uniform(0, 59, 20)


# ---------------------------------------------------------------- tables, pixel


@pytest.mark.parametrize("pair,implied", PIXEL_COLUMNS)
def test_every_pixel_alias(pair, implied, xy):
    x, y = xy
    t = Table({pair[0]: x, pair[1]: y})
    origin = None if implied is not None else 0
    pos = resolve_positions(t, origin=origin)
    np.testing.assert_array_equal(pos.x, x)
    np.testing.assert_array_equal(pos.y, y)
    assert pos.x.dtype == np.float64
    assert f"{pair[0]}/{pair[1]}" in pos.description


def test_aliases_are_case_insensitive_and_ordered(xy):
    x, y = xy
    t = Table({"X": x + 1, "Y": y + 1, "phangs_x": x, "phangs_y": y})
    pos = resolve_positions(t)  # PHANGS_X before X, and it implies origin 0
    np.testing.assert_array_equal(pos.x, x)
    assert "phangs_x/phangs_y (origin=0)" in pos.description


def test_plain_xy_needs_origin(xy):
    t = Table({"x": xy[0], "y": xy[1]})
    with pytest.raises(
        ValueError,
        match=r"pixel columns x/y have no known origin: "
        r"pass origin=0 \(numpy/photutils\) or origin=1 "
        r"\(FITS/IRAF/DS9/LEGUS\)",
    ):
        resolve_positions(t)


def test_origin_one_and_meta(xy):
    x, y = xy
    t = Table({"x": x, "y": y})
    pos = resolve_positions(t, origin=1)
    np.testing.assert_allclose(pos.x, x - 1)
    np.testing.assert_allclose(pos.y, y - 1)
    t.meta["origin"] = 1
    np.testing.assert_allclose(resolve_positions(t).x, x - 1)
    # explicit origin beats the meta, meta beats the PHANGS_X convention
    np.testing.assert_allclose(resolve_positions(t, origin=0).x, x)
    tp = Table({"PHANGS_X": x, "PHANGS_Y": y}, meta={"origin": 1})
    np.testing.assert_allclose(resolve_positions(tp).x, x - 1)


def test_bad_origin_values(xy):
    t = Table({"x": xy[0], "y": xy[1]}, meta={"origin": "FITS"})
    with pytest.raises(ValueError, match="must be 0 or 1"):
        resolve_positions(t)
    with pytest.raises(ValueError, match="origin must be 0 or 1"):
        resolve_positions(t, origin=2)


def test_legus_file_is_one_based():
    """Real LEGUS rows: 1-based x/y in the file become 0-based."""
    data = np.loadtxt(helpers.NGC1566_CATALOG, usecols=(1, 2), max_rows=50)
    t = Table({"x": data[:, 0], "y": data[:, 1]}, meta={"origin": 1})
    pos = resolve_positions(t)
    np.testing.assert_allclose(pos.x, data[:, 0] - 1)
    np.testing.assert_allclose(pos.y, data[:, 1] - 1)
    assert pos.x[0] == pytest.approx(3005.141)


def test_masked_nan_inf_rows_kept(xy):
    x, y = xy
    mx = MaskedColumn(x.copy(), mask=np.zeros(20, bool))
    mx.mask[3] = True
    yy = y.copy()
    yy[5] = np.nan
    yy[7] = np.inf
    t = Table({"x_centroid": mx, "y_centroid": yy})
    pos = resolve_positions(t)
    assert len(pos) == 20
    assert np.isnan(pos.x[3]) and np.isnan(pos.y[5]) and np.isnan(pos.y[7])
    assert np.flatnonzero(~pos.valid).tolist() == [3, 5, 7]
    np.testing.assert_array_equal(pos.x[pos.valid], x[pos.valid])


def test_masked_quantity_columns(wcs, images, xy):
    sky = wcs.pixel_to_world(*xy)
    t = QTable(masked=True)
    t["ra"] = sky.ra.to(u.deg)
    t["dec"] = sky.dec.to(u.deg)
    t["ra"].mask[2] = True
    pos = resolve_positions(t, images)
    assert np.isnan(pos.x[2]) and np.isnan(pos.y[2])
    np.testing.assert_allclose(pos.x[3:], xy[0][3:], atol=1e-6)


def test_pixel_column_units(xy):
    t = QTable({"x_centroid": xy[0] * u.pix, "y_centroid": xy[1] * u.pix})
    np.testing.assert_array_equal(resolve_positions(t).x, xy[0])
    t = QTable({"x_centroid": xy[0] * u.deg, "y_centroid": xy[1] * u.deg})
    with pytest.raises(ValueError, match="wrong units"):
        resolve_positions(t)


def test_no_columns_lists_accepted_names():
    t = Table({"flux": [1.0], "id": [1]})
    with pytest.raises(ValueError) as err:
        resolve_positions(t)
    msg = str(err.value)
    for pair, _ in PIXEL_COLUMNS:
        assert "/".join(pair) in msg
    for pair in SKY_COLUMNS:
        assert "/".join(pair) in msg
    assert "SkyCoord" in msg and "flux" in msg
    assert "\n" not in msg


def test_columns_override(xy, images, wcs):
    x, y = xy
    t = Table({"PHANGS_X": x, "PHANGS_Y": y, "cx": x + 3, "cy": y + 4})
    pos = resolve_positions(t, columns=("cx", "cy"), origin=0)
    np.testing.assert_allclose(pos.x, x + 3)
    with pytest.raises(ValueError, match="no known origin"):
        resolve_positions(t, columns=("cx", "cy"))
    with pytest.raises(ValueError, match="nope not in the table"):
        resolve_positions(t, columns=("cx", "nope"))
    # an angular pair is sky
    sky = wcs.pixel_to_world(x, y)
    t2 = QTable({"lon": sky.ra, "lat": sky.dec})
    pos = resolve_positions(t2, images, columns=("lon", "lat"))
    np.testing.assert_allclose(pos.x, x, atol=1e-6)
    assert pos.description == "sky columns lon/lat"


# ---------------------------------------------------------------- tables, sky


@pytest.mark.parametrize("pair", SKY_COLUMNS)
def test_every_sky_alias(pair, images, wcs, xy):
    sky = wcs.pixel_to_world(*xy)
    t = Table({pair[0]: sky.ra.deg, pair[1]: sky.dec.deg})  # plain floats: degrees
    pos = resolve_positions(t, images)
    np.testing.assert_allclose(pos.x, xy[0], atol=1e-6)
    np.testing.assert_allclose(pos.y, xy[1], atol=1e-6)


def test_sky_units_converted_and_checked(images, wcs, xy):
    sky = wcs.pixel_to_world(*xy)
    t = QTable({"RA": sky.ra.to(u.hourangle), "DEC": sky.dec.to(u.arcsec)})
    pos = resolve_positions(t, images)
    np.testing.assert_allclose(pos.x, xy[0], atol=1e-6)
    t = Table({"ra": sky.ra.deg, "dec": sky.dec.deg})
    t["dec"].unit = u.m
    with pytest.raises(ValueError, match="wrong units"):
        resolve_positions(t, images)


def test_skycoord_column(images, wcs, xy):
    """photutils SourceCatalog tables carry a sky_centroid SkyCoord column."""
    t = QTable({"id": np.arange(20)})
    t["sky_centroid"] = wcs.pixel_to_world(*xy).transform_to("fk5")
    pos = resolve_positions(t, images)
    np.testing.assert_allclose(pos.x, xy[0], atol=1e-6)
    assert "sky_centroid" in pos.description
    pos = resolve_positions(t, images, columns="sky_centroid")
    np.testing.assert_allclose(pos.y, xy[1], atol=1e-6)
    with pytest.raises(ValueError, match="not a SkyCoord column"):
        resolve_positions(t, images, columns="id")


def test_sky_needs_wcs(xy):
    t = Table({"ra": [150.0], "dec": [2.0]})
    with pytest.raises(ValueError, match="needs a WCS"):
        resolve_positions(t)
    no_wcs = MultiBandImage.from_arrays({"F555W": np.zeros(SHAPE)})
    with pytest.raises(ValueError, match="needs a WCS"):
        resolve_positions(t, no_wcs)
    with pytest.raises(ValueError, match="needs a WCS"):
        resolve_positions(SkyCoord(150, 2, unit="deg"))


def test_pixel_and_sky_agree_no_warning(images, wcs, xy):
    sky = wcs.pixel_to_world(*xy)
    t = Table(
        {"PHANGS_X": xy[0], "PHANGS_Y": xy[1], "PHANGS_RA": sky.ra.deg, "PHANGS_DEC": sky.dec.deg}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pos = resolve_positions(t, images)
    assert pos.description.startswith("pixel columns PHANGS_X")
    pos = resolve_positions(t, images, use="sky")
    assert pos.description == "sky columns PHANGS_RA/PHANGS_DEC"
    np.testing.assert_allclose(pos.x, xy[0], atol=1e-6)


def test_pixel_and_sky_disagree_warns(images, wcs, xy):
    """A 1-based table read as 0-based is off by sqrt(2) px: warned about."""
    sky = wcs.pixel_to_world(*xy)
    t = Table({"x": xy[0] + 1, "y": xy[1] + 1, "ra": sky.ra.deg, "dec": sky.dec.deg})
    with pytest.warns(
        AstropyUserWarning,
        match=r"disagree .* for 100\.0% of rows "
        r"\(median offset 1\.41 px\); using the pixel columns x/y",
    ):
        pos = resolve_positions(t, images, origin=0)
    np.testing.assert_allclose(pos.x, xy[0] + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pos = resolve_positions(t, images, origin=1)
        resolve_positions(t, images, origin=0, use="pixel")  # explicit: no check
    np.testing.assert_allclose(pos.x, xy[0])


def test_disagreement_threshold_is_one_percent(images, wcs):
    x = np.linspace(1, 70, 200)
    y = np.linspace(1, 50, 200)
    sky = wcs.pixel_to_world(x, y)
    xs = x.copy()
    xs[:2] += 5  # 1 % of the rows: tolerated
    t = Table({"x_centroid": xs, "y_centroid": y, "ra": sky.ra.deg, "dec": sky.dec.deg})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_positions(t, images)
    t["x_centroid"][2] += 5  # 1.5 %
    with pytest.warns(AstropyUserWarning, match="1.5% of rows"):
        resolve_positions(t, images)


def test_missing_origin_hints_sky(images, xy):
    t = Table({"x": xy[0], "y": xy[1], "ra": [150.1] * 20, "dec": [2.2] * 20})
    with pytest.raises(ValueError, match=r"origin=1 .*\(or use='sky'\)"):
        resolve_positions(t, images)


def test_use_errors(xy, images):
    with pytest.raises(ValueError, match="no sky columns"):
        resolve_positions(Table({"x_fit": xy[0], "y_fit": xy[1]}), images, use="sky")
    with pytest.raises(ValueError, match="no pixel columns"):
        resolve_positions(Table({"ra": [1.0], "dec": [2.0]}), images, use="pixel")
    with pytest.raises(ValueError, match="use must be"):
        resolve_positions(Table({"x_fit": xy[0], "y_fit": xy[1]}), use="both")


def test_table_frame_plain_columns_use_wcs_frame(xy):
    """Plain RA/Dec are in the WCS's frame: no ICRS->FK5 shift is applied."""
    fk5 = make_wcs(radesys="FK5")
    img = MultiBandImage.from_arrays({"F555W": np.zeros(SHAPE)}, wcs=fk5)
    world = fk5.pixel_to_world_values(*xy)
    pos = resolve_positions(Table({"ra": world[0], "dec": world[1]}), img)
    np.testing.assert_allclose(pos.x, xy[0], atol=1e-6)


# ---------------------------------------------------------------- other inputs


def test_skycoord_scalar_and_array(images, wcs, xy):
    sky = wcs.pixel_to_world(*xy)
    pos = resolve_positions(sky, images)
    np.testing.assert_allclose(pos.x, xy[0], atol=1e-6)
    np.testing.assert_allclose(pos.y, xy[1], atol=1e-6)
    one = resolve_positions(sky[4], images)
    assert one.x.shape == (1,)
    assert one.x[0] == pytest.approx(xy[0][4], abs=1e-6)
    # a SkyCoord in another frame is transformed properly
    gal = resolve_positions(sky.galactic, images)
    np.testing.assert_allclose(gal.x, xy[0], atol=1e-5)
    # a WCS may be passed instead of images
    np.testing.assert_allclose(resolve_positions(sky, wcs).x, xy[0], atol=1e-6)


def test_array_input(xy):
    arr = np.column_stack(xy)
    pos = resolve_positions(arr)
    np.testing.assert_array_equal(pos.x, xy[0])
    assert "origin=0" in pos.description
    np.testing.assert_allclose(resolve_positions(arr, origin=1).y, xy[1] - 1)
    masked = np.ma.array(arr, mask=np.zeros(arr.shape, bool))
    masked.mask[1, 0] = True
    arr2 = arr.copy()
    arr2[2, 1] = np.inf
    assert np.isnan(resolve_positions(masked).x[1])
    assert np.isnan(resolve_positions(arr2).y[2])
    with pytest.raises(ValueError, match=r"\(N, 2\) array"):
        resolve_positions(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(N, 2\) array"):
        resolve_positions(42)


def test_pixel_regions(xy):
    regs = [
        PointPixelRegion(PixCoord(xy[0][0], xy[1][0])),
        CirclePixelRegion(PixCoord(xy[0][1], xy[1][1]), radius=3),
    ]
    for source in (regs, Regions(regs)):
        pos = resolve_positions(source)
        np.testing.assert_array_equal(pos.x, xy[0][:2])
        np.testing.assert_array_equal(pos.y, xy[1][:2])
    single = resolve_positions(regs[1])
    assert single.x.tolist() == [xy[0][1]]
    with pytest.raises(ValueError, match="already 0-based"):
        resolve_positions(regs, origin=1)


def test_sky_and_mixed_regions(images, wcs, xy):
    sky = wcs.pixel_to_world(*xy)
    regs = [
        PointSkyRegion(sky[0]),
        CircleSkyRegion(sky[1], 1 * u.arcsec),
        PointPixelRegion(PixCoord(xy[0][2], xy[1][2])),
        PointSkyRegion(sky[3].fk5),
        CircleSkyRegion(sky[4].galactic, 1 * u.arcsec),
        PointSkyRegion(sky[5]),
    ]
    pos = resolve_positions(Regions(regs), images)
    np.testing.assert_allclose(pos.x, xy[0][:6], atol=1e-5)
    np.testing.assert_allclose(pos.y, xy[1][:6], atol=1e-5)
    assert "mixed" in pos.description
    with pytest.raises(ValueError, match="needs a WCS"):
        resolve_positions(regs[:2])


def test_unsupported_region_shape():
    regs = [PointPixelRegion(PixCoord(1, 2)), EllipsePixelRegion(PixCoord(1, 2), width=3, height=2)]
    with pytest.raises(
        ValueError,
        match="EllipsePixelRegion at index 1; accepted: "
        "PointPixelRegion, CirclePixelRegion, PointSkyRegion, "
        "CircleSkyRegion",
    ):
        resolve_positions(regs)


def test_ds9_file_is_one_based_on_disk(tmp_path, images, wcs):
    """DS9 files are 1-based; the regions reader returns 0-based centres."""
    sky = wcs.pixel_to_world(10.0, 20.0)
    path = tmp_path / "cands.reg"
    path.write_text(
        "# Region file format: DS9\nimage\ncircle(11,21,3)\npoint(1,1)\n"
        f"fk5\npoint({sky.fk5.ra.deg:.10f},{sky.fk5.dec.deg:.10f})\n"
    )
    pos = resolve_positions(read_candidates(path), images)
    np.testing.assert_allclose(pos.x, [10, 0, 10], atol=1e-5)
    np.testing.assert_allclose(pos.y, [20, 0, 20], atol=1e-5)
    assert "mixed" in pos.description


def test_photutils_find_peaks_output_is_recognised(images, wcs):
    from photutils.detection import find_peaks

    data = np.zeros(SHAPE)
    data[12, 30] = data[40, 7] = 10.0
    peaks = find_peaks(data, threshold=1.0, wcs=wcs)
    pos = resolve_positions(peaks)
    assert pos.description == "pixel columns x_peak/y_peak (origin=0)"
    np.testing.assert_array_equal(sorted(zip(pos.x, pos.y)), [(7, 40), (30, 12)])
    sky = resolve_positions(peaks, images, use="sky")
    assert "skycoord_peak" in sky.description
    np.testing.assert_allclose(sorted(sky.x), [7, 30], atol=1e-6)


def test_paths_and_none_are_refused_with_their_own_messages(tmp_path):
    # Files are read at the I/O edge (read_candidates), not here.
    with pytest.raises(TypeError, match="read_candidates"):
        resolve_positions(tmp_path / "cands.reg")
    with pytest.raises(ValueError, match="found nothing"):
        resolve_positions(None)


def test_read_candidates_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_candidates(tmp_path / "missing.reg")
    bad = tmp_path / "bad.reg"
    bad.write_text("# Region file format: DS9\nimage\ncircle(1,2\n")
    with pytest.raises(ValueError, match="bad.reg"):
        read_candidates(bad)


def test_empty_inputs():
    assert len(resolve_positions(Table({"x_centroid": [], "y_centroid": []}))) == 0
    assert len(resolve_positions(Regions([]))) == 0
    assert len(resolve_positions(np.zeros((0, 2)))) == 0


def test_positions_dataclass():
    p = Positions(np.array([1.0, np.nan]), np.array([2.0, 3.0]), "test")
    assert len(p) == 2
    assert p.valid.tolist() == [True, False]


# ---------------------------------------------------------------- band_pixel_positions


def test_band_positions_same_grid_share_arrays(images, xy):
    x, y = np.asarray(xy[0]), np.asarray(xy[1])
    out = band_pixel_positions(images, x, y)
    assert list(out) == list(images.bands)
    for bx, by in out.values():
        assert bx is x and by is y


def test_band_positions_through_wcs(xy):
    """A shifted, rescaled, rotated band grid: exact to 1e-6 px both ways."""
    ref = make_wcs(radesys="ICRS")
    other = make_wcs(crpix=(17.3, 44.9), scale=0.0396 * 1.7, rot=12.0, radesys="FK5")
    arrays = {"F555W": np.zeros(SHAPE), "F275W": np.zeros((40, 50))}
    img = MultiBandImage.from_arrays(arrays, wcs={"F555W": ref, "F275W": other})
    x = np.append(xy[0], [np.nan, 5.0])
    y = np.append(xy[1], [3.0, np.inf])
    out = band_pixel_positions(img, x, y)
    bx, by = out["F275W"]
    assert np.isnan(bx[-2:]).all() and np.isnan(by[-2:]).all()
    # expected: the same sky point through the band's WCS
    ex, ey = other.world_to_pixel(ref.pixel_to_world(x[:-2], y[:-2]))
    np.testing.assert_allclose(bx[:-2], ex, atol=1e-6)
    np.testing.assert_allclose(by[:-2], ey, atol=1e-6)
    # scale: positions shrink by 1.7 around the reference point
    assert not np.allclose(bx[:-2], x[:-2], atol=1)
    # round trip back onto the reference grid
    rx, ry = ref.world_to_pixel(other.pixel_to_world(bx[:-2], by[:-2]))
    np.testing.assert_allclose(rx, x[:-2], atol=1e-6)
    np.testing.assert_allclose(ry, y[:-2], atol=1e-6)
    np.testing.assert_array_equal(out["F555W"][0], x)


def test_band_positions_shift_is_exact():
    ref = make_wcs()
    shifted = make_wcs(crpix=(40.0 + 2.5, 30.0 - 1.25))
    arrays = {"F555W": np.zeros(SHAPE), "F814W": np.zeros(SHAPE)}
    img = MultiBandImage.from_arrays(arrays, wcs={"F555W": ref, "F814W": shifted})
    x = np.array([0.0, 10.0, 79.0])
    y = np.array([0.0, 33.3, 59.0])
    bx, by = band_pixel_positions(img, x, y)["F814W"]
    np.testing.assert_allclose(bx, x + 2.5, atol=1e-6)
    np.testing.assert_allclose(by, y - 1.25, atol=1e-6)


def test_band_positions_errors(images):
    with pytest.raises(ValueError, match="same shape"):
        band_pixel_positions(images, [1.0, 2.0], [1.0])
