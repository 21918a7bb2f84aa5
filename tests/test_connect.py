"""The "clusterclf" FITS writer of astropy's unified I/O."""

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable, Table

import photutils_clusterclf  # noqa: F401  (registers the writer)
from photutils_clusterclf.connect import fits_header_meta
from photutils_clusterclf.fileio import write_table

PROVENANCE = {
    "version": "0.1",
    "bands": ["F275W", "F336W"],
    "model_sha256": None,
    "normalization": {"name": "asinh", "params": {"border": 3}},
}


@pytest.mark.parametrize("cls", [QTable, Table])
def test_plain_write_keeps_provenance_without_warning(tmp_path, cls):
    t = cls({"a": np.arange(3)}, meta={"clusterclf": PROVENANCE, "origin": 0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.write(tmp_path / "t.fits")
    meta = cls.read(tmp_path / "t.fits").meta  # reading stays astropy's "fits"
    assert meta["CLUSTERCLF VERSION"] == "0.1"
    assert meta["CLUSTERCLF BANDS"] == '["F275W", "F336W"]'
    assert meta["CLUSTERCLF NORMALIZATION PARAMS BORDER"] == 3
    assert meta["CLUSTERCLF PIXEL_ORIGIN"] == 0
    assert "CLUSTERCLF MODEL_SHA256" not in meta and "ORIGIN" not in meta
    assert t.meta == {"clusterclf": PROVENANCE, "origin": 0}  # the table's own meta is untouched


def test_explicit_format_and_write_table_give_the_same_file(tmp_path):
    t = QTable({"a": [1.5, 2.5]}, meta={"clusterclf": PROVENANCE})
    t.write(tmp_path / "plain.fits")
    t.write(tmp_path / "named.fits", format="clusterclf")
    write_table(t, tmp_path / "atomic.fits")
    headers = [fits.getheader(tmp_path / f"{n}.fits", 1) for n in ("plain", "named", "atomic")]
    assert headers[0] == headers[1] == headers[2]
    with pytest.raises(OSError, match="exists"):
        t.write(tmp_path / "plain.fits")  # astropy's overwrite rule still holds


def test_scalar_meta_is_written_as_astropy_writes_it(tmp_path):
    # A foreign table with a FITS-style string ORIGIN keeps it.
    t = Table({"a": [1]}, meta={"origin": "STScI", "TELESCOP": "HST"})
    t.write(tmp_path / "ours.fits")
    t.write(tmp_path / "astropy.fits", format="fits")
    assert fits.getheader(tmp_path / "ours.fits", 1) == fits.getheader(tmp_path / "astropy.fits", 1)


def test_fits_header_meta_flattens():
    flat = fits_header_meta({"a": {"b": 1, "c": [1, 2], "origin": 3}, "d": None, "origin": 1})
    assert flat == {"A B": 1, "A C": "[1, 2]", "A ORIGIN": 3, "CLUSTERCLF PIXEL_ORIGIN": 1}
