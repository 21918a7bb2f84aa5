"""Tests of photutils_clusterclf.regions_io."""

import astropy.units as u
import numpy as np
import pytest
from astropy.table import MaskedColumn, QTable, Table
from astropy.utils.exceptions import AstropyUserWarning
from helpers import make_wcs
from regions import CirclePixelRegion, CircleSkyRegion, Regions

from photutils_clusterclf.catalogs import read_candidates
from photutils_clusterclf.classes import DEFAULT_COLORS
from photutils_clusterclf.images import MultiBandImage
from photutils_clusterclf.positions import resolve_positions
from photutils_clusterclf.regions_io import class_regions, write_class_regions

PIXSCALE = 0.0396  # arcsec / px


@pytest.fixture
def wcs():
    return make_wcs(crpix=(40.0, 30.0), crval=(150.1, 2.2), scale_arcsec=PIXSCALE, radesys="ICRS")


@pytest.fixture
def table():
    """A classifier-style output table with every class, some unclassified."""
    rng = np.random.default_rng(3)
    n = 12
    cls = np.array([1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 4], dtype=np.int16)
    probs = rng.dirichlet(np.ones(4), size=n).astype(np.float32)
    t = QTable()
    t["PHANGS_X"] = rng.uniform(0, 79, n)
    t["PHANGS_Y"] = rng.uniform(0, 59, n)
    t["class_ml"] = cls
    for k in range(4):
        t[f"prob_class{k + 1}"] = probs[:, k]
    t["class_ml_qual"] = np.where(
        cls > 0, probs[np.arange(n), np.maximum(cls, 1) - 1], np.nan
    ).astype(np.float32)
    return t


def parse_text(reg):
    cls, prob = reg.meta["text"].split()
    return int(cls), float(prob)


def test_pixel_regions_content(table):
    regs = class_regions(table)
    keep = np.asarray(table["class_ml"]) > 0
    assert isinstance(regs, Regions)
    assert len(regs) == keep.sum()
    for reg, row in zip(regs, table[keep]):
        assert isinstance(reg, CirclePixelRegion)
        assert reg.center.x == row["PHANGS_X"] and reg.center.y == row["PHANGS_Y"]
        assert reg.radius == 5.0
        cls, prob = parse_text(reg)
        assert cls == row["class_ml"]
        assert prob == pytest.approx(row[f"prob_class{cls}"], abs=0.005)
        assert reg.visual["color"] == DEFAULT_COLORS[cls]
    assert regs[0].meta["text"] == f"1 {table['prob_class1'][0]:.2f}"


def test_include_unclassified(table):
    regs = class_regions(table, include_unclassified=True)
    assert len(regs) == len(table)
    zero = [r for r in regs if r.meta["text"].split()[0] == "0"]
    assert len(zero) == 2 and all(r.visual["color"] == "white" for r in zero)
    assert len(table) == 12  # display only: the table keeps all rows


def test_colors_overridable(table):
    regs = class_regions(table, colors={1: "magenta", 0: "cyan"}, include_unclassified=True)
    colors = {int(r.meta["text"].split()[0]): r.visual["color"] for r in regs}
    assert colors == {0: "cyan", 1: "magenta", 2: "green", 3: "blue", 4: "yellow"}


def test_qual_column_used_without_probs(table):
    t = table.copy()
    t.remove_columns([f"prob_class{k}" for k in range(1, 5)])
    t["class_ml_qual"][0] = 0.5
    regs = class_regions(t)
    assert regs[0].meta["text"] == "1 0.50"
    t.remove_column("class_ml_qual")
    assert class_regions(t)[0].meta["text"] == "1"


def test_phangs_column_style(table):
    t = Table()
    t["PHANGS_X"] = table["PHANGS_X"]
    t["PHANGS_Y"] = table["PHANGS_Y"]
    t["PHANGS_CLUSTER_CLASS_ML_VGG"] = table["class_ml"]
    t["PHANGS_CLUSTER_CLASS_ML_VGG_QUAL"] = np.linspace(0.3, 1.0, len(t))
    # prob columns of another run must not be mixed into the PHANGS labels
    t["prob_class1"] = np.zeros(len(t))
    regs = class_regions(t, column="PHANGS_CLUSTER_CLASS_ML_VGG")
    keep = np.flatnonzero(np.asarray(t["PHANGS_CLUSTER_CLASS_ML_VGG"]) > 0)
    texts = [r.meta["text"] for r in regs]
    expected = [
        f"{t['PHANGS_CLUSTER_CLASS_ML_VGG'][i]} {t['PHANGS_CLUSTER_CLASS_ML_VGG_QUAL'][i]:.2f}"
        for i in keep
    ]
    assert texts == expected


def test_phangs_prob_columns_preferred(table):
    t = QTable({"PHANGS_X": table["PHANGS_X"], "PHANGS_Y": table["PHANGS_Y"]})
    base = "PHANGS_CLUSTER_CLASS_ML_RESNET"
    t[base] = table["class_ml"]
    t[f"{base}_QUAL"] = np.full(len(t), 0.3)  # vote fraction: not the probability
    for k in range(1, 5):
        t[f"{base}_PROB{k}"] = table[f"prob_class{k}"]
    regs = class_regions(t, column=base)
    assert regs[0].meta["text"] == f"1 {table['prob_class1'][0]:.2f}"
    assert regs[1].meta["text"] == f"2 {table['prob_class2'][1]:.2f}"
    # a prefixed default-style run
    t2 = QTable({"x_centroid": table["PHANGS_X"], "y_centroid": table["PHANGS_Y"]})
    t2["vgg_class_ml"] = table["class_ml"]
    for k in range(1, 5):
        t2[f"vgg_prob_class{k}"] = table[f"prob_class{k}"]
    assert (
        class_regions(t2, column="vgg_class_ml")[2].meta["text"]
        == f"3 {table['prob_class3'][2]:.2f}"
    )


def test_human_codes_folded():
    t = Table(
        {
            "PHANGS_X": [1.0, 2.0, 3.0],
            "PHANGS_Y": [1.0, 2.0, 3.0],
            "PHANGS_CLUSTER_CLASS_HUMAN": [6, 2, -1],
        }
    )
    regs = class_regions(t, column="PHANGS_CLUSTER_CLASS_HUMAN")
    assert [r.meta["text"] for r in regs] == ["4", "2"]
    assert regs[0].visual["color"] == DEFAULT_COLORS[4]


def test_explicit_prob_columns(table):
    t = table.copy()
    t.rename_columns([f"prob_class{k}" for k in range(1, 5)], ["p1", "p2", "p3", "p4"])
    regs = class_regions(t, prob_columns=["p1", "p2", "p3", "p4"])
    assert regs[0].meta["text"] == f"1 {t['p1'][0]:.2f}"
    regs = class_regions(t, prob_columns={1: "p1", 2: "p2", 3: "p3", 4: "p4"})
    assert regs[1].meta["text"] == f"2 {t['p2'][1]:.2f}"
    with pytest.raises(ValueError, match="one column for each of the classes"):
        class_regions(t, prob_columns=["p1", "p2"])
    with pytest.raises(KeyError, match="nope"):
        class_regions(t, prob_columns=["p1", "p2", "p3", "nope"])


def test_missing_class_column(table):
    with pytest.raises(KeyError, match="class_ml, prob_class1"):
        class_regions(table, column="class_cnn")


def test_ds9_round_trip_pixel(table, tmp_path):
    path = tmp_path / "classes.reg"
    assert write_class_regions(table, path, radius=3.5) == int((table["class_ml"] > 0).sum())
    written = class_regions(table, radius=3.5)
    text = path.read_text()
    assert "circle(" in text and "image" in text
    back = Regions.read(path, format="ds9")
    assert len(back) == len(written)
    for a, b in zip(written, back):
        assert isinstance(b, CirclePixelRegion)
        assert b.center.x == pytest.approx(a.center.x, abs=1e-6)
        assert b.center.y == pytest.approx(a.center.y, abs=1e-6)
        assert b.radius == pytest.approx(3.5)
        # the reader maps DS9 color= to matplotlib edge/face colours
        assert b.visual["edgecolor"] == a.visual["color"]
        assert b.meta["text"] == a.meta["text"]
    # the file is 1-based: a centre at pixel index 0 is written as 1
    x0 = table["PHANGS_X"][0]
    assert f"{x0 + 1:.4f}"[:-1] in text
    # and reading it back as positions gives the table positions
    pos = resolve_positions(read_candidates(path))
    keep = np.asarray(table["class_ml"]) > 0
    np.testing.assert_allclose(pos.x, table["PHANGS_X"][keep], atol=1e-6)


def test_write_refuses_overwrite(table, tmp_path):
    path = tmp_path / "classes.reg"
    write_class_regions(table, path)
    before = path.read_text()
    with pytest.raises(FileExistsError):
        write_class_regions(table, path, colors={1: "cyan"})
    assert path.read_text() == before
    write_class_regions(table, path, overwrite=True, colors={1: "cyan"})
    assert "cyan" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.reg"]


def test_sky_frame_from_pixel_and_wcs(table, wcs, tmp_path):
    regs = class_regions(table, frame="sky", wcs=wcs)
    keep = np.asarray(table["class_ml"]) > 0
    assert all(isinstance(r, CircleSkyRegion) for r in regs)
    # default radius 5 px -> arcsec through the pixel scale
    assert regs[0].radius.to_value(u.arcsec) == pytest.approx(5 * PIXSCALE)
    x, _ = wcs.world_to_pixel(regs[0].center)
    assert x == pytest.approx(table["PHANGS_X"][keep][0], abs=1e-6)
    path = tmp_path / "sky.reg"
    write_class_regions(table, path, frame="sky", wcs=wcs, radius=0.3 * u.arcsec)
    back = Regions.read(path, format="ds9")
    assert len(back) == keep.sum()
    for a, b in zip(regs, back):
        assert a.center.separation(b.center).to_value(u.arcsec) < 1e-4
        assert b.radius.to_value(u.arcsec) == pytest.approx(0.3, abs=1e-4)
        assert b.meta["text"] == a.meta["text"]
        # the reader maps DS9 color= to matplotlib edge/face colours
        assert b.visual["edgecolor"] == a.visual["color"]
    # a MultiBandImage works as wcs too
    img = MultiBandImage.from_arrays({"F555W": np.zeros((60, 80))}, wcs=wcs)
    regs2 = class_regions(table, frame="sky", wcs=img)
    assert regs2[3].center.separation(regs[3].center).to_value(u.arcsec) < 1e-6


def test_sky_frame_from_sky_columns(table, wcs):
    t = table.copy()
    sky = wcs.pixel_to_world(t["PHANGS_X"], t["PHANGS_Y"])
    t.remove_columns(["PHANGS_X", "PHANGS_Y"])
    t["PHANGS_RA"] = sky.ra.deg
    t["PHANGS_DEC"] = sky.dec.deg
    regs = class_regions(t, frame="sky", radius=0.2 * u.arcsec)  # no WCS needed
    keep = np.asarray(t["class_ml"]) > 0
    np.testing.assert_allclose([r.center.ra.deg for r in regs], sky.ra.deg[keep])
    assert regs[0].radius == 0.2 * u.arcsec
    # pixel frame from sky columns goes through the WCS
    pix = class_regions(t, wcs=wcs)
    assert pix[0].center.x == pytest.approx(table["PHANGS_X"][keep][0], abs=1e-6)
    with pytest.raises(ValueError, match="needs wcs="):
        class_regions(t, frame="sky")  # 5 px radius without a WCS


def test_radius_conversions(table, wcs):
    regs = class_regions(table, radius=0.396 * u.arcsec, wcs=wcs)
    assert regs[0].radius == pytest.approx(10.0)
    assert class_regions(table, radius=2 * u.pix)[0].radius == 2.0
    with pytest.raises(ValueError, match="needs wcs="):
        class_regions(table, radius=1 * u.arcsec)
    with pytest.raises(ValueError, match="wrong units"):
        class_regions(table, radius=1 * u.m)
    with pytest.raises(ValueError, match="frame must be"):
        class_regions(table, frame="image")
    with pytest.raises(ValueError, match="needs sky columns in the table or a wcs="):
        class_regions(table, frame="sky", radius=1 * u.arcsec)


def test_legus_origin(table):
    """1-based LEGUS-style x/y: origin from meta or argument, error otherwise."""
    t = Table(
        {
            "x": np.asarray(table["PHANGS_X"]) + 1,
            "y": np.asarray(table["PHANGS_Y"]) + 1,
            "class_ml": table["class_ml"],
        }
    )
    with pytest.raises(ValueError, match="no known origin"):
        class_regions(t)
    regs = class_regions(t, origin=1)
    keep = np.asarray(table["class_ml"]) > 0
    np.testing.assert_allclose([r.center.x for r in regs], table["PHANGS_X"][keep])
    t.meta["origin"] = 1
    assert class_regions(t)[0].center.x == pytest.approx(table["PHANGS_X"][0])


def test_invalid_positions_skipped_with_warning(table):
    t = Table(table)
    t["PHANGS_X"] = MaskedColumn(t["PHANGS_X"], mask=np.arange(len(t)) == 0)
    t["PHANGS_Y"][4] = np.nan  # class 0: not drawn anyway, no warning for it
    with pytest.warns(AstropyUserWarning, match="1 row"):
        regs = class_regions(t)
    assert len(regs) == (np.asarray(t["class_ml"]) > 0).sum() - 1
    assert len(t) == 12


def test_masked_class_values(table):
    t = Table(table)
    t["class_ml"] = MaskedColumn(t["class_ml"], mask=np.arange(len(t)) == 1)
    regs = class_regions(t)
    assert len(regs) == (np.asarray(table["class_ml"]) > 0).sum() - 1


@pytest.mark.parametrize("case", ["mixed", "one_class", "one_row", "sky", "empty"])
def test_direct_ds9_text_is_what_regions_writes(table, wcs, tmp_path, case):
    kwargs = {"frame": "sky", "wcs": wcs} if case == "sky" else {}
    t = table.copy()
    if case == "one_class":
        t["class_ml"] = np.where(t["class_ml"] > 0, 3, 0)
    elif case == "one_row":
        t = t[t["class_ml"] > 0][:1]
    elif case == "empty":
        t["class_ml"] = 0
    ours = tmp_path / "ours.reg"
    write_class_regions(t, ours, **kwargs)
    theirs = class_regions(t, **kwargs).serialize(format="ds9")
    if case == "one_row":  # regions orders the shared properties of a "global" line
        # by hash; compare them as sets
        first, *rest = theirs.splitlines()
        head, *tail = ours.read_text().splitlines()
        assert head == first and tail[1:] == rest[1:]
        assert set(tail[0].split()) == set(rest[0].split())
    else:
        assert ours.read_text() == theirs
