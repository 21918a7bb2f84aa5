"""Write the documentation figure of a simulated field (RGB view + per-class gallery).

Run: ``python benchmarks/make_simulation_figure.py OUT.png [--overwrite]``.
"""

import argparse

from photutils_clusterclf.datasets import plot_field, simulate_field


def main(argv=None):
    """Simulate a small field and write its figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    field = simulate_field(shape=(800, 800), n_candidates=150, seed=args.seed)
    plot_field(field, args.output, n_per_class=6, overwrite=args.overwrite)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
