"""Time and memory of `ClusterClassifier.classify` on a 10^6-row catalogue.

Builds a 2000 x 2000 five-band image set in memory (noise plus compact
sources), a catalogue of 10^6 positions of which about 1 % fall on the
image (the rest are off it, as when a survey-wide catalogue meets one
pointing), and classifies it with a random ``small_cnn`` model on the CPU.
A 10^4-row catalogue with the same on-image fraction is classified first,
so that the growth of the peak resident memory between the two shows what
the catalogue length costs (it should be a few tens of MB: the output
columns, not the cutouts of every row).

Prints the wall time, objects per second (all rows and classified rows)
and the peak RSS (``resource.getrusage(...).ru_maxrss``) after each run.

Run from the repository root::

    python benchmarks/bench_large_catalog.py [--rows 1000000] [--threads N]

Not a test: nothing is asserted.
"""

import argparse
import resource
import sys
import time

import numpy as np
import torch
from astropy.table import Table

from photutils_clusterclf import ClusterClassifier, MultiBandImage, build_model

BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")


def peak_rss_mb():
    """Peak resident set size of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kB, macOS bytes.
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def make_images(shape, seed):
    """Five float32 bands of noise with 20000 Gaussian point sources."""
    rng = np.random.default_rng(seed)
    arrays = {}
    n_src = 20000
    sx = rng.integers(0, shape[1], n_src)
    sy = rng.integers(0, shape[0], n_src)
    for i, band in enumerate(BANDS):
        img = rng.normal(0.0, 0.05, shape).astype(np.float32)
        np.add.at(img, (sy, sx), np.float32(1.0 + i))
        arrays[band] = img
    return MultiBandImage.from_arrays(arrays)


def make_catalogue(n_rows, shape, on_fraction, seed):
    """``n_rows`` positions; ``on_fraction`` of them on the image, the rest far off."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(shape[1] + 100.0, 50.0 * shape[1], n_rows)
    y = rng.uniform(-50.0 * shape[0], 50.0 * shape[0], n_rows)
    on = rng.random(n_rows) < on_fraction
    x[on] = rng.uniform(0, shape[1] - 1, on.sum())
    y[on] = rng.uniform(0, shape[0] - 1, on.sum())
    return Table({"ID": np.arange(n_rows, dtype=np.int64), "PHANGS_X": x, "PHANGS_Y": y})


def run(clf, table, images, batch_size):
    start = time.perf_counter()
    out = clf.classify(table, images, batch_size=batch_size, progress_bar=False)
    wall = time.perf_counter() - start
    n_ok = out.meta["clusterclf"]["n_classified"]
    assert len(out) == len(table)
    return wall, n_ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=10_000)
    parser.add_argument("--shape", type=int, nargs=2, default=(2000, 2000))
    parser.add_argument("--on-fraction", type=float, default=0.01)
    parser.add_argument("--cutout-size", type=int, default=32)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="objects per chunk (default: the classifier's CPU default)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    shape = tuple(args.shape)
    images = make_images(shape, args.seed)
    torch.manual_seed(args.seed)
    clf = ClusterClassifier.from_model(
        build_model("small_cnn", n_bands=len(BANDS)),
        arch="small_cnn",
        bands=BANDS,
        cutout_size=args.cutout_size,
        device="cpu",
    )
    print(
        f"images: {len(BANDS)} bands of {shape[0]}x{shape[1]} float32; "
        f"model small_cnn, cutout {args.cutout_size} px, torch threads "
        f"{torch.get_num_threads()}, batch size {args.batch_size or 'default'}"
    )
    print(f"peak RSS after building images and model: {peak_rss_mb():.0f} MB")

    results = {}
    for n_rows in (args.small_rows, args.rows):
        table = make_catalogue(n_rows, shape, args.on_fraction, args.seed + 1)
        wall, n_ok = run(clf, table, images, args.batch_size)
        rss = peak_rss_mb()
        results[n_rows] = rss
        print(
            f"{n_rows:>9d} rows ({n_ok} on the image, classified): {wall:8.2f} s, "
            f"{n_rows / wall:10.0f} rows/s, {n_ok / wall:8.0f} classified/s, "
            f"peak RSS {rss:.0f} MB"
        )
        del table
    growth = results[args.rows] - results[args.small_rows]
    per_row = growth * 1024 * 1024 / max(args.rows - args.small_rows, 1)
    print(
        f"peak RSS increase {args.small_rows} -> {args.rows} rows: {growth:.0f} MB "
        f"({per_row:.0f} bytes per extra row)"
    )


if __name__ == "__main__":
    main()
