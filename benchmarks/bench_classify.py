"""End-to-end classification throughput against the network alone.

Simulates (once, cached in ``benchmarks/_data/``) a square 5-band field
with ``--n-candidates`` candidates written as PHANGS-named FITS files, and
a randomly initialised classifier of the configuration ``clusterclf train``
produces by default (resnet18 with the variant of
``models.RECOMMENDED_VARIANTS``, i.e. the no-max-pool stem; the training
default normalisation; 32 px cutouts, 32 px input; ``--stem`` / ``--head``
time another variant). Then it times, with the same model and batch size:

(a) the network's forward pass alone on pre-made normalised batches
    (``InferenceEngine.member_probs``, what `classify` calls per batch);
(b) ``clusterclf classify`` end to end, in-process through
    `photutils_clusterclf.pipeline.classify_files`: FITS images (memory-mapped)
    and catalogue on disk -> classified FITS catalogue and DS9 file on disk.

The two are measured round-robin (a, b, a, b, ...) ``--repeat`` times, so
that a busy spell of the machine hits both alike; each network-alone
measurement runs for at least ``--min-seconds`` (the batches are cycled),
so one busy second cannot decide it. Printed: each round's throughputs and
ratio, the median and the spread (min-max) of each, and last
``end_to_end_over_model_only=<ratio of the median throughputs>``.

Run::

    python benchmarks/bench_classify.py                      # 8000^2 px, 100,000 candidates
    python benchmarks/bench_classify.py --size 2000 --n-candidates 5000   # smoke run
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parent / "_data"
BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")
#: The package's default configuration (demo.py / cli.py ``train`` defaults).
ARCH, CUTOUT_SIZE, INPUT_SIZE = "resnet18", 32, 32


def field_files(size, n_candidates, *, seed=1):
    """PHANGS-named FITS files of a simulated field, simulated once and cached.

    The cache directory is keyed by ``size``, ``n_candidates`` and ``seed``;
    a ``done.json`` marker (with the simulation time) is written last, so an
    interrupted simulation is redone.

    Returns
    -------
    paths : dict
        Band -> image path, and ``"catalog"`` -> catalogue path.
    info : dict
        ``{"simulate_s": seconds, "cached": bool}``.
    """
    from photutils_clusterclf.datasets import simulate_field

    directory = DATA / f"field_{size}px_{n_candidates}cand_seed{seed}"
    marker = directory / "done.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        return {k: Path(v) for k, v in info["paths"].items()}, {**info, "cached": True}
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    field = simulate_field(shape=(size, size), n_candidates=n_candidates, seed=seed)
    simulated = time.perf_counter() - start
    paths = field.write(directory, overwrite=True)
    info = {
        "simulate_s": simulated,
        "write_s": time.perf_counter() - start - simulated,
        "paths": {k: str(v) for k, v in paths.items()},
    }
    marker.write_text(json.dumps(info, indent=1))
    return paths, {**info, "cached": False}


def model_file(
    *, arch=ARCH, stem="auto", head="auto", cutout_size=CUTOUT_SIZE, input_size=INPUT_SIZE, seed=0
):
    """Checkpoint of a randomly initialised classifier (timing only), cached.

    ``stem`` / ``head`` ``"auto"`` resolve as `train_classifier` resolves them
    (`~photutils_clusterclf.models.RECOMMENDED_VARIANTS`), and the
    normalisation is the training default, so by default this is the network
    that ``clusterclf train`` produces. The variant is recorded in the model
    card (as training records it) and is part of the cache key.

    Returns
    -------
    path : `~pathlib.Path`
        The checkpoint.
    variant : dict
        ``{"stem": ..., "head": ...}`` actually built.
    """
    from photutils_clusterclf import ClusterClassifier, build_model
    from photutils_clusterclf.training import TrainingOptions

    options = TrainingOptions(arch=arch, stem=stem, head=head, weights=None)
    stem, head = options.variant()
    normalization = options.make_normalization()
    path = DATA / (
        f"model_{arch}_stem-{stem}_head-{head}_{normalization.name}"
        f"_c{cutout_size}_i{input_size}_seed{seed}.pt"
    )
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        model = build_model(arch, n_bands=len(BANDS), n_classes=4, stem=stem, head=head)
        ClusterClassifier.from_model(
            model,
            arch=arch,
            bands=BANDS,
            cutout_size=cutout_size,
            input_size=input_size,
            normalization=normalization,
            device="cpu",
            model_options={"stem": stem, "head": head},
        ).save(path)
    return path, {"stem": stem, "head": head}


def peak_rss_mb():
    """Peak resident set size of this process so far, in MB (Linux ru_maxrss is kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    """Wall time of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def spread(values):
    """``median (min-max)`` of a list of throughputs."""
    return f"{np.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main(argv=None):
    """Run the benchmark; returns the end-to-end / model-only throughput ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000, help="field side in pixels")
    parser.add_argument("--n-candidates", type=int, default=100_000)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="objects per forward pass (default: the package default)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of (network alone, end to end)"
    )
    parser.add_argument(
        "--min-seconds", type=float, default=5.0, help="shortest network-alone measurement"
    )
    parser.add_argument(
        "--stem",
        default="auto",
        choices=("auto", "standard", "nopool", "stride1"),
        help="network stem (default: what training picks, models.RECOMMENDED_VARIANTS)",
    )
    parser.add_argument(
        "--head",
        default="auto",
        choices=("auto", "standard", "compact"),
        help="network head (default: what training picks)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--num-threads",
        type=int,
        default=None,
        help="torch threads (default: torch's default, one per core)",
    )
    args = parser.parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)

    from photutils_clusterclf import ClusterClassifier
    from photutils_clusterclf._inference import default_batch_size
    from photutils_clusterclf.cutouts import extract_cutouts
    from photutils_clusterclf.images import MultiBandImage
    from photutils_clusterclf.pipeline import classify_files
    from photutils_clusterclf.preprocessing import prepare_batch

    paths, info = field_files(args.size, args.n_candidates)
    print(
        f"field {args.size}x{args.size} px, {args.n_candidates} candidates: "
        + (
            "cached"
            if info["cached"]
            else f"simulated in {info['simulate_s']:.0f} s, written in {info['write_s']:.0f} s"
        )
    )
    model, variant = model_file(stem=args.stem, head=args.head)
    clf = ClusterClassifier.load(model, device=args.device)
    batch_size = args.batch_size or default_batch_size(clf.device)
    n = args.n_candidates
    print(
        f"model {ARCH} stem {variant['stem']} head {variant['head']} "
        f"normalization {clf.normalization.name}, cutout {CUTOUT_SIZE} input {INPUT_SIZE}, "
        f"device {clf.device}, "
        f"batch {batch_size}, torch threads {torch.get_num_threads()}"
    )

    # (a) the network alone on pre-made normalised batches (real cutouts of
    # the field, prepared outside the timing).
    images = MultiBandImage.from_fits({b: paths[b] for b in BANDS})
    from photutils_clusterclf.catalogs import read_catalog

    cat = read_catalog(paths["catalog"])
    n_model = min(n, 20 * batch_size)
    raw = extract_cutouts(
        images,
        np.asarray(cat["PHANGS_X"][:n_model]),
        np.asarray(cat["PHANGS_Y"][:n_model]),
        size=CUTOUT_SIZE,
        bands=clf.bands,
    ).data
    batches = [
        prepare_batch(raw[s : s + batch_size], clf.normalization, INPUT_SIZE)
        for s in range(0, n_model, batch_size)
    ]
    del raw, images
    clf._engine.member_probs(batches[0], tta=False)  # warm-up

    def model_only():
        """Cycle the batches for at least --min-seconds; returns objects/s."""
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < args.min_seconds or not done:
            for batch in batches:
                clf._engine.member_probs(batch, tta=False)
            done += n_model
        return done / elapsed

    model_rates, e2e_rates = [], []
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:

        def end_to_end():
            classify_files(
                model,
                paths["catalog"],
                {b: paths[b] for b in BANDS},
                Path(tmp) / "out.fits",
                regions=Path(tmp) / "out.reg",
                overwrite=True,
                device=args.device,
                progress_bar=False,
                batch_size=batch_size,
            )

        for round_ in range(args.repeat):
            model_rates.append(model_only())
            e2e_rates.append(n / timed(end_to_end))
            print(
                f"round {round_ + 1}: network alone {model_rates[-1]:,.0f} objects/s, "
                f"end to end {e2e_rates[-1]:,.0f} objects/s, "
                f"ratio {e2e_rates[-1] / model_rates[-1]:.3f}"
            )
    ratio = float(np.median(e2e_rates) / np.median(model_rates))
    print(
        f"model_only: {spread(model_rates)} objects/s (median (min-max) of "
        f"{args.repeat} measurements of >= {args.min_seconds:g} s)"
    )
    print(f"end_to_end: {spread(e2e_rates)} objects/s ({n} objects per run)")
    print(f"peak_rss_mb={peak_rss_mb():.0f}")
    print(f"end_to_end_over_model_only={ratio:.3f}")
    return ratio


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
