"""How good is the classifier? The CNN against a feature baseline and the label-noise ceiling.

Three simulated PHANGS-like training galaxies at about 6, 11 and 17 Mpc
with human-like noisy labels (``noisy_labels(..., "human")``; the 11 Mpc
galaxy is the validation galaxy: early stopping and every choice of
settings), and a held-out galaxy at 14 Mpc that is only ever classified.
For each model and seed it prints the recall per class and the macro recall
on the held-out galaxy against its true classes and against one human-like
labelling of it, and the training time. Models:

``features``
    gradient boosting on classical features (``benchmarks/features.py``),
    trained on the human-like labels of the two training galaxies;
``old``
    `train_classifier` with the defaults before issue 12 (ResNet18, ImageNet
    stem, per-band asinh normalisation, plateau schedule, 30 epochs);
``new``
    `train_classifier` with its current defaults;
``vgg``
    the current defaults with ``arch="vgg19_bn"``;
``new_fc``
    the current defaults with forward correction for label noise
    (``label_noise``), the matrix estimated without the true classes: the
    validation galaxy is classified by two more simulated people, and
    `~photutils_clusterclf.consensus.dawid_skene` on the three
    classifications gives each person's confusion matrix (their mean is
    used);
``new_fc_known``
    the same with the simulator's own matrix (``label_noise="human"``):
    what forward correction gives with a perfect estimate;
``sim_only``
    the installed ``sim-resnet18`` weights (``clusterclf pretrain``) as
    they are, without fine-tuning on these galaxies: what pretraining on
    the true classes of other simulated fields gives by itself;
``features_truth``, ``new_truth``
    the upper bounds: the same feature baseline and CNN recipe trained on
    the TRUE classes of the training galaxies (validated on the true classes
    of the validation galaxy).

The ceiling against human-like labels is the recall of the true classes
themselves against the human-like labelling (what a perfect classifier
scores there); the diagonal of the noise matrix
(`~photutils_clusterclf.datasets.HUMAN_LABEL_NOISE`, P(label | true class))
is printed with it.

Configurations::

    python benchmarks/accuracy.py                 # standard: 4 x 1500 candidates, 3 seeds
    python benchmarks/accuracy.py --reduced       # 4 x 800 candidates, 1 seed (sweeps)
    python benchmarks/accuracy.py --reduced --on validation --models new \\
        --set stem=nopool --set epochs=12         # a setting, scored on the validation galaxy

Simulated fields are rendered once and their 32 px cutouts cached in
``benchmarks/_data/accuracy/`` (git-ignored), so a run only trains. Use
``OMP_NUM_THREADS=1`` on a shared machine. The last line is
``macro_truth_new=... macro_truth_baseline=...`` (means over seeds).
"""

import argparse
import ast
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from astropy.utils.exceptions import AstropyUserWarning

from photutils_clusterclf.calibration import expected_calibration_error
from photutils_clusterclf.classes import CLASSES
from photutils_clusterclf.classifier import ClusterClassifier
from photutils_clusterclf.cutouts import extract_cutouts
from photutils_clusterclf.datasets import (
    HUMAN_LABEL_NOISE,
    noisy_labels,
    simulate_field,
)
from photutils_clusterclf.evaluation import EvaluationReport
from photutils_clusterclf.fileio import atomic_output, check_writable
from photutils_clusterclf.training import TrainingSet, train_classifier
from photutils_clusterclf.weights import load_weights

sys.path.insert(0, str(Path(__file__).parent))
from features import fit_baseline, predict_baseline

DATA = Path(__file__).parent / "_data" / "accuracy"
CONFIGS = {
    "standard": {"n_candidates": 1500, "n_seeds": 3},
    "reduced": {"n_candidates": 800, "n_seeds": 1},
}
# name, distance (Mpc), role; the simulation seed of galaxy k is 1200 + k.
GALAXIES = (
    ("sim-6mpc", 6.0, "train"),
    ("sim-11mpc", 11.0, "validation"),
    ("sim-17mpc", 17.0, "train"),
    ("sim-14mpc", 14.0, "heldout"),
)
CUTOUT_SIZE = 32
# PHANGS-HST density: 800 candidates in 2048^2 px.
_DENSITY = 800 / 2048**2

#: The defaults of train_classifier before issue 12, spelled out.
OLD_RECIPE = {
    "arch": "resnet18",
    "epochs": 30,
    "patience": 8,
    "lr": 1e-3,
    "normalization": "asinh",
    "stem": "standard",
    "head": "standard",
    "schedule": "plateau",
    "label_smoothing": 0.0,
}
MODELS = {
    "features": ("features", "human", {}),
    "old": ("cnn", "human", OLD_RECIPE),
    "new": ("cnn", "human", {}),
    "vgg": ("cnn", "human", {"arch": "vgg19_bn"}),
    "new_fc": ("cnn", "human", {"label_noise": "estimated"}),
    "new_fc_known": ("cnn", "human", {"label_noise": "human"}),
    "sim_only": ("pretrained", None, {}),
    "features_truth": ("features", "truth", {}),
    "new_truth": ("cnn", "truth", {}),
}


def galaxy_data(config_name, *, log=print):
    """Cutouts, true classes and human-like labels of the four galaxies (cached)."""
    n = CONFIGS[config_name]["n_candidates"]
    path = DATA / f"{config_name}-{n}-s{CUTOUT_SIZE}.npz"
    if not path.is_file():
        side = round(np.sqrt(n / _DENSITY))
        rng = np.random.default_rng(12)
        parts = {k: [] for k in ("cutouts", "truth", "human", "galaxy")}
        for k, (name, distance, _) in enumerate(GALAXIES):
            start = time.perf_counter()
            field = simulate_field(
                shape=(side, side),
                n_candidates=n,
                distance_mpc=distance,
                seed=1200 + k,
                target=name,
            )
            cat = field.catalog
            batch = extract_cutouts(
                field.to_multiband_image(),
                np.asarray(cat["PHANGS_X"]),
                np.asarray(cat["PHANGS_Y"]),
                size=CUTOUT_SIZE,
            )
            ok = batch.classifiable
            truth = np.asarray(cat["CLASS_TRUE"], dtype=np.int64)[ok]
            parts["cutouts"].append(batch.data[ok])
            parts["truth"].append(truth)
            parts["human"].append(noisy_labels(truth, "human", rng).astype(np.int64))
            parts["galaxy"].append(np.full(truth.size, name))
            log(
                f"simulated {name}: {side}^2 px, {truth.size} candidates "
                f"({time.perf_counter() - start:.0f} s)"
            )
        DATA.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, overwrite=True) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                bands=np.asarray(batch.bands),
                **{k: np.concatenate(v) for k, v in parts.items()},
            )
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def estimated_label_noise(data, *, n_labellers=3, seed=13):
    """P(label | true class) estimated as a survey team could, without the truth.

    The validation galaxy's human-like labels plus ``n_labellers - 1``
    independent human-like classifications of it, combined by
    `~photutils_clusterclf.consensus.dawid_skene`; the mean of the
    labellers' confusion matrices.
    """
    from photutils_clusterclf.consensus import dawid_skene

    val = _roles(data) == "validation"
    rng = np.random.default_rng(seed)
    votes = [data["human"][val]] + [
        noisy_labels(data["truth"][val], "human", rng) for _ in range(n_labellers - 1)
    ]
    matrix = dawid_skene(np.column_stack(votes)).confusion.mean(axis=0)
    return matrix / matrix.sum(axis=1, keepdims=True)


def _roles(data):
    """Role ("train", "validation", "heldout") of each row."""
    roles = {g: role for g, _, role in GALAXIES}
    return np.array([roles[g] for g in data["galaxy"]])


def _recalls(truth, pred):
    report = EvaluationReport(truth, pred)
    return [float(report.recall[c]) for c in CLASSES], float(report.macro_recall)


def save_confusion_galleries(prefix, cutouts, truth, pred, bands, *, overwrite):
    """One figure per true class: its cutouts on ``on``, one row per predicted class."""
    from photutils_clusterclf.visualization import plot_cutout_gallery, save_figure

    for c in CLASSES:
        sel = truth == c
        fig = plot_cutout_gallery(
            cutouts[sel],
            pred[sel],
            n_per_class=8,
            band_names=bands,
            title=f"true class {c}: rows = predicted class (RGB = F814W, F555W, F438W)",
        )
        save_figure(fig, f"{prefix}-true{c}.png", overwrite=overwrite)


def run_model(
    name, data, *, seed, on, overrides, device, progress_bar, gallery=None, overwrite=False
):
    """Train model ``name`` with ``seed`` and score it on the galaxy ``on``.

    ``gallery``: file-name prefix of `save_confusion_galleries` figures.
    """
    kind, labels, recipe = MODELS[name]
    role = _roles(data)
    bands = data["bands"].tolist()
    target = role == on
    start = time.perf_counter()
    if kind == "features":
        fit = role == "train"
        model = fit_baseline(data["cutouts"][fit], data[labels][fit], bands=bands, seed=seed)
        seconds = time.perf_counter() - start
        pred = predict_baseline(model, data["cutouts"][target], bands=bands)
        extra = {}
    else:
        options = {**recipe, **overrides}
        if kind == "pretrained":
            weights = f"sim-{options.get('arch', 'resnet18')}"
            clf, summary = _pretrained_classifier(weights, device), {"weights": f"{weights} as is"}
        else:
            clf = _trained_classifier(data, role, labels, options, seed, device, progress_bar)
            summary = _training_summary(clf)
        seconds = time.perf_counter() - start
        probs = clf.predict_proba(data["cutouts"][target])
        pred = probs.argmax(axis=1) + 1
        extra = {"options": options, **summary}
        extra |= _probability_scores(clf, probs, data, target)
    if gallery is not None:
        save_confusion_galleries(
            f"{gallery}-{name}-seed{seed}",
            data["cutouts"][target],
            data["truth"][target],
            pred,
            bands,
            overwrite=overwrite,
        )
    row = {"model": name, "seed": seed, "on": on, "seconds": seconds, **extra}
    row["recall_truth"], row["macro_truth"] = _recalls(data["truth"][target], pred)
    row["recall_human"], row["macro_human"] = _recalls(data["human"][target], pred)
    # Rows: true class 1-4, columns: predicted class (where each class's losses go).
    row["confusion_truth"] = EvaluationReport(data["truth"][target], pred).confusion_matrix.tolist()
    return row


def _trained_classifier(data, role, labels, options, seed, device, progress_bar):
    """`train_classifier` on the training and validation galaxies' ``labels``."""
    fit = role != "heldout"
    bands = data["bands"].tolist()
    ts = TrainingSet(
        data["cutouts"][fit], data[labels][fit], galaxy=data["galaxy"][fit], bands=bands
    )
    if options.get("label_noise") == "estimated":
        options["label_noise"] = estimated_label_noise(data).tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)  # no pretrained weights: said below
        return train_classifier(
            ts,
            val_galaxy=GALAXIES[1][0],
            seed=seed,
            device=device,
            progress_bar=progress_bar,
            **options,
        )


def _pretrained_classifier(name, device):
    """Installed pretrained weights as they are: no fine-tuning on these galaxies."""
    try:
        return ClusterClassifier.from_checkpoint(load_weights(name), device=device)
    except FileNotFoundError as exc:  # it names the `clusterclf pretrain` command
        raise SystemExit(f"model sim_only: {exc}") from None


def _training_summary(clf):
    """The start and the best and last epochs of a classifier trained here."""
    training = clf.card.training
    member = training["members"][0]
    return {
        "weights": training["options"]["weights"],
        "best_epoch": member["best_epoch"],
        "epochs_run": member["epochs_run"],
    }


def _probability_scores(clf, probs, data, target):
    """ECE of the calibrated probabilities, and macro recall with test-time augmentation."""
    tta = clf.predict_proba(data["cutouts"][target], tta=True).argmax(axis=1) + 1
    out = {}
    for ref in ("truth", "human"):
        out[f"ece_{ref}"] = expected_calibration_error(probs, data[ref][target])
        out[f"macro_{ref}_tta"] = _recalls(data[ref][target], tta)[1]
    return out


def _probability_table(rows):
    """Per CNN model: ECE against both references and macro recall with TTA (mean ± std)."""
    names = list(dict.fromkeys(r["model"] for r in rows if "ece_truth" in r))
    if not names:
        return ""
    keys = ("ece_truth", "ece_human", "macro_truth_tta", "macro_human_tta")
    lines = [
        "calibrated probabilities (ECE, 15 bins) and test-time augmentation (8 dihedral views)",
        f"{'model':15s} " + " ".join(f"{k:>15s}" for k in keys),
    ]
    for name in names:
        sel = [r for r in rows if r["model"] == name]
        lines.append(
            f"{name:15s} " + " ".join(_mean_std([r[k] for r in sel]).rjust(15) for k in keys)
        )
    return "\n".join(lines) + "\n"


def _mean_std(values):
    return f"{np.mean(values):.3f}±{np.std(values):.3f}"


def format_table(rows, ceiling):
    """Per model: recall per class and macro (mean ± std over seeds), both references, time.

    ``ceiling`` is (recall per class, macro) of the true classes themselves
    against the human-like labels: what a perfect classifier would score.
    """
    lines = []
    names = list(dict.fromkeys(r["model"] for r in rows))
    for ref in ("truth", "human"):
        lines.append(
            f"recall against the {'true classes' if ref == 'truth' else 'human-like labels'}"
            f" of {rows[0]['on']} galaxy"
        )
        lines.append(
            f"{'model':15s} "
            + " ".join(f"{'class ' + str(c):>11s}" for c in CLASSES)
            + f" {'macro':>11s} {'train s':>8s}"
        )
        for name in names:
            sel = [r for r in rows if r["model"] == name]
            cells = [
                _mean_std([r[f"recall_{ref}"][i] for r in sel]).rjust(11)
                for i in range(len(CLASSES))
            ]
            lines.append(
                f"{name:15s} "
                + " ".join(cells)
                + f" {_mean_std([r[f'macro_{ref}'] for r in sel]):>11s}"
                + f" {np.mean([r['seconds'] for r in sel]):8.0f}"
            )
        if ref == "human":
            lines.append(
                f"{'ceiling':15s} "
                + " ".join(f"{r:11.3f}" for r in ceiling[0])
                + f" {ceiling[1]:11.3f}"
            )
            lines.append(
                f"{'noise diagonal':15s} "
                + " ".join(f"{HUMAN_LABEL_NOISE[i, i]:11.3f}" for i in range(len(CLASSES)))
                + f" {np.mean(np.diag(HUMAN_LABEL_NOISE)):11.3f}"
            )
        lines.append("")
    return "\n".join(lines)


def _parse_set(items):
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reduced", action="store_true", help="4 x 800 candidates, 1 seed")
    parser.add_argument(
        "--models",
        nargs="+",
        default=["features", "old", "new", "vgg", "features_truth", "new_truth"],
        choices=list(MODELS),
    )
    parser.add_argument(
        "--seeds", type=int, help="number of seeds (default from the configuration)"
    )
    parser.add_argument(
        "--on",
        default="heldout",
        choices=("heldout", "validation"),
        help="galaxy to score on (choose settings on 'validation' only)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a train_classifier option of the CNN models",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-threads", type=int, default=1, help="torch threads")
    parser.add_argument("--output", help="JSON file for the per-run rows")
    parser.add_argument(
        "--gallery",
        metavar="PREFIX",
        help="write PREFIX-<model>-seed<k>-true<c>.png: each true class's "
        "cutouts, one row per predicted class",
    )
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.output:
        check_writable(args.output, overwrite=args.overwrite)
    torch.set_num_threads(args.num_threads)
    config_name = "reduced" if args.reduced else "standard"
    n_seeds = args.seeds or CONFIGS[config_name]["n_seeds"]
    overrides = _parse_set(args.set)
    print(
        f"configuration {config_name}: {CONFIGS[config_name]}, seeds 0..{n_seeds - 1}, "
        f"{args.num_threads} torch thread(s), overrides {overrides}, scored on {args.on}"
    )
    data = galaxy_data(config_name)
    rows = []
    for name in args.models:
        for seed in range(n_seeds):
            row = run_model(
                name,
                data,
                seed=seed,
                on=args.on,
                overrides=overrides,
                device=args.device,
                progress_bar=not args.no_progress,
                gallery=args.gallery,
                overwrite=args.overwrite,
            )
            rows.append(row)
            print(
                f"{name:15s} seed {seed}: macro vs truth {row['macro_truth']:.3f} "
                f"({' / '.join(f'{r:.2f}' for r in row['recall_truth'])}), vs human "
                f"{row['macro_human']:.3f}, {row['seconds']:.0f} s"
                + (
                    f", best epoch {row['best_epoch']}/{row['epochs_run']}"
                    if "best_epoch" in row
                    else ""
                ),
                flush=True,
            )
    if any(r.get("weights", "") is None for r in rows):
        print(
            "note: no pretrained weights were found (sim-<arch> installed by clusterclf "
            "pretrain, or cached ImageNet); those CNNs started from random initialisation"
        )
    target = _roles(data) == args.on
    print(format_table(rows, _recalls(data["human"][target], data["truth"][target])))
    print(_probability_table(rows))
    if args.output:
        with atomic_output(args.output, overwrite=args.overwrite) as tmp:
            tmp.write_text(json.dumps({"config": config_name, "rows": rows}, indent=1))

    def macro(name):
        values = [r["macro_truth"] for r in rows if r["model"] == name]
        return f"{np.mean(values):.3f}" if values else "nan"

    print(f"macro_truth_new={macro('new')} macro_truth_baseline={macro('features')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
