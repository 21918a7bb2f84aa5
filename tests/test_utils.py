"""The shared helpers of ``utils``: progress bars, parameter validators, provenance."""

import io
import sys

import pytest

from photutils_clusterclf.utils import progress
from photutils_clusterclf.utils.progress import add_progress_bar, progress_bar
from photutils_clusterclf.utils.provenance import provenance
from photutils_clusterclf.utils.validation import check_choice, check_fraction, check_integer


def test_progress_is_plain_lines_when_not_a_terminal(monkeypatch):
    out = io.StringIO()  # not a terminal
    with progress_bar(total=1000, desc="classify", unit="obj", file=out) as bar:
        for _ in range(1000):
            bar.update(1)
    lines = out.getvalue().splitlines()
    # No carriage-return redraws; one line at the end of a quick step.
    assert "\r" not in out.getvalue() and len(lines) == 1
    assert lines[0].startswith("classify: 1000/1000 obj")
    # A long step writes a line per LINE_INTERVAL seconds, not one per update.
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.0)
    out = io.StringIO()
    assert list(add_progress_bar(range(3), desc="galaxies", file=out)) == [0, 1, 2]
    assert out.getvalue().splitlines()[-1].startswith("galaxies: 3/3 it")


def test_disabled_progress_prints_nothing():
    out = io.StringIO()
    with progress_bar(total=5, enabled=False, file=out) as bar:
        bar.update(5)
    assert out.getvalue() == "" and bar.n == 5


def test_training_shows_one_bar_not_one_per_member_and_epoch(capsys):
    import numpy as np
    import torch

    from photutils_clusterclf.training import TrainingSet, train_classifier

    from helpers import BANDS

    rng = np.random.default_rng(0)
    labels = np.resize(np.array([1, 2, 3, 4]), 32)
    cutouts = rng.normal(size=(32, len(BANDS), 16, 16)).astype(np.float32)
    torch.set_num_threads(1)
    train_classifier(
        TrainingSet(cutouts, labels, bands=BANDS),
        arch="small_cnn",
        weights=None,
        epochs=2,
        n_models=2,
        batch_size=8,
        device="cpu",
        progress_bar=True,
    )
    err = capsys.readouterr().err  # captured: not a terminal
    assert "member 1/" not in err and "epoch 1" not in err
    assert err.count("train: 4/4 epoch") == 1
    assert len(err.strip().splitlines()) == 1


def test_validators_name_the_parameter_and_what_is_accepted():
    assert check_integer("epochs", 3.0) == 3
    assert check_integer("patience", None, allow_none=True) is None
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match=r"epochs must be an integer >= 1, got"):
            check_integer("epochs", bad)
    with pytest.raises(ValueError, match=r"in 0\.\.7"):
        check_integer("k", 8, minimum=0, maximum=7)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        check_fraction("val_fraction", 1.0)
    with pytest.raises(ValueError, match="aggregate='median' is not one of 'mean', 'mode'"):
        check_choice("aggregate", "median", ("mean", "mode"))


def test_provenance_leaves_out_none_and_records_versions():
    record = provenance(model_sha256="abc", note=None)
    assert "note" not in record and record["model_sha256"] == "abc"
    assert record["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert set(record["versions"]) >= {"photutils_clusterclf", "torch", "astropy", "numpy"}
