"""Learning curves: how many human labels does fine-tuning need, from which start?

A network is fine-tuned on N human-like-labelled candidates (N = 100, 300,
1000, 3000) drawn from simulated training galaxies, starting from

* random weights,
* the simulated-field weights of ``clusterclf pretrain`` (made once and cached
  in the data directory; the pretraining corpus uses other seeds and random
  distances, so the labelled galaxies are independent of it),
* ImageNet, when torchvision's file is cached (it cannot be downloaded here),

and evaluated on a held-out simulated galaxy against its true classes and
against its human-like labels. Each fine-tuned model is also evaluated on two
held-out galaxies simulated *outside* the pretraining ranges: a PSF 20 %
wider, and twice the crowding (twice the candidate density and twice the
largest field-star density of the corpus). With ``--variants`` the 300-label
point (or those of ``--variant-labels``) is repeated from the simulated-field
weights with every layer at the full learning rate (``backbone_lr_factor=1``;
the default from pretrained weights is 0.1) and with a 3-epoch
frozen-backbone warm-up. Each run also records its best recall on its
own 20 % validation split, the number a user could choose a variant by.

Fine-tuning uses `train_classifier`'s defaults (epochs, patience, lr,
class balance, augmentation) unless ``--epochs`` / ``--patience`` are given;
each labelled subset is split 80/20 (stratified) for early stopping.

Full (a GPU or several CPU hours)::

    python benchmarks/learning_curve.py --output learning_curve.json

Reduced (what benchmarks/RESULTS.md records; 2 CPU cores, 1 thread)::

    python benchmarks/learning_curve.py --reduced --num-threads 1

Prints a Markdown table and writes ``--plot`` (macro recall vs number of
labels, one line per initialisation, error bars over seeds).
"""

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

HERE = Path(__file__).resolve().parent

FULL = {
    "arch": "resnet18",
    "labels": [100, 300, 1000, 3000],
    "seeds": [0, 1, 2],
    "epochs": None,
    "patience": None,
    # None: the registry's recipe of sim-<arch> (photutils_clusterclf.weights)
    "pretrain_fields": None,
    "pretrain_candidates": None,
    "pretrain_epochs": None,
    "pool_galaxies": 4,
    "pool_candidates": 1000,
    "heldout_candidates": 800,
}
REDUCED = FULL | {
    "epochs": 15,
    "patience": 5,
}
#: Configuration keys of the pretraining -> keys of a registry recipe.
RECIPE_KEYS = {
    "pretrain_fields": "n_fields",
    "pretrain_candidates": "n_candidates",
    "pretrain_epochs": "epochs",
}
POOL_DISTANCES = (5.5, 9.5, 13.5, 19.5)  # Mpc, labelled galaxies
HELDOUT_DISTANCE = 11.0
CORPUS_MAX_STAR_DENSITY = 6e-4
VARIANT_LABELS = {
    "backbone_lr_1": "every layer at the full lr",
    "frozen_warmup_3": "3 frozen epochs",
}


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reduced", action="store_true", help="the reduced configuration")
    p.add_argument("--arch")
    p.add_argument("--labels", type=int, nargs="+")
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--epochs", type=int)
    p.add_argument("--patience", type=int)
    p.add_argument("--pretrain-fields", type=int)
    p.add_argument("--pretrain-candidates", type=int)
    p.add_argument("--pretrain-epochs", type=int)
    p.add_argument(
        "--inits",
        nargs="+",
        choices=("random", "sim", "imagenet"),
        help="only these initialisations (e.g. one per process; default all available)",
    )
    p.add_argument(
        "--variants",
        action="store_true",
        help="also every layer at the full lr and a frozen warm-up from the simulated-field "
        "weights (at --variant-labels)",
    )
    p.add_argument(
        "--variant-labels",
        type=int,
        nargs="+",
        default=[300],
        help="label counts the --variants runs use (default 300)",
    )
    p.add_argument(
        "--replot",
        metavar="JSON",
        default=None,
        help="only redraw --plot and print the table from a results file",
    )
    p.add_argument("--num-threads", type=int, default=None, help="torch threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=str(HERE / "_data" / "learning_curve"))
    p.add_argument("--output", default=None, help="JSON results (default in --data-dir)")
    p.add_argument("--plot", default=str(HERE.parent / "docs" / "_static" / "learning_curve.png"))
    args = p.parse_args(argv)
    config = dict(REDUCED if args.reduced else FULL)
    for key in config:
        if getattr(args, key, None) is not None:
            config[key] = getattr(args, key)
    if any(config[key] is None for key in RECIPE_KEYS):
        recipe = _registered_recipe(config["arch"])
        for key, recipe_key in RECIPE_KEYS.items():
            if config[key] is None:
                config[key] = recipe[recipe_key]
    return args, config


def _registered_recipe(arch):
    """The pretraining recipe of the registry's ``sim-<arch>`` entry."""
    from photutils_clusterclf.weights import WEIGHTS

    entry = WEIGHTS.get(f"sim-{arch}")
    if entry is None:
        raise SystemExit(
            f"no registered sim-{arch} weights: give --pretrain-fields, "
            "--pretrain-candidates and --pretrain-epochs"
        )
    return entry.recipe


def _pretrained(config, data_dir, device):
    """The simulated-field weights (made with `pretrain` once, then reused)."""
    from photutils_clusterclf.training import pretrain

    path = data_dir / (
        f"sim-{config['arch']}-{config['pretrain_fields']}x"
        f"{config['pretrain_candidates']}-e{config['pretrain_epochs']}.pt"
    )
    if path.is_file():
        return path, None
    start = time.perf_counter()
    pretrain(
        path,
        arch=config["arch"],
        n_fields=config["pretrain_fields"],
        n_candidates=config["pretrain_candidates"],
        epochs=config["pretrain_epochs"],
        seed=0,
        device=device,
        progress_bar=True,
    )
    return path, time.perf_counter() - start


def _pool(config):
    """Labelled candidates (human-like labels) of the training galaxies."""
    from photutils_clusterclf.datasets import simulate_field
    from photutils_clusterclf.training import TrainingSet

    side = int(round(2048 * np.sqrt(config["pool_candidates"] / 800)))
    galaxies = []
    for k, distance in enumerate(POOL_DISTANCES[: config["pool_galaxies"]]):
        field = simulate_field(
            shape=(side, side),
            n_candidates=config["pool_candidates"],
            distance_mpc=distance,
            label_noise="human",
            seed=10_000 + k,
            target=f"labelled{k}",
        )
        galaxies.append((field.catalog, field.to_multiband_image(), field.target))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        return TrainingSet.from_galaxies(
            galaxies,
            label_column="PHANGS_CLUSTER_CLASS_HUMAN",
            cutout_size=32,
            bands=None,
            progress_bar=False,
        )


def _heldout(config):
    """The nominal held-out galaxy and the two outside the pretraining ranges."""
    from photutils_clusterclf.datasets import simulate_field

    n = config["heldout_candidates"]
    common = {
        "distance_mpc": HELDOUT_DISTANCE,
        "label_noise": "human",
        "seed": 20_000,
        "target": "heldout",
        "shape": (2048, 2048),
    }
    return {
        "nominal": simulate_field(n_candidates=n, **common),
        "psf_1.2x": simulate_field(n_candidates=n, psf_scale=1.2, **common),
        "crowding_2x": simulate_field(
            n_candidates=2 * n, field_star_density=2 * CORPUS_MAX_STAR_DENSITY, **common
        ),
    }


def _evaluate(clf, fields):
    from photutils_clusterclf.evaluation import EvaluationReport

    out = {}
    for name, field in fields.items():
        table = clf.classify(field.catalog, field.to_multiband_image(), progress_bar=False)
        out[name] = {
            "true": float(EvaluationReport(table["CLASS_TRUE"], table["class_ml"]).macro_recall),
            "human": float(
                EvaluationReport(
                    table["PHANGS_CLUSTER_CLASS_HUMAN"], table["class_ml"]
                ).macro_recall
            ),
        }
    return out


def _subset(pool, n, seed):
    from photutils_clusterclf.training import TrainingSet

    if n > len(pool):
        raise SystemExit(f"{n} labels asked for but the pool has {len(pool)} candidates")
    idx = np.sort(np.random.default_rng([seed, n]).choice(len(pool), n, replace=False))
    return TrainingSet(pool.cutouts[idx], pool.labels[idx], galaxy="labelled", bands=pool.bands)


def _runs(config, inits, variant_labels):
    for n in config["labels"]:
        for init in inits:
            for seed in config["seeds"]:
                yield n, init, "default", {}, seed
    for n in variant_labels if "sim" in inits else ():
        for name, options in (
            ("backbone_lr_1", {"backbone_lr_factor": 1.0}),
            ("frozen_warmup_3", {"freeze_backbone_epochs": 3}),
        ):
            for seed in config["seeds"]:
                yield n, "sim", name, options, seed


def _errorbar(ax, rows, truth, style, label):
    """Mean and std over seeds of the nominal macro recall, one point per label count."""
    if not rows:
        return
    ns = sorted({r["n_labels"] for r in rows})
    vals = [[r["eval"]["nominal"][truth] for r in rows if r["n_labels"] == n] for n in ns]
    ax.errorbar(
        ns,
        [np.mean(v) for v in vals],
        yerr=[np.std(v) for v in vals],
        fmt=style,
        capsize=3,
        label=label,
    )


def _plot(results, config, path):
    from matplotlib.figure import Figure

    from photutils_clusterclf.visualization import save_figure

    fig = Figure(figsize=(9, 4.6))
    for ax, truth in zip(fig.subplots(1, 2, sharey=True), ("true", "human")):
        for init, style in (("random", "o-"), ("sim", "s-"), ("imagenet", "^-")):
            rows = [r for r in results if r["init"] == init and r["variant"] == "default"]
            label = {"sim": "simulated-field weights"}.get(init, init)
            _errorbar(ax, rows, truth, style, label)
        for variant, style in (("backbone_lr_1", "D"), ("frozen_warmup_3", "v")):
            rows = [r for r in results if r["variant"] == variant]
            _errorbar(ax, rows, truth, style, f"simulated-field weights, {VARIANT_LABELS[variant]}")
        ax.set_xscale("log")
        ticks = sorted({r["n_labels"] for r in results})
        ax.set_xticks(ticks, [str(n) for n in ticks])
        ax.minorticks_off()
        ax.set_xlabel("human-like labels used for fine-tuning")
        ax.set_title(
            f"held-out galaxy, against {'true classes' if truth == 'true' else 'human-like labels'}"
        )
        ax.grid(alpha=0.3)
    fig.axes[0].set_ylabel("macro recall")
    fig.legend(
        *fig.axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize="small"
    )
    fig.suptitle(f"{config['arch']}, mean and std over seeds {config['seeds']}")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    save_figure(fig, path, overwrite=True)


def _table(results):
    groups = {}
    for r in results:
        groups.setdefault((r["n_labels"], r["init"], r["variant"]), []).append(r)
    lines = [
        "| labels | init | variant | macro recall vs true | vs human | PSF 1.2x (true) "
        "| crowding 2x (true) | own validation split | seconds/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(values):
        # Runs of older results files have no validation number.
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "—"

    for (n, init, variant), rows in sorted(groups.items()):
        lines.append(
            f"| {n} | {init} | {variant} | {ms([r['eval']['nominal']['true'] for r in rows])} "
            f"| {ms([r['eval']['nominal']['human'] for r in rows])} "
            f"| {ms([r['eval']['psf_1.2x']['true'] for r in rows])} "
            f"| {ms([r['eval']['crowding_2x']['true'] for r in rows])} "
            f"| {ms([r['val_macro_recall'] for r in rows if 'val_macro_recall' in r])} "
            f"| {np.mean([r['seconds'] for r in rows]):.0f} |"
        )
    return "\n".join(lines)


def replot(results_json, plot):
    """Redraw the figure from a results file (no training)."""
    data = json.loads(Path(results_json).read_text())
    _plot(data["runs"], data["config"], plot)
    print(_table(data["runs"]))


def main(argv=None):
    args, config = _parse(argv)
    if args.replot:
        replot(args.replot, args.plot)
        return 0
    import torch

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    from photutils_clusterclf.models import imagenet_weights_file
    from photutils_clusterclf.training import train_classifier

    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    output = Path(args.output or data_dir / f"results-{config['arch']}.json")
    print(f"config: {json.dumps(config)}; torch threads {torch.get_num_threads()}", flush=True)
    t0 = time.perf_counter()
    pretrained, pretrain_seconds = _pretrained(config, data_dir, args.device)
    print(
        f"simulated-field weights: {pretrained}"
        + (f" (made in {pretrain_seconds:.0f} s)" if pretrain_seconds else " (cached)"),
        flush=True,
    )
    inits = {"random": None, "sim": str(pretrained)}
    if config["arch"] != "small_cnn" and imagenet_weights_file(config["arch"]).is_file():
        inits["imagenet"] = "imagenet"
    else:
        print("ImageNet weights not cached: no ImageNet rows", flush=True)
    if args.inits:
        inits = {k: v for k, v in inits.items() if k in args.inits}
    pool = _pool(config)
    fields = _heldout(config)
    print(
        f"labelled pool: {len(pool)} candidates; held-out galaxies simulated "
        f"({time.perf_counter() - t0:.0f} s so far)",
        flush=True,
    )
    previous = json.loads(output.read_text()) if output.is_file() else {}
    results = previous.get("runs", [])
    pretrain_seconds = pretrain_seconds or previous.get("pretrain_seconds")
    done = {(r["n_labels"], r["init"], r["variant"], r["seed"]) for r in results}
    train_options = {k: config[k] for k in ("epochs", "patience") if config[k] is not None}
    variant_labels = args.variant_labels if args.variants else []
    for n, init, variant, options, seed in _runs(config, inits, variant_labels):
        if (n, init, variant, seed) in done:
            continue
        start = time.perf_counter()
        clf = train_classifier(
            _subset(pool, n, seed),
            arch=config["arch"],
            weights=inits[init],
            seed=seed,
            device=args.device,
            val_fraction=0.2,
            progress_bar=False,
            **train_options,
            **options,
        )
        seconds = time.perf_counter() - start
        member = clf.card.training["members"][0]
        row = {
            "n_labels": n,
            "init": init,
            "variant": variant,
            "seed": seed,
            "seconds": seconds,
            "epochs_run": member["epochs_run"],
            "val_macro_recall": member["best_val_macro_recall"],
            "backbone_lr_factor": clf.card.training["options"]["backbone_lr_factor"],
            "eval": _evaluate(clf, fields),
        }
        results.append(row)
        print(
            f"{n:>5} labels  {init:<8} {variant:<16} seed {seed}: macro recall "
            f"{row['eval']['nominal']['true']:.3f} (true) "
            f"{row['eval']['nominal']['human']:.3f} (human), {seconds:.0f} s",
            flush=True,
        )
        output.write_text(
            json.dumps(
                {
                    "config": config,
                    "pretrained": str(pretrained),
                    "pretrain_seconds": pretrain_seconds,
                    "runs": results,
                },
                indent=1,
            )
        )
    print(_table(results))
    _plot(results, config, args.plot)
    print(f"wrote {output} and {args.plot}; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("CLUSTERCLF_OFFLINE", "1")
    sys.exit(main())
