"""Agreement of published classifications of NGC 1566 (LEGUS), a real-data check.

Reads the LEGUS NGC 1566 cluster catalogue and the StarcNet (Pérez et al.
2021) predictions for the same candidates, joins them on the source id, and
prints `EvaluationReport` tables for

1. StarcNet against the mode of three human classifiers (column 36),
2. StarcNet against the final hybrid class (column 34),
3. the human mode against the final class.

Run from the repository root::

    python benchmarks/legus_agreement.py [DATA_DIR]

``DATA_DIR`` defaults to the repository's ``tests/data/legus``.
"""

import sys
from pathlib import Path

from astropy.table import Table, join

from photutils_clusterclf.catalogs import read_legus_catalog
from photutils_clusterclf.evaluation import HUMAN_CONSISTENCY, EvaluationReport

LEGUS_FILE = "hlsp_legus_hst_wfc3_ngc1566_multiband_v1_padagb-mwext-avgapcor.tab"
STARCNET_FILE = "starcnet_ngc1566_predictions.csv"


def load(data_dir):
    """The LEGUS catalogue joined with the StarcNet predictions (``starcnet``)."""
    legus = read_legus_catalog(Path(data_dir) / LEGUS_FILE)
    starcnet = Table.read(Path(data_dir) / STARCNET_FILE, format="ascii.csv")
    starcnet.rename_column("Id", "id")
    starcnet.rename_column("Prediction", "starcnet")
    return join(legus, starcnet["id", "starcnet"], keys="id", join_type="inner")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    default = Path(__file__).resolve().parents[1] / "tests" / "data" / "legus"
    table = load(argv[0] if argv else default)
    print(f"NGC 1566: {len(table)} candidates with StarcNet predictions\n")
    for truth, pred in (
        ("class_human_mode", "starcnet"),
        ("class", "starcnet"),
        ("class", "class_human_mode"),
    ):
        print(EvaluationReport.from_table(table, truth, pred))
        print()
    print(
        "human-vs-human consistency (Wei et al. 2020): "
        + ", ".join(f"class {c}: {v}" for c, v in HUMAN_CONSISTENCY.items())
    )


if __name__ == "__main__":
    main()
