"""Swapped bands: a mapping band -> file that the file's own header or PHANGS name contradicts."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from photutils_clusterclf import ClusterClassifier, MultiBandImage, build_model
from photutils_clusterclf.cli import main

PHANGS = "hlsp_phangs-hst_hst_{instr}_ngc628_{filt}_v1_exp-drc-sci.fits"


def write(path, value, header=None, *, extension=False):
    data = np.full((20, 24), value, dtype=np.float32)
    hdr = fits.Header(header or {})
    if extension:  # HST drizzled products: empty primary HDU, image in SCI
        hdus = [fits.PrimaryHDU(header=hdr), fits.ImageHDU(data, name="SCI")]
    else:
        hdus = [fits.PrimaryHDU(data, header=hdr)]
    fits.HDUList(hdus).writeto(path)
    return path


def test_swapped_filter_keywords_are_refused(tmp_path):
    v = write(tmp_path / "v.fits", 1.0, {"FILTER": "F555W"})
    i = write(tmp_path / "i.fits", 2.0, {"FILTER": "F814W"})
    assert MultiBandImage.from_fits({"F555W": v, "F814W": i}).bands == ("F555W", "F814W")
    with pytest.raises(ValueError) as exc:
        MultiBandImage.from_fits({"F555W": i, "F814W": v})
    message = str(exc.value)
    assert "given as band F555W" in message and "header says F814W" in message
    assert "i.fits" in message and "check_bands=False" in message
    assert "\n" not in message


def test_acs_filter1_filter2_are_read(tmp_path):
    # ACS/WFC: one of FILTER1/FILTER2 is a CLEAR position; the other is the band.
    b = write(tmp_path / "b.fits", 1.0, {"FILTER1": "F435W", "FILTER2": "CLEAR2L"}, extension=True)
    i = write(tmp_path / "i.fits", 2.0, {"FILTER1": "CLEAR1L", "FILTER2": "F814W"})
    assert MultiBandImage.from_fits({"F435W": b, "F814W": i}).bands == ("F435W", "F814W")
    with pytest.raises(ValueError, match="given as band F435W, but its FITS header says F814W"):
        MultiBandImage.from_fits({"F435W": i, "F814W": b})


def test_phangs_file_name_is_read(tmp_path):
    # No FILTER keyword: the PHANGS name says the band.
    v = write(tmp_path / PHANGS.format(instr="wfc3-uvis", filt="f555w"), 1.0)
    i = write(tmp_path / PHANGS.format(instr="wfc3-uvis", filt="f814w"), 2.0)
    with pytest.raises(
        ValueError, match="given as band F555W, but its PHANGS file name says F814W"
    ):
        MultiBandImage.from_fits({"F555W": i, "F814W": v})


def test_a_directory_file_whose_header_contradicts_its_name(tmp_path):
    write(tmp_path / PHANGS.format(instr="wfc3-uvis", filt="f555w"), 1.0, {"FILTER": "F814W"})
    with pytest.raises(ValueError, match="given as band F555W, but its FITS header says F814W"):
        MultiBandImage.from_fits(tmp_path)
    assert MultiBandImage.from_fits(tmp_path, check_bands=False).bands == ("F555W",)


def test_override_trusts_the_mapping(tmp_path):
    v = write(tmp_path / "v.fits", 1.0, {"FILTER": "F555W"})
    i = write(tmp_path / PHANGS.format(instr="acs-wfc", filt="f814w"), 2.0, {"FILTER": "F814W"})
    with MultiBandImage.from_fits({"F555W": i, "F814W": v}, check_bands=False) as images:
        assert images.bands == ("F555W", "F814W")
        assert images["F555W"][0, 0] == 2.0 and images["F814W"][0, 0] == 1.0


def test_files_that_name_no_band_are_trusted(tmp_path):
    plain = write(tmp_path / "a.fits", 1.0)
    clear = write(tmp_path / "c.fits", 2.0, {"FILTER1": "CLEAR1L", "FILTER2": "CLEAR2L"})
    assert MultiBandImage.from_fits({"F555W": plain, "F814W": clear}).bands == ("F555W", "F814W")


def _cli_field(tmp_path):
    bands = ("F555W", "F814W")
    paths = {
        b: write(tmp_path / f"{b.lower()}.fits", k + 1.0, {"FILTER": b})
        for k, b in enumerate(bands)
    }
    model = tmp_path / "model.pt"
    ClusterClassifier.from_model(
        build_model("small_cnn", n_bands=2, n_classes=4),
        arch="small_cnn",
        bands=bands,
        cutout_size=9,
        device="cpu",
    ).save(model)
    catalog = tmp_path / "cat.fits"
    Table({"PHANGS_X": [10.0, 12.0], "PHANGS_Y": [8.0, 10.0]}).write(catalog)
    return paths, model, catalog


def test_cli_classify_refuses_swapped_bands_unless_told(tmp_path, capsys):
    paths, model, catalog = _cli_field(tmp_path)
    argv = [
        "classify",
        "--model",
        str(model),
        "--catalog",
        str(catalog),
        "--images",
        f"F555W={paths['F814W']}",
        f"F814W={paths['F555W']}",
        "--out",
        str(tmp_path / "out.fits"),
        "--quiet",
        "--device",
        "cpu",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "given as band F555W" in err[0] and "says F814W" in err[0]
    assert "--ignore-band-headers" in err[0]
    assert not (tmp_path / "out.fits").exists()
    assert main(argv + ["--ignore-band-headers"]) == 0
    assert "classified 2 of 2" in capsys.readouterr().out


def test_cli_train_refuses_a_contradicting_header(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    write(images / PHANGS.format(instr="wfc3-uvis", filt="f555w"), 1.0, {"FILTER": "F814W"})
    catalog = tmp_path / "cat.fits"
    Table({"PHANGS_X": [10.0], "PHANGS_Y": [8.0], "CLASS": [1]}).write(catalog)
    argv = [
        "train",
        "--galaxy",
        f"{catalog}={images}",
        "--label-column",
        "NOPE",
        "--out",
        str(tmp_path / "m.pt"),
        "--quiet",
    ]
    assert main(argv) == 2
    assert "says F814W" in capsys.readouterr().err
    # With the override the images are read; then the (deliberately) wrong
    # label column stops it, before any training.
    assert main(argv + ["--ignore-band-headers"]) == 2
    err = capsys.readouterr().err
    assert "NOPE" in err and "says F814W" not in err
