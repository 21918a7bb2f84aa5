"""Wei et al. (2020)-style experiment on simulated PHANGS-like galaxies.

Several training galaxies at different distances are simulated, a network
is trained on their (noisy, human-like) labels, and a galaxy held out of
training is classified. The experiment varies

* the architecture (``resnet18``, ``vgg19_bn``; ``train_classifier``'s
  ``weights="auto"``: the installed simulated-field weights, else ImageNet
  when cached, else random initialisation, with a note);
* the training labels: one noisy labeller, or the consensus (majority vote)
  of three independent noisy labellers (``noisy_labels(..., "human")``;
  when all three disagree the first labeller's class is kept, as a lead
  inspector would decide);
* the cutout size and network input size (three pairs);

and reports, for each setting, the per-class recall on the held-out galaxy
against its human-like labels (one noisy labeller, as in the papers) and
against the true classes, as mean and standard deviation over seeds.

Configurations
--------------
full (default; a GPU is needed, about 2-4 h on one A100/H100)::

    python benchmarks/paper_experiment.py --output results.json

    4 training galaxies (2048 x 2048 px, 800 candidates each) at 5, 9, 14,
    20 Mpc, held-out galaxy at 11 Mpc; cutout/input sizes (24, 64),
    (32, 64), (48, 96); 30 epochs, patience 8; 5 seeds; batch 128.

reduced (``--reduced``; about an hour on a 2-core CPU)::

    python benchmarks/paper_experiment.py --reduced --output reduced.json

    3 training galaxies (1200 x 1200 px, 400 candidates each) at 5, 10,
    18 Mpc (one of them is the validation galaxy), held-out galaxy (400
    candidates) at 12 Mpc; sizes (16, 32), (24, 32), (32, 32); 10 epochs,
    patience 4; 2 seeds; batch 64. Measured wall time: see
    benchmarks/RESULTS.md.

smoke (``--smoke``, with or without ``--reduced``; about 3 min on 2 CPU cores): tiny
fields and one epoch, only to check that the whole pipeline runs.

Under ``torchrun --nproc-per-node N`` the training runs on N devices
(`train_classifier` detects it); only rank 0 prints and writes.
"""

import argparse
import itertools
import json
import os
import sys
import time
import warnings

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from photutils_clusterclf.classes import CLASSES
from photutils_clusterclf.datasets import noisy_labels, simulate_field
from photutils_clusterclf.evaluation import EvaluationReport
from photutils_clusterclf.fileio import atomic_output, check_writable
from photutils_clusterclf.training import TrainingSet, train_classifier

CONFIGS = {
    "full": dict(
        shape=(2048, 2048),
        n_candidates=800,
        train_distances=(5.0, 9.0, 14.0, 20.0),
        test_distance=11.0,
        sizes=((24, 64), (32, 64), (48, 96)),
        epochs=30,
        patience=8,
        n_seeds=5,
        batch_size=128,
    ),
    "reduced": dict(
        shape=(1200, 1200),
        n_candidates=400,
        train_distances=(5.0, 10.0, 18.0),
        test_distance=12.0,
        sizes=((16, 32), (24, 32), (32, 32)),
        epochs=10,
        patience=4,
        n_seeds=2,
        batch_size=64,
    ),
}
SMOKE = dict(shape=(320, 320), n_candidates=40, epochs=1, n_seeds=1, batch_size=16)
ARCHS = ("resnet18", "vgg19_bn")
LABEL_MODES = ("single", "consensus")


def consensus(votes):
    """Majority class of several labellers' votes (rows: labellers); the first labeller breaks ties."""
    votes = np.asarray(votes)
    counts = np.stack([(votes == c).sum(axis=0) for c in CLASSES], axis=1)
    best = counts.max(axis=1)
    majority = np.asarray(CLASSES)[counts.argmax(axis=1)]
    return np.where(best > 1, majority, votes[0]).astype(np.int16)


def simulate_galaxies(config, seed):
    """Training fields (with single and consensus labels) and the held-out field."""
    rng = np.random.default_rng(seed)
    train = []
    for k, distance in enumerate(config["train_distances"]):
        field = simulate_field(
            shape=config["shape"],
            n_candidates=config["n_candidates"],
            distance_mpc=distance,
            seed=seed + k,
            target=f"sim-train{k}",
        )
        cat = field.catalog
        truth = np.asarray(cat["CLASS_TRUE"])
        cat["LABEL_SINGLE"] = noisy_labels(truth, "human", rng)
        cat["LABEL_CONSENSUS"] = consensus([noisy_labels(truth, "human", rng) for _ in range(3)])
        train.append((cat, field.to_multiband_image(), field.target))
    test = simulate_field(
        shape=config["shape"],
        n_candidates=config["n_candidates"],
        distance_mpc=config["test_distance"],
        label_noise="human",
        seed=seed + 100,
        target="sim-heldout",
    )
    return train, test


def run(config, *, archs, device, progress_bar, log):
    train, test = simulate_galaxies(config, seed=2020)
    test_images = test.to_multiband_image()
    results = []
    for (cutout_size, input_size), mode in itertools.product(config["sizes"], LABEL_MODES):
        training_set = TrainingSet.from_galaxies(
            train, label_column=f"LABEL_{mode.upper()}", cutout_size=cutout_size, progress_bar=False
        )
        for arch, seed in itertools.product(archs, range(config["n_seeds"])):
            start = time.perf_counter()
            with warnings.catch_warnings():
                # No pretrained weights found: said once below, not per run.
                warnings.simplefilter("ignore", AstropyUserWarning)
                clf = train_classifier(
                    training_set,
                    arch=arch,
                    input_size=input_size,
                    epochs=config["epochs"],
                    patience=config["patience"],
                    batch_size=config["batch_size"],
                    seed=seed,
                    device=device,
                    progress_bar=progress_bar,
                )
            out = clf.classify(test.catalog, test_images, progress_bar=False)
            row = {
                "arch": arch,
                "labels": mode,
                "cutout_size": cutout_size,
                "input_size": input_size,
                "seed": seed,
                "weights": clf.card.training["options"]["weights"],
                "seconds": time.perf_counter() - start,
            }
            for name, column in (("human", "PHANGS_CLUSTER_CLASS_HUMAN"), ("true", "CLASS_TRUE")):
                report = EvaluationReport(out[column], out["class_ml"])
                row[f"recall_{name}"] = {str(c): float(report.recall[c]) for c in CLASSES}
                row[f"macro_recall_{name}"] = float(report.macro_recall)
            results.append(row)
            log(
                f"{arch:9s} {mode:9s} cutout {cutout_size:3d} input {input_size:3d} seed {seed}: "
                f"macro recall vs human {row['macro_recall_human']:.3f}, vs true "
                f"{row['macro_recall_true']:.3f} ({row['seconds']:.0f} s)"
            )
    return results


def summarize(results):
    """Mean and standard deviation over seeds of every recall, per setting."""
    groups = {}
    for row in results:
        groups.setdefault(
            (row["arch"], row["labels"], row["cutout_size"], row["input_size"]), []
        ).append(row)
    summary = []
    for (arch, labels, cutout_size, input_size), rows in groups.items():
        entry = {
            "arch": arch,
            "labels": labels,
            "cutout_size": cutout_size,
            "input_size": input_size,
            "n_seeds": len(rows),
        }
        for name in ("human", "true"):
            for c in CLASSES:
                values = [r[f"recall_{name}"][str(c)] for r in rows]
                entry[f"recall{c}_{name}"] = [float(np.nanmean(values)), float(np.nanstd(values))]
            values = [r[f"macro_recall_{name}"] for r in rows]
            entry[f"macro_{name}"] = [float(np.nanmean(values)), float(np.nanstd(values))]
        summary.append(entry)
    return summary


def format_summary(summary):
    """Per-class recall (mean +- std over seeds) against both label sets."""
    lines = []
    for name, title in (
        ("human", "against the held-out galaxy's human-like labels"),
        ("true", "against the true classes"),
    ):
        lines.append(f"recall {title}")
        lines.append(
            f"{'arch':9s} {'labels':9s} {'cut':>3s} {'in':>3s}  "
            + " ".join(f"{'class ' + str(c):>11s}" for c in CLASSES)
            + f" {'macro':>11s}"
        )
        for e in summary:
            cells = [
                f"{e[f'recall{c}_{name}'][0]:.2f}±{e[f'recall{c}_{name}'][1]:.2f}".rjust(11)
                for c in CLASSES
            ]
            lines.append(
                f"{e['arch']:9s} {e['labels']:9s} {e['cutout_size']:3d} "
                f"{e['input_size']:3d}  "
                + " ".join(cells)
                + f" {e[f'macro_{name}'][0]:.2f}±{e[f'macro_{name}'][1]:.2f}".rjust(12)
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reduced", action="store_true", help="CPU-sized configuration (~1 h)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny fields, one epoch: checks it runs"
    )
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), help="architectures to compare")
    parser.add_argument(
        "--seeds", type=int, help="number of seeds (default from the configuration)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--output", help="JSON file for the per-run results and the summary")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    config = dict(CONFIGS["reduced" if args.reduced else "full"])
    if args.smoke:
        config.update(SMOKE, train_distances=config["train_distances"][:2])
    if args.seeds:
        config["n_seeds"] = args.seeds
    if args.output:
        check_writable(args.output, overwrite=args.overwrite)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    log = print if main_rank else (lambda message: None)
    log(
        f"configuration: {'reduced' if args.reduced else 'full'}{' (smoke)' if args.smoke else ''}: "
        f"{config}"
    )
    results = run(
        config,
        archs=args.archs,
        device=args.device,
        progress_bar=not args.no_progress and main_rank,
        log=log,
    )
    if any(r["weights"] is None for r in results):
        log(
            "note: no pretrained weights were found (sim-<arch> installed by clusterclf "
            "pretrain, or cached ImageNet); those runs started from random initialisation"
        )
    summary = summarize(results)
    log(format_summary(summary))
    if args.output and main_rank:
        with atomic_output(args.output, overwrite=args.overwrite) as tmp:
            tmp.write_text(
                json.dumps({"config": config, "results": results, "summary": summary}, indent=1)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
