"""The package's region files in SAOImage DS9 itself (run under xvfb-run).

DS9 loads the image and a region file, then writes the regions back in the
requested frame; reading that file back checks that DS9 understood every
circle, its colour and its text (class and probability), and that its own
WCS puts the sky regions on the catalogue positions.
"""

import subprocess

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from helpers import classified_field, require_programs
from regions import CirclePixelRegion, CircleSkyRegion, Regions

from photutils_clusterclf.classes import DEFAULT_COLORS
from photutils_clusterclf.regions_io import write_class_regions

pytestmark = pytest.mark.slow  # DS9 starts under a virtual X server three times


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    """A small simulated field on disk, classified, with pixel and sky region files."""
    require_programs("ds9", "xvfb-run")
    directory = tmp_path_factory.mktemp("ds9")
    table, _, paths = classified_field(directory)
    # An untrained network may give every candidate one class; the true
    # classes make every colour appear (the probabilities stay the model's).
    table["class_ml"] = table["CLASS_TRUE"]
    assert set(table["class_ml"]) == {1, 2, 3, 4}
    write_class_regions(table, directory / "pixel.reg")
    write_class_regions(
        table, directory / "sky.reg", frame="sky", wcs=WCS(fits.getheader(paths["F555W"]))
    )
    return table, paths["F555W"], directory


def _ds9_round_trip(image, regions_file, out, *system):
    """Load ``regions_file`` on ``image`` in DS9 and save its regions to ``out``."""
    command = [
        "xvfb-run",
        "-a",
        "ds9",
        str(image),
        "-regions",
        "load",
        str(regions_file),
        *system,
        "-regions",
        "save",
        str(out),
        "-exit",
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return Regions.read(out, format="ds9")


def _expected_labels(table):
    """(colour, text) DS9 must show for each classified row, in table order."""
    rows = np.flatnonzero(table["class_ml"] > 0)
    out = []
    for i in rows:
        cls = int(table["class_ml"][i])
        out.append((DEFAULT_COLORS[cls], f"{cls} {table[f'prob_class{cls}'][i]:.2f}"))
    return rows, out


def _labels(regions):
    # The regions reader keeps DS9's colour as the edge colour (the global
    # default, green, where DS9 wrote no colour of its own).
    return [(r.visual["edgecolor"], r.meta["text"]) for r in regions]


def test_ds9_reads_pixel_regions(classified, tmp_path):
    table, image, directory = classified
    saved = _ds9_round_trip(
        image, directory / "pixel.reg", tmp_path / "out.reg", "-regions", "system", "image"
    )
    rows, expected = _expected_labels(table)
    assert len(saved) == len(rows) > 0
    assert all(isinstance(r, CirclePixelRegion) for r in saved)
    assert _labels(saved) == expected
    x = np.array([r.center.x for r in saved])
    y = np.array([r.center.y for r in saved])
    np.testing.assert_allclose(x, table["PHANGS_X"][rows], atol=1e-3)
    np.testing.assert_allclose(y, table["PHANGS_Y"][rows], atol=1e-3)
    np.testing.assert_allclose([r.radius for r in saved], 5.0)


def test_ds9_reads_sky_regions(classified, tmp_path):
    table, image, directory = classified
    saved = _ds9_round_trip(
        image,
        directory / "sky.reg",
        tmp_path / "out.reg",
        "-regions",
        "system",
        "wcs",
        "-regions",
        "sky",
        "icrs",
        "-regions",
        "skyformat",
        "degrees",
    )
    rows, expected = _expected_labels(table)
    assert len(saved) == len(rows) > 0
    assert all(isinstance(r, CircleSkyRegion) for r in saved)
    assert _labels(saved) == expected
    centres = SkyCoord([r.center for r in saved])
    truth = SkyCoord(table["PHANGS_RA"][rows], table["PHANGS_DEC"][rows])
    assert centres.separation(truth).max() < 1 * u.mas
    # 5 px at 0.03962 "/px
    np.testing.assert_allclose([r.radius.to_value(u.arcsec) for r in saved], 0.198, atol=1e-3)


def test_ds9_puts_sky_regions_on_the_pixels(classified, tmp_path):
    """DS9's own WCS maps the sky circles onto the catalogue's pixel positions."""
    table, image, directory = classified
    saved = _ds9_round_trip(
        image, directory / "sky.reg", tmp_path / "out.reg", "-regions", "system", "image"
    )
    rows, expected = _expected_labels(table)
    assert _labels(saved) == expected
    x = np.array([r.center.x for r in saved])
    y = np.array([r.center.y for r in saved])
    np.testing.assert_allclose(x, table["PHANGS_X"][rows], atol=0.01)
    np.testing.assert_allclose(y, table["PHANGS_Y"][rows], atol=0.01)
