"""Consensus labels on simulated galaxies, where the true classes are known.

Simulates training galaxies (the demo's fields: 2048 x 2048 px, 800
candidates, at 6, 11, 17 and 8 Mpc) and gives each candidate the votes of
three independent human-like labellers: `noisy_labels` with the package's
``"human"`` noise matrix, applied three times with the labeller seeds 1, 2
and 3 (one generator per labeller, drawn galaxy after galaxy). It then
prints the agreement with the true classes (overall accuracy, macro recall,
binomial standard error) of

* each labeller alone,
* the majority vote (ties: the first labeller's class),
* the Dawid-Skene consensus, fitted on all training galaxies at once (the
  same three labellers label every galaxy) and, for comparison, on each
  galaxy alone,

and a paired count of the candidates where exactly one of majority and
Dawid-Skene is right.

``--train`` also trains a network (``--arch``, default the demo's
resnet18; cutout 32; ``--epochs``, default 25; ``--seeds``, default 0) on the labeller-1
labels, the majority labels, the Dawid-Skene classes and the Dawid-Skene
probabilities (soft labels) and measures each model against the true
classes of a held-out galaxy (14 Mpc): the one-expert vs three-experts
experiment of Wei et al. 2020 with a better consensus.

Run from the repository root (1 torch thread on the shared 2-core machine)::

    OMP_NUM_THREADS=1 python benchmarks/consensus.py [--train [--arch A] [--weights none] [--epochs N] [--seeds S ...]]
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
from astropy.table import vstack
from astropy.utils.exceptions import AstropyUserWarning

from photutils_clusterclf import EvaluationReport, consensus_labels
from photutils_clusterclf.datasets import (
    HUMAN_LABEL_NOISE,
    noisy_labels,
    simulate_field,
)

SHAPE, N_CANDIDATES = (2048, 2048), 800
TRAIN_DISTANCES = (6.0, 11.0, 17.0, 8.0)
HELDOUT_DISTANCE = 14.0
LABELLER_SEEDS = (1, 2, 3)
LABELLERS = tuple(f"human{s}" for s in LABELLER_SEEDS)


def simulate(progress=print):
    """Training catalogues (with three labellers' votes) and their fields."""
    rngs = [np.random.default_rng(s) for s in LABELLER_SEEDS]
    catalogs = []
    for k, distance in enumerate(TRAIN_DISTANCES):
        start = time.perf_counter()
        field = simulate_field(
            shape=SHAPE,
            n_candidates=N_CANDIDATES,
            distance_mpc=distance,
            seed=10 + k,
            target=f"consensus-train{k}",
        )
        cat = field.catalog
        for name, rng in zip(LABELLERS, rngs):
            cat[name] = noisy_labels(cat["CLASS_TRUE"], "human", rng)
        cat["galaxy"] = field.target
        catalogs.append((cat, field))
        progress(
            f"simulated {field.target} at {distance:g} Mpc ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    return catalogs


def _agreement(table, column):
    report = EvaluationReport(table["CLASS_TRUE"], table[column])
    acc = report.overall_accuracy
    return acc, np.sqrt(acc * (1 - acc) / report.n), report.macro_recall, report.n


def agreement_table(pooled, per_galaxy_ds):
    lines = [
        (
            f"{len(pooled)} candidates in {len(TRAIN_DISTANCES)} galaxies, 3 labellers "
            "with the 'human' noise (seeds 1, 2, 3)"
        ),
        f"{'labels':34s} {'accuracy':>8s} {'+-':>6s} {'macro recall':>12s}",
    ]
    rows = [(f"labeller {s} alone", name) for s, name in zip(LABELLER_SEEDS, LABELLERS)]
    rows += [
        ("majority vote (ties: labeller 1)", "majority"),
        ("Dawid-Skene, all galaxies", "dawid_skene"),
        ("Dawid-Skene, each galaxy alone", "dawid_skene_galaxy"),
    ]
    pooled["dawid_skene_galaxy"] = per_galaxy_ds
    for title, column in rows:
        acc, err, macro, _ = _agreement(pooled, column)
        lines.append(f"{title:34s} {acc:8.3f} {err:6.3f} {macro:12.3f}")
    truth = np.asarray(pooled["CLASS_TRUE"])
    ds_ok = np.asarray(pooled["dawid_skene"]) == truth
    mv_ok = np.asarray(pooled["majority"]) == truth
    wins, losses = int(np.sum(ds_ok & ~mv_ok)), int(np.sum(mv_ok & ~ds_ok))
    lines.append(
        f"only Dawid-Skene right: {wins}, only majority right: {losses} "
        f"(difference {(wins - losses) / np.sqrt(wins + losses):.1f} sigma)"
    )
    return "\n".join(lines)


def confusion_lines(meta):
    """Estimated confusion matrices against the simulator's noise matrix."""
    lines = [
        (
            "Dawid-Skene confusion matrix of each labeller (rows: true class 1-4), "
            "largest difference from HUMAN_LABEL_NOISE:"
        )
    ]
    for name, matrix in meta["confusion"].items():
        matrix = np.asarray(matrix)
        diag = " ".join(f"{v:.2f}" for v in np.diag(matrix))
        lines.append(
            f"  {name}: diagonal {diag}; max |difference| "
            f"{np.abs(matrix - HUMAN_LABEL_NOISE).max():.3f}"
        )
    lines.append(
        "  HUMAN_LABEL_NOISE diagonal " + " ".join(f"{v:.2f}" for v in np.diag(HUMAN_LABEL_NOISE))
    )
    return "\n".join(lines)


#: Training labels: (name, label column, soft-label columns or None).
TRAINING_LABELS = (
    (LABELLERS[0], LABELLERS[0], None),
    ("majority", "majority", None),
    ("dawid_skene", "dawid_skene", None),
    ("dawid_skene soft", "dawid_skene", [f"ds_prob{k}" for k in (1, 2, 3, 4)]),
)


def train_and_measure(catalogs, *, arch, weights, epochs, seeds, progress=print):
    """Train a network on each label set and seed; agreement with the held-out truth."""
    import torch

    from photutils_clusterclf.training import TrainingSet, train_classifier

    torch.set_num_threads(1)
    heldout = simulate_field(
        shape=SHAPE,
        n_candidates=N_CANDIDATES,
        distance_mpc=HELDOUT_DISTANCE,
        seed=100,
        target="consensus-heldout",
    )
    images = heldout.to_multiband_image()
    lines = [
        (
            "model trained on       seed  held-out accuracy vs true  macro recall  "
            "recall 1 / 2 / 3 / 4"
        )
    ]
    galaxies = [(cat, field.to_multiband_image(), field.target) for cat, field in catalogs]
    for title, column, soft in TRAINING_LABELS:
        training_set = TrainingSet.from_galaxies(
            galaxies,
            label_column=column,
            cutout_size=32,
            soft_label_columns=soft,
            progress_bar=False,
        )
        accuracies = []
        for seed in seeds:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyUserWarning)  # no ImageNet weights here
                clf = train_classifier(
                    training_set,
                    arch=arch,
                    weights=weights,
                    input_size=32,
                    epochs=epochs,
                    seed=seed,
                    device="cpu",
                    progress_bar=False,
                )
            out = clf.classify(heldout.catalog, images, progress_bar=False)
            report = EvaluationReport(out["CLASS_TRUE"], out["class_ml"])
            accuracies.append(report.overall_accuracy)
            recall = " / ".join(f"{report.recall[c]:.2f}" for c in (1, 2, 3, 4))
            lines.append(
                f"{title:22s} {seed:4d} {report.overall_accuracy:26.3f} "
                f"{report.macro_recall:13.3f}  {recall}"
            )
            progress(
                f"trained {arch} on {title}, seed {seed} "
                f"({time.perf_counter() - start:.0f} s, weights "
                f"{clf.card.training['options']['weights']})",
                flush=True,
            )
        lines.append(
            f"{title:22s} mean {np.mean(accuracies):26.3f} "
            f"(std {np.std(accuracies):.3f} over {len(seeds)} seeds)"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--train", action="store_true", help="also train on single, majority and Dawid-Skene labels"
    )
    parser.add_argument("--arch", default="resnet18", help="network for --train")
    parser.add_argument(
        "--weights",
        choices=("imagenet", "none"),
        default="imagenet",
        help="initialisation for --train (small_cnn: none)",
    )
    parser.add_argument("--epochs", type=int, default=25, help="at most this many (--train)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="training seeds for --train (default 0)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    catalogs = simulate()
    per_galaxy = []
    for cat, _ in catalogs:
        cat["majority"] = consensus_labels(cat, columns=list(LABELLERS))["consensus_class"]
        per_galaxy.append(
            consensus_labels(cat, columns=list(LABELLERS), method="dawid-skene")["consensus_class"]
        )
    pooled = vstack([cat for cat, _ in catalogs], metadata_conflicts="silent")
    ds = consensus_labels(pooled, columns=list(LABELLERS), method="dawid-skene")
    pooled["dawid_skene"] = ds["consensus_class"]
    bounds = np.cumsum([0] + [len(cat) for cat, _ in catalogs])
    for (cat, _), lo, hi in zip(catalogs, bounds[:-1], bounds[1:]):
        cat["dawid_skene"] = ds["consensus_class"][lo:hi]
        for k in (1, 2, 3, 4):
            cat[f"ds_prob{k}"] = ds[f"consensus_prob{k}"][lo:hi]
    print()
    print(agreement_table(pooled, np.concatenate(per_galaxy)))
    meta = ds.meta["consensus"]
    print(
        f"(Dawid-Skene on all galaxies: {meta['n_iter']} EM iterations, "
        f"converged {meta['converged']})"
    )
    print(confusion_lines(meta))
    if args.train:
        print()
        print(
            train_and_measure(
                catalogs,
                arch=args.arch,
                epochs=args.epochs,
                seeds=args.seeds,
                weights=None if args.weights == "none" else args.weights,
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
