"""Benchmark of the field simulator: a 4000 x 4000 field with 3000 candidates.

Run: ``python benchmarks/bench_simulate.py [--shape H W] [--n-candidates N]``.
The target is under a minute on a 2-core machine.
"""

import argparse
import time

from photutils_clusterclf.datasets import simulate_field


def main(argv=None):
    """Time `simulate_field` and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=(4000, 4000))
    parser.add_argument("--n-candidates", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    field = simulate_field(shape=tuple(args.shape), n_candidates=args.n_candidates, seed=args.seed)
    elapsed = time.perf_counter() - start
    print(
        f"simulate_field shape={tuple(args.shape)} n_candidates={len(field.catalog)}: "
        f"{elapsed:.1f} s"
    )
    return elapsed


if __name__ == "__main__":
    main()
