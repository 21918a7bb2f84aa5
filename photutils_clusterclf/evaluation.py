"""Agreement between two class columns: confusion matrix and per-class accuracy.

`EvaluationReport` measures a classifier against human labels the way the
cluster-classification papers do (Wei et al. 2020; Pérez et al. 2021):
per-class recall ("accuracy per class"), precision, F1, the confusion
matrix, and the overall, macro and two-class accuracies. Since it only
compares two class columns, it equally measures human-vs-human or
published-model-vs-human agreement. Given the predicted probabilities too,
it measures their calibration against the truth: expected calibration
error, Brier score and the reliability diagram
(`photutils_clusterclf.calibration`).
"""

import functools
import json
import math

import numpy as np
from astropy.table import Table

from .calibration import brier_score, reliability_curve
from .classes import CLASSES, UNCLASSIFIED, fold_classes
from .columns import probability_columns
from .fileio import atomic_output

__all__ = ["EvaluationReport", "HUMAN_CONSISTENCY", "WEI2020_RECALL"]

#: Per-class recall of the Wei et al. (2020, MNRAS 493, 3178) networks on
#: held-out PHANGS-HST galaxies, as quoted in the paper (for comparison).
WEI2020_RECALL = {1: "70%", 2: "40%", 3: "40-50%", 4: "50-70%"}

#: Agreement between human classifiers on the same candidates (Wei et al.
#: 2020, section 5): the ceiling a model trained on human labels can reach.
HUMAN_CONSISTENCY = {1: "70-80%", 2: "40-50%", 3: "40-50%", 4: "60-70%"}


def _ratio(num, den):
    """``num / den`` as float, NaN when ``den`` is 0 (undefined, not zero)."""
    return float(num) / float(den) if den else math.nan


def _json_float(value):
    """JSON has no NaN: undefined values are written as null."""
    return None if math.isnan(value) else value


def _prob_columns(table, pred_column, prob_columns):
    """Class -> probability column name for `EvaluationReport.from_table`, or None."""
    if prob_columns is None:
        return None
    if isinstance(prob_columns, str):
        if prob_columns != "auto":
            raise ValueError(
                f"prob_columns={prob_columns!r}: give 'auto', None or the "
                "four probability columns of the classes 1-4"
            )
        return probability_columns(table, pred_column)
    names = (
        dict(prob_columns)
        if isinstance(prob_columns, dict)
        else dict(zip(CLASSES, prob_columns, strict=False))
    )
    if sorted(names) != list(CLASSES) or len(prob_columns) != len(CLASSES):
        raise ValueError(
            f"prob_columns must name one column for each of the classes 1-4, not {prob_columns!r}"
        )
    missing = [n for n in names.values() if n not in table.colnames]
    if missing:
        raise KeyError(
            f"probability column(s) {', '.join(missing)} not in the table; "
            "available: " + ", ".join(table.colnames)
        )
    return names


class EvaluationReport:
    """Confusion matrix and accuracy figures of predictions against a truth.

    Both class columns are folded onto the classes 1-4 with
    `~photutils_clusterclf.classes.fold_classes` (PHANGS human codes 5-19 ->
    4 by default). Then:

    * rows whose folded truth is not 1-4 (0 / unlabelled / invalid) are
      excluded and counted in ``n_excluded``;
    * of the remaining rows, those whose folded prediction is 0 (not
      classified, e.g. off the image) are excluded too and counted in
      ``n_unpredicted``: they are not errors of the classifier's
      morphology judgement, but the count shows how many were lost;
    * the ``n`` rows left make the 4x4 confusion matrix.

    Metrics that are undefined (precision of a class never predicted,
    recall of a class absent from the truth) are NaN, written as ``null``
    in JSON.

    Parameters
    ----------
    truth, pred : array-like
        Reference and predicted class codes, same length (integers, floats,
        masked arrays or table columns).
    mapping : dict, optional
        Code folding passed to `~photutils_clusterclf.classes.fold_classes`
        for both columns; default `~photutils_clusterclf.classes.PHANGS_FOLD`.
    truth_name, pred_name : str, optional
        Names used in printed tables, plots and JSON.
    probs : array-like, optional
        ``(N, 4)`` predicted probabilities of the classes 1-4 (e.g.
        ``prob_class1..4``), one row per row of ``pred``; they give the
        calibration figures (``ece``, ``brier_score``, `reliability`),
        over the same ``n`` rows as the confusion matrix.

    Attributes
    ----------
    n : int
        Rows in the confusion matrix.
    n_excluded : int
        Rows without a truth class 1-4.
    n_unpredicted : int
        Rows with a truth class 1-4 but no predicted class.
    confusion_matrix : `numpy.ndarray`
        (4, 4) int64 counts; rows are truth classes 1-4, columns predicted
        classes 1-4.
    support : dict
        Class -> number of truth rows of that class.
    recall, precision, f1 : dict
        Class (1-4) -> float (NaN where undefined).
    ece, brier_score : float
        Expected calibration error (15 bins) and multi-class Brier score of
        ``probs`` against the truth; NaN without ``probs``.
    """

    def __init__(
        self, truth, pred, *, mapping=None, truth_name="truth", pred_name="prediction", probs=None
    ):
        truth = fold_classes(truth, mapping=mapping)
        pred = fold_classes(pred, mapping=mapping)
        if truth.shape != pred.shape:
            raise ValueError(
                f"truth and prediction must have the same length, got {truth.size} and {pred.size}"
            )
        labelled = truth != UNCLASSIFIED
        predicted = pred != UNCLASSIFIED
        self.truth_name = str(truth_name)
        self.pred_name = str(pred_name)
        self.mapping = mapping
        self.n_excluded = int(np.count_nonzero(~labelled))
        self.n_unpredicted = int(np.count_nonzero(labelled & ~predicted))
        keep = labelled & predicted
        self.n = int(np.count_nonzero(keep))
        if self.n == 0:
            raise ValueError(
                f"no row has both a {self.truth_name} class and a "
                f"{self.pred_name} class in 1-4 "
                f"({self.n_excluded} without {self.truth_name} class, "
                f"{self.n_unpredicted} without {self.pred_name} class)"
            )
        nc = len(CLASSES)
        # Classes are 1..4, so class - 1 is the matrix index.
        flat = (truth[keep].astype(np.int64) - 1) * nc + (pred[keep] - 1)
        self.confusion_matrix = np.bincount(flat, minlength=nc * nc).reshape(nc, nc)
        self._calibration = (
            None if probs is None else self._calibration_rows(probs, truth.shape, keep, truth[keep])
        )

    @staticmethod
    def _calibration_rows(probs, shape, keep, truth):
        """``(probabilities, truth)`` of the kept rows, checked."""
        probs = np.ma.filled(np.ma.asarray(probs, dtype=np.float64), np.nan)
        if probs.shape != shape + (len(CLASSES),):
            raise ValueError(
                f"probs must be ({shape[0]}, {len(CLASSES)}): one probability "
                f"per class 1-4 for each row, got shape {probs.shape}"
            )
        probs = probs[keep]
        # Validates (NaN rows of classified candidates, sums) with one-line errors.
        reliability_curve(probs, truth)
        return probs, truth.astype(np.int64)

    @classmethod
    def from_confusion(cls, confusion, *, truth_name="truth", pred_name="prediction"):
        """A report from a (4, 4) confusion matrix (rows: truth, columns: prediction).

        Used where only the counts are at hand (e.g. summed over the ranks
        of a distributed validation).
        """
        confusion = np.asarray(confusion)
        nc = len(CLASSES)
        if confusion.shape != (nc, nc):
            raise ValueError(f"confusion must have shape ({nc}, {nc}), got {confusion.shape}")
        self = cls.__new__(cls)
        self.truth_name, self.pred_name, self.mapping = str(truth_name), str(pred_name), None
        self.n_excluded = self.n_unpredicted = 0
        self.n = int(confusion.sum())
        if self.n == 0:
            raise ValueError("the confusion matrix is empty")
        self.confusion_matrix = confusion
        self._calibration = None  # counts only: no probabilities
        return self

    @classmethod
    def from_table(cls, table, truth_column, pred_column, *, prob_columns=None, **kwargs):
        """Build a report from two columns of a table.

        Parameters
        ----------
        table : `~astropy.table.Table`
            Any table (e.g. a classified catalogue).
        truth_column, pred_column : str
            Names of the reference and predicted class columns.
        prob_columns : None, "auto", sequence of str or dict, optional
            Probability columns of the classes 1-4 for the calibration
            figures: four names (or class -> name), ``"auto"`` for those
            written with ``pred_column`` by
            `~photutils_clusterclf.ClusterClassifier.classify`
            (``<prefix>prob_class1..4`` or ``<column>_PROB1..4``) when the
            table has them, or None (no calibration figures).
        **kwargs
            ``mapping`` (and names) passed to `EvaluationReport`; the names
            default to the column names.

        Returns
        -------
        report : `EvaluationReport`
        """
        for name in (truth_column, pred_column):
            if name not in table.colnames:
                raise KeyError(
                    f"column {name!r} not in the table; available: " + ", ".join(table.colnames)
                )
        kwargs.setdefault("truth_name", truth_column)
        kwargs.setdefault("pred_name", pred_column)
        names = _prob_columns(table, pred_column, prob_columns)
        if names is not None:
            kwargs["probs"] = np.stack(
                [
                    np.ma.filled(np.ma.asarray(table[names[c]], dtype=np.float64), np.nan)
                    for c in CLASSES
                ],
                axis=1,
            )
        return cls(table[truth_column], table[pred_column], **kwargs)

    # ---- metrics -----------------------------------------------------------

    @functools.cached_property
    def confusion_matrix_normalized(self):
        """(4, 4) float: each truth row divided by its total (NaN for empty rows)."""
        rows = self.confusion_matrix.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(rows > 0, self.confusion_matrix / np.maximum(rows, 1), np.nan)

    @functools.cached_property
    def support(self):
        """Class -> number of rows with that truth class."""
        rows = self.confusion_matrix.sum(axis=1)
        return {c: int(rows[i]) for i, c in enumerate(CLASSES)}

    @functools.cached_property
    def n_predicted(self):
        """Class -> number of rows predicted as that class."""
        cols = self.confusion_matrix.sum(axis=0)
        return {c: int(cols[i]) for i, c in enumerate(CLASSES)}

    @functools.cached_property
    def recall(self):
        """Class -> fraction of that truth class predicted as it ("accuracy")."""
        cm = self.confusion_matrix
        return {c: _ratio(cm[i, i], cm[i].sum()) for i, c in enumerate(CLASSES)}

    @functools.cached_property
    def precision(self):
        """Class -> fraction of the predictions of that class that are right."""
        cm = self.confusion_matrix
        return {c: _ratio(cm[i, i], cm[:, i].sum()) for i, c in enumerate(CLASSES)}

    @functools.cached_property
    def f1(self):
        """Class -> harmonic mean of precision and recall.

        0 if both are 0, NaN if either is undefined.
        """
        precision, recall = self.precision, self.recall
        out = {}
        for c in CLASSES:
            p, r = precision[c], recall[c]
            if math.isnan(p) or math.isnan(r):
                out[c] = math.nan
            else:
                out[c] = 2 * p * r / (p + r) if p + r > 0 else 0.0
        return out

    @functools.cached_property
    def overall_accuracy(self):
        """Fraction of the ``n`` rows whose prediction equals the truth."""
        return _ratio(np.trace(self.confusion_matrix), self.n)

    @functools.cached_property
    def macro_recall(self):
        """Mean of the per-class recalls over the classes present in the truth."""
        values = [v for v in self.recall.values() if not math.isnan(v)]
        return float(np.mean(values))

    @functools.cached_property
    def two_class_accuracy(self):
        """Agreement on cluster (classes 1-3) versus not a cluster (class 4)."""
        cm = self.confusion_matrix
        return _ratio(cm[:3, :3].sum() + cm[3, 3], self.n)

    @functools.cached_property
    def cluster12_accuracy(self):
        """Agreement on classes 1+2 (bona fide clusters) versus classes 3+4."""
        cm = self.confusion_matrix
        return _ratio(cm[:2, :2].sum() + cm[2:, 2:].sum(), self.n)

    @property
    def has_probabilities(self):
        """Whether the report was given probabilities (calibration figures defined)."""
        return self._calibration is not None

    def reliability(self, *, n_bins=15):
        """Reliability-diagram data of the probabilities against the truth.

        Parameters
        ----------
        n_bins : int, optional
            Equal-width confidence bins.

        Returns
        -------
        curve : `~photutils_clusterclf.calibration.ReliabilityCurve`
        """
        if self._calibration is None:
            raise ValueError(
                "this report has no probabilities: pass probs= (or prob_columns= to from_table)"
            )
        return reliability_curve(*self._calibration, n_bins=n_bins)

    @functools.cached_property
    def ece(self):
        """Expected calibration error (15 bins) of the probabilities; NaN without them."""
        return self.reliability().ece if self.has_probabilities else math.nan

    @functools.cached_property
    def brier_score(self):
        """Multi-class Brier score (0 best, 2 worst) of the probabilities; NaN without them."""
        if not self.has_probabilities:
            return math.nan
        return brier_score(*self._calibration)

    # ---- output ------------------------------------------------------------

    def to_dict(self):
        """JSON-ready summary (class keys are the strings ``"1"`` ... ``"4"``).

        Returns
        -------
        summary : dict
            ``truth_name``, ``pred_name``, ``classes``, ``mapping``, ``n``,
            ``n_excluded``,
            ``n_unpredicted``, ``overall_accuracy``, ``macro_recall``,
            ``two_class_accuracy``, ``cluster12_accuracy``, ``ece``,
            ``brier_score`` (None without probabilities), per-class
            ``support``, ``recall``, ``precision``, ``f1``, and
            ``confusion_matrix`` / ``confusion_matrix_normalized`` as nested
            lists (rows truth 1-4, columns prediction 1-4). NaN -> None.
        """

        def per_class(values):
            return {str(c): _json_float(float(values[c])) for c in CLASSES}

        return {
            "truth_name": self.truth_name,
            "pred_name": self.pred_name,
            "classes": list(CLASSES),
            # None means the default PHANGS folding (codes 5-19 -> 4)
            "mapping": (
                None if self.mapping is None else {str(k): int(v) for k, v in self.mapping.items()}
            ),
            "n": self.n,
            "n_excluded": self.n_excluded,
            "n_unpredicted": self.n_unpredicted,
            "overall_accuracy": _json_float(self.overall_accuracy),
            "macro_recall": _json_float(self.macro_recall),
            "two_class_accuracy": _json_float(self.two_class_accuracy),
            "cluster12_accuracy": _json_float(self.cluster12_accuracy),
            "ece": _json_float(self.ece),
            "brier_score": _json_float(self.brier_score),
            "support": {str(c): v for c, v in self.support.items()},
            "recall": per_class(self.recall),
            "precision": per_class(self.precision),
            "f1": per_class(self.f1),
            "confusion_matrix": self.confusion_matrix.tolist(),
            "confusion_matrix_normalized": [
                [_json_float(float(v)) for v in row] for row in self.confusion_matrix_normalized
            ],
        }

    def write_json(self, path, *, overwrite=False):
        """Write `to_dict` as JSON, atomically.

        Parameters
        ----------
        path : str or `~pathlib.Path`
            Output file.
        overwrite : bool, optional
            Replace an existing file (otherwise `FileExistsError`).
        """
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")

    def to_table(self):
        """Per-class numbers as a `~astropy.table.Table`.

        Returns
        -------
        table : `~astropy.table.Table`
            Columns ``class``, ``n`` (truth rows), ``n_predicted``,
            ``recall``, ``precision``, ``f1``; the summary figures are in
            ``table.meta``.
        """
        table = Table()
        table["class"] = np.array(CLASSES, dtype=np.int16)
        support, n_predicted = self.support, self.n_predicted
        table["n"] = [support[c] for c in CLASSES]
        table["n_predicted"] = [n_predicted[c] for c in CLASSES]
        for name in ("recall", "precision", "f1"):
            values = getattr(self, name)
            table[name] = [values[c] for c in CLASSES]
        summary = self.to_dict()
        table.meta.update(
            {
                key: summary[key]
                for key in (
                    "truth_name",
                    "pred_name",
                    "n",
                    "n_excluded",
                    "n_unpredicted",
                    "overall_accuracy",
                    "macro_recall",
                    "two_class_accuracy",
                    "cluster12_accuracy",
                    "ece",
                    "brier_score",
                )
            }
        )
        return table

    def format_table(self):
        """The per-class table and summary lines, as printed by ``str(report)``."""

        def pct(value):
            return "   n/a" if math.isnan(value) else f"{100 * value:5.1f}%"

        lines = [
            f"{self.pred_name} vs {self.truth_name}: {self.n} objects "
            f"({self.n_excluded} without {self.truth_name} class, "
            f"{self.n_unpredicted} without {self.pred_name} class, excluded)",
            "class      n  recall  precision      F1",
        ]
        recall, precision, f1 = self.recall, self.precision, self.f1
        support = self.support
        for c in CLASSES:
            lines.append(
                f"{c:>5d} {support[c]:6d}  {pct(recall[c])}     {pct(precision[c])}  {pct(f1[c])}"
            )
        lines += [
            f"overall accuracy            {pct(self.overall_accuracy)}",
            f"macro recall                {pct(self.macro_recall)}",
            f"clusters (1-3) vs 4         {pct(self.two_class_accuracy)}",
            f"classes 1+2 vs 3+4          {pct(self.cluster12_accuracy)}",
        ]
        if self.has_probabilities:
            lines += [
                f"expected calibration error  {self.ece:6.3f}",
                f"Brier score                 {self.brier_score:6.3f}",
            ]
        lines += [
            "confusion matrix (rows: "
            + self.truth_name
            + " 1-4, columns: "
            + self.pred_name
            + " 1-4):",
        ]
        lines += ["  " + " ".join(f"{v:6d}" for v in row) for row in self.confusion_matrix]
        return "\n".join(lines)

    def __str__(self):
        return self.format_table()

    def __repr__(self):
        return (
            f"<EvaluationReport {self.pred_name} vs {self.truth_name}: "
            f"n={self.n}, overall_accuracy={self.overall_accuracy:.3f}>"
        )

    def plot_confusion_matrix(self, ax=None, *, normalize=True, **kwargs):
        """Plot the confusion matrix.

        See `~photutils_clusterclf.visualization.plot_confusion_matrix`.

        Parameters
        ----------
        ax : `~matplotlib.axes.Axes`, optional
            Where to draw; a new figure by default.
        normalize : bool, optional
            Colour and annotate row-normalised fractions (with counts).
        **kwargs
            Passed on (``labels``, ``title``, ``cmap``).

        Returns
        -------
        ax : `~matplotlib.axes.Axes`
        """
        from .visualization import plot_confusion_matrix

        kwargs.setdefault("title", f"{self.pred_name} vs {self.truth_name}")
        kwargs.setdefault("xlabel", f"{self.pred_name} class")
        kwargs.setdefault("ylabel", f"{self.truth_name} class")
        return plot_confusion_matrix(self.confusion_matrix, normalize=normalize, ax=ax, **kwargs)

    def plot_reliability(self, ax=None, *, n_bins=15, **kwargs):
        """Plot the reliability diagram of the probabilities against the truth.

        See `~photutils_clusterclf.visualization.plot_reliability_diagram`.

        Parameters
        ----------
        ax : `~matplotlib.axes.Axes`, optional
            Where to draw; a new figure by default.
        n_bins : int, optional
            Equal-width confidence bins.
        **kwargs
            Passed on (``title``).

        Returns
        -------
        ax : `~matplotlib.axes.Axes`
        """
        from .visualization import plot_reliability_diagram

        kwargs.setdefault("title", f"{self.pred_name} vs {self.truth_name}")
        return plot_reliability_diagram(self.reliability(n_bins=n_bins), ax=ax, **kwargs)
