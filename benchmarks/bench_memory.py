"""Peak memory of classification: 1,000 vs 100,000 candidates on the same images.

Each case runs in a fresh subprocess (so that ``ru_maxrss`` is its own)
through the ``clusterclf classify`` code path
(`photutils_clusterclf.pipeline.classify_files`: memory-mapped FITS images and
catalogue on disk -> FITS catalogue and DS9 file on disk), on the cached
simulated field of ``bench_classify.py``; the small case classifies the
first ``--small`` rows of the same catalogue.

Reported per case: ``ru_maxrss`` (peak resident set, which also counts the
pages of the memory-mapped files the process has touched, although they
are shared page cache and not copies), and the peaks of ``RssAnon``
(private memory: copies, arrays, tensors) and ``RssFile`` sampled every
20 ms from ``/proc/self/status``. Targets: the large run's peak exceeds the
small run's by at most 300 MB, and no image is copied as a whole (the
``RssAnon`` growth stays well below one band: 256 MB at 8000^2 float32).

Run::

    python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py --size 2000 --n-candidates 5000 --small 500   # smoke
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LIMIT_MB = 300


def _status_mb(fields):
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in fields:
                values[key] = int(rest.split()[0]) / 1024
    return values


def run_case(args):
    """Classify ``args.case`` candidates in this process; print a JSON line."""
    import torch
    from bench_classify import BANDS, field_files, model_file

    from photutils_clusterclf.catalogs import read_catalog
    from photutils_clusterclf.fileio import write_table
    from photutils_clusterclf.pipeline import classify_files

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    paths, _ = field_files(args.size, args.n_candidates)
    model, _ = model_file(arch=args.arch)
    peaks = {"RssAnon": 0.0, "RssFile": 0.0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            for key, value in _status_mb(peaks).items():
                peaks[key] = max(peaks[key], value)
            time.sleep(0.02)

    with tempfile.TemporaryDirectory(dir=Path(paths["catalog"]).parent.parent) as tmp:
        catalog = paths["catalog"]
        if args.case < args.n_candidates:
            catalog = Path(tmp) / "subset.fits"
            write_table(read_catalog(paths["catalog"])[: args.case], catalog)
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        classify_files(
            model,
            catalog,
            {b: paths[b] for b in BANDS},
            Path(tmp) / "out.fits",
            regions=Path(tmp) / "out.reg",
            device="cpu",
            progress_bar=False,
        )
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
    print(
        json.dumps(
            {
                "n": args.case,
                "seconds": elapsed,
                "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "rss_before_mb": baseline,
                "peak_rss_anon_mb": peaks["RssAnon"],
                "peak_rss_file_mb": peaks["RssFile"],
            }
        )
    )


def main(argv=None):
    """Run both cases in subprocesses; returns True when the target is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--n-candidates", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--case", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case is not None:
        return run_case(args)

    results = []
    for case in (args.small, args.n_candidates):
        cmd = [
            sys.executable,
            __file__,
            "--case",
            str(case),
            "--size",
            str(args.size),
            "--n-candidates",
            str(args.n_candidates),
            "--arch",
            args.arch,
        ]
        if args.num_threads:
            cmd += ["--num-threads", str(args.num_threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"{'candidates':>10s} {'seconds':>8s} {'ru_maxrss MB':>12s} "
        f"{'peak RssAnon MB':>15s} {'peak RssFile MB':>15s}"
    )
    for r in results:
        print(
            f"{r['n']:10d} {r['seconds']:8.1f} {r['ru_maxrss_mb']:12.0f} "
            f"{r['peak_rss_anon_mb']:15.0f} {r['peak_rss_file_mb']:15.0f}"
        )
    small, large = results
    growth = large["ru_maxrss_mb"] - small["ru_maxrss_mb"]
    anon_growth = large["peak_rss_anon_mb"] - small["peak_rss_anon_mb"]
    print(f"peak_rss_growth_mb={growth:.0f} (target <= {LIMIT_MB})")
    print(f"peak_rss_anon_growth_mb={anon_growth:.0f} (target <= {LIMIT_MB})")
    return growth <= LIMIT_MB


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    result = main()
    sys.exit(0 if result in (None, True) else 1)
