"""The demo's printed comparison table and its confusion-matrix figure (no training)."""

import re

import numpy as np
import pytest

from photutils_clusterclf.demo import (
    confusion_figure,
    format_recall_table,
    member_reports,
)
from photutils_clusterclf.evaluation import EvaluationReport


@pytest.fixture(scope="module")
def reports():
    rng = np.random.default_rng(0)
    true = rng.integers(1, 5, 300)
    human = np.where(rng.random(300) < 0.7, true, rng.integers(1, 5, 300))
    member_probs = rng.random((3, 300, 4)).astype(np.float32)
    member_probs[:, :, 0] += 0.3 * (true == 1)  # members that see class 1 a little
    classified = rng.random(300) > 0.05
    pred = np.where(classified, member_probs.mean(axis=0).argmax(axis=1) + 1, 0)
    return {
        "human": EvaluationReport(human, pred, truth_name="human-like labels"),
        "true": EvaluationReport(true, pred, truth_name="true class"),
        "members_human": member_reports(member_probs, classified, human),
        "members_true": member_reports(member_probs, classified, true),
        "member_probs": member_probs,
        "classified": classified,
        "truth": true,
    }


def test_member_reports_follow_each_member(reports):
    members = reports["members_true"]
    assert len(members) == 3
    for probs, report in zip(reports["member_probs"], members):
        pred = np.where(reports["classified"], probs.argmax(axis=1) + 1, 0)
        assert report.recall == EvaluationReport(reports["truth"], pred).recall
        # Rows the ensemble did not classify count as not predicted.
        assert report.n_unpredicted == int(np.count_nonzero(~reports["classified"]))


def test_table_says_what_each_column_is_in_one_number_format(reports):
    text = format_recall_table(
        reports["human"], reports["true"], reports["members_human"], reports["members_true"]
    )
    # One format: percentages everywhere, no 0.70 next to 70%.
    assert not re.search(r"\b0\.\d+", text)
    rows = [line for line in text.splitlines() if re.match(r"\s+[1-4]\s+\d+\s", line)]
    assert len(rows) == 4
    for line, k in zip(rows, (1, 2, 3, 4)):
        human = round(100 * reports["human"].recall[k])
        values = [reports["members_human"][m].recall[k] for m in range(3)]
        low, high = round(100 * min(values)), round(100 * max(values))
        assert f"{human}% ({low}%-{high}%)" in line
    for words in (
        "simulated",
        "real PHANGS-HST",
        "NGC 1559",
        "human-like labels",
        "true classes",
        "ensemble members",
        "not a comparison",
    ):
        assert words in text
    overall = round(100 * reports["true"].overall_accuracy)
    values = [m.overall_accuracy for m in reports["members_true"]]
    low, high = round(100 * min(values)), round(100 * max(values))
    assert f"{overall}% ({low}%-{high}%) against the true classes" in text


def test_table_without_members_has_no_range(reports):
    text = format_recall_table(reports["human"], reports["true"])
    assert "ensemble members" not in text and "%-" not in text.split("class    n")[1]


def test_human_label_panel_is_not_called_true_class(reports):
    fig = confusion_figure(reports["human"], reports["true"])
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    human = next(ax for title, ax in panels.items() if "human-like" in title)
    true = next(ax for title, ax in panels.items() if "true" in title)
    assert "true" not in human.get_ylabel() and "human-like" in human.get_ylabel()
    assert "true class" in true.get_ylabel()
