"""What a seeded training reproduces: same thread count vs a different one.

Trains the default network (resnet18, 32 px, batch 64, augmentation, random
initialisation) with the same seed and data ``--runs`` times with 1 torch
thread and ``--runs`` times with ``--threads`` threads, on ``--n-objects``
cutouts of the cached simulated field of ``bench_classify.py`` (true
classes as labels, 20 % validation), for ``--epochs`` epochs. Printed: the
largest weight difference between runs with the same thread count and
between the two thread counts, and how the predictions of the trained
networks on all the field's candidates differ (largest probability
difference, fraction of candidates given another class).

Run::

    python benchmarks/bench_reproducibility.py
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def max_weight_diff(a, b):
    """Largest absolute difference between the floating-point weights of two classifiers."""
    return max(
        float((pa - pb).abs().max())
        for ma, mb in zip(a.models, b.models)
        for pa, pb in zip(ma.state_dict().values(), mb.state_dict().values())
        if pa.is_floating_point()
    )


def main(argv=None):
    """Run the benchmark; returns ``{comparison: max weight difference}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-objects", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from bench_classify import ARCH, BANDS, CUTOUT_SIZE, INPUT_SIZE, field_files

    from photutils_clusterclf import num_threads
    from photutils_clusterclf.catalogs import read_catalog
    from photutils_clusterclf.cutouts import extract_cutouts
    from photutils_clusterclf.images import MultiBandImage
    from photutils_clusterclf.training import TrainingSet, train_classifier

    paths, _ = field_files(2000, 3000)
    cat = read_catalog(paths["catalog"])
    with MultiBandImage.from_fits({b: paths[b] for b in BANDS}) as images:
        batch = extract_cutouts(
            images,
            np.asarray(cat["PHANGS_X"]),
            np.asarray(cat["PHANGS_Y"]),
            size=CUTOUT_SIZE,
            bands=BANDS,
        )
    ok = batch.classifiable
    cutouts, labels = batch.data[ok], np.asarray(cat["CLASS_TRUE"])[ok]
    training_set = TrainingSet(cutouts[: args.n_objects], labels[: args.n_objects], bands=BANDS)

    runs = {}
    for threads in (1, args.threads):
        for run in range(args.runs):
            with num_threads(threads):
                clf = train_classifier(
                    training_set,
                    arch=ARCH,
                    weights=None,
                    input_size=INPUT_SIZE,
                    epochs=args.epochs,
                    batch_size=64,
                    seed=args.seed,
                    device="cpu",
                    val_fraction=0.2,
                    progress_bar=False,
                )
                probs = clf.predict_proba(cutouts)
            runs[(threads, run)] = (clf, probs)
            print(f"trained: {threads} thread(s), run {run + 1}", flush=True)

    print(
        f"\n{ARCH}, {len(training_set)} objects, {args.epochs} epochs, seed {args.seed}; "
        f"predictions on {len(cutouts)} candidates"
    )
    print("comparison                        max |dw|    max |dp|   other class")
    results = {}
    pairs = [
        ("1 thread, run 1 vs run 2", (1, 0), (1, 1)),
        (f"{args.threads} threads, run 1 vs run 2", (args.threads, 0), (args.threads, 1)),
        (f"1 vs {args.threads} threads", (1, 0), (args.threads, 0)),
    ]
    for name, a, b in pairs:
        if a not in runs or b not in runs:
            continue
        (clf_a, p_a), (clf_b, p_b) = runs[a], runs[b]
        dw = max_weight_diff(clf_a, clf_b)
        dp = float(np.abs(p_a - p_b).max())
        changed = float(np.mean(p_a.argmax(axis=1) != p_b.argmax(axis=1)))
        results[name] = dw
        print(f"{name:32s}  {dw:9.2e}  {dp:9.2e}   {100 * changed:6.2f}%")
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    torch.set_num_threads(1)
    main()
