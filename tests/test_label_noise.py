"""Tests of forward correction for label noise: the corrected loss, training that
recovers a class the labels hide, the option, its record, calibration through the
matrix, and ``clusterclf train --label-noise``."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import BANDS, run_cli
from scipy.special import softmax

from photutils_clusterclf.calibration import calibration_summary, fit_temperature
from photutils_clusterclf.classifier import ClusterClassifier
from photutils_clusterclf.datasets import HUMAN_LABEL_NOISE
from photutils_clusterclf.training import TrainingOptions, TrainingSet, train_classifier
from photutils_clusterclf.training.loop import _label_logits

# True class 2 is labelled 1 more often than 2: plain training learns to call it 1.
HIDING = np.array(
    [
        [1.0, 0.0, 0.0, 0.0],
        [0.6, 0.4, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


# Tiny networks: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_label_logits_are_log_probabilities_of_the_labels():
    torch.manual_seed(0)
    logits = torch.randn(50, 4) * 3
    log_noise = torch.log(torch.tensor(HUMAN_LABEL_NOISE, dtype=torch.float32))
    out = _label_logits(logits, log_noise)
    expected = torch.softmax(logits, dim=1) @ torch.tensor(HUMAN_LABEL_NOISE, dtype=torch.float32)
    torch.testing.assert_close(out.exp(), expected)
    # cross_entropy of them is the likelihood of the labels, smoothing included.
    y = torch.randint(0, 4, (50,))
    torch.testing.assert_close(
        F.cross_entropy(out, y, reduction="none"), -torch.log(expected[torch.arange(50), y])
    )
    # The identity matrix is plain training; no matrix leaves the logits alone.
    identity = _label_logits(logits, torch.log(torch.eye(4)))
    torch.testing.assert_close(
        F.cross_entropy(identity, y, label_smoothing=0.1),
        F.cross_entropy(logits, y, label_smoothing=0.1),
    )
    assert _label_logits(logits, None) is logits


def _hidden_class_set(n_per_class=48, size=16, seed=0):
    """Class c is a blob in band c; 60 % of the true class 2 is labelled 1 (`HIDING`)."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([1, 2, 3, 4], n_per_class)
    yy, xx = np.mgrid[:size, :size] - size // 2
    blob = 40 * np.exp(-(xx**2 + yy**2) / 4.0)
    cutouts = rng.normal(0, 1, (truth.size, 5, size, size)).astype(np.float32)
    cutouts[np.arange(truth.size), truth - 1] += blob.astype(np.float32)
    labels = truth.copy()
    twos = np.flatnonzero(truth == 2)
    labels[twos[: int(0.6 * twos.size)]] = 1
    return TrainingSet(cutouts, labels, bands=BANDS), truth


def test_forward_correction_recovers_the_class_the_labels_hide():
    ts, truth = _hidden_class_set()
    common = {
        "arch": "small_cnn",
        "weights": None,
        "epochs": 8,
        "batch_size": 16,
        "lr": 3e-3,
        "val_fraction": 0,
        "class_balance": "none",
        "label_smoothing": 0.0,
        "device": "cpu",
    }
    plain = train_classifier(ts, **common)
    corrected = train_classifier(ts, label_noise=HIDING, **common)
    twos = truth == 2
    plain_pred = plain.predict_proba(ts.cutouts).argmax(axis=1) + 1
    corrected_pred = corrected.predict_proba(ts.cutouts).argmax(axis=1) + 1
    assert np.mean(plain_pred[twos] == 2) < 0.3  # the labels' majority: class 1
    assert np.mean(corrected_pred[twos] == 2) > 0.8
    assert np.mean(corrected_pred[~twos] == truth[~twos]) > 0.9


def test_label_noise_option_is_checked_and_recorded(tmp_path):
    options = TrainingOptions(label_noise="human")
    np.testing.assert_array_equal(options.label_noise_matrix(), HUMAN_LABEL_NOISE)
    assert TrainingOptions().label_noise_matrix() is None
    with pytest.raises(ValueError, match="label_noise matrix is singular"):
        TrainingOptions(label_noise=np.full((4, 4), 0.25))
    with pytest.raises(ValueError, match=r"must have shape \(4, 4\), got \(3, 3\)"):
        TrainingOptions(label_noise=np.eye(3))
    with pytest.raises(ValueError, match="each row must sum to 1"):
        TrainingOptions(label_noise=np.eye(4) * 2)
    ts, _ = _hidden_class_set(n_per_class=8)
    clf = train_classifier(
        ts, arch="small_cnn", weights=None, epochs=1, batch_size=8, label_noise=HIDING
    )
    assert clf.card.training["options"]["label_noise"] == HIDING.tolist()
    assert "through the label-noise matrix" in clf.card.training["calibration"]["method"]
    clf.save(tmp_path / "m.pt")
    loaded = ClusterClassifier.load(tmp_path / "m.pt", device="cpu")
    assert loaded.card.training["options"]["label_noise"] == HIDING.tolist()


def test_resume_refuses_another_label_noise(tmp_path):
    ts, _ = _hidden_class_set(n_per_class=8)
    common = {"arch": "small_cnn", "weights": None, "batch_size": 8, "checkpoint_dir": tmp_path}
    train_classifier(ts, epochs=1, **common)
    with pytest.raises(ValueError, match=r"different options \['label_noise'\]"):
        train_classifier(ts, epochs=2, resume=True, label_noise="human", **common)


def test_temperature_fitted_through_the_noise_matrix():
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 2.0, size=(20000, 4))
    # Labels drawn from the noisy-label probabilities of calibrated true-class logits.
    p_label = softmax(z, axis=1) @ HUMAN_LABEL_NOISE
    labels = (rng.random((z.shape[0], 1)) > p_label.cumsum(axis=1)).sum(axis=1).clip(max=3) + 1
    fitted = fit_temperature(z * 2.0, labels, label_noise=HUMAN_LABEL_NOISE)
    assert fitted == pytest.approx(2.0, rel=0.1)
    # Read as probabilities of the labels, the same logits look far too confident.
    assert fit_temperature(z * 2.0, labels) > 3.0
    summary = calibration_summary(z * 2.0, labels, fitted, label_noise=HUMAN_LABEL_NOISE)
    assert summary["ece_after"] < 0.02 < summary["ece_before"]
    with pytest.raises(ValueError, match=r"label_noise must be a \(4, 4\) matrix"):
        fit_temperature(z, labels, label_noise=np.eye(3))


def test_train_command_reads_a_label_noise_file(tmp_path, capsys):
    from photutils_clusterclf.cli import EXIT_BAD_INPUT, _read_label_noise

    path = tmp_path / "noise.txt"
    np.savetxt(path, HUMAN_LABEL_NOISE)
    assert np.allclose(_read_label_noise(str(path)), HUMAN_LABEL_NOISE)
    assert _read_label_noise("human") == "human"

    def train_with(noise_file):
        argv = ["train", "--galaxy", f"{tmp_path / 'cat.fits'}={tmp_path}"]
        argv += ["--label-column", "class", "--out", tmp_path / "m.pt"]
        return run_cli([*argv, "--label-noise", noise_file], capsys)

    status, _, err = train_with(tmp_path / "missing.txt")
    assert status == EXIT_BAD_INPUT
    assert "--label-noise" in err and "no such file" in err and "P(label | true class)" in err
    np.savetxt(path, np.eye(3))
    status, _, err = train_with(path)
    assert status == EXIT_BAD_INPUT and "must have shape (4, 4), got (3, 3)" in err
