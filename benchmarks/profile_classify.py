"""Where the end-to-end time of `pipeline.classify_files` goes, stage by stage.

Runs `~photutils_clusterclf.pipeline.classify_files` once on the cached
field and model of ``bench_classify.py`` (the first ``--n-candidates``
rows of its catalogue) with timers wrapped around each stage: loading the
model, reading the catalogue, opening the images, resolving positions,
cutout extraction, normalisation, the network, aggregation, writing the
FITS table and the DS9 file. Each stage's total wall time is printed with
the thread it ran in (extraction and normalisation run in the prefetch
thread, overlapped with the network) and its share of the end-to-end
wall time; "main thread waiting for the prefetch" is the time the network
sat idle for want of a prepared batch.

Run::

    python benchmarks/profile_classify.py --size 8000 --n-candidates 25000
"""

import argparse
import collections
import contextlib
import functools
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

import bench_classify

#: ``(module, attribute)`` of each timed stage; a dotted attribute is a method.
STAGES = {
    "load model": ("photutils_clusterclf.classifier", "ClusterClassifier.load"),
    "read catalogue": ("photutils_clusterclf.pipeline", "read_candidates"),
    "open images": ("photutils_clusterclf.images", "MultiBandImage.from_fits"),
    "resolve positions": ("photutils_clusterclf.classifier", "resolve_positions"),
    "extract cutouts": ("photutils_clusterclf._inference", "extract_cutouts"),
    "normalise": ("photutils_clusterclf._inference", "prepare_batch"),
    "network": ("photutils_clusterclf._inference", "InferenceEngine.member_probs"),
    "aggregate members": ("photutils_clusterclf.classifier", "aggregate_members"),
    "write FITS table": ("photutils_clusterclf.pipeline", "write_table"),
    "write DS9 file": ("photutils_clusterclf.pipeline", "write_class_regions"),
    "main thread waiting for the prefetch": ("concurrent.futures", "Future.result"),
}


def _timer(totals, name, fn):
    """``fn`` wrapped to add its wall time to ``totals[(name, thread)]``."""

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            thread = "main" if threading.current_thread() is threading.main_thread() else "prefetch"
            totals[name, thread] += time.perf_counter() - start

    return timed


@contextlib.contextmanager
def instrumented(totals):
    """Wrap every stage of `STAGES` with a timer for the duration of the block."""
    import importlib

    undo = []
    for name, (module, attribute) in STAGES.items():
        owner = importlib.import_module(module)
        *path, leaf = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = owner.__dict__[leaf]
        fn = original.__func__ if isinstance(original, classmethod) else original
        wrapped = _timer(totals, name, fn)
        setattr(owner, leaf, classmethod(wrapped) if isinstance(original, classmethod) else wrapped)
        undo.append((owner, leaf, original))
    try:
        yield
    finally:
        for owner, leaf, original in reversed(undo):
            setattr(owner, leaf, original)


def main(argv=None):
    """Profile one `classify_files` run; returns the table of stage times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000, help="side of the cached field")
    parser.add_argument("--field-candidates", type=int, default=100_000)
    parser.add_argument("--n-candidates", type=int, default=25_000, help="rows classified")
    parser.add_argument("--stem", default="auto")
    parser.add_argument("--head", default="auto")
    parser.add_argument("--num-threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)

    from photutils_clusterclf.catalogs import read_catalog
    from photutils_clusterclf.pipeline import classify_files

    paths, _ = bench_classify.field_files(args.size, args.field_candidates)
    model, variant = bench_classify.model_file(stem=args.stem, head=args.head)
    catalog = read_catalog(paths["catalog"])[: args.n_candidates]
    totals = collections.defaultdict(float)
    with tempfile.TemporaryDirectory(dir=bench_classify.DATA) as tmp:
        catalog.write(Path(tmp) / "candidates.fits")
        images = {b: paths[b] for b in bench_classify.BANDS}
        with instrumented(totals):
            start = time.perf_counter()
            classify_files(
                model,
                Path(tmp) / "candidates.fits",
                images,
                Path(tmp) / "out.fits",
                regions=Path(tmp) / "out.reg",
                device="cpu",
            )
            wall = time.perf_counter() - start
    print(
        f"{args.n_candidates} candidates of the {args.size}^2 px field, resnet18 "
        f"stem {variant['stem']} head {variant['head']}, torch threads {torch.get_num_threads()}"
    )
    print(f"end to end {wall:.2f} s ({args.n_candidates / wall:,.0f} objects/s)")
    print(f"{'stage':40s} {'thread':9s} {'seconds':>8s} {'share':>6s}")
    for (name, thread), seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"{name:40s} {thread:9s} {seconds:8.2f} {seconds / wall:6.1%}")
    return totals


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
