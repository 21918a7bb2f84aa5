"""Agreement and consensus of the class columns of the real LEGUS NGC 1566 catalogue.

Reads the LEGUS NGC 1566 cluster catalogue with `read_legus_catalog` and
prints

1. the pairwise agreement of its four class columns: ``class_human_mode``
   (the mode of three human classifiers), ``class_ml`` (the LEGUS machine
   class), ``class_human_verify`` (one human checking the machine class) and
   ``class`` (the final hybrid class), on the rows where both columns have
   a class 1-4, and the candidates per human and machine class;
2. the majority and Dawid-Skene consensus (`consensus_labels`) of the first
   three (humans first, so that they win majority ties; the final class is derived from them, so it is compared with the
   consensus instead of voting): the confusion matrix that Dawid-Skene
   estimates for each column, the class counts, and the agreement of each
   consensus with the final class and with the human mode.

Run from the repository root::

    python benchmarks/legus_consensus.py [DATA_DIR]

``DATA_DIR`` defaults to the repository's ``tests/data/legus``. The
output is shown verbatim in docs/consensus.rst (tests/test_docs.py checks
that it is up to date).
"""

import itertools
import sys
from pathlib import Path

import numpy as np

from photutils_clusterclf import EvaluationReport, consensus_labels, read_legus_catalog
from photutils_clusterclf.classes import CLASSES

LEGUS_FILE = "hlsp_legus_hst_wfc3_ngc1566_multiband_v1_padagb-mwext-avgapcor.tab"
COLUMNS = ("class_human_mode", "class_ml", "class_human_verify", "class")
#: The voters, humans first: majority ties go to the first column that voted.
VOTERS = ("class_human_mode", "class_human_verify", "class_ml")


def _agreement(a, b):
    """Rows where both have a class 1-4, and the fraction where they are equal."""
    a, b = np.asarray(a), np.asarray(b)
    both = (a > 0) & (b > 0)
    return int(both.sum()), float(np.mean(a[both] == b[both]))


def pairwise_lines(table):
    lines = [
        "pairwise agreement (rows where both columns have a class 1-4):",
        f"  {'column':20s} {'column':20s} {'n':>5s} {'agree':>6s}",
    ]
    for a, b in itertools.combinations(COLUMNS, 2):
        n, agree = _agreement(table[a], table[b])
        lines.append(f"  {a:20s} {b:20s} {n:5d} {agree:6.1%}")
    lines.append("")
    lines.append("candidates per class_human_mode (rows) and class_ml (columns):")
    lines.append(f"  {'':6s}" + "".join(f"{c:6d}" for c in CLASSES))
    report = EvaluationReport.from_table(table, "class_human_mode", "class_ml")
    for k, row in zip(CLASSES, report.confusion_matrix):
        lines.append(f"  {k:6d}" + "".join(f"{v:6d}" for v in row))
    return lines


def consensus_lines(table):
    votes = np.stack([np.asarray(table[c]) > 0 for c in VOTERS], axis=1).sum(axis=1)
    lines = [
        f"votes per candidate from {', '.join(VOTERS)}: "
        + ", ".join(f"{k}: {int(np.sum(votes == k))}" for k in range(len(VOTERS) + 1))
    ]
    mag = np.asarray(table["mag_F555W"])
    human = np.asarray(table["class_human_mode"]) > 0
    detected = mag < 99  # 99.999 = no detection
    lines.append(
        "median F555W magnitude of the candidates with / without class_human_mode: "
        f"{np.median(mag[detected & human]):.2f} / "
        f"{np.median(mag[detected & ~human]):.2f}"
    )
    results = {
        method: consensus_labels(table, columns=list(VOTERS), method=method)
        for method in ("majority", "dawid-skene")
    }
    meta = results["dawid-skene"].meta["consensus"]
    lines.append("")
    lines.append(
        "Dawid-Skene confusion matrices, P(column's class | consensus class), "
        f"after {meta['n_iter']} EM iterations:"
    )
    lines.append(f"  {'column':20s} {'true':>4s}   " + "  ".join(f"{c:>4d}" for c in CLASSES))
    for column, matrix in meta["confusion"].items():
        for k, row in zip(CLASSES, matrix):
            name = column if k == 1 else ""
            lines.append(f"  {name:20s} {k:4d}   " + "  ".join(f"{v:4.2f}" for v in row))
    lines.append(
        "  estimated class frequencies: " + " / ".join(f"{v:.2f}" for v in meta["class_prior"])
    )
    lines.append("")
    lines.append(
        f"  {'classes':24s} "
        + " ".join(f"{c:>5d}" for c in CLASSES)
        + "  none  agrees with class  with class_human_mode"
    )
    rows = [
        ("majority (humans first)", results["majority"]["consensus_class"]),
        ("Dawid-Skene", results["dawid-skene"]["consensus_class"]),
        ("class (final)", table["class"]),
    ]
    for title, classes in rows:
        classes = np.asarray(classes)
        counts = " ".join(f"{int(np.sum(classes == c)):5d}" for c in CLASSES)
        agree = [_agreement(classes, table[ref]) for ref in ("class", "class_human_mode")]
        cells = [f"{a:.1%} of {n}" for n, a in agree]
        lines.append(
            f"  {title:24s} {counts} {int(np.sum(classes == 0)):5d}  "
            f"{cells[0]:>16s}  {cells[1]:>20s}"
        )
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    default = Path(__file__).resolve().parents[1] / "tests" / "data" / "legus"
    table = read_legus_catalog(Path(argv[0] if argv else default) / LEGUS_FILE)
    print(f"NGC 1566 (LEGUS): {len(table)} candidates\n")
    print("\n".join(pairwise_lines(table)))
    print()
    print("\n".join(consensus_lines(table)))


if __name__ == "__main__":
    main()
