"""Seeded regression check: simulation, training and classification numbers.

Simulates a small field (seed 3), trains a tiny ``small_cnn`` (3 epochs,
seed 0, the options of the pre-issue-12 recipe pinned) on its ~200 candidates, classifies them, and prints one SHA-256 per
stage: the simulated images, the trained weights, the classified
probabilities (and the class column). Run it before and after a change that
must not change numbers; identical lines mean identical results on this
machine and thread count (1 torch thread, set here).

Run::

    OMP_NUM_THREADS=1 python benchmarks/regression_check.py [--out FILE]
"""

import argparse
import hashlib
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from astropy.table import QTable


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def main(argv=None):
    """Print the stage hashes; returns them as a dict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="also write the lines to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from photutils_clusterclf.cli import main as cli_main
    from photutils_clusterclf.datasets import simulate_field
    from photutils_clusterclf.training import TrainingSet, train_classifier

    field = simulate_field(
        shape=(384, 384),
        n_candidates=200,
        distance_mpc=10.0,
        label_noise="human",
        seed=3,
        target="regress",
    )
    bands = tuple(field.bands)
    images = field.to_multiband_image()
    results = {
        "images": _digest(*(np.asarray(field.images[b]) for b in bands)),
        "catalog_xy": _digest(
            np.asarray(field.catalog["PHANGS_X"], float),
            np.asarray(field.catalog["PHANGS_Y"], float),
        ),
    }
    ts = TrainingSet.from_galaxies(
        [(field.catalog, images, field.target)],
        label_column="CLASS_TRUE",
        cutout_size=32,
        progress_bar=False,
    )
    results["training_set"] = _digest(ts.cutouts, ts.labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The options are pinned (the pre-issue-12 recipe), so that a change
        # of train_classifier's defaults does not invalidate the baseline.
        clf = train_classifier(
            ts,
            arch="small_cnn",
            weights=None,
            epochs=3,
            batch_size=32,
            n_models=2,
            seed=0,
            normalization="asinh",
            stem="standard",
            head="standard",
            schedule="plateau",
            label_smoothing=0.0,
            device="cpu",
            progress_bar=False,
        )
    weights = [p.detach().cpu().numpy() for m in clf.models for p in m.state_dict().values()]
    results["weights"] = _digest(*weights)
    # The fitted temperature (calibration) rescales the probabilities, not
    # the classes; the T = 1 hash shows the networks' own output unchanged.
    results["temperature"] = f"{clf.temperature:.6f}"
    fitted, clf.temperature = clf.temperature, 1.0
    out = clf.classify(field.catalog, images, progress_bar=False)
    prob_cols = [c for c in out.colnames if c.startswith("prob_class")]
    results["probabilities_t1"] = _digest(*(np.asarray(out[c], np.float32) for c in prob_cols))
    clf.temperature = fitted
    out = clf.classify(field.catalog, images, progress_bar=False)
    results["probabilities"] = _digest(*(np.asarray(out[c], np.float32) for c in prob_cols))
    results["class_ml"] = _digest(np.asarray(out["class_ml"]))
    results["n_classified"] = str(int(np.sum(np.asarray(out["class_ml"]) > 0)))
    # The file-level path of ``clusterclf classify``: catalogue + DS9 file.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "field").mkdir()
        files = field.write(tmp / "field")
        clf.save(tmp / "model.pt")
        status = cli_main(
            [
                "classify",
                "--model",
                str(tmp / "model.pt"),
                "--catalog",
                str(files["catalog"]),
                "--images-dir",
                str(tmp / "field"),
                "--out",
                str(tmp / "out.ecsv"),
                "--regions",
                str(tmp / "out.reg"),
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        table = QTable.read(tmp / "out.ecsv")
        results["cli_status"] = str(status)
        results["cli_probabilities"] = _digest(
            *(np.asarray(table[c], np.float32) for c in prob_cols)
        )
        results["cli_regions"] = hashlib.sha256((tmp / "out.reg").read_bytes()).hexdigest()[:16]
    lines = [f"{k}={v}" for k, v in results.items()]
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
