"""The feature baseline: gradient boosting on classical per-candidate features.

The yardstick every accuracy table shows next to the CNN: the features of
`photutils_clusterclf.features.candidate_features` (concentration index,
colours, flux ratios, second moments, peaks, asymmetry, S/N) measured on the
same raw cutouts, and scikit-learn's `HistGradientBoostingClassifier`
trained on the same labels. It stays in ``benchmarks/`` because scikit-learn
is a benchmark dependency (``pip install .[benchmarks]``), not a core one;
the features themselves are in the package (NumPy and photutils only).

Used by ``benchmarks/accuracy.py``; on its own::

    python benchmarks/features.py train.npz heldout.npz

where both files are `photutils_clusterclf.training.TrainingSet` files;
it prints the per-class recall of the baseline on the second.
"""

import argparse
import sys
import time

import numpy as np

from photutils_clusterclf.classes import CLASSES
from photutils_clusterclf.features import candidate_features

#: Fixed settings (not tuned on any held-out galaxy).
BASELINE_OPTIONS = {
    "max_iter": 300,
    "learning_rate": 0.05,
    "max_leaf_nodes": 31,
    "l2_regularization": 1.0,
    "class_weight": "balanced",
    "early_stopping": False,
}


def fit_baseline(cutouts, labels, *, bands, seed=0):
    """Fit the feature baseline on raw cutouts and their classes 1-4.

    Parameters
    ----------
    cutouts : array-like, shape (N, B, S, S)
        Raw cutouts.
    labels : array-like of int, shape (N,)
        Classes 1-4.
    bands : sequence of str
        Band names of the channels.
    seed : int, optional
        ``random_state`` of the classifier.

    Returns
    -------
    `sklearn.ensemble.HistGradientBoostingClassifier`
        Fitted; predict with `predict_baseline`.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    features, _ = candidate_features(cutouts, bands=bands)
    model = HistGradientBoostingClassifier(random_state=seed, **BASELINE_OPTIONS)
    return model.fit(features, np.asarray(labels))


def predict_baseline(model, cutouts, *, bands):
    """Classes 1-4 predicted by a fitted baseline for raw cutouts."""
    features, _ = candidate_features(cutouts, bands=bands)
    return model.predict(features).astype(np.int64)


def main(argv=None):
    from photutils_clusterclf.evaluation import EvaluationReport
    from photutils_clusterclf.training import TrainingSet

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", help="TrainingSet .npz to fit on")
    parser.add_argument("test", help="TrainingSet .npz to evaluate on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train, test = TrainingSet.load(args.train), TrainingSet.load(args.test)
    start = time.perf_counter()
    model = fit_baseline(train.cutouts, train.labels, bands=train.bands, seed=args.seed)
    seconds = time.perf_counter() - start
    report = EvaluationReport(test.labels, predict_baseline(model, test.cutouts, bands=test.bands))
    print(
        "recall "
        + " ".join(f"{c}: {report.recall[c]:.3f}" for c in CLASSES)
        + f"  macro {report.macro_recall:.3f}  (fit {seconds:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
