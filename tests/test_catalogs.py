"""Tests of the PHANGS / LEGUS catalogue readers."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from photutils_clusterclf.catalogs import (
    LEGUS_MAG_SENTINEL,
    PHANGS_FOLDED_COLUMN,
    read_catalog,
    read_legus_catalog,
    read_phangs_catalog,
)
from photutils_clusterclf.classes import PHANGS_FOLD

from helpers import NGC1566_CATALOG, STARCNET_PREDICTIONS


@pytest.fixture(scope="module")
def ngc1566():
    return read_legus_catalog(NGC1566_CATALOG)


def test_legus_real_file_counts(ngc1566):
    assert len(ngc1566) == 2752
    assert ngc1566.meta["origin"] == 1
    assert ngc1566.meta["catalog_format"] == "legus"
    assert ngc1566.meta["legus_columns"] == 39
    counts = np.bincount(ngc1566["class"], minlength=5)
    assert counts.tolist() == [301, 477, 404, 692, 878]
    assert ngc1566["class"].dtype == np.int16
    for name in (
        "class_method",
        "class_human_mode",
        "class_ml",
        "class_human_verify",
        "class_4_reclass",
    ):
        assert name in ngc1566.colnames


def test_legus_real_file_columns_match_raw_text(ngc1566):
    raw = np.loadtxt(NGC1566_CATALOG)
    assert np.array_equal(ngc1566["id"], raw[:, 0].astype(int))
    assert np.array_equal(ngc1566["x"], raw[:, 1])  # kept 1-based, unchanged
    assert ngc1566["ra"].unit == u.deg and ngc1566["dec"].unit == u.deg
    assert np.allclose(ngc1566["dec"].to_value(u.deg), raw[:, 4])
    assert np.array_equal(ngc1566["class_human_mode"], raw[:, 35].astype(int))
    assert np.array_equal(ngc1566["class_method"], raw[:, 34].astype(int))
    assert np.allclose(ngc1566["ci"], raw[:, 15])
    assert np.array_equal(ngc1566["n_filters"], raw[:, 32].astype(int))
    # the 99.999 sentinel is masked, every other magnitude kept
    mag = ngc1566["mag_F275W"]
    sentinel = np.isclose(raw[:, 5], LEGUS_MAG_SENTINEL)
    assert sentinel.any() and not sentinel.all()
    assert np.array_equal(np.ma.getmaskarray(mag), sentinel)
    assert np.allclose(mag.data[~sentinel], raw[~sentinel, 5])


def test_legus_positions_against_starcnet(ngc1566):
    """The StarcNet CSV X/Y are the file's x/y truncated to integers.

    So they carry the file's convention, not a 0-based one: ``x - 1``
    (0-based) agrees with them to within one pixel, as does ``x`` itself,
    and the CSV cannot tell the origin apart; the LEGUS documentation
    (1-based, IRAF/DS9) is what ``meta["origin"] = 1`` records.
    """
    starcnet = Table.read(STARCNET_PREDICTIONS, format="ascii.csv")
    assert np.array_equal(starcnet["Id"], ngc1566["id"])
    assert np.array_equal(np.floor(ngc1566["x"]), starcnet["X"])
    assert np.array_equal(np.floor(ngc1566["y"]), starcnet["Y"])
    x0 = ngc1566["x"] - 1
    y0 = ngc1566["y"] - 1
    assert np.all(np.abs(x0 - starcnet["X"]) <= 1.0)
    assert np.all(np.abs(y0 - starcnet["Y"]) <= 1.0)


def _write_legus(path, ncol, nrow=4):
    rng = np.random.default_rng(1)
    data = rng.uniform(1, 30, size=(nrow, ncol))
    data[:, 0] = np.arange(1, nrow + 1)
    data[0, 5:7] = LEGUS_MAG_SENTINEL
    data[:, 32] = 5
    data[:, 33] = [0, 1, 2, 4][:nrow]
    if ncol == 35:
        data[:, 34] = [0.0, 1.33, 2.0, 3.67][:nrow]
    np.savetxt(path, data, fmt="%.5f")
    return data


@pytest.mark.parametrize("ncol", [34, 35])
def test_legus_standard_format(tmp_path, ncol):
    path = tmp_path / f"cat{ncol}.tab"
    data = _write_legus(path, ncol)
    table = read_catalog(path)  # dispatches on .tab
    assert table.meta["origin"] == 1 and table.meta["legus_columns"] == ncol
    assert table["class"].tolist() == [0, 1, 2, 4]
    assert ("class_mean" in table.colnames) == (ncol == 35)
    if ncol == 35:
        assert np.allclose(table["class_mean"], data[:, 34])
    assert "class_human_mode" not in table.colnames
    mask = np.ma.getmaskarray(table["mag_F275W"])
    assert mask.tolist() == [True, False, False, False]
    assert np.ma.getmaskarray(table["mag_err_F275W"])[0]
    assert np.allclose(table["y"], data[:, 2])


def test_legus_custom_bands(tmp_path):
    path = tmp_path / "acs.tab"
    _write_legus(path, 34)
    bands = ("F275W", "F336W", "F435W", "F606W", "F814W")
    table = read_legus_catalog(path, bands=bands)
    assert "mag_F435W" in table.colnames and "chi2_F606W" in table.colnames
    with pytest.raises(ValueError, match="5 LEGUS magnitude columns"):
        read_legus_catalog(path, bands=bands[:4])


def test_legus_wrong_column_count(tmp_path):
    path = tmp_path / "bad.tab"
    np.savetxt(path, np.ones((3, 36)))
    with pytest.raises(ValueError, match="36 columns.*34, 35, 39"):
        read_legus_catalog(path)
    path.write_text("1 2 three\n")
    with pytest.raises(ValueError, match="LEGUS"):
        read_legus_catalog(path)


def _phangs_table():
    codes = np.array([0, *range(1, 20)], dtype=np.int16)
    n = codes.size
    return Table(
        {
            "ID_PHANGS_CLUSTER": np.arange(1, n + 1),
            "PHANGS_X": np.linspace(10, 90, n),
            "PHANGS_Y": np.linspace(5, 50, n),
            "PHANGS_RA": np.full(n, 150.0),
            "PHANGS_DEC": np.full(n, 2.0),
            "PHANGS_CLUSTER_CLASS_HUMAN": codes,
            "PHANGS_CLUSTER_CLASS_ML_VGG": np.tile([1, 2, 3, 4], n // 4),
            "PHANGS_F555W_VEGA": np.full(n, 22.5),
            "PHANGS_CI": np.full(n, 1.5),
        }
    )


def test_phangs_fold(tmp_path):
    path = tmp_path / "hlsp_phangs-cat_test.fits"
    _phangs_table().write(path)
    table = read_phangs_catalog(path)
    assert table.meta["origin"] == 0
    assert table.meta["catalog_format"] == "phangs"
    human = np.asarray(table["PHANGS_CLUSTER_CLASS_HUMAN"])
    folded = np.asarray(table[PHANGS_FOLDED_COLUMN])
    assert human.tolist() == list(range(20))  # original kept
    expected = [0, 1, 2, 3, 4] + [PHANGS_FOLD[c] for c in range(5, 20)]
    assert folded.tolist() == expected
    assert set(folded[5:]) == {4}
    names = table.colnames
    human_index = names.index("PHANGS_CLUSTER_CLASS_HUMAN")
    assert names.index(PHANGS_FOLDED_COLUMN) == human_index + 1
    # read_catalog recognises the PHANGS columns in a generic FITS file
    again = read_catalog(path)
    assert again.meta["catalog_format"] == "phangs"
    assert np.array_equal(again[PHANGS_FOLDED_COLUMN], folded)
    # a re-read output (folded column already there, other format) still works
    ecsv = tmp_path / "out.ecsv"
    again.write(ecsv)
    third = read_catalog(ecsv)
    assert third.meta["origin"] == 0
    assert third.colnames.count(PHANGS_FOLDED_COLUMN) == 1
    assert np.array_equal(third[PHANGS_FOLDED_COLUMN], folded)


def test_phangs_without_human_column(tmp_path):
    path = tmp_path / "ml_only.fits"
    _phangs_table()[
        "ID_PHANGS_CLUSTER", "PHANGS_X", "PHANGS_Y", "PHANGS_CLUSTER_CLASS_ML_VGG"
    ].write(path)
    table = read_phangs_catalog(path)
    assert PHANGS_FOLDED_COLUMN not in table.colnames
    assert table.meta["origin"] == 0


def test_phangs_rejects_other_tables(tmp_path):
    path = tmp_path / "other.fits"
    Table({"a": [1, 2]}).write(path)
    with pytest.raises(ValueError, match="PHANGS_X"):
        read_phangs_catalog(path)
    path = tmp_path / "text.fits"
    path.write_text("not fits")
    with pytest.raises(ValueError, match="PHANGS-HST FITS"):
        read_phangs_catalog(path)


@pytest.mark.parametrize("suffix", [".ecsv", ".csv", ".fits"])
def test_read_catalog_generic(tmp_path, suffix):
    path = tmp_path / f"cands{suffix}"
    Table({"x": [1.5, 2.5], "y": [3.0, 4.0]}).write(path)
    table = read_catalog(path)
    assert table.colnames == ["x", "y"]
    assert "catalog_format" not in table.meta
    assert np.allclose(table["x"], [1.5, 2.5])


def test_read_catalog_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_catalog(tmp_path / "missing.fits")
    path = tmp_path / "junk.dat"
    path.write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(ValueError, match="accepted: LEGUS .tab, PHANGS-HST FITS"):
        read_catalog(path)
    legus = tmp_path / "cat.tab"
    _write_legus(legus, 34)
    assert read_catalog(legus, format="legus").meta["catalog_format"] == "legus"


@pytest.mark.parametrize(
    "product, id_column",
    [
        ("obs-human-cluster-class12", "ID_PHANGS_CLUSTER"),
        ("obs-machine-cluster-class12", "ID_PHANGS_CLUSTER"),
        ("obs-human-compact-association-class3", "ID_PHANGS_CLUSTER"),
        ("obs-machine-compact-association-class3", "ID_PHANGS_CLUSTER"),
        ("obs-sed-candidates", "ID_PHANGS_CANDIDATE"),
    ],
)
def test_phangs_public_release_names_through_unified_io(tmp_path, product, id_column):
    from astropy.table import QTable

    name = f"hlsp_phangs-cat_hst_wfc3_ngc1433_multi_v1_{product}.fits"
    columns = {
        id_column: [1, 2, 3],
        "ID_PHANGS_ALLSOURCES": [10, 11, 12],
        "PHANGS_X": [10.0, 20.0, 30.0],
        "PHANGS_Y": [5.0, 6.0, 7.0],
        "PHANGS_CLUSTER_CLASS_HUMAN": [1, 13, 3],
        "PHANGS_CLUSTER_CLASS_ML_VGG": [1, 2, 3],
        "PHANGS_CLUSTER_CLASS_ML_VGG_QUAL": [0.9, 0.6, 0.7],
        "PHANGS_CLUSTER_CLASS_ML_VGG_CORR": [1, 2, 3],
    }
    Table(columns).write(tmp_path / name)
    table = QTable.read(tmp_path / name, format="phangs")
    assert table.meta["target"] == "NGC1433" and table.meta["instrument"] == "WFC3"
    assert table.meta["phangs_product"] == product and table.meta["origin"] == 0
    assert table.meta["id_column"] == id_column
    assert list(table["PHANGS_CLUSTER_CLASS_HUMAN_FOLDED"]) == [1, 4, 3]
    assert list(table["PHANGS_CLUSTER_CLASS_ML_VGG"]) == [1, 2, 3]


def test_legus_through_unified_io(ngc1566):
    from astropy.table import QTable

    table = QTable.read(NGC1566_CATALOG, format="legus")
    assert len(table) == len(ngc1566) and table.meta["origin"] == 1
