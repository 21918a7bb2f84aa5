import dataclasses
import json
import re
import time

import numpy as np
import pytest
import torch
from astropy.table import Table
from regions import Regions

from photutils_clusterclf.checkpoint import load_checkpoint
from photutils_clusterclf.cli import main
from photutils_clusterclf.demo import DEMO_CONFIGS, MARKER, run_demo

from helpers import write_weights_file

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
    # --quick is a smoke run (small_cnn): every member learns (its training
    # loss falls), and the ensemble beats always answering the commonest class
    # on a galaxy it never saw; what the method reaches is the full demo's.
    assert "smoke run" in printed
    for member in load_checkpoint(out / "model.pt").card.training["members"]:
        losses = [epoch["train_loss"] for epoch in member["log"]]
        assert losses[-1] < losses[0]
    truth = np.asarray(report["true_classes"]["confusion_matrix"]).sum(axis=1)
    assert report["true_classes"]["overall_accuracy"] > truth.max() / truth.sum() + 0.05

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


def _seconds(line):
    """The ``[  12.3 s]`` stamp of one of the demo's progress lines."""
    return float(re.match(r"\[\s*([0-9.]+) s\]", line).group(1))


def test_demo_prints_its_wall_time(tmp_path, monkeypatch):
    # A tiny configuration: the line must report what the run really took.
    tiny = dataclasses.replace(
        DEMO_CONFIGS["quick"], name="tiny", shape=(256, 256), n_candidates=70, epochs=1, n_models=1
    )
    monkeypatch.setitem(DEMO_CONFIGS, "quick", tiny)
    lines = []
    start = time.perf_counter()
    run_demo(tmp_path / "demo", quick=True, device="cpu", printer=lines.append)
    elapsed = time.perf_counter() - start
    match = re.fullmatch(
        r"wall time: (\d+) min (\d\d) s \((\d+) s\) in total, of which (\d+) s training 1 network",
        lines[-1],
    )
    assert match, lines[-1]
    minutes, seconds, total, training = map(int, match.groups())
    assert 60 * minutes + seconds == total
    assert 0.9 * elapsed - 1 <= total <= elapsed + 1
    # The thread count, which decides the exact numbers, is said.
    assert any(f"] {torch.get_num_threads()} torch thread(s), 1 network(s)" in x for x in lines)
    # Training is the span between the progress lines around it, not the whole run.
    began = next(_seconds(x) for x in lines if f"training {tiny.arch}" in x)
    ended = next(_seconds(x) for x in lines if "simulating demo-heldout" in x)
    assert training <= ended - began + 1 and training < total

    # A rerun that reuses the model says that it trained nothing.
    lines.clear()
    run_demo(tmp_path / "demo", quick=True, device="cpu", printer=lines.append)
    assert lines[-1].endswith("in total; no training (the model of an earlier run was reused)")

    # Once simulated-field weights are installed, the demo trains from them
    # ("auto") instead of reusing the model trained from random weights.
    from photutils_clusterclf.weights import install_weights

    write_weights_file(tmp_path / "sim.pt")
    install_weights(tmp_path / "sim.pt", "sim-small_cnn")
    lines.clear()
    run_demo(tmp_path / "demo", quick=True, device="cpu", printer=lines.append)
    assert any("small_cnn starts from the sim-small_cnn weights" in x for x in lines)
    assert "training 1 network" in lines[-1]
    assert load_checkpoint(tmp_path / "demo" / "model.pt").card.training["options"]["weights"] == (
        "sim-small_cnn"
    )
