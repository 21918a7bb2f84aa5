"""Calibration on a held-out galaxy: ECE before and after temperature scaling.

Three simulated PHANGS-like training galaxies at 6, 11 and 17 Mpc with
human-like noisy labels; the 11 Mpc one is the validation galaxy, on which
`train_classifier` fits the temperature after training. A fourth galaxy at
14 Mpc is held out of training and classified twice with the same network
(through `ClusterClassifier.classify`, as ``clusterclf classify`` does): at
temperature 1 (the probabilities as trained) and at the fitted temperature.
Printed, for both: expected calibration error (15 bins) and Brier score
against the held-out galaxy's human-like labels (what the temperature was
fitted to) and against its true classes, and the
macro recall (unchanged: the temperature moves no argmax). A diagnostic
row shows what a temperature plus one logit bias per class (fitted the same
way on the validation galaxy; not what the package does) would give, to
tell a temperature problem from a class-prior one (class-weighted training
raises the probabilities of rare classes on purpose). The last line is
``ece_before=... ece_after=...`` against the human-like labels.

Run (about 10 min on one loaded CPU thread)::

    python benchmarks/bench_calibration.py --num-threads 1 --plot reliability.png
"""

import argparse
import time
import warnings

import numpy as np
import torch
from astropy.utils.exceptions import AstropyUserWarning


def main(argv=None):
    """Train, classify the held-out galaxy at T = 1 and at the fitted T; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--n-train", type=int, default=500, help="candidates per training galaxy")
    parser.add_argument("--n-heldout", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--sim-seed", type=int, default=1200, help="first simulation seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument(
        "--plot", default=None, help="reliability diagram (held-out, human-like labels) PNG"
    )
    args = parser.parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)

    from photutils_clusterclf.datasets import simulate_field
    from photutils_clusterclf.evaluation import EvaluationReport
    from photutils_clusterclf.training import TrainingSet, train_classifier
    from photutils_clusterclf.visualization import save_reliability_diagram

    def side(n):
        # The PHANGS-HST candidate density: 800 in 2048^2 px.
        return int(2048 * np.sqrt(n / 800))

    galaxies = []
    for k, distance in enumerate((6.0, 11.0, 17.0)):
        field = simulate_field(
            shape=(side(args.n_train),) * 2,
            n_candidates=args.n_train,
            distance_mpc=distance,
            label_noise="human",
            seed=args.sim_seed + k,
            target=f"sim{distance:.0f}mpc",
        )
        galaxies.append((field.catalog, field.to_multiband_image(), field.target))
    heldout = simulate_field(
        shape=(side(args.n_heldout),) * 2,
        n_candidates=args.n_heldout,
        distance_mpc=14.0,
        label_noise="human",
        seed=args.sim_seed + 10,
        target="heldout14mpc",
    )
    training_set = TrainingSet.from_galaxies(
        galaxies, label_column="PHANGS_CLUSTER_CLASS_HUMAN", cutout_size=32, progress_bar=False
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)  # no cached ImageNet weights
        clf = train_classifier(
            training_set,
            arch=args.arch,
            epochs=args.epochs,
            weights=None if args.arch == "small_cnn" else "imagenet",
            seed=args.seed,
            device=args.device,
            val_galaxy="sim11mpc",
            progress_bar=False,
        )
    seconds = time.perf_counter() - start
    fit = clf.card.training["calibration"]
    print(
        f"{args.arch}, {args.epochs} epochs max, seed {args.seed}, "
        f"torch threads {torch.get_num_threads()}: trained in {seconds:.0f} s on "
        f"{training_set.summary['n_objects']} candidates; weights "
        f"{clf.card.training['options']['weights']}"
    )
    if fit["method"] == "none":
        print(f"no temperature fitted: {fit['reason']}")
        return None
    print(
        f"validation galaxy sim11mpc ({fit['n_objects']} objects): T = "
        f"{clf.temperature:.3f}; NLL {fit['nll_before']:.3f} -> {fit['nll_after']:.3f}, "
        f"ECE {fit['ece_before']:.3f} -> {fit['ece_after']:.3f}, "
        f"Brier {fit['brier_before']:.3f} -> {fit['brier_after']:.3f}"
    )

    images = heldout.to_multiband_image()
    fitted = clf.temperature
    curves, ece = {}, {}
    print(f"held-out galaxy at 14 Mpc ({args.n_heldout} candidates):")
    print("temperature  labels        ECE   Brier  macro recall")
    for when, name, temperature in (
        ("before", "T = 1", 1.0),
        ("after", f"T = {fitted:.2f}", fitted),
    ):
        clf.temperature = temperature
        table = clf.classify(heldout.catalog, images, progress_bar=False)
        for truth in ("PHANGS_CLUSTER_CLASS_HUMAN", "CLASS_TRUE"):
            report = EvaluationReport.from_table(table, truth, "class_ml", prob_columns="auto")
            kind = "human-like" if truth.startswith("PHANGS") else "true"
            print(
                f"{name:<12} {kind:<10} {report.ece:6.3f}  {report.brier_score:6.3f} "
                f"{report.macro_recall:6.3f}"
            )
            if kind == "human-like":
                curves[name] = report.reliability()
                ece[when] = report.ece
        if when == "before":
            log_p_heldout = np.log(
                np.column_stack([table[f"prob_class{k}"] for k in (1, 2, 3, 4)]).astype(np.float64)
            )
            classified = np.asarray(table["class_ml"]) > 0
    _bias_diagnostic(clf, training_set, heldout.catalog, log_p_heldout, classified)
    if args.plot:
        save_reliability_diagram(
            curves, args.plot, overwrite=True, title="held-out galaxy vs human-like labels"
        )
        print(f"wrote {args.plot}")
    print(f"ece_before={ece['before']:.3f} ece_after={ece['after']:.3f}")
    return ece


def _fit_temperature_and_bias(log_p, labels):
    """``(T, b)`` minimising the NLL of ``softmax(log_p / T + b)`` (b of class 4 is 0)."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    rows = np.arange(labels.size)

    def nll(theta):
        return -log_softmax(log_p / np.exp(theta[0]) + np.r_[theta[1:], 0.0], axis=1)[
            rows, labels - 1
        ].mean()

    theta = minimize(nll, np.zeros(4), method="L-BFGS-B").x
    return float(np.exp(theta[0])), np.r_[theta[1:], 0.0]


def _bias_diagnostic(clf, training_set, heldout_catalog, log_p_heldout, classified):
    """Print ECE / macro recall on the held-out galaxy with a temperature + class bias."""
    from scipy.special import softmax

    from photutils_clusterclf.evaluation import EvaluationReport

    if clf.n_members != 1:
        return  # log(mean of members) is not a member's logits
    clf.temperature = 1.0
    val = training_set.galaxy == "sim11mpc"
    log_p_val = np.log(clf.predict_members(training_set.cutouts[val])[0].astype(np.float64))
    temperature, bias = _fit_temperature_and_bias(log_p_val, training_set.labels[val])
    probs = softmax(log_p_heldout[classified] / temperature + bias, axis=1)
    print(
        f"diagnostic: T = {temperature:.2f} and class biases "
        f"{np.array2string(bias, precision=2)} (fitted on sim11mpc):"
    )
    for truth in ("PHANGS_CLUSTER_CLASS_HUMAN", "CLASS_TRUE"):
        labels = np.asarray(heldout_catalog[truth])[classified]
        report = EvaluationReport(labels, probs.argmax(axis=1) + 1, probs=probs)
        kind = "human-like" if truth.startswith("PHANGS") else "true"
        print(
            f"{'T + bias':<12} {kind:<10} {report.ece:6.3f}  {report.brier_score:6.3f} "
            f"{report.macro_recall:6.3f}"
        )


if __name__ == "__main__":
    main()
