"""Sky columns written as text: sexagesimal RA (hours) / Dec (degrees) in CSV and ECSV."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from photutils_clusterclf import MultiBandImage, resolve_positions

from helpers import make_wcs

SHAPE = (100, 120)
X, Y = np.array([10.0, 50.3, 97.6]), np.array([20.0, 70.1, 3.4])


@pytest.fixture(scope="module")
def images():
    wcs = make_wcs(SHAPE, crval=(24.17375, 15.78361))
    return MultiBandImage.from_arrays({"F555W": np.zeros(SHAPE, np.float32)}, wcs=wcs)


def _coords(images):
    return images.wcs().pixel_to_world(X, Y)


def _csv(rows):
    return "\n".join(["id,ra,dec"] + [f"{i},{ra},{dec}" for i, (ra, dec) in enumerate(rows)])


def test_sexagesimal_csv_columns(images, tmp_path):
    c = _coords(images)
    rows = zip(
        c.ra.to_string(u.hour, sep=":", precision=5),
        c.dec.to_string(sep=":", precision=4, alwayssign=True),
    )
    path = tmp_path / "cat.csv"
    path.write_text(_csv(rows))
    table = Table.read(path, format="ascii.csv")
    assert table["ra"].dtype.kind == "U"  # as a user's file arrives
    positions = resolve_positions(table, images)
    np.testing.assert_allclose(positions.x, X, atol=0.01)
    np.testing.assert_allclose(positions.y, Y, atol=0.01)


def test_sexagesimal_with_unit_letters_and_missing_entries(images):
    c = _coords(images)
    ra = list(c.ra.to_string(u.hour, precision=5)) + [""]  # 1h36m41.8s
    dec = list(c.dec.to_string(precision=4, alwayssign=True)) + [""]
    table = Table({"RA": ra, "DEC": dec})
    positions = resolve_positions(table, images)
    np.testing.assert_allclose(positions.x[:3], X, atol=0.01)
    np.testing.assert_allclose(positions.y[:3], Y, atol=0.01)
    assert np.isnan(positions.x[3]) and np.isnan(positions.y[3])


def test_decimal_degrees_as_text(images):
    c = _coords(images)
    table = Table({"ra": [f"{v:.8f}" for v in c.ra.deg], "dec": [f"{v:.8f}" for v in c.dec.deg]})
    positions = resolve_positions(table, images)
    np.testing.assert_allclose(positions.x, X, atol=0.01)
    np.testing.assert_allclose(positions.y, Y, atol=0.01)


def test_sexagesimal_ecsv_round_trip(images, tmp_path):
    c = _coords(images)
    Table(
        {
            "ra": c.ra.to_string(u.hour, sep=":", precision=5),
            "dec": c.dec.to_string(sep=":", precision=4, alwayssign=True),
        }
    ).write(tmp_path / "cat.ecsv")
    positions = resolve_positions(Table.read(tmp_path / "cat.ecsv"), images)
    np.testing.assert_allclose(positions.x, X, atol=0.01)


def test_text_that_is_not_an_angle(images):
    table = Table({"ra": ["01:36:41.7", "north"], "dec": ["+15:47:01", "+15:47:02"]})
    with pytest.raises(ValueError, match="column ra holds text that is not an angle.*sexagesimal"):
        resolve_positions(table, images)
