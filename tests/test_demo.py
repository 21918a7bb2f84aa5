import json

import numpy as np
import pytest
from astropy.table import Table
from regions import Regions

from photutils_clusterclf.cli import main
from photutils_clusterclf.demo import MARKER

OUTPUTS = [
    "model.pt",
    "heldout_classified.fits",
    "heldout_classified.ecsv",
    "heldout_classes.reg",
    "confusion_matrix.png",
    "overlay.png",
    "report.json",
]
COLUMNS = [
    "class_ml",
    "class_ml_qual",
    "prob_class1",
    "prob_class2",
    "prob_class3",
    "prob_class4",
    "class_ml_flags",
]


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
        assert name in printed
    assert "random initialisation" in printed  # no ImageNet weights in the test cache
    assert "Wei+2020" in printed
    table = Table.read(out / "heldout_classified.fits")
    ecsv = Table.read(out / "heldout_classified.ecsv")
    assert set(COLUMNS) <= set(table.colnames) and len(table) == len(ecsv)
    assert (table["class_ml"] > 0).sum() == len(Regions.read(out / "heldout_classes.reg"))
    report = json.loads((out / "report.json").read_text())
    assert report["true_classes"]["n"] > 0
    # The trained model beats always answering the commonest class (class 4,
    # about 31 % of the held-out candidates) on a galaxy it never saw.
    truth = np.asarray(report["true_classes"]["confusion_matrix"]).sum(axis=1)
    baseline = truth.max() / truth.sum()
    assert report["true_classes"]["overall_accuracy"] > baseline + 0.05

    # The held-out galaxy goes straight onto the inspection page.
    page = tmp_path / "inspect.html"
    assert (
        main(
            [
                "inspect",
                "--catalog",
                str(out / "heldout_classified.fits"),
                "--images-dir",
                str(out / "heldout"),
                "--out",
                str(page),
                "--quiet",
            ]
        )
        == 0
    )
    assert f"({len(table)} candidates)" in capsys.readouterr().out

    # A second run reuses the model.
    before = (out / "model.pt").stat().st_mtime_ns
    assert main(["demo", "--quick", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert "reusing the trained model" in capsys.readouterr().out
    assert (out / "model.pt").stat().st_mtime_ns == before


def test_demo_refuses_a_foreign_directory(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "--quick", "--out", str(tmp_path), "--quiet"]) == 2
    assert "not written by the demo" in capsys.readouterr().err
    assert not (tmp_path / MARKER).exists()
