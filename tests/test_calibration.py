"""Tests of calibration: temperature scaling, ECE, Brier score, and their use in
the model card, classification, training, EvaluationReport and the figures."""

import json
import math

import numpy as np
import pytest
import torch
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from scipy.special import softmax

from photutils_clusterclf import ClusterClassifier, build_model
from photutils_clusterclf.calibration import (
    brier_score,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_curve,
    temperature_softmax,
)
from photutils_clusterclf.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    ModelCard,
    load_checkpoint,
)
from photutils_clusterclf.evaluation import EvaluationReport
from photutils_clusterclf.training import TrainingSet, train_classifier
from photutils_clusterclf.visualization import plot_reliability_diagram, save_reliability_diagram

from helpers import BANDS
from test_training import FAST, make_arrays


def _sampled_labels(probs, rng):
    """One class 1..K per row, drawn from the row's probabilities."""
    cumulative = probs.cumsum(axis=1)
    u = rng.random((len(probs), 1))
    return (u > cumulative).sum(axis=1).clip(max=probs.shape[1] - 1) + 1


def _true_logits(n=20000, k=4, seed=0):
    """Logits whose softmax is, by construction, the probability the labels are drawn from."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, size=(n, k))
    return z, _sampled_labels(softmax(z, axis=1), rng)


# -- temperature -------------------------------------------------------------------


@pytest.mark.parametrize("true_t", [0.4, 2.5])
def test_temperature_recovered_from_over_and_under_confident_logits(true_t):
    z, labels = _true_logits()
    # A model whose logits are the calibrated ones times T is over-confident
    # for T > 1 and under-confident for T < 1; dividing by T undoes it.
    fitted = fit_temperature(z * true_t, labels)
    assert fitted == pytest.approx(true_t, rel=0.05)
    # Calibrated logits need no temperature.
    assert fit_temperature(z, labels) == pytest.approx(1.0, rel=0.05)


def test_ensemble_of_identical_members_has_the_single_model_temperature():
    z, labels = _true_logits(n=4000, seed=1)
    single = fit_temperature(z * 2.0, labels)
    assert fit_temperature(np.stack([z * 2.0] * 3), labels) == pytest.approx(single, rel=1e-4)
    probs = temperature_softmax(np.stack([z, z]), 2.0)
    np.testing.assert_allclose(probs, softmax(z / 2.0, axis=1), rtol=1e-10)


def test_summary_says_calibration_improved():
    z, labels = _true_logits(n=5000, seed=2)
    summary = calibration_summary(z * 3.0, labels, fit_temperature(z * 3.0, labels))
    assert summary["n_objects"] == 5000
    assert summary["nll_after"] < summary["nll_before"]
    assert summary["ece_after"] < summary["ece_before"] / 3
    assert summary["brier_after"] < summary["brier_before"]
    assert summary["nll_after"] == pytest.approx(
        negative_log_likelihood(softmax(z * 3.0 / summary["temperature"], axis=1), labels)
    )


def test_temperature_edge_cases_are_clear_errors():
    z, labels = _true_logits(n=200, seed=3)
    with pytest.raises(ValueError, match="no rows"):
        fit_temperature(np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match="at least 2"):
        fit_temperature(np.zeros((5, 1)), np.ones(5))
    bad = z.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit_temperature(bad, labels)
    with pytest.raises(ValueError, match="not classes 1-4"):
        fit_temperature(z, np.where(np.arange(200) == 5, 0, labels))
    with pytest.raises(ValueError, match="one class per row"):
        fit_temperature(z, labels[:-1])
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(z, labels, bounds=(2.0, 1.0))
    # Every object right: sharper is always better, no finite temperature.
    right = np.eye(4)[labels - 1] * 3.0
    with pytest.raises(ValueError, match="do not constrain"):
        fit_temperature(right, labels)
    with pytest.raises(ValueError, match="temperature must be"):
        temperature_softmax(z, 0.0)


# -- ECE, Brier, reliability ---------------------------------------------------------


def test_ece_of_calibrated_probabilities_is_near_zero():
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.full(4, 0.7), size=50000)
    labels = _sampled_labels(probs, rng)
    assert expected_calibration_error(probs, labels) < 0.015
    # The same probabilities made over-confident are not calibrated.
    sharp = probs**3 / (probs**3).sum(axis=1, keepdims=True)
    assert expected_calibration_error(sharp, labels) > 0.1


def test_ece_of_a_known_miscalibration():
    rng = np.random.default_rng(5)
    n = 40000
    half = n // 2
    # First half: top probability 0.95 but right 75 % of the time (gap 0.2);
    # second half: 0.55 and right 55 % of the time (gap 0). ECE = 0.5 * 0.2.
    conf = np.r_[np.full(half, 0.95), np.full(n - half, 0.55)]
    hit_rate = np.r_[np.full(half, 0.75), np.full(n - half, 0.55)]
    probs = np.column_stack([conf] + [(1 - conf) / 3] * 3)
    right = rng.random(n) < hit_rate
    labels = np.where(right, 1, rng.integers(2, 5, size=n))
    expected = 0.5 * abs(0.75 - 0.95) + 0.5 * abs(0.55 - 0.55)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected, abs=0.01)
    curve = reliability_curve(probs, labels, n_bins=10)
    assert curve.n == n and curve.counts.sum() == n
    assert np.count_nonzero(curve.counts) == 2
    assert curve.ece == pytest.approx(expected, abs=0.01)
    assert np.isnan(curve.accuracy[0]) and np.isnan(curve.confidence[0])


def test_brier_score_by_hand():
    probs = np.array([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]])
    labels = np.array([1, 3])
    # Row 1: (1 - 0.7)^2 + 0.2^2 + 0.1^2 + 0^2; row 2 (uniform): (1 - 1/4)^2 + 3 (1/4)^2.
    row1 = (1 - 0.7) ** 2 + 0.2**2 + 0.1**2
    row2 = (1 - 1 / 4) ** 2 + 3 * (1 / 4) ** 2
    assert brier_score(probs, labels) == pytest.approx((row1 + row2) / 2)
    onehot = np.eye(4)[[0, 1, 2, 3]]
    # Certain and right scores 0, certain and wrong 2 (1 for the label, 1 for the guess).
    assert brier_score(onehot, [1, 2, 3, 4]) == 0
    assert brier_score(onehot, [2, 1, 4, 3]) == pytest.approx(2.0)


def test_metric_edge_cases_are_clear_errors():
    probs = np.full((3, 4), 0.25)
    with pytest.raises(ValueError, match="no rows"):
        brier_score(np.zeros((0, 4)), [])
    with pytest.raises(ValueError, match="at least 2"):
        expected_calibration_error(np.ones((3, 1)), [1, 1, 1])
    nan_row = probs.copy()
    nan_row[1] = np.nan
    with pytest.raises(ValueError, match="1 row.*NaN.*unclassified"):
        expected_calibration_error(nan_row, [1, 2, 3])
    with pytest.raises(ValueError, match="summing to 1"):
        brier_score(probs * 2, [1, 2, 3])
    with pytest.raises(ValueError, match="not classes 1-4"):
        brier_score(probs, [1, 2, 5])
    with pytest.raises(ValueError, match="n_bins"):
        reliability_curve(probs, [1, 2, 3], n_bins=0)
    # A single class in the labels is fine: all rows right with probability 1.
    assert expected_calibration_error(np.eye(4)[[0, 0]], [1, 1]) == 0


# -- model card, checkpoint, classification --------------------------------------------


def _classifier(seed=0):
    torch.manual_seed(seed)
    model = build_model("small_cnn", n_bands=len(BANDS), n_classes=4)
    return ClusterClassifier.from_model(
        model, arch="small_cnn", bands=BANDS, cutout_size=16, device="cpu"
    )


def test_temperature_changes_probabilities_not_the_argmax():
    clf = _classifier()
    cutouts, _ = make_arrays(n=24)
    plain = clf.predict_proba(cutouts)
    clf.temperature = 3.0
    scaled = clf.predict_proba(cutouts)
    assert not np.allclose(plain, scaled, atol=1e-3)
    np.testing.assert_array_equal(plain.argmax(axis=1), scaled.argmax(axis=1))
    # The logits are divided by T: log-probability differences shrink by 3.
    np.testing.assert_allclose(
        np.log(scaled[:, 1:] / scaled[:, :1]), np.log(plain[:, 1:] / plain[:, :1]) / 3.0, atol=1e-4
    )
    assert scaled.max(axis=1).mean() < plain.max(axis=1).mean()


def test_classified_table_uses_the_temperature(tmp_path):
    from test_classifier import catalog, make_images

    images = make_images()
    clf = _classifier()
    plain = clf.classify(catalog(), images, progress_bar=False)
    clf.temperature = 0.5
    sharp = clf.classify(catalog(), images, progress_bar=False)
    ok = plain["class_ml"] > 0
    np.testing.assert_array_equal(plain["class_ml"], sharp["class_ml"])
    assert (sharp["class_ml_qual"][ok] > plain["class_ml_qual"][ok]).all()
    assert sharp.meta["clusterclf"]["temperature"] == 0.5


def test_checkpoint_round_trip_keeps_the_temperature(tmp_path):
    clf = _classifier()
    clf.temperature = 1.7
    clf.save(tmp_path / "model.pt")
    loaded = ClusterClassifier.load(tmp_path / "model.pt", device="cpu")
    assert loaded.temperature == 1.7
    cutouts, _ = make_arrays(n=8)
    np.testing.assert_allclose(loaded.predict_proba(cutouts), clf.predict_proba(cutouts), atol=1e-6)


def test_old_checkpoint_without_temperature_loads_with_one(tmp_path):
    clf = _classifier()
    card = clf.card.to_dict()
    del card["temperature"]  # what version 0.1.0 before calibration wrote
    payload = {
        "format": "photutils-clusterclf checkpoint",
        "format_version": FORMAT_VERSION,
        "card": card,
        "state_dicts": clf.checkpoint().state_dicts,
    }
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").card.temperature == 1.0
    old = ClusterClassifier.load(tmp_path / "old.pt", device="cpu")
    cutouts, _ = make_arrays(n=8)
    np.testing.assert_allclose(old.predict_proba(cutouts), clf.predict_proba(cutouts), atol=1e-6)


def test_recalibration_from_member_probabilities_equals_fitting_the_logits():
    # The recipe of docs/training.rst: log-probabilities at T = 1 are the
    # logits up to a constant per row, which the softmax ignores.
    from photutils_clusterclf.preprocessing import prepare_batch

    torch.manual_seed(0)
    models = [build_model("small_cnn", n_bands=len(BANDS), n_classes=4) for _ in range(2)]
    clf = ClusterClassifier.from_model(
        models, arch="small_cnn", bands=BANDS, cutout_size=16, device="cpu"
    )
    cutouts, _ = make_arrays(n=200, seed=3)
    with torch.no_grad():
        x = prepare_batch(cutouts, clf.normalization, clf.card.input_size)
        logits = np.stack([m(x).double().numpy() for m in clf.models])
    rng = np.random.default_rng(3)
    labels = np.where(
        rng.random(200) < 0.7, logits.mean(axis=0).argmax(axis=1) + 1, rng.integers(1, 5, 200)
    )
    clf.temperature = 2.0  # whatever it was
    clf.temperature = 1.0
    # An untrained network's logits are tiny: its temperature is far below 1.
    bounds = (1e-5, 100.0)
    recipe = fit_temperature(np.log(clf.predict_members(cutouts)), labels, bounds=bounds)
    assert recipe == pytest.approx(fit_temperature(logits, labels, bounds=bounds), rel=1e-4)


@pytest.mark.parametrize("value", [0, -1.0, math.inf, math.nan, True, "2"])
def test_bad_temperature_is_refused(value):
    clf = _classifier()
    with pytest.raises(CheckpointError, match="temperature must be a finite number > 0"):
        clf.temperature = value
    with pytest.raises(CheckpointError, match="temperature"):
        ModelCard.from_dict(dict(clf.card.to_dict(), temperature=value))
    assert clf.temperature == 1.0


# -- training --------------------------------------------------------------------------


# Tiny networks: one torch thread (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_training_fits_the_temperature_that_classification_applies():
    # Labels with 40 % noise: the validation galaxy cannot be all right, so
    # the temperature is constrained.
    cutouts, labels = make_arrays(n=96, seed=7)
    rng = np.random.default_rng(7)
    noisy = np.where(rng.random(labels.size) < 0.4, rng.integers(1, 5, labels.size), labels)
    galaxy = np.where(np.arange(labels.size) < 56, "NGC0001", "NGC0002")
    ts = TrainingSet(cutouts, noisy, galaxy=galaxy, bands=BANDS)
    clf = train_classifier(ts, n_models=2, **dict(FAST, epochs=3))
    record = clf.card.training["calibration"]
    assert record["temperature"] == clf.temperature != 1.0
    assert record["n_objects"] == 40
    assert record["nll_after"] <= record["nll_before"]
    # Classification applies exactly what training fitted, to the same rows.
    val = galaxy == "NGC0002"
    probs = clf.predict_proba(ts.cutouts[val])
    assert negative_log_likelihood(probs, ts.labels[val]) == pytest.approx(
        record["nll_after"], rel=1e-4
    )
    clf.temperature = 1.0
    assert negative_log_likelihood(
        clf.predict_proba(ts.cutouts[val]), ts.labels[val]
    ) == pytest.approx(record["nll_before"], rel=1e-4)


def test_training_without_a_usable_validation_set_keeps_temperature_one():
    cutouts, labels = make_arrays(n=48, seed=8)
    ts = TrainingSet(cutouts, labels, bands=BANDS)
    clf = train_classifier(ts, **dict(FAST, epochs=1, val_fraction=0))
    assert clf.temperature == 1.0
    assert clf.card.training["calibration"] == {"method": "none", "reason": "no validation set"}
    # Every validation object right: the temperature is not constrained.
    galaxy = np.where(np.arange(labels.size) < 32, "A", "B")
    easy = TrainingSet(cutouts, labels, galaxy=galaxy, bands=BANDS)
    with pytest.warns(AstropyUserWarning, match="uncalibrated"):
        clf = train_classifier(easy, **dict(FAST, epochs=2))
    assert clf.temperature == 1.0 and clf.card.training["calibration"]["method"] == "none"


# -- EvaluationReport, figure, CLI ---------------------------------------------------------


def _classified_table():
    rng = np.random.default_rng(9)
    probs = rng.dirichlet(np.ones(4), size=60).astype(np.float32)
    truth = _sampled_labels(probs, rng)
    truth[:3] = 0  # unlabelled: excluded
    probs[3:5] = np.nan  # unclassified candidates: class 0, NaN probabilities
    pred = np.where(np.isnan(probs[:, 0]), 0, np.nan_to_num(probs).argmax(axis=1) + 1)
    table = Table({"CLASS_TRUE": truth, "cnn_class_ml": pred})
    for k in range(4):
        table[f"cnn_prob_class{k + 1}"] = probs[:, k]
    return table, probs, truth


def test_report_calibration_figures_over_the_scored_rows(tmp_path):
    table, probs, truth = _classified_table()
    report = EvaluationReport.from_table(table, "CLASS_TRUE", "cnn_class_ml", prob_columns="auto")
    keep = slice(5, None)
    assert report.n == 55 and report.has_probabilities
    assert report.ece == pytest.approx(expected_calibration_error(probs[keep], truth[keep]))
    assert report.brier_score == pytest.approx(brier_score(probs[keep], truth[keep]))
    assert "expected calibration error" in str(report)
    summary = report.to_dict()
    assert summary["ece"] == pytest.approx(report.ece)
    report.write_json(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["brier_score"] == pytest.approx(
        report.brier_score
    )
    explicit = EvaluationReport.from_table(
        table,
        "CLASS_TRUE",
        "cnn_class_ml",
        prob_columns=[f"cnn_prob_class{k}" for k in (1, 2, 3, 4)],
    )
    assert explicit.ece == report.ece


def test_report_without_probabilities():
    table, _, _ = _classified_table()
    report = EvaluationReport.from_table(table, "CLASS_TRUE", "cnn_class_ml")
    assert not report.has_probabilities and math.isnan(report.ece)
    assert report.to_dict()["ece"] is None
    assert "calibration" not in str(report)
    with pytest.raises(ValueError, match="no probabilities"):
        report.reliability()
    del table["cnn_prob_class4"]
    assert not EvaluationReport.from_table(
        table, "CLASS_TRUE", "cnn_class_ml", prob_columns="auto"
    ).has_probabilities
    with pytest.raises(KeyError, match="cnn_prob_class4"):
        EvaluationReport.from_table(
            table,
            "CLASS_TRUE",
            "cnn_class_ml",
            prob_columns=[f"cnn_prob_class{k}" for k in (1, 2, 3, 4)],
        )
    with pytest.raises(ValueError, match="one column for each"):
        EvaluationReport.from_table(
            table, "CLASS_TRUE", "cnn_class_ml", prob_columns=["cnn_prob_class1"]
        )
    with pytest.raises(ValueError, match=r"probs must be \(4, 4\)"):
        EvaluationReport([1, 2, 3, 4], [1, 2, 3, 4], probs=np.full((4, 3), 1 / 3))


def test_reliability_diagram(tmp_path):
    table, probs, truth = _classified_table()
    report = EvaluationReport.from_table(table, "CLASS_TRUE", "cnn_class_ml", prob_columns="auto")
    before = reliability_curve(probs[5:], truth[5:], n_bins=5)
    sharp = probs[5:] ** 4 / (probs[5:] ** 4).sum(axis=1, keepdims=True)
    after = reliability_curve(sharp, truth[5:], n_bins=5)
    ax = plot_reliability_diagram({"T = 1": before, "sharpened": after}, title="t")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        "calibrated",
        f"T = 1 (ECE {before.ece:.3f})",
        f"sharpened (ECE {after.ece:.3f})",
    ]
    assert ax.get_title() == "t" and ax.get_xlim() == (0, 1)
    line = ax.get_lines()[1]
    full = before.counts > 0
    np.testing.assert_allclose(line.get_xdata(), before.confidence[full])
    np.testing.assert_allclose(line.get_ydata(), before.accuracy[full])
    path = tmp_path / "rel.png"
    save_reliability_diagram(report, path)
    assert path.stat().st_size > 1000
    with pytest.raises(FileExistsError):
        save_reliability_diagram(report, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel.png"]


def test_evaluate_command_prints_calibration_and_writes_the_plot(tmp_path, capsys):
    from photutils_clusterclf.cli import main

    table, _, _ = _classified_table()
    table.write(tmp_path / "cat.ecsv")
    argv = [
        "evaluate",
        "--catalog",
        str(tmp_path / "cat.ecsv"),
        "--truth-column",
        "CLASS_TRUE",
        "--pred-column",
        "cnn_class_ml",
    ]
    assert main(argv + ["--reliability-plot", str(tmp_path / "rel.png")]) == 0
    out = capsys.readouterr().out
    assert "expected calibration error" in out and "Brier score" in out
    assert (tmp_path / "rel.png").stat().st_size > 1000
    assert main(argv + ["--prob-columns", "none"]) == 0
    assert "Brier" not in capsys.readouterr().out
    assert (
        main(argv + ["--prob-columns", "none", "--reliability-plot", str(tmp_path / "other.png")])
        == 2
    )
    assert "--prob-columns" in capsys.readouterr().err
    assert not (tmp_path / "other.png").exists()
