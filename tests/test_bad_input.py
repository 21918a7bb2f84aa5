"""What happens with bad input: one test per row of ``docs/bad_input.rst``.

Each test checks the documented behaviour both through the Python API
(exception type, flag, warning) and, where a file is involved, through the
``clusterclf classify`` command (exit status 2, one line on stderr, no
output written). Keep the docs table and these tests in step.
"""

import numpy as np
import pytest
import torch
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, QTable, Table
from astropy.utils.exceptions import AstropyUserWarning

from photutils_clusterclf import ClusterClassifier, MultiBandImage
from photutils_clusterclf.checkpoint import FORMAT_VERSION, CheckpointError
from photutils_clusterclf.cutouts import (
    FLAG_INVALID_POSITION,
    FLAG_NO_COVERAGE,
    FLAG_NO_OVERLAP,
    FLAG_PARTIAL,
)
from photutils_clusterclf.fileio import sha256_file

from helpers import (
    NEW_COLUMNS,
    SHAPE,
    make_arrays,
    make_classifier,
    make_wcs,
    run_cli,
    write_band_files,
    write_catalogue,
)

NEW_DTYPES = ["int16", "float32", "float32", "float32", "float32", "float32", "int16"]


def images_option(paths):
    """``--images BAND=FILE ...`` arguments."""
    return ["--images", *(f"{band}={path}" for band, path in paths.items())]


def assert_one_line_error(status, err, *, contains=()):
    """Exit status 2 and exactly one ``clusterclf <cmd>: error:`` line."""
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1 and ": error: " in lines[0], err
    for text in contains:
        assert text in lines[0], lines[0]


@pytest.fixture(scope="module")
def clf():
    return make_classifier()


@pytest.fixture(scope="module")
def images():
    return MultiBandImage.from_arrays(make_arrays(), wcs=make_wcs(SHAPE))


@pytest.fixture
def field(tmp_path):
    """Band files, a catalogue and a saved model on disk, plus the output path."""
    paths = write_band_files(tmp_path / "images")
    model = tmp_path / "model.pt"
    make_classifier().save(model)
    return {
        "bands": paths,
        "catalog": write_catalogue(tmp_path / "cat.fits"),
        "model": model,
        "out": tmp_path / "out.fits",
        "dir": tmp_path,
    }


def classify_cli(field, capsys, *extra, model=None, catalog=None, bands=None):
    argv = [
        "classify",
        "--model",
        model or field["model"],
        "--catalog",
        catalog or field["catalog"],
        *images_option(bands or field["bands"]),
        "--out",
        field["out"],
        "--quiet",
        *extra,
    ]
    return run_cli(argv, capsys)


def assert_no_output(field):
    assert not field["out"].exists()
    assert not list(field["dir"].glob(".*.part*"))


def flags_of(out):
    return np.asarray(out["class_ml_flags"])


# -- files and options of the command line ------------------------------------------


@pytest.mark.parametrize(
    "case", ["missing_model", "missing_catalog", "bad_images_pair", "band_missing_from_images_dir"]
)
def test_missing_files_and_bad_options_cli(field, capsys, case):
    argv = {
        "model": field["model"],
        "catalog": field["catalog"],
        "images": images_option(field["bands"]),
    }
    if case == "missing_model":
        argv["model"] = field["dir"] / "nope.pt"
    elif case == "missing_catalog":
        argv["catalog"] = field["dir"] / "nope.fits"
    elif case == "bad_images_pair":
        argv["images"] = ["--images", "F555W"]
    else:  # the model's F275W file is not in --images-dir
        field["bands"]["F275W"].rename(field["dir"] / "f275w.fits")
        argv["images"] = ["--images-dir", field["dir"] / "images"]
    status, _, err = run_cli(
        [
            "classify",
            "--model",
            argv["model"],
            "--catalog",
            argv["catalog"],
            *argv["images"],
            "--out",
            field["out"],
            "--quiet",
        ],
        capsys,
    )
    assert_one_line_error(status, err)
    assert err.startswith("clusterclf classify: error:")
    assert_no_output(field)


# -- images --------------------------------------------------------------------------


def test_missing_band_file(field, capsys):
    bands = dict(field["bands"])
    bands["F555W"] = field["dir"] / "images" / "no_such_f555w.fits"
    with pytest.raises(FileNotFoundError, match="no_such_f555w.fits does not exist"):
        MultiBandImage.from_fits(bands)
    status, _, err = classify_cli(field, capsys, bands=bands)
    assert_one_line_error(status, err, contains=["no_such_f555w.fits"])
    assert_no_output(field)


@pytest.mark.parametrize("name", ["V", "F555", "555W", "F555Q", ""])
def test_unknown_band_name(name):
    arrays = make_arrays()
    arrays[name] = arrays.pop("F555W")
    with pytest.raises(ValueError, match="is not a filter name"):
        MultiBandImage.from_arrays(arrays)


def test_unknown_band_name_cli(field, capsys):
    bands = {("V" if b == "F555W" else b): p for b, p in field["bands"].items()}
    status, _, err = classify_cli(field, capsys, bands=bands)
    assert_one_line_error(status, err, contains=["'V' is not a filter name"])
    assert_no_output(field)


def test_duplicate_band(field, capsys):
    arrays = make_arrays()
    with pytest.raises(ValueError, match="F555W given twice"):
        MultiBandImage.from_arrays({**arrays, "f555w": arrays["F555W"]})
    # Two files whose headers both say FILTER = F555W.
    paths = list(field["bands"].values()) + [field["bands"]["F555W"]]
    with pytest.raises(ValueError, match="F555W given twice"):
        MultiBandImage.from_fits(paths)
    argv = images_option(field["bands"]) + [f"f555w={field['bands']['F814W']}"]
    status, _, err = run_cli(
        [
            "classify",
            "--model",
            field["model"],
            "--catalog",
            field["catalog"],
            *argv,
            "--out",
            field["out"],
            "--quiet",
        ],
        capsys,
    )
    assert_one_line_error(status, err, contains=["f555w is given twice"])
    assert_no_output(field)


def test_different_shapes_without_wcs():
    arrays = make_arrays()
    arrays["F814W"] = make_arrays(shape=(30, 30))["F814W"]
    with pytest.raises(ValueError, match=r"cannot relate the grids of F814W \(30, 30\)"):
        MultiBandImage.from_arrays(arrays)
    # With a WCS per band the grids are related and it is accepted.
    wcs = {band: make_wcs(a.shape) for band, a in arrays.items()}
    images = MultiBandImage.from_arrays(arrays, wcs=wcs)
    assert not images.same_grid("F814W") and images.same_grid("F275W")


def test_band_without_coverage(clf):
    arrays = make_arrays()
    # F275W: no data (NaN) on the left, drizzle-style zeros on the right.
    arrays["F275W"][:, :18] = np.nan
    arrays["F275W"][:, 32:] = 0.0
    images = MultiBandImage.from_arrays(arrays)
    table = Table({"PHANGS_X": [10.0, 25.0, 40.0], "PHANGS_Y": [10.0, 20.0, 30.0]})
    out = clf.classify(table, images, progress_bar=False)
    assert len(out) == 3
    np.testing.assert_array_equal(out["class_ml"] == 0, [True, False, True])
    assert np.all(flags_of(out)[[0, 2]] & FLAG_NO_COVERAGE)
    assert flags_of(out)[1] == 0
    assert np.isnan(out["prob_class1"][[0, 2]]).all()


# -- positions -----------------------------------------------------------------------


def test_invalid_positions_are_flagged(clf, images):
    table = Table(
        {
            "ID": [1, 2, 3, 4, 5],
            "PHANGS_X": MaskedColumn(
                [np.nan, np.inf, -np.inf, 25.0, 25.0],
                mask=[False, False, False, True, False],
            ),
            "PHANGS_Y": [20.0, 20.0, 20.0, 20.0, np.nan],
        }
    )
    out = clf.classify(table, images, progress_bar=False)
    assert list(out["ID"]) == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(flags_of(out), FLAG_INVALID_POSITION)
    assert np.all(out["class_ml"] == 0)


def test_position_off_image(clf, images):
    table = Table(
        {
            "PHANGS_X": [25.0, -100.0, 25.0, 1e30, 54.0],
            "PHANGS_Y": [20.0, 20.0, 1000.0, 20.0, 20.0],
        }
    )
    out = clf.classify(table, images, progress_bar=False)
    assert len(out) == 5
    assert flags_of(out)[0] == 0 and out["class_ml"][0] > 0
    # Cutout window (9 px) entirely outside: x = 54 -> pixels 50..58 of a 50-px image.
    np.testing.assert_array_equal(flags_of(out)[1:], FLAG_NO_OVERLAP)
    assert np.all(out["class_ml"][1:] == 0)


def test_position_on_edge(clf, images):
    ny, nx = SHAPE
    table = Table(
        {
            "PHANGS_X": [0.0, nx - 1.0, 2.0, -0.6, nx - 0.4],
            "PHANGS_Y": [0.0, ny - 1.0, 20.0, 20.0, 20.0],
        }
    )
    out = clf.classify(table, images, progress_bar=False)
    flags = flags_of(out)
    # Centre on the image, cutout padded: classified and flagged partial.
    assert np.all(flags[:3] & FLAG_PARTIAL) and np.all(out["class_ml"][:3] > 0)
    # Centre pixel off the image, cutout still overlapping: partial and not classified.
    assert np.all(flags[3:] & FLAG_PARTIAL) and np.all(flags[3:] & FLAG_NO_COVERAGE)
    assert np.all(out["class_ml"][3:] == 0)


def test_no_position_columns(clf, images, field, capsys):
    with pytest.raises(
        ValueError,
        match="no position columns found.*accepted: pixel columns PHANGS_X/PHANGS_Y",
    ):
        clf.classify(Table({"flux": [1.0, 2.0]}), images, progress_bar=False)
    Table({"flux": [1.0, 2.0]}).write(field["dir"] / "nopos.fits")
    status, _, err = classify_cli(field, capsys, catalog=field["dir"] / "nopos.fits")
    assert_one_line_error(status, err, contains=["no position columns", "PHANGS_X"])
    assert_no_output(field)


def test_pixel_and_sky_disagree(clf, images):
    x, y = np.array([10.0, 25.0, 40.0]), np.array([10.0, 20.0, 30.0])
    sky = make_wcs(SHAPE).pixel_to_world(x, y)
    table = Table(
        {
            "PHANGS_X": x + 3.0,
            "PHANGS_Y": y,
            "PHANGS_RA": sky.ra.deg,
            "PHANGS_DEC": sky.dec.deg,
        }
    )
    with pytest.warns(
        AstropyUserWarning,
        match=r"disagree by more than 1 px.*"
        r"using the pixel columns PHANGS_X/PHANGS_Y",
    ):
        out = clf.classify(table, images, progress_bar=False)
    assert out.meta["clusterclf"]["positions"].startswith("pixel columns PHANGS_X/PHANGS_Y")
    # use="sky" takes the sky columns, which equal the unshifted pixel positions.
    by_sky = clf.classify(table, images, use="sky", progress_bar=False)
    assert by_sky.meta["clusterclf"]["positions"] == "sky columns PHANGS_RA/PHANGS_DEC"
    truth = clf.classify(Table({"PHANGS_X": x, "PHANGS_Y": y}), images, progress_bar=False)
    np.testing.assert_allclose(by_sky["prob_class1"], truth["prob_class1"], atol=1e-6)


def test_pixel_and_sky_agree_no_warning(clf, images, recwarn):
    x, y = np.array([10.0, 25.0]), np.array([10.0, 20.0])
    sky = make_wcs(SHAPE).pixel_to_world(x, y)
    table = Table(
        {
            "PHANGS_X": x,
            "PHANGS_Y": y,
            "PHANGS_RA": sky.ra.deg,
            "PHANGS_DEC": sky.dec.deg,
        }
    )
    clf.classify(table, images, progress_bar=False)
    assert not [w for w in recwarn if issubclass(w.category, AstropyUserWarning)]


def test_pixel_origin_ambiguous(clf, images, field, capsys):
    legus = Table({"x": [11.0, 26.0], "y": [11.0, 21.0]})  # 1-based, no meta
    with pytest.raises(ValueError, match="no known origin: pass origin=0 .* or origin=1"):
        clf.classify(legus, images, progress_bar=False)
    one_based = clf.classify(legus, images, origin=1, progress_bar=False)
    zero_based = clf.classify(
        Table({"PHANGS_X": [10.0, 25.0], "PHANGS_Y": [10.0, 20.0]}),
        images,
        progress_bar=False,
    )
    np.testing.assert_array_equal(one_based["prob_class2"], zero_based["prob_class2"])
    assert "origin=1" in one_based.meta["clusterclf"]["positions"]
    # table.meta["origin"] (set by the LEGUS reader) is used when present.
    legus.meta["origin"] = 1
    from_meta = clf.classify(legus, images, progress_bar=False)
    np.testing.assert_array_equal(from_meta["prob_class2"], zero_based["prob_class2"])

    cat = field["dir"] / "legus.ecsv"
    Table({"x": [11.0, 26.0], "y": [11.0, 21.0]}).write(cat)
    status, _, err = classify_cli(field, capsys, catalog=cat)
    assert_one_line_error(status, err, contains=["origin"])
    assert_no_output(field)
    status, _, err = classify_cli(field, capsys, "--origin", "1", catalog=cat)
    assert status == 0, err
    np.testing.assert_allclose(
        Table.read(field["out"])["prob_class2"], zero_based["prob_class2"], atol=1e-6
    )


def test_wrong_units(clf, images):
    with pytest.raises(ValueError, match=r"column PHANGS_X has wrong units \(m\)"):
        clf.classify(
            QTable({"PHANGS_X": [10.0] * u.m, "PHANGS_Y": [10.0] * u.m}),
            images,
            progress_bar=False,
        )
    with pytest.raises(ValueError, match=r"column ra has wrong units \(Jy\).*angles"):
        clf.classify(
            QTable({"ra": [65.0] * u.Jy, "dec": [-54.9] * u.Jy}),
            images,
            progress_bar=False,
        )
    # Angles in any unit are fine, pixel columns in pix are fine.
    ok = clf.classify(
        QTable({"PHANGS_X": [10.0] * u.pix, "PHANGS_Y": [10.0] * u.pix}),
        images,
        progress_bar=False,
    )
    assert ok["class_ml"][0] > 0


def test_sky_positions_without_wcs(clf):
    images = MultiBandImage.from_arrays(make_arrays())
    with pytest.raises(ValueError, match="needs a WCS"):
        clf.classify(SkyCoord(65.0, -54.9, unit="deg"), images, progress_bar=False)


def test_empty_catalogue(clf, images, field, capsys):
    empty = Table({"ID": np.zeros(0, int), "PHANGS_X": np.zeros(0), "PHANGS_Y": np.zeros(0)})
    out = clf.classify(empty, images, progress_bar=False)
    assert len(out) == 0
    assert out.colnames == ["ID", "PHANGS_X", "PHANGS_Y", *NEW_COLUMNS]
    assert [out[c].dtype.name for c in NEW_COLUMNS] == NEW_DTYPES
    assert out.meta["clusterclf"]["n"] == 0

    cat = field["dir"] / "empty.fits"
    empty.write(cat)
    regions = field["dir"] / "empty.reg"
    status, stdout, err = classify_cli(field, capsys, "--regions", regions, catalog=cat)
    assert status == 0, err
    assert "classified 0 of 0" in stdout
    written = Table.read(field["out"])
    assert len(written) == 0 and written.colnames[-7:] == list(NEW_COLUMNS)
    assert regions.exists()


# -- checkpoints and untrusted files -------------------------------------------------


def _raw_payload(clf, **changes):
    """The dict a checkpoint file holds, with some entries changed."""
    ckpt = clf.checkpoint()
    card = ckpt.card.to_dict()
    card.update(changes.pop("card", {}))
    payload = {
        "format": "photutils-clusterclf checkpoint",
        "format_version": FORMAT_VERSION,
        "card": card,
        "state_dicts": ckpt.state_dicts,
    }
    payload.update(changes)
    return payload


def test_truncated_checkpoint(field, capsys):
    data = field["model"].read_bytes()
    field["model"].write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        ClusterClassifier.load(field["model"], device="cpu")
    status, _, err = classify_cli(field, capsys)
    assert_one_line_error(status, err, contains=["truncated or corrupt"])
    assert_no_output(field)


def test_checkpoint_other_format_version(clf, field, capsys):
    torch.save(_raw_payload(clf, format_version=FORMAT_VERSION + 1), field["model"])
    with pytest.raises(CheckpointError, match="upgrade photutils-clusterclf"):
        ClusterClassifier.load(field["model"], device="cpu")
    status, _, err = classify_cli(field, capsys)
    assert_one_line_error(status, err, contains=[f"format {FORMAT_VERSION + 1}"])
    assert_no_output(field)


def test_checkpoint_for_other_bands(field, capsys):
    acs = ("F275W", "F336W", "F435W", "F555W", "F814W")
    make_classifier(bands=acs).save(field["model"], overwrite=True)
    images = MultiBandImage.from_fits(field["bands"])
    with pytest.raises(ValueError, match=r"model expects bands .*F435W.*missing F435W"):
        ClusterClassifier.load(field["model"], device="cpu").classify(
            Table.read(field["catalog"]), images, progress_bar=False
        )
    status, _, err = classify_cli(field, capsys)
    assert_one_line_error(status, err, contains=["missing F435W"])
    assert_no_output(field)


def test_checkpoint_other_class_scheme(clf, field, capsys):
    torch.save(_raw_payload(clf, card={"classes": [1, 2, 3]}), field["model"])
    with pytest.raises(CheckpointError, match=r"class scheme \(1, 2, 3\) is not supported"):
        ClusterClassifier.load(field["model"], device="cpu")
    status, _, err = classify_cli(field, capsys)
    assert_one_line_error(status, err, contains=["class scheme"])
    assert_no_output(field)


class _Payload:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_malicious_checkpoint_cli(clf, field, capsys):
    marker = field["dir"] / "pwned.txt"
    evil = field["dir"] / "evil.pt"
    torch.save({**_raw_payload(clf), "extra": _Payload(marker)}, evil)
    status, _, err = classify_cli(field, capsys, model=evil)
    assert_one_line_error(status, err, contains=["refusing to load", "evil.pt"])
    assert not marker.exists()
    assert_no_output(field)


def test_sha256_recorded_and_verified(field, capsys):
    digest = sha256_file(field["model"])
    status, _, err = classify_cli(field, capsys, "--sha256", digest.upper())
    assert status == 0, err
    assert Table.read(field["out"]).meta["CLUSTERCLF MODEL_SHA256"] == digest
    ecsv = field["dir"] / "out.ecsv"
    status, _, err = run_cli(
        [
            "classify",
            "--model",
            field["model"],
            "--catalog",
            field["catalog"],
            *images_option(field["bands"]),
            "--out",
            ecsv,
            "--quiet",
        ],
        capsys,
    )
    assert status == 0, err
    assert Table.read(ecsv).meta["clusterclf"]["model_sha256"] == digest
    loaded = ClusterClassifier.load(field["model"], device="cpu", sha256=digest)
    out = loaded.classify(
        Table.read(field["catalog"]),
        MultiBandImage.from_fits(field["bands"]),
        progress_bar=False,
    )
    assert out.meta["clusterclf"]["model_sha256"] == digest


def test_sha256_mismatch(field, capsys):
    wrong = "0" * 64
    with pytest.raises(CheckpointError, match=f"expected {wrong}; wrong or modified file"):
        ClusterClassifier.load(field["model"], device="cpu", sha256=wrong)
    status, _, err = classify_cli(field, capsys, "--sha256", wrong)
    assert_one_line_error(status, err, contains=["wrong or modified file"])
    assert_no_output(field)


# -- the docs table ------------------------------------------------------------------


def test_docs_table_names_existing_tests():
    """Every row of docs/bad_input.rst names tests that exist (and nothing else)."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    text = (root / "docs" / "bad_input.rst").read_text()
    table = text[text.index(".. list-table:: What happens with bad input") :]
    rows = table.split("\n   * - ")[2:]  # skip the options and the header row
    assert len(rows) >= 20
    for row in rows:
        named = re.findall(r"``(test_\w+\.py)::(test_\w+)``", row)
        assert named, f"docs row without a test: {row.splitlines()[0]}"
        for filename, test in named:
            tree = ast.parse((root / "tests" / filename).read_text())
            tests = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
            assert test in tests, f"{filename}::{test} named in the docs does not exist"
