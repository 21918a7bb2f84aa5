"""torch thread count vs speed, on an idle machine and next to one competing process.

Three jobs, each timed with torch's own default thread count (one per
physical core), with 1 thread and with the package default (``auto``:
`photutils_clusterclf.set_num_threads`, the CPUs not busy with other
processes, decided when the job starts):

classify
    ``clusterclf classify`` in-process (`photutils_clusterclf.cli.classify_files`)
    on ``--n-candidates`` candidates of a simulated 2000 x 2000 px field
    (cached in ``benchmarks/_data/``), random resnet18, 32 px cutouts.
train
    `train_classifier`, resnet18 at 32 px, batch 64, augmentation, 1 epoch on
    ``--n-train`` cutouts of the same field (80 % train, 20 % validation).
demo
    ``clusterclf demo --quick`` in a subprocess, from scratch (new output
    directory), stopped after ``--demo-timeout`` seconds (then reported as
    more than that). ``--no-demo`` leaves it out.

Each job runs under two conditions: ``idle`` (whatever else the machine is
running: the load is printed) and ``loaded``, with one CPU-bound process
that this script starts (a busy loop, bounded in time and killed at the
end). Within a condition the thread settings are run round-robin
(``--repeat`` rounds, best kept). The printed ratios are time with torch's
default over time with the setting (above 1: faster than torch's default).

Run::

    python benchmarks/bench_threads.py
    python benchmarks/bench_threads.py --no-demo --repeat 2
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SETTINGS = ("torch", "1", "auto")


def load_text():
    """The 1/5/15-minute load averages and the run queue, as one string."""
    with open("/proc/loadavg") as f:
        fields = f.read().split()
    return f"load average {fields[0]} {fields[1]} {fields[2]}, runnable {fields[3]}"


def start_competitor(seconds):
    """A CPU-bound busy loop in its own process, ending by itself after ``seconds``."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def apply(setting, torch_default):
    """Set torch's threads for ``setting``; return the number used."""
    from photutils_clusterclf import set_num_threads

    if setting == "torch":
        torch.set_num_threads(torch_default)
    else:
        set_num_threads(setting)
    return torch.get_num_threads()


def make_jobs(args, workdir):
    """name -> callable(setting, torch_default) returning (seconds, threads used)."""
    from bench_classify import (
        ARCH,
        BANDS,
        CUTOUT_SIZE,
        INPUT_SIZE,
        field_files,
        model_file,
    )

    from photutils_clusterclf.catalogs import read_catalog
    from photutils_clusterclf.pipeline import classify_files
    from photutils_clusterclf.cutouts import extract_cutouts
    from photutils_clusterclf.images import MultiBandImage
    from photutils_clusterclf.training import TrainingSet, train_classifier

    paths, _ = field_files(2000, args.n_candidates)
    model, _ = model_file()
    images = {b: paths[b] for b in BANDS}
    cat = read_catalog(paths["catalog"])[: args.n_train]
    with MultiBandImage.from_fits(images) as opened:
        batch = extract_cutouts(
            opened,
            np.asarray(cat["PHANGS_X"]),
            np.asarray(cat["PHANGS_Y"]),
            size=CUTOUT_SIZE,
            bands=BANDS,
        )
    ok = batch.classifiable
    training_set = TrainingSet(batch.data[ok], np.asarray(cat["CLASS_TRUE"])[ok], bands=BANDS)
    counter = iter(range(10**6))

    def classify(setting, torch_default):
        threads = apply(setting, torch_default)
        out = Path(workdir) / f"classified{next(counter)}.fits"
        start = time.perf_counter()
        classify_files(model, paths["catalog"], images, out, device="cpu", progress_bar=False)
        return time.perf_counter() - start, threads

    def train(setting, torch_default):
        threads = apply(setting, torch_default)
        start = time.perf_counter()
        train_classifier(
            training_set,
            arch=ARCH,
            weights=None,
            input_size=INPUT_SIZE,
            epochs=1,
            batch_size=64,
            device="cpu",
            val_fraction=0.2,
            progress_bar=False,
        )
        return time.perf_counter() - start, threads

    def demo(setting, torch_default):
        out = Path(workdir) / f"demo{next(counter)}"
        threads = {"torch": str(torch_default), "1": "1", "auto": "auto"}[setting]
        cmd = [
            sys.executable,
            "-m",
            "photutils_clusterclf.cli",
            "demo",
            "--quick",
            "--out",
            str(out),
            "--quiet",
            "--device",
            "cpu",
            "--num-threads",
            threads,
        ]
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        start = time.perf_counter()
        try:
            subprocess.run(
                cmd, check=True, env=env, stdout=subprocess.DEVNULL, timeout=args.demo_timeout
            )
        except subprocess.TimeoutExpired:
            return float("inf"), threads
        return time.perf_counter() - start, threads

    jobs = {"classify": classify, "train": train}
    if args.demo:
        jobs["demo"] = demo
    return jobs


def main(argv=None):
    """Run the benchmark; returns ``{(job, condition, setting): seconds}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-candidates", type=int, default=3000)
    parser.add_argument("--n-train", type=int, default=640)
    parser.add_argument("--repeat", type=int, default=1, help="rounds; best kept")
    parser.add_argument("--demo", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--demo-timeout", type=float, default=300.0)
    parser.add_argument(
        "--conditions", nargs="+", default=["idle", "loaded"], choices=("idle", "loaded")
    )
    args = parser.parse_args(argv)

    # torch's own default, before anything changes it (OMP_NUM_THREADS would
    # fix it: the comparison is meaningless then).
    if "OMP_NUM_THREADS" in os.environ:
        parser.error("unset OMP_NUM_THREADS: it fixes torch's default thread count")
    torch_default = torch.get_num_threads()
    print(
        f"{os.cpu_count()} CPUs, torch's default {torch_default} threads, torch {torch.__version__}"
    )
    times, used = {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        jobs = make_jobs(args, workdir)
        for condition in args.conditions:
            competitor = None
            try:
                if condition == "loaded":
                    bound = 3600 if args.demo else 900
                    competitor = start_competitor(bound)
                    time.sleep(2.0)
                print(f"\n{condition}: {load_text()}", flush=True)
                for name, job in jobs.items():
                    for _ in range(args.repeat):
                        for setting in SETTINGS:
                            seconds, threads = job(setting, torch_default)
                            key = (name, condition, setting)
                            times[key] = min(times.get(key, float("inf")), seconds)
                            used.setdefault(key, []).append(str(threads))
                            print(
                                f"  {name:8s} {setting:5s} threads {threads}: "
                                f"{seconds:7.1f} s   ({load_text()})",
                                flush=True,
                            )
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
        torch.set_num_threads(torch_default)

    print("\njob       condition  setting  threads   seconds  torch default / setting")
    for (name, condition, setting), seconds in times.items():
        reference = times[(name, condition, "torch")]
        if seconds == float("inf"):
            shown, ratio = f"> {args.demo_timeout:.0f}", "-"
        else:
            shown = f"{seconds:.1f}"
            ratio = (
                f"> {args.demo_timeout / seconds:.2f}"
                if reference == float("inf")
                else f"{reference / seconds:.2f}"
            )
        threads = "/".join(used[(name, condition, setting)])
        print(f"{name:9s} {condition:9s}  {setting:7s}  {threads:7s}  {shown:>8s}  {ratio:>6s}")
    return times


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
