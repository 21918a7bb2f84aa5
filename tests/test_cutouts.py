"""Tests of photutils_clusterclf.cutouts."""

import numpy as np
import pytest
from astropy.io import fits

from photutils_clusterclf.cutouts import (
    FLAG_INVALID_POSITION,
    FLAG_NAN,
    FLAG_NO_COVERAGE,
    FLAG_NO_OVERLAP,
    FLAG_PARTIAL,
    NOT_CLASSIFIABLE,
    CutoutBatch,
    extract_cutouts,
    iter_cutout_batches,
)
from photutils_clusterclf.images import MultiBandImage

import helpers

SHAPE = (40, 50)


def make_wcs(crpix=(20.0, 15.0), scale_deg=1.1e-5):
    return helpers.make_wcs(crpix=crpix, crval=(24.17, 15.78), scale_arcsec=scale_deg * 3600)


def field(offset=0.0, shape=SHAPE):
    """Distinct, non-zero values everywhere: value = 1 + offset + row * 1000 + col."""
    rows, cols = np.indices(shape)
    return (1 + offset + rows * 1000.0 + cols).astype(np.float32)


@pytest.fixture
def images():
    return MultiBandImage.from_arrays(
        {"F336W": field(0.25), "F555W": field(0.5), "F814W": field(0.75)}
    )


def test_constants():
    assert (
        FLAG_PARTIAL,
        FLAG_NAN,
        FLAG_NO_OVERLAP,
        FLAG_NO_COVERAGE,
        FLAG_INVALID_POSITION,
    ) == (1, 2, 4, 8, 16)
    assert NOT_CLASSIFIABLE == 4 | 8 | 16


@pytest.mark.parametrize("size", [5, 6, 32, 1])
def test_interior_equals_direct_slice(images, size):
    x = np.array([24.0, 25.4, 24.6, 30.5, 19.49])
    y = np.array([19.0, 20.2, 18.5, 21.5, 20.0])
    batch = extract_cutouts(images, x, y, size=size) if size < 32 else None
    if size == 32:
        # Needs a bigger image to be interior.
        big = MultiBandImage.from_arrays({"F555W": field(shape=(80, 90))})
        batch = extract_cutouts(big, x + 20, y + 20, size=size)
        x, y, images = x + 20, y + 20, big
    assert isinstance(batch, CutoutBatch)
    assert batch.data.shape == (5, len(images), size, size)
    assert batch.data.dtype == np.float32 and batch.data.dtype.isnative
    assert batch.flags.dtype == np.int16
    assert batch.bands == images.bands and batch.size == size and len(batch) == 5
    np.testing.assert_array_equal(batch.flags, 0)
    assert batch.classifiable.all()
    for i in range(len(x)):
        cx, cy = int(np.floor(x[i] + 0.5)), int(np.floor(y[i] + 0.5))
        for b, band in enumerate(images.bands):
            expected = images[band][
                cy - size // 2 : cy - size // 2 + size,
                cx - size // 2 : cx - size // 2 + size,
            ]
            np.testing.assert_array_equal(batch.data[i, b], expected)
            # The centre pixel sits at index size // 2.
            assert batch.data[i, b, size // 2, size // 2] == images[band][cy, cx]


def test_even_size_span(images):
    batch = extract_cutouts(images, [10.0], [12.0], size=4, bands=["F555W"])
    data = images["F555W"]
    # Even size 4 centred on (12, 10): rows 10..13, columns 8..11.
    np.testing.assert_array_equal(batch.data[0, 0], data[10:14, 8:12])


def test_bands_subset_and_order(images):
    batch = extract_cutouts(images, [20.0], [20.0], size=3, bands=["f814w", "F336W"])
    assert batch.bands == ("F814W", "F336W")
    np.testing.assert_array_equal(batch.data[0, 0], images["F814W"][19:22, 19:22])
    np.testing.assert_array_equal(batch.data[0, 1], images["F336W"][19:22, 19:22])
    with pytest.raises(KeyError, match="F275W"):
        extract_cutouts(images, [20.0], [20.0], size=3, bands=["F275W"])


def test_edge_objects_partial(images):
    size = 6
    ny, nx = SHAPE
    # Left edge, bottom-right corner, top edge.
    x = np.array([1.0, nx - 2.0, 25.0])
    y = np.array([20.0, ny - 1.0, 0.0])
    batch = extract_cutouts(images, x, y, size=size, nan_threshold=1.0)
    np.testing.assert_array_equal(batch.flags, FLAG_PARTIAL)
    data = images["F555W"]
    cut = batch.data[:, 1]
    # Left edge: columns -2, -1 are padding, the rest the image.
    assert np.isnan(cut[0, :, :2]).all()
    np.testing.assert_array_equal(cut[0, :, 2:], data[17:23, 0:4])
    # Corner: rows ny-4..ny+1 and columns nx-5..nx: last 2 rows, last column padded.
    assert np.isnan(cut[1, 4:, :]).all() and np.isnan(cut[1, :, 5]).all()
    np.testing.assert_array_equal(cut[1, :4, :5], data[ny - 4 :, nx - 5 :])
    # Top edge (row 0): rows -3..-1 padded.
    assert np.isnan(cut[2, :3]).all()
    np.testing.assert_array_equal(cut[2, 3:], data[0:3, 22:28])
    # Padding counts as missing data for FLAG_NAN.
    flags = extract_cutouts(images, x, y, size=size, nan_threshold=0.25).flags
    np.testing.assert_array_equal(flags & FLAG_NAN, [FLAG_NAN, FLAG_NAN, FLAG_NAN])
    assert batch.classifiable.all()


def test_centre_off_image_is_no_coverage(images):
    batch = extract_cutouts(images, [-1.0], [20.0], size=6, bands=["F555W"], nan_threshold=1.0)
    assert batch.flags[0] == FLAG_PARTIAL | FLAG_NO_COVERAGE
    assert not batch.classifiable[0]


def test_off_image_objects(images):
    x = np.array([-10.0, 25.0, 1e30, 200.0, -3.6])
    y = np.array([20.0, 300.0, 20.0, -200.0, 20.0])
    batch = extract_cutouts(images, x, y, size=6)
    np.testing.assert_array_equal(batch.flags[:4], FLAG_NO_OVERLAP)
    assert np.isnan(batch.data[:4]).all()
    # x = -3.6 rounds to -4: span -7..-2, off the image; -2.6 rounds to -3
    # (span -6..-1, still off) and -2.4 to -2 (span -5..0, overlapping).
    assert batch.flags[4] == FLAG_NO_OVERLAP
    assert extract_cutouts(images, [-2.6], [20.0], size=6).flags[0] == FLAG_NO_OVERLAP
    assert extract_cutouts(images, [-2.4], [20.0], size=6).flags[0] & FLAG_PARTIAL
    assert not batch.classifiable.any()


def test_invalid_positions(images):
    x = np.array([np.nan, 10.0, np.inf, 20.0])
    y = np.array([10.0, -np.inf, 10.0, 20.0])
    batch = extract_cutouts(images, x, y, size=5)
    np.testing.assert_array_equal(batch.flags, [FLAG_INVALID_POSITION] * 3 + [0])
    assert np.isnan(batch.data[:3]).all()
    np.testing.assert_array_equal(batch.classifiable, [False, False, False, True])


def test_masked_positions_are_invalid(images):
    x = np.ma.array([10.0, 20.0], mask=[True, False])
    y = np.ma.array([10.0, 20.0])
    batch = extract_cutouts(images, x, y, size=5)
    np.testing.assert_array_equal(batch.flags, [FLAG_INVALID_POSITION, 0])


def test_nan_pixels_flag(images):
    data = field()
    data[9:11, 9:12] = np.nan  # 6 pixels, off the centre (11, 11)
    data[30, 30] = np.inf
    imgs = MultiBandImage.from_arrays({"F555W": field(), "F814W": data})
    batch = extract_cutouts(
        imgs, [11.0, 30.0, 40.0], [11.0, 31.0, 20.0], size=4, nan_threshold=0.25
    )
    # 6/16 > 0.25 in F814W only; 1/16 below; clean object unflagged.
    np.testing.assert_array_equal(batch.flags, [FLAG_NAN, 0, 0])
    assert np.isnan(batch.data[0, 1]).sum() == 6
    assert not np.isnan(batch.data[0, 0]).any()
    # Infinite pixels come out as NaN.
    assert np.isnan(batch.data[1, 1]).sum() == 1 and np.isfinite(batch.data[1, 0]).all()
    assert np.isnan(batch.data[1, 1, 1, 2])
    stricter = extract_cutouts(imgs, [11.0, 30.0], [11.0, 31.0], size=4, nan_threshold=0.0)
    np.testing.assert_array_equal(stricter.flags, [FLAG_NAN, FLAG_NAN])
    with pytest.raises(ValueError, match="nan_threshold"):
        extract_cutouts(imgs, [1.0], [1.0], size=4, nan_threshold=1.5)


def test_no_coverage_nan_centre_and_zero_footprint():
    data = field()
    data[20, 20] = np.nan  # NaN centre, rest fine
    data[:, 35:] = 0.0  # outside the drizzle footprint
    data[5, 5] = 0.0  # a lone zero pixel is data, not a footprint edge
    imgs = MultiBandImage.from_arrays({"F555W": field(), "F814W": data})
    batch = extract_cutouts(
        imgs, [20.0, 42.0, 5.0, 34.0], [20.0, 20.0, 5.0, 20.0], size=5, nan_threshold=1
    )
    np.testing.assert_array_equal(batch.flags, [FLAG_NO_COVERAGE, FLAG_NO_COVERAGE, 0, 0])
    np.testing.assert_array_equal(batch.classifiable, [False, False, True, True])
    # Zeros are kept as data values.
    np.testing.assert_array_equal(batch.data[1, 1], 0.0)


def test_big_endian_fits_gives_native_float32(tmp_path):
    data = field(0.5)
    path = tmp_path / "v.fits"
    fits.PrimaryHDU(data.astype(">f4")).writeto(path)
    imgs = MultiBandImage.from_fits({"F555W": path})
    assert imgs["F555W"].dtype == np.dtype(">f4")
    x = np.array([20.0, 1.0, -50.0])
    y = np.array([20.0, 1.0, 10.0])
    from_fits = extract_cutouts(imgs, x, y, size=6)
    in_memory = extract_cutouts(MultiBandImage.from_arrays({"F555W": data}), x, y, size=6)
    assert from_fits.data.dtype == np.dtype("float32") and from_fits.data.dtype.isnative
    np.testing.assert_array_equal(from_fits.data, in_memory.data)
    np.testing.assert_array_equal(from_fits.flags, in_memory.flags)
    imgs.close()


def test_integer_and_float64_data():
    data = field()
    imgs = MultiBandImage.from_arrays(
        {"F555W": data.astype(np.int32), "F814W": data.astype(np.float64)}
    )
    batch = extract_cutouts(imgs, [20.0], [20.0], size=4)
    assert batch.data.dtype == np.float32
    np.testing.assert_array_equal(batch.data[0, 0], batch.data[0, 1])


def test_other_grid_band_centred_on_same_sky_position():
    """F814W at half the pixel size (2x finer) with a shifted CRPIX."""
    ref_wcs = make_wcs(crpix=(20.0, 15.0), scale_deg=1.1e-5)
    fine_wcs = make_wcs(crpix=(45.0, 27.0), scale_deg=0.55e-5)
    fine = field(0.75, shape=(90, 100))
    imgs = MultiBandImage.from_arrays(
        {"F555W": field(0.5), "F814W": fine}, wcs={"F555W": ref_wcs, "F814W": fine_wcs}
    )
    assert not imgs.same_grid("F814W")
    x = np.array([25.0, 30.2])
    y = np.array([20.0, 18.7])
    batch = extract_cutouts(imgs, x, y, size=6)
    np.testing.assert_array_equal(batch.flags, 0)
    sky = ref_wcs.pixel_to_world(x, y)
    fx, fy = fine_wcs.world_to_pixel(sky)
    for i in range(2):
        cx, cy = int(np.floor(fx[i] + 0.5)), int(np.floor(fy[i] + 0.5))
        np.testing.assert_array_equal(batch.data[i, 1], fine[cy - 3 : cy + 3, cx - 3 : cx + 3])
        cx, cy = int(np.floor(x[i] + 0.5)), int(np.floor(y[i] + 0.5))
        np.testing.assert_array_equal(
            batch.data[i, 0], field(0.5)[cy - 3 : cy + 3, cx - 3 : cx + 3]
        )


def test_other_grid_off_band_footprint():
    ref_wcs = make_wcs()
    # Same pixel scale but the band image only covers x >= 30 of the reference grid.
    small_wcs = make_wcs(crpix=(20.0 - 30.0, 15.0))
    imgs = MultiBandImage.from_arrays(
        {"F555W": field(), "F814W": field(shape=(40, 20))},
        wcs={"F555W": ref_wcs, "F814W": small_wcs},
    )
    batch = extract_cutouts(imgs, [5.0, 40.0], [20.0, 20.0], size=4)
    np.testing.assert_array_equal(batch.flags, [FLAG_NO_OVERLAP, 0])
    assert np.isnan(batch.data[0, 1]).all() and np.isfinite(batch.data[0, 0]).all()
    np.testing.assert_array_equal(batch.data[1, 1], field(shape=(40, 20))[18:22, 8:12])


def test_chunking_matches_single_call(monkeypatch):
    rng = np.random.default_rng(3)
    data = field()
    data[rng.random(SHAPE) < 0.05] = np.nan
    imgs = MultiBandImage.from_arrays({"F555W": data, "F814W": field(3.0)})
    n = 300
    x = rng.uniform(-8, SHAPE[1] + 8, n)
    y = rng.uniform(-8, SHAPE[0] + 8, n)
    x[::37] = np.nan
    whole = extract_cutouts(imgs, x, y, size=7, nan_threshold=0.1)
    # Every situation occurs: clean, partial, off-image, invalid.
    assert (whole.flags == 0).any()
    for flag in (FLAG_PARTIAL, FLAG_NAN, FLAG_NO_OVERLAP, FLAG_INVALID_POSITION):
        assert (whole.flags & flag).any()
    # Small internal gather chunks give the same result.
    import photutils_clusterclf.cutouts as cutouts

    monkeypatch.setattr(cutouts, "_GATHER_CHUNK", 16)
    small = extract_cutouts(imgs, x, y, size=7, nan_threshold=0.1)
    np.testing.assert_array_equal(small.data, whole.data)
    np.testing.assert_array_equal(small.flags, whole.flags)
    parts = list(iter_cutout_batches(imgs, x, y, size=7, batch_size=64, nan_threshold=0.1))
    assert [p.start for p, _ in parts] == list(range(0, n, 64))
    assert parts[-1][0].stop == n
    np.testing.assert_array_equal(np.concatenate([b.data for _, b in parts]), whole.data)
    np.testing.assert_array_equal(np.concatenate([b.flags for _, b in parts]), whole.flags)


def test_argument_errors(images):
    with pytest.raises(ValueError, match="size"):
        extract_cutouts(images, [1.0], [1.0], size=0)
    with pytest.raises(ValueError, match="size"):
        extract_cutouts(images, [1.0], [1.0], size=4.5)
    with pytest.raises(ValueError, match="same length"):
        extract_cutouts(images, [1.0, 2.0], [1.0], size=4)
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_cutout_batches(images, [1.0], [1.0], size=4, batch_size=0))


def test_empty_and_scalar_positions(images):
    batch = extract_cutouts(images, [], [], size=4)
    assert batch.data.shape == (0, 3, 4, 4) and batch.flags.shape == (0,)
    batch = extract_cutouts(images, 20.0, 20.0, size=4)
    assert batch.data.shape == (1, 3, 4, 4)


def test_image_smaller_than_cutout():
    imgs = MultiBandImage.from_arrays({"F555W": field(shape=(4, 4))})
    batch = extract_cutouts(imgs, [1.0], [2.0], size=8, nan_threshold=1.0)
    assert batch.flags[0] == FLAG_PARTIAL
    np.testing.assert_array_equal(batch.data[0, 0, 2:6, 3:7], field(shape=(4, 4)))
    assert np.isnan(batch.data[0, 0]).sum() == 64 - 16


def test_plain_mapping_of_arrays():
    data = field()
    batch = extract_cutouts({"f555w": data}, [20.0], [20.0], size=3)
    assert batch.bands == ("F555W",)
    np.testing.assert_array_equal(batch.data[0, 0], data[19:22, 19:22])
    with pytest.raises(TypeError, match="MultiBandImage"):
        extract_cutouts([data], [20.0], [20.0], size=3)


def test_decode_flags_reads_the_flags_extract_cutouts_sets():
    from photutils_clusterclf import decode_flags

    images = MultiBandImage.from_arrays(
        {"F555W": np.ones((40, 40), np.float32), "F814W": np.ones((40, 40), np.float32)}
    )
    batch = extract_cutouts(images, [20.0, 1.0, 300.0, np.nan], [20.0, 20.0, 20.0, 5.0], size=9)
    assert decode_flags(batch.flags) == [
        [],
        ["partial", "nan"],
        ["no_overlap"],
        ["invalid_position"],
    ]
    assert decode_flags(int(batch.flags[2]), descriptions=True)[0].startswith(
        "the cutout lies entirely off"
    )
    with pytest.raises(ValueError, match="not flags"):
        decode_flags(64)
