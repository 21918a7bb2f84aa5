"""Tests of photutils_clusterclf.images."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from photutils_clusterclf.images import (
    MultiBandImage,
    normalize_band_name,
    phangs_band_files,
)

import helpers

PHANGS_NAME = "hlsp_phangs-hst_hst_{instr}_ngc628mosaic_{filt}_v1_exp-drc-sci.fits"


def make_wcs(crpix=(10.0, 8.0), scale_deg=1.1e-5, crval=(24.17, 15.78)):
    return helpers.make_wcs(crpix=crpix, crval=crval, scale_arcsec=scale_deg * 3600)


def write_image(path, data, *, wcs=None, header=None, extension=False):
    """Write ``data`` (big-endian as FITS stores it) to ``path``; return the path."""
    hdr = wcs.to_header() if wcs is not None else fits.Header()
    if header:
        hdr.update(header)
    if extension:
        # Like HST drizzled products: empty primary HDU, image in SCI.
        hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=hdr, name="SCI")])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(data, header=hdr)])
    hdul.writeto(path)
    return path


def ramp(shape=(12, 15), offset=0.0):
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + offset


@pytest.mark.parametrize(
    "name, expected",
    [
        ("f555w", "F555W"),
        (" F814W ", "F814W"),
        ("F658N", "F658N"),
        ("f200lp", "F200LP"),
        ("F150W2", "F150W2"),
        ("F1065C", "F1065C"),
        ("F435W", "F435W"),
    ],
)
def test_normalize_band_name(name, expected):
    assert normalize_band_name(name) == expected


@pytest.mark.parametrize("name", ["V", "F55W", "CLEAR1L", "F555", "F555Q", "555W", ""])
def test_normalize_band_name_rejects(name):
    with pytest.raises(ValueError, match="not a filter name"):
        normalize_band_name(name)


def test_normalize_band_name_type():
    with pytest.raises(TypeError):
        normalize_band_name(555)


def test_from_arrays_basic():
    a, b = ramp(), ramp(offset=1)
    images = MultiBandImage.from_arrays({"f814w": a, "F336W": b})
    assert images.bands == ("F814W", "F336W")
    assert images.reference_band == "F814W"
    assert images["F814W"] is a and images["f336w"] is b
    assert (
        "F336W" in images and "f336w" in images and "F555W" not in images and "junk" not in images
    )
    assert list(images) == ["F814W", "F336W"]
    assert len(images) == 2
    assert images.shape() == (12, 15)
    assert images.wcs("F336W") is None
    assert images.same_grid("F336W")
    assert "F814W" in repr(images) and "12x15" in repr(images)


def test_reference_band_prefers_f555w_and_can_be_set():
    arrays = {"F336W": ramp(), "F555W": ramp(), "F814W": ramp()}
    assert MultiBandImage.from_arrays(arrays).reference_band == "F555W"
    assert MultiBandImage.from_arrays(arrays, reference_band="f814w").reference_band == "F814W"
    with pytest.raises(KeyError, match="F275W"):
        MultiBandImage.from_arrays(arrays, reference_band="F275W")


def test_getitem_unknown_band_lists_bands():
    images = MultiBandImage.from_arrays({"F555W": ramp(), "F814W": ramp()})
    with pytest.raises(KeyError, match="F555W, F814W"):
        images["F275W"]


def test_from_arrays_errors():
    with pytest.raises(ValueError, match="2-D"):
        MultiBandImage.from_arrays({"F555W": np.zeros((2, 3, 4))})
    with pytest.raises(ValueError, match="not a filter name"):
        MultiBandImage.from_arrays({"V": ramp()})
    with pytest.raises(ValueError, match="twice"):
        MultiBandImage.from_arrays({"F555W": ramp(), "f555w": ramp()})
    with pytest.raises(ValueError, match="cannot relate the grids"):
        MultiBandImage.from_arrays({"F555W": ramp(), "F814W": ramp((20, 20))})
    with pytest.raises(TypeError):
        MultiBandImage.from_arrays([ramp()])
    with pytest.raises(TypeError, match="wcs"):
        MultiBandImage.from_arrays({"F555W": ramp()}, wcs="tan")


def test_from_arrays_different_shapes_with_wcs():
    wcs = make_wcs()
    images = MultiBandImage.from_arrays(
        {"F555W": ramp(), "F814W": ramp((20, 20))}, wcs={"F555W": wcs, "F814W": wcs}
    )
    assert not images.same_grid("F814W")
    assert images.shape("F814W") == (20, 20)


def test_same_grid_wcs_comparison():
    base = make_wcs()
    tiny = make_wcs(crpix=(10.0 + 1e-6, 8.0))
    shifted = make_wcs(crpix=(10.5, 8.0))
    rescaled = make_wcs(scale_deg=2.2e-5)
    images = MultiBandImage.from_arrays(
        {
            "F555W": ramp(),
            "F336W": ramp(),
            "F438W": ramp(),
            "F814W": ramp(),
            "F275W": ramp(),
        },
        wcs={"F555W": base, "F336W": tiny, "F438W": shifted, "F814W": rescaled},
    )
    assert images.same_grid("F555W")
    assert images.same_grid("F336W")
    assert not images.same_grid("F438W")
    assert not images.same_grid("F814W")
    # No WCS on one side and the same shape: nothing says the grids differ.
    assert images.same_grid("F275W")


def test_select_is_a_view():
    a, b, c = ramp(), ramp(offset=1), ramp(offset=2)
    images = MultiBandImage.from_arrays({"F336W": a, "F555W": b, "F814W": c})
    sub = images.select(["f814w", "F555W"])
    assert sub.bands == ("F814W", "F555W")
    assert sub.reference_band == "F555W"
    assert sub["F814W"] is c
    assert np.shares_memory(sub["F555W"], b)
    assert images.select(["F336W"]).reference_band == "F336W"
    with pytest.raises(KeyError, match="F275W"):
        images.select(["F275W", "F555W"])


# -- FITS ---------------------------------------------------------------------------


def test_from_fits_mapping_memmap_big_endian(tmp_path):
    data = ramp()
    path = write_image(tmp_path / "v.fits", data, wcs=make_wcs())
    images = MultiBandImage.from_fits({"f555w": path, "F814W": path})
    assert images.bands == ("F555W", "F814W")
    stored = images["F555W"]
    # Data stay as stored in the file (big-endian) and are memory-mapped.
    assert stored.dtype == np.dtype(">f4")
    base = stored
    while not isinstance(base, np.memmap) and getattr(base, "base", None) is not None:
        base = base.base
    assert isinstance(base, np.memmap) or type(base).__name__ == "mmap"
    np.testing.assert_array_equal(stored, data)
    assert isinstance(images.wcs("F555W"), WCS)
    assert images.wcs("F555W").naxis == 2
    assert images.same_grid("F814W")
    assert images.source("F555W") == path
    assert "memmap" in repr(images)
    images.close()


def test_from_fits_memmap_false_loads(tmp_path):
    path = write_image(tmp_path / "v.fits", ramp())
    images = MultiBandImage.from_fits({"F555W": path}, memmap=False)
    np.testing.assert_array_equal(images["F555W"], ramp())
    assert "memmap" not in repr(images)
    assert images.wcs() is None


def test_from_fits_chooses_first_2d_hdu_and_hdu_option(tmp_path):
    path = tmp_path / "e.fits"
    hdul = fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(np.zeros(5), name="VEC"),
            fits.ImageHDU(ramp(), name="SCI"),
            fits.ImageHDU(ramp(offset=7), name="WHT"),
        ]
    )
    hdul.writeto(path)
    images = MultiBandImage.from_fits({"F555W": path})
    np.testing.assert_array_equal(images["F555W"], ramp())
    images = MultiBandImage.from_fits({"F555W": path}, hdu="WHT")
    np.testing.assert_array_equal(images["F555W"], ramp(offset=7))
    with pytest.raises(ValueError, match="2-D"):
        MultiBandImage.from_fits({"F555W": path}, hdu="VEC")
    with pytest.raises(KeyError, match="NOPE"):
        MultiBandImage.from_fits({"F555W": path}, hdu="NOPE")


def test_from_fits_no_2d_hdu(tmp_path):
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((2, 3, 4), dtype=np.float32)).writeto(path)
    with pytest.raises(ValueError, match="no HDU with 2-D image data"):
        MultiBandImage.from_fits({"F555W": path})


def test_from_fits_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.fits"):
        MultiBandImage.from_fits({"F555W": tmp_path / "nothere.fits"})
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        MultiBandImage.from_fits(tmp_path / "missing_dir")


def test_from_fits_phangs_directory(tmp_path):
    names = {
        "F814W": ("wfc3-uvis", "F814W"),
        "F275W": ("wfc3-uvis", "f275w"),
        "F435W": ("acs-wfc", "f435w"),
        "F555W": ("acs-uvis", "F555w"),
    }
    for offset, (instr, filt) in enumerate(names.values()):
        write_image(
            tmp_path / PHANGS_NAME.format(instr=instr, filt=filt),
            ramp(offset=offset),
            wcs=make_wcs(),
            extension=True,
        )
    (tmp_path / "hlsp_phangs-hst_hst_wfc3-uvis_ngc628mosaic_f555w_v1_exp-drc-wht.fits").write_text(
        "x"
    )
    (tmp_path / "notes.txt").write_text("not an image")
    images = MultiBandImage.from_fits(tmp_path)
    # Ordered by wavelength, whatever the file order.
    assert images.bands == ("F275W", "F435W", "F555W", "F814W")
    assert images.reference_band == "F555W"
    np.testing.assert_array_equal(images["F814W"], ramp(offset=0))
    np.testing.assert_array_equal(images["F435W"], ramp(offset=2))
    sub = MultiBandImage.from_fits(tmp_path, bands=["F814W", "f555w"])
    assert sub.bands == ("F814W", "F555W")
    with pytest.raises(KeyError, match="F336W"):
        MultiBandImage.from_fits(tmp_path, bands=["F336W"])
    assert list(phangs_band_files(tmp_path)) == ["F275W", "F435W", "F555W", "F814W"]


def test_from_fits_phangs_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no PHANGS science mosaics"):
        MultiBandImage.from_fits(tmp_path)
    write_image(tmp_path / PHANGS_NAME.format(instr="wfc3-uvis", filt="f555w"), ramp())
    write_image(tmp_path / PHANGS_NAME.format(instr="acs-wfc", filt="F555W"), ramp())
    with pytest.raises(ValueError, match="two files for band F555W"):
        MultiBandImage.from_fits(tmp_path)


def test_from_fits_header_filters(tmp_path):
    p1 = write_image(tmp_path / "a.fits", ramp(), header={"FILTER": "F336W"})
    p2 = write_image(
        tmp_path / "b.fits",
        ramp(offset=1),
        extension=True,
        header={"FILTER1": "CLEAR1L", "FILTER2": "F814W"},
    )
    p3 = write_image(
        tmp_path / "c.fits",
        ramp(offset=2),
        header={"FILTER1": "F435W", "FILTER2": "CLEAR2L"},
    )
    images = MultiBandImage.from_fits([p1, p2, p3])
    assert images.bands == ("F336W", "F814W", "F435W")
    np.testing.assert_array_equal(images["F814W"], ramp(offset=1))
    # One file alone works too.
    assert MultiBandImage.from_fits(p1).bands == ("F336W",)
    assert MultiBandImage.from_fits([p1, p3], bands=["F435W"]).bands == ("F435W",)


def test_from_fits_header_filter_errors(tmp_path):
    p1 = write_image(tmp_path / "a.fits", ramp(), header={"FILTER": "F336W"})
    p2 = write_image(tmp_path / "b.fits", ramp(), header={"FILTER": "f336w"})
    p3 = write_image(
        tmp_path / "c.fits", ramp(), header={"FILTER1": "CLEAR1L", "FILTER2": "CLEAR2L"}
    )
    p4 = write_image(tmp_path / "d.fits", ramp())
    with pytest.raises(ValueError, match="band F336W given twice"):
        MultiBandImage.from_fits([p1, p2])
    with pytest.raises(ValueError, match="cannot tell the band"):
        MultiBandImage.from_fits([p3])
    with pytest.raises(ValueError, match="no FILTER keyword"):
        MultiBandImage.from_fits([p4])
    with pytest.raises(TypeError):
        MultiBandImage.from_fits(42)


def test_from_fits_different_shapes(tmp_path):
    p1 = write_image(tmp_path / "a.fits", ramp())
    p2 = write_image(tmp_path / "b.fits", ramp((30, 30)))
    with pytest.raises(ValueError, match="cannot relate the grids"):
        MultiBandImage.from_fits({"F555W": p1, "F814W": p2})
    p3 = write_image(tmp_path / "c.fits", ramp(), wcs=make_wcs())
    p4 = write_image(tmp_path / "d.fits", ramp((30, 30)), wcs=make_wcs(scale_deg=0.55e-5))
    images = MultiBandImage.from_fits({"F555W": p3, "F814W": p4})
    assert not images.same_grid("F814W")


def test_from_fits_file_without_celestial_wcs(tmp_path):
    header = {"CTYPE1": "LINEAR", "CTYPE2": "LINEAR", "CRPIX1": 1.0, "CRPIX2": 1.0}
    path = write_image(tmp_path / "lin.fits", ramp(), header=header)
    assert MultiBandImage.from_fits({"F555W": path}).wcs() is None


def test_context_manager_closes(tmp_path):
    path = write_image(tmp_path / "v.fits", ramp())
    with MultiBandImage.from_fits({"F555W": path}) as images:
        assert images["F555W"][3, 4] == ramp()[3, 4]
    assert images._hdulists == ()


def test_pickle_maps_files_again(tmp_path):
    import pickle

    path = write_image(tmp_path / "v.fits", ramp((200, 300)), wcs=make_wcs())
    images = MultiBandImage.from_fits({"F555W": path, "F814W": path}).select(["F814W", "F555W"])
    in_memory = MultiBandImage.from_arrays({"F336W": ramp()})
    blob = pickle.dumps(images)
    # The pixels are not in the pickle (200 x 300 x 4 bytes per band).
    assert len(blob) < 200 * 300 * 4
    copy = pickle.loads(blob)
    assert copy.bands == ("F814W", "F555W") and copy.reference_band == "F555W"
    np.testing.assert_array_equal(copy["F814W"], ramp((200, 300)))
    assert "memmap" in repr(copy)
    assert copy.wcs("F555W").wcs.compare(images.wcs("F555W").wcs)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(in_memory))["F336W"], ramp())


def test_from_fits_bands_closes_unused_files(tmp_path):
    p1 = write_image(tmp_path / "a.fits", ramp(), header={"FILTER": "F336W"})
    p2 = write_image(tmp_path / "b.fits", ramp(offset=1), header={"FILTER": "F814W"})
    images = MultiBandImage.from_fits([p1, p2], bands=["F814W"])
    assert len(images._hdulists) == 1
    assert images._hdulists[0].filename() == str(p2)
    np.testing.assert_array_equal(images["F814W"], ramp(offset=1))
