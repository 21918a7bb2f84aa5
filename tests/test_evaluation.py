"""Tests of EvaluationReport, on synthetic columns and on the real NGC 1566 files."""

import json
import math
import numpy as np
import pytest
from astropy.table import Table, join

from photutils_clusterclf.catalogs import read_legus_catalog
from photutils_clusterclf.evaluation import HUMAN_CONSISTENCY, WEI2020_RECALL, EvaluationReport

from helpers import NGC1566_CATALOG, STARCNET_PREDICTIONS

# truth 0 and 20 are excluded; truth 7 folds to 4; prediction 0 is unpredicted
TRUTH = np.array([1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 7, 0, 20, 2])
PRED = np.array([1, 1, 2, 2, 4, 3, 1, 3, 4, 4, 4, 1, 3, 0])


@pytest.fixture
def report():
    return EvaluationReport(TRUTH, PRED, truth_name="human", pred_name="cnn")


def test_counts_and_matrix(report):
    assert report.n == 11
    assert report.n_excluded == 2
    assert report.n_unpredicted == 1
    expected = np.array([[2, 1, 0, 0], [0, 1, 0, 1], [1, 0, 2, 0], [0, 0, 0, 3]])
    assert np.array_equal(report.confusion_matrix, expected)
    assert report.confusion_matrix.sum() == report.n
    assert np.allclose(report.confusion_matrix_normalized.sum(axis=1), 1)


def test_metrics(report):
    assert report.recall == pytest.approx({1: 2 / 3, 2: 1 / 2, 3: 2 / 3, 4: 1.0})
    assert report.precision == pytest.approx({1: 2 / 3, 2: 1 / 2, 3: 1.0, 4: 3 / 4})
    assert report.f1[3] == pytest.approx(2 * 1.0 * (2 / 3) / (1 + 2 / 3))
    assert report.overall_accuracy == pytest.approx(8 / 11)
    assert report.macro_recall == pytest.approx((2 / 3 + 1 / 2 + 2 / 3 + 1) / 4)
    # clusters 1-3 vs 4: only the 2 -> 4 row disagrees
    assert report.two_class_accuracy == pytest.approx(10 / 11)
    # 1+2 vs 3+4: 2 -> 4 and 3 -> 1 disagree
    assert report.cluster12_accuracy == pytest.approx(9 / 11)


def test_undefined_precision_is_nan_and_null(tmp_path):
    report = EvaluationReport([1, 2, 3, 4], [1, 1, 3, 4])
    assert math.isnan(report.precision[2])
    assert report.recall[2] == 0
    assert math.isnan(report.f1[2])
    report.write_json(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["precision"]["2"] is None
    assert data["recall"]["2"] == 0
    assert data["confusion_matrix"][1] == [1, 0, 0, 0]


def test_custom_mapping_merges_classes():
    report = EvaluationReport([1, 2, 3, 4], [2, 1, 3, 4], mapping={2: 1})
    assert report.overall_accuracy == 1.0
    assert report.support == {1: 2, 2: 0, 3: 1, 4: 1}
    assert math.isnan(report.recall[2])
    assert report.macro_recall == 1.0  # the empty class is not averaged in


def test_to_dict_and_json(report, tmp_path):
    data = report.to_dict()
    json.dumps(data, allow_nan=False)  # JSON-ready
    for key in ("n", "n_excluded", "overall_accuracy", "recall", "precision", "confusion_matrix"):
        assert key in data
    assert set(data["recall"]) == {"1", "2", "3", "4"}
    assert data["recall"]["4"] == 1.0
    path = tmp_path / "report.json"
    report.write_json(path)
    assert json.loads(path.read_text()) == data
    with pytest.raises(FileExistsError):
        report.write_json(path)
    EvaluationReport([1], [1]).write_json(path, overwrite=True)
    assert json.loads(path.read_text())["n"] == 1


def test_table_and_text(report):
    table = report.to_table()
    assert table["class"].tolist() == [1, 2, 3, 4]
    assert table["n"].tolist() == [3, 2, 3, 3]
    assert table["n_predicted"].tolist() == [3, 2, 2, 4]
    assert np.allclose(table["recall"], [2 / 3, 1 / 2, 2 / 3, 1])
    assert table.meta["n_excluded"] == 2
    text = str(report)
    assert text == report.format_table()
    assert "cnn vs human: 11 objects" in text
    assert "2 without human class" in text and "1 without cnn class" in text
    lines = text.splitlines()
    row4 = next(line for line in lines if line.split()[:2] == ["4", "3"])
    assert "100.0%" in row4 and "75.0%" in row4
    assert "72.7%" in text  # overall accuracy 8/11


def test_from_table_and_errors():
    table = Table({"human": TRUTH, "ml": PRED})
    report = EvaluationReport.from_table(table, "human", "ml")
    assert report.truth_name == "human" and report.pred_name == "ml"
    assert report.n == 11
    with pytest.raises(KeyError, match="column 'nope' not in the table"):
        EvaluationReport.from_table(table, "nope", "ml")
    with pytest.raises(ValueError, match="same length"):
        EvaluationReport([1, 2], [1])
    with pytest.raises(ValueError, match="no row has both"):
        EvaluationReport([0, 0], [1, 2])


def test_masked_and_float_codes():
    truth = np.ma.array([1.0, 2.0, 3.0, 4.0], mask=[False, True, False, False])
    report = EvaluationReport(truth, [1, 2, 3, 3])
    assert report.n_excluded == 1 and report.n == 3
    assert report.recall[4] == 0


def test_paper_constants():
    assert set(WEI2020_RECALL) == set(HUMAN_CONSISTENCY) == {1, 2, 3, 4}


@pytest.fixture(scope="module")
def ngc1566():
    legus = read_legus_catalog(NGC1566_CATALOG)
    starcnet = Table.read(STARCNET_PREDICTIONS, format="ascii.csv")
    starcnet.rename_column("Id", "id")
    return join(legus, starcnet["id", "Prediction"], keys="id")


def _numpy_recall(truth, pred):
    return {c: np.sum((truth == c) & (pred == c)) / np.sum(truth == c) for c in (1, 2, 3, 4)}


def test_real_starcnet_vs_human_mode(ngc1566):
    human = np.asarray(ngc1566["class_human_mode"])
    pred = np.asarray(ngc1566["Prediction"])
    labelled = (human >= 1) & (human <= 4)
    report = EvaluationReport.from_table(ngc1566, "class_human_mode", "Prediction")
    assert report.n == np.count_nonzero(labelled)
    assert report.n_excluded == len(ngc1566) - report.n
    assert report.confusion_matrix.sum() == report.n
    expected = _numpy_recall(human[labelled], pred[labelled])
    assert report.recall == pytest.approx(expected)
    assert report.overall_accuracy == pytest.approx(np.mean(human[labelled] == pred[labelled]))


def test_real_starcnet_vs_final_class(ngc1566):
    final = np.asarray(ngc1566["class"])
    pred = np.asarray(ngc1566["Prediction"])
    report = EvaluationReport.from_table(ngc1566, "class", "Prediction")
    assert report.support == {c: int(np.sum(final == c)) for c in (1, 2, 3, 4)}
    assert report.n_excluded == np.sum(final == 0)
    keep = final > 0
    assert report.recall == pytest.approx(_numpy_recall(final[keep], pred[keep]))
    cols = report.confusion_matrix.sum(axis=0)
    assert cols.tolist() == [int(np.sum(pred[keep] == c)) for c in (1, 2, 3, 4)]


def test_report_from_confusion_matches_the_report_from_labels():
    truth = np.array([1, 1, 2, 3, 4, 4, 4, 2])
    pred = np.array([1, 2, 2, 3, 4, 1, 4, 3])
    direct = EvaluationReport(truth, pred)
    counted = EvaluationReport.from_confusion(direct.confusion_matrix)
    assert counted.recall == direct.recall and counted.macro_recall == direct.macro_recall
    with pytest.raises(ValueError, match="empty"):
        EvaluationReport.from_confusion(np.zeros((4, 4), int))
