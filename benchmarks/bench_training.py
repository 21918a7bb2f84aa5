"""Training throughput (images/s) of the default configuration on this machine.

Default configuration (``clusterclf train`` / the demo): resnet18, 32 px
cutouts and input, batch 64, AdamW, the 8 dihedral transforms + sub-pixel
shifts + flux jitter as augmentation. Random initialisation (ImageNet
weights only change the starting point, not the speed). The training set
is ``--n-objects`` real cutouts of the cached simulated field of
``bench_classify.py``, labelled with the true class; one epoch trains on
80 % of them and validates on 20 %. Reported: training images per second
of wall time over ``--epochs`` epochs (validation included), best of
``--repeat``.

Run::

    python benchmarks/bench_training.py
    python benchmarks/bench_training.py --device cuda     # on a GPU machine
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None):
    """Time `train_classifier`; returns images/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-objects", type=int, default=1280)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)

    from bench_classify import ARCH, BANDS, CUTOUT_SIZE, INPUT_SIZE, field_files
    from photutils_clusterclf.catalogs import read_catalog
    from photutils_clusterclf.cutouts import extract_cutouts
    from photutils_clusterclf.images import MultiBandImage
    from photutils_clusterclf.training import TrainingSet, train_classifier

    paths, _ = field_files(2000, 5000)
    cat = read_catalog(paths["catalog"])[: args.n_objects]
    images = MultiBandImage.from_fits({b: paths[b] for b in BANDS})
    batch = extract_cutouts(
        images,
        np.asarray(cat["PHANGS_X"]),
        np.asarray(cat["PHANGS_Y"]),
        size=CUTOUT_SIZE,
        bands=BANDS,
    )
    ok = batch.classifiable
    ts = TrainingSet(batch.data[ok], np.asarray(cat["CLASS_TRUE"])[ok], bands=BANDS)
    n_train = int(round(0.8 * len(ts)))
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        train_classifier(
            ts,
            arch=ARCH,
            weights=None,
            input_size=INPUT_SIZE,
            epochs=args.epochs,
            batch_size=args.batch_size,
            device=args.device,
            val_fraction=0.2,
            progress_bar=False,
        )
        times.append(time.perf_counter() - start)
    rate = n_train * args.epochs / min(times)
    print(
        f"{ARCH} cutout {CUTOUT_SIZE} input {INPUT_SIZE} batch {args.batch_size}, "
        f"device {args.device}, torch threads {torch.get_num_threads()}: "
        f"{n_train} training images x {args.epochs} epoch(s) in {min(times):.1f} s"
    )
    print(f"training_images_per_s={rate:.0f}")
    return rate


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
