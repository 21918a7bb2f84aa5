import pytest
from astropy.io import fits
from astropy.table import Table

from photutils_clusterclf.catalogs import read_catalog
from photutils_clusterclf.fileio import atomic_output, sha256_file, write_table


def test_atomic_output_refuses_existing_and_keeps_it(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(FileExistsError, match="overwrite"):
        with atomic_output(path) as tmp:
            tmp.write_text("new")
    assert path.read_text() == "old"


def test_atomic_output_failure_leaves_nothing(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(path, overwrite=True) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_output_replaces_with_overwrite(tmp_path):
    path = tmp_path / "out.fits"
    path.write_text("old")
    with atomic_output(path, overwrite=True) as tmp:
        assert tmp.suffix == ".fits" and tmp.parent == tmp_path
        tmp.write_text("new")
    assert path.read_text() == "new"


def test_write_table_ecsv_round_trip_and_bad_extension(tmp_path):
    t = Table({"a": [1.5, 2.5]})
    t.meta["clusterclf"] = {"bands": ["F555W"]}
    write_table(t, tmp_path / "t.ecsv")
    back = Table.read(tmp_path / "t.ecsv")
    assert back.meta["clusterclf"]["bands"] == ["F555W"]
    with pytest.raises(ValueError, match="format"):
        write_table(t, tmp_path / "t.xyz")


def test_pixel_origin_is_not_written_as_the_reserved_origin_keyword(tmp_path):
    # ORIGIN is reserved by the FITS standard (who wrote the file); the pixel
    # convention has its own keyword, read back into meta["origin"].
    t = Table({"x": [1.0], "y": [2.0]}, meta={"origin": 1, "note": None})
    write_table(t, tmp_path / "t.fits")
    header = fits.getheader(tmp_path / "t.fits", 1)
    assert "ORIGIN" not in header and "NOTE" not in header
    assert header["CLUSTERCLF PIXEL_ORIGIN"] == 1
    back = read_catalog(tmp_path / "t.fits")
    assert back.meta["origin"] == 1 and "ORIGIN" not in back.meta


def test_sha256_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
