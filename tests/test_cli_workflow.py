"""The command-line workflow of a user: simulate, train, classify, evaluate."""

import json

import numpy as np
import pytest
from astropy.table import Table

from photutils_clusterclf import ClusterClassifier
from photutils_clusterclf.cli import main


def simulate(tmp_path, name, seed, distance, n=60):
    out = tmp_path / name
    status = main(
        [
            "simulate",
            "--out",
            str(out),
            "--target",
            name,
            "--seed",
            str(seed),
            "--n-candidates",
            str(n),
            "--distance-mpc",
            str(distance),
            "--shape",
            "300",
            "320",
            "--label-noise",
            "human",
        ]
    )
    assert status == 0
    (catalog,) = out.glob("hlsp_phangs-cat_*.fits")
    return catalog, out


def test_simulate_command_writes_phangs_files_and_refuses_overwrite(tmp_path, capsys):
    catalog, out = simulate(tmp_path, "ngc9999", 1, 9.0, n=20)
    assert len(list(out.glob("hlsp_phangs-hst_hst_wfc3-uvis_ngc9999_f*_v1_exp-drc-sci.fits"))) == 5
    table = Table.read(catalog)
    assert len(table) == 20 and {"PHANGS_X", "CLASS_TRUE"} <= set(table.colnames)
    before = catalog.read_bytes()
    capsys.readouterr()
    status = main(
        [
            "simulate",
            "--out",
            str(out),
            "--target",
            "ngc9999",
            "--seed",
            "2",
            "--n-candidates",
            "20",
            "--shape",
            "300",
            "320",
        ]
    )
    assert status == 2 and "overwrite" in capsys.readouterr().err
    assert catalog.read_bytes() == before


@pytest.mark.slow
def test_train_then_classify_a_held_out_galaxy(tmp_path, capsys):
    train = [simulate(tmp_path, f"train{i}", 10 + i, d) for i, d in enumerate((6.0, 15.0))]
    held_cat, held_dir = simulate(tmp_path, "held", 30, 10.0)
    model = tmp_path / "model.pt"
    argv = [
        "train",
        "--label-column",
        "PHANGS_CLUSTER_CLASS_HUMAN",
        "--out",
        str(model),
        "--arch",
        "small_cnn",
        "--weights",
        "none",
        "--cutout-size",
        "16",
        "--epochs",
        "2",
        "--n-models",
        "2",
        "--seed",
        "3",
        "--quiet",
    ]
    for cat, images in train:
        argv += ["--galaxy", f"{cat}={images}"]
    assert main(argv) == 0, capsys.readouterr().err
    clf = ClusterClassifier.load(model)
    assert clf.n_members == 2 and clf.card.cutout_size == 16
    assert clf.card.training["label_column"] == "PHANGS_CLUSTER_CLASS_HUMAN"

    out = tmp_path / "held.fits"
    assert (
        main(
            [
                "classify",
                "--model",
                str(model),
                "--catalog",
                str(held_cat),
                "--images-dir",
                str(held_dir),
                "--out",
                str(out),
                "--aggregate",
                "mode",
                "--quiet",
            ]
        )
        == 0
    )
    table = Table.read(out)
    assert len(table) == 60 and np.all(table["class_ml"] > 0)
    assert set(np.unique(table["class_ml_qual"])) <= {0.5, 1.0}  # 2-member vote fractions

    report = tmp_path / "report.json"
    assert (
        main(
            [
                "evaluate",
                "--catalog",
                str(out),
                "--truth-column",
                "CLASS_TRUE",
                "--pred-column",
                "class_ml",
                "--json",
                str(report),
            ]
        )
        == 0
    )
    data = json.loads(report.read_text())
    assert data["n"] == 60 and np.array(data["confusion_matrix"]).sum() == 60


@pytest.mark.slow
def test_train_command_under_torchrun_two_cpu_processes(tmp_path):
    import os
    import subprocess
    import sys

    galaxies = [simulate(tmp_path, f"g{i}", 40 + i, 8.0, n=30) for i in range(2)]
    model = tmp_path / "ddp.pt"
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "photutils_clusterclf.cli",
        "train",
        "--label-column",
        "PHANGS_CLUSTER_CLASS_HUMAN",
        "--out",
        str(model),
        "--arch",
        "small_cnn",
        "--weights",
        "none",
        "--cutout-size",
        "16",
        "--epochs",
        "1",
        "--quiet",
    ]
    for cat, images in galaxies:
        argv += ["--galaxy", f"{cat}={images}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("wrote") == 1  # rank 0 alone writes the model
    assert ClusterClassifier.load(model).card.training["world_size"] == 2
