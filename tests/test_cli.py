import json
import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from helpers import BANDS, make_wcs, run_cli
from regions import CircleSkyRegion, Regions

from photutils_clusterclf import ClusterClassifier, __bibtex__, build_model
from photutils_clusterclf.cli import main


def write_field(directory, shape=(80, 90), target="ngc0000", big_endian=True):
    """PHANGS-named band files and a PHANGS-like catalogue."""
    directory.mkdir(exist_ok=True)
    rng = np.random.default_rng(3)
    header = make_wcs(shape).to_header()
    for band in BANDS:
        data = rng.normal(0, 1, shape).astype(">f4" if big_endian else "<f4")
        name = f"hlsp_phangs-hst_hst_wfc3-uvis_{target}_{band.lower()}_v1_exp-drc-sci.fits"
        fits.PrimaryHDU(data, header=header).writeto(directory / name)
    cat = Table(
        {
            "ID_PHANGS_CLUSTER": [1, 2, 3, 4],
            "PHANGS_X": [20.0, 40.0, 60.0, 300.0],
            "PHANGS_Y": [20.0, 50.0, 10.0, 5.0],
            "PHANGS_CLUSTER_CLASS_HUMAN": [1, 2, 9, 0],
        }
    )
    cat_path = directory / f"hlsp_phangs-cat_hst_uvis_{target}_multi_v1_obs-candidates.fits"
    cat.write(cat_path)
    return cat_path


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    model = build_model("small_cnn", n_bands=5, n_classes=4)
    clf = ClusterClassifier.from_model(model, arch="small_cnn", bands=BANDS, cutout_size=16)
    path = tmp_path / "model.pt"
    clf.save(path)
    return path


def test_classify_end_to_end(tmp_path, model_path, capsys):
    cat = write_field(tmp_path / "field")
    out = tmp_path / "out.fits"
    reg = tmp_path / "out.reg"
    status, stdout, err = run_cli(
        [
            "classify",
            "--model",
            model_path,
            "--catalog",
            cat,
            "--images-dir",
            tmp_path / "field",
            "--out",
            out,
            "--regions",
            reg,
            "--quiet",
        ],
        capsys,
    )
    assert status == 0, err
    table = Table.read(out)
    assert len(table) == 4 and list(table["ID_PHANGS_CLUSTER"]) == [1, 2, 3, 4]
    assert table["class_ml"][3] == 0 and table["class_ml_flags"][3] & 4
    assert np.all(table["class_ml"][:3] > 0)
    regions = Regions.read(reg, format="ds9")
    assert len(regions) == 3
    assert "classified 3 of 4" in stdout


def test_classify_images_by_band_and_ecsv_phangs_style(tmp_path, model_path, capsys):
    cat = write_field(tmp_path / "field", big_endian=False)
    files = sorted((tmp_path / "field").glob("hlsp_phangs-hst_*.fits"))
    pairs = [f"{f.name.split('_')[5].upper()}={f}" for f in files]
    out = tmp_path / "out.ecsv"
    status, _, err = run_cli(
        [
            "classify",
            "--model",
            model_path,
            "--catalog",
            cat,
            "--images",
            *pairs,
            "--out",
            out,
            "--column-style",
            "phangs",
            "--quiet",
        ],
        capsys,
    )
    assert status == 0, err
    table = Table.read(out)
    assert "PHANGS_CLUSTER_CLASS_ML_SMALLCNN_QUAL" in table.colnames
    assert table.meta["clusterclf"]["bands"] == list(BANDS)


def test_existing_output_is_refused_and_untouched(tmp_path, model_path, capsys):
    cat = write_field(tmp_path / "field")
    out = tmp_path / "out.fits"
    out.write_text("precious")
    status, _, err = run_cli(
        [
            "classify",
            "--model",
            model_path,
            "--catalog",
            cat,
            "--images-dir",
            tmp_path / "field",
            "--out",
            out,
            "--quiet",
        ],
        capsys,
    )
    assert status == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "precious"
    status, _, err = run_cli(
        [
            "classify",
            "--model",
            model_path,
            "--catalog",
            cat,
            "--images-dir",
            tmp_path / "field",
            "--out",
            out,
            "--quiet",
            "--overwrite",
        ],
        capsys,
    )
    assert status == 0, err
    assert len(Table.read(out)) == 4


def test_columns_option_picks_position_columns(tmp_path, model_path, capsys):
    write_field(tmp_path / "field")
    cat = tmp_path / "own.ecsv"
    Table({"xpos": [20.0, 40.0], "ypos": [20.0, 50.0]}).write(cat)
    out = tmp_path / "out.ecsv"
    argv = [
        "classify",
        "--model",
        model_path,
        "--catalog",
        cat,
        "--images-dir",
        tmp_path / "field",
        "--out",
        out,
        "--quiet",
        "--origin",
        "0",
    ]
    status, _, err = run_cli(argv, capsys)
    assert status == 2 and "--columns X Y" in err
    status, _, err = run_cli(
        [*argv, "--columns", "xpos", "ypos", "--regions", tmp_path / "out.reg"], capsys
    )
    assert status == 0, err
    assert np.all(Table.read(out)["class_ml"] > 0)
    assert len(Regions.read(tmp_path / "out.reg", format="ds9")) == 2


def test_regions_and_evaluate_commands(tmp_path, model_path, capsys):
    cat = write_field(tmp_path / "field")
    out = tmp_path / "out.fits"
    assert (
        run_cli(
            [
                "classify",
                "--model",
                model_path,
                "--catalog",
                cat,
                "--images-dir",
                tmp_path / "field",
                "--out",
                out,
                "--quiet",
            ],
            capsys,
        )[0]
        == 0
    )
    reg = tmp_path / "c.reg"
    status, _, err = run_cli(["regions", "--catalog", out, "--out", reg], capsys)
    assert status == 0, err
    assert len(Regions.read(reg, format="ds9")) == 3
    report = tmp_path / "r.json"
    status, stdout, err = run_cli(
        [
            "evaluate",
            "--catalog",
            out,
            "--truth-column",
            "PHANGS_CLUSTER_CLASS_HUMAN",
            "--pred-column",
            "class_ml",
            "--json",
            report,
            "--plot",
            tmp_path / "cm.png",
        ],
        capsys,
    )
    assert status == 0, err
    data = json.loads(report.read_text())
    # Truth codes 1, 2, 9 (folds to 4) are scored; the unlabelled row is excluded.
    assert data["n"] == 3 and data["n_excluded"] == 1
    assert (tmp_path / "cm.png").stat().st_size > 1000


def test_regions_frame_sky_from_images_or_sky_columns(tmp_path, model_path, capsys):
    cat = write_field(tmp_path / "field")
    out = tmp_path / "out.fits"
    assert (
        run_cli(
            [
                "classify",
                "--model",
                model_path,
                "--catalog",
                cat,
                "--images-dir",
                tmp_path / "field",
                "--out",
                out,
                "--quiet",
            ],
            capsys,
        )[0]
        == 0
    )
    # Pixel columns only: the images' WCS converts them.
    status, _, err = run_cli(
        ["regions", "--catalog", out, "--out", tmp_path / "a.reg", "--frame", "sky"], capsys
    )
    assert status == 2 and "--images-dir" in err and "--radius-arcsec" in err
    status, _, err = run_cli(
        [
            "regions",
            "--catalog",
            out,
            "--out",
            tmp_path / "a.reg",
            "--frame",
            "sky",
            "--images-dir",
            tmp_path / "field",
        ],
        capsys,
    )
    assert status == 0, err
    from_images = Regions.read(tmp_path / "a.reg", format="ds9")
    assert len(from_images) == 3 and all(isinstance(r, CircleSkyRegion) for r in from_images)
    # Sky columns and a sky radius: no images needed.
    table = Table.read(out)
    sky = make_wcs((80, 90)).pixel_to_world(table["PHANGS_X"], table["PHANGS_Y"])
    table["ra"], table["dec"] = sky.ra.deg, sky.dec.deg
    table.write(tmp_path / "sky.ecsv")
    status, _, err = run_cli(
        [
            "regions",
            "--catalog",
            tmp_path / "sky.ecsv",
            "--out",
            tmp_path / "b.reg",
            "--frame",
            "sky",
            "--radius-arcsec",
            "0.2",
        ],
        capsys,
    )
    assert status == 0, err
    from_columns = Regions.read(tmp_path / "b.reg", format="ds9")
    assert from_columns[0].radius.to_value(u.arcsec) == pytest.approx(0.2)
    for a, b in zip(from_images, from_columns, strict=True):
        assert a.center.separation(b.center).to_value(u.arcsec) < 1e-3


def test_messages_name_cli_options_and_user_paths(tmp_path, model_path, capsys):
    cat = write_field(tmp_path / "field")
    base = ["classify", "--catalog", cat, "--quiet"]
    cases = [
        # An unknown output format is refused before any work, naming the user's path.
        (
            [
                "--model",
                model_path,
                "--images-dir",
                tmp_path / "field",
                "--out",
                tmp_path / "out.txt",
            ],
            [f"--out {tmp_path / 'out.txt'}", ".ecsv"],
        ),
        (
            ["--model", model_path, "--images-dir", "/nosuch", "--out", tmp_path / "o.fits"],
            ["--images-dir /nosuch does not exist"],
        ),
        (
            [
                "--model",
                cat.with_suffix(".txt"),
                "--images-dir",
                tmp_path / "field",
                "--out",
                tmp_path / "o.fits",
            ],
            ["not a clusterclf checkpoint"],
        ),
    ]
    cat.with_suffix(".txt").write_text("a text file, not a model\n")
    (tmp_path / "exists.fits").write_text("")
    cases.append(
        (
            [
                "--model",
                model_path,
                "--images-dir",
                tmp_path / "field",
                "--out",
                tmp_path / "exists.fits",
            ],
            ["add --overwrite"],
        )
    )
    for argv, expected in cases:
        status, _, err = run_cli([*base, *argv], capsys)
        assert status == 2, err
        assert len(err.strip().splitlines()) == 1
        for text in expected:
            assert text in err
        assert "overwrite=True" not in err and ".part" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.fits", "field", "model.pt"]


def test_no_candidate_on_the_images_is_an_error_and_writes_nothing(tmp_path, model_path, capsys):
    write_field(tmp_path / "field")
    cat = tmp_path / "elsewhere.fits"
    Table({"PHANGS_X": [500.0, 600.0], "PHANGS_Y": [500.0, 700.0]}).write(cat)
    out = tmp_path / "out.fits"
    with pytest.warns(AstropyUserWarning, match="none of the 2 candidates"):
        status, _, err = run_cli(
            [
                "classify",
                "--model",
                model_path,
                "--catalog",
                cat,
                "--images-dir",
                tmp_path / "field",
                "--out",
                out,
                "--quiet",
            ],
            capsys,
        )
    assert status == 2 and "nothing was written" in err and "--origin" in err
    assert not out.exists()


def test_cite_and_input_checks_do_not_import_torch(tmp_path):
    # A fresh interpreter: torch is imported only once a model is needed.
    code = (
        "import sys\n"
        "from photutils_clusterclf.cli import main\n"
        "assert main(['--cite']) == 0\n"
        f"assert main(['classify', '--model', {str(tmp_path / 'm.pt')!r}, '--catalog', "
        f"'c.fits', '--images-dir', '.', '--out', 'o.fits']) == 2\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "@ARTICLE{2020MNRAS.493.3178W" in done.stdout
    assert "--model" in done.stderr


def test_programming_errors_are_not_reported_as_bad_input(monkeypatch):
    # Only validated input errors give exit status 2; a TypeError from a bug
    # propagates with its traceback (the console script then exits with 1).
    import photutils_clusterclf.cli as cli

    def broken(args):
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setattr(cli, "_cmd_evaluate", broken)
    with pytest.raises(TypeError, match="unsupported operand"):
        main(["evaluate", "--catalog", "c.fits", "--truth-column", "a", "--pred-column", "b"])


def test_cite_and_version(capsys):
    status, out, _ = run_cli(["--cite"], capsys)
    assert status == 0 and out.strip() == __bibtex__.strip()


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "photutils_clusterclf.cli", "classify", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--column-style" in result.stdout and "--overwrite" in result.stdout


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["classify", "--model"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
