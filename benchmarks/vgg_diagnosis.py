"""Does VGG19-BN learn? Training and validation loss per epoch for a few settings.

A short diagnostic on the data of ``benchmarks/accuracy.py`` (its cached
reduced galaxies): ``--n-train`` cutouts of the two training galaxies and
``--n-val`` of the validation galaxy (11 Mpc), labelled with their TRUE
classes so that label noise does not hide whether the network learns at
all; `train_classifier` defaults otherwise (compact VGG head, cosine
schedule, label smoothing), no early stopping, random initialisation, one
seed. Each setting prints one line per epoch: training loss, validation
loss and validation macro recall. The held-out galaxy is never touched.

Run::

    python benchmarks/vgg_diagnosis.py                      # lr 1e-3 and 3e-4, standard stem
    python benchmarks/vgg_diagnosis.py --lr 1e-3 --stem nopool
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import _roles, galaxy_data  # noqa: E402

from photutils_clusterclf.training import TrainingSet, train_classifier  # noqa: E402


def _subset(data, *, n_train, n_val, seed):
    """Rows of ``n_train`` training-galaxy and ``n_val`` validation-galaxy cutouts."""
    role = _roles(data)
    rng = np.random.default_rng(seed)
    train = rng.choice(np.flatnonzero(role == "train"), n_train, replace=False)
    val = rng.choice(np.flatnonzero(role == "validation"), n_val, replace=False)
    return np.concatenate([train, val]), data["galaxy"][val[0]]


def main(argv=None):
    """Train each setting and print its per-epoch losses; returns the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg19_bn")
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-3, 3e-4])
    parser.add_argument("--stem", default="auto", help="stem variant (default: recommended)")
    parser.add_argument("--n-train", type=int, default=640)
    parser.add_argument("--n-val", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.num_threads)

    data = galaxy_data("reduced")
    rows, val_galaxy = _subset(data, n_train=args.n_train, n_val=args.n_val, seed=args.seed)
    training_set = TrainingSet(
        data["cutouts"][rows],
        data["truth"][rows],
        galaxy=data["galaxy"][rows],
        bands=data["bands"].tolist(),
    )
    print(
        f"{args.arch}, stem {args.stem}, {args.n_train} training + {args.n_val} validation "
        f"cutouts (true classes), {args.epochs} epochs, seed {args.seed}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    results = []
    for lr in args.lr:
        records = []
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no ImageNet weights here: random initialisation
            train_classifier(
                training_set,
                arch=args.arch,
                stem=args.stem,
                lr=lr,
                epochs=args.epochs,
                patience=None,
                weights=None,
                val_galaxy=val_galaxy,
                seed=args.seed,
                device="cpu",
                log=records.append,
            )
        print(f"lr {lr:g}: {time.perf_counter() - start:.0f} s")
        for r in records:
            print(
                f"  epoch {r['epoch']}: train loss {r['train_loss']:.3f}, "
                f"val loss {r['val_loss']:.3f}, val macro recall {r['val_macro_recall']:.3f}"
            )
        results.append((lr, records))
    return results


if __name__ == "__main__":
    main()
