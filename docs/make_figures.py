"""Make the figures of the documentation (``docs/_static/*.png``).

Run from the repository root (about four minutes on two CPU cores, no network)::

    python docs/make_figures.py

Everything comes from simulated PHANGS-like fields
(`photutils_clusterclf.datasets.simulate_field`) with fixed seeds, so the
figures are reproducible:

* ``gallery.png``: example cutouts of each class (true classes of the
  simulation), F814W / F555W / F438W as red / green / blue;
* ``overlay.png``, ``overlay.reg``-style colours: the predicted classes of a
  held-out simulated galaxy on its colour image;
* ``confusion_matrix.png``: that galaxy's confusion matrix against its
  human-like labels;
* ``reliability.png``: the reliability diagram of a larger held-out
  galaxy against its human-like labels, with the probabilities as trained
  (temperature 1) and with the temperature fitted on the validation galaxy.

The classifier behind the last three is a ``small_cnn`` trained for a few
epochs on three small simulated galaxies: it illustrates the figures, it is
not the model of the paper-experiment page.
"""

import argparse
import warnings
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "_static"
SEED = 20200325  # fixed: the figures are reproducible


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(STATIC), help="output directory")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)

    from astropy.utils.exceptions import AstropyUserWarning

    from photutils_clusterclf import EvaluationReport, extract_cutouts
    from photutils_clusterclf.datasets import simulate_field
    from photutils_clusterclf.training import TrainingSet, train_classifier
    from photutils_clusterclf.visualization import (plot_cutout_gallery, save_confusion_matrix,
                                                    save_figure, save_overlay,
                                                    save_reliability_diagram)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # (a) gallery: true classes of one simulated field
    field = simulate_field(shape=(700, 700), n_candidates=160, distance_mpc=8.0,
                           seed=SEED)
    images = field.to_multiband_image()
    cat = field.catalog
    batch = extract_cutouts(images, cat["PHANGS_X"], cat["PHANGS_Y"], size=32)
    fig = plot_cutout_gallery(batch, cat["CLASS_TRUE"], n_per_class=6,
                              title="simulated candidates by class (F814W, F555W, F438W)")
    save_figure(fig, out / "gallery.png", overwrite=True, dpi=90)

    # (b, c) a small model trained on two galaxies, applied to a held-out one
    galaxies = []
    for k, distance in enumerate((6.0, 10.0, 16.0)):
        train = simulate_field(shape=(1000, 1000), n_candidates=400, distance_mpc=distance,
                               label_noise="human", seed=SEED + 1 + k,
                               target=f"train{k}")
        galaxies.append((train.catalog, train.to_multiband_image(), f"train{k}"))
    training_set = TrainingSet.from_galaxies(galaxies, label_column="PHANGS_CLUSTER_CLASS_HUMAN",
                                             cutout_size=32, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        clf = train_classifier(training_set, arch="small_cnn", weights=None,
                               epochs=args.epochs, seed=0, device="cpu",
                               progress_bar=False)
    heldout = simulate_field(shape=(700, 700), n_candidates=160, distance_mpc=10.0,
                             label_noise="human", seed=SEED + 10, target="heldout")
    held_images = heldout.to_multiband_image()
    table = clf.classify(heldout.catalog, held_images, progress_bar=False)
    # A 400 x 400 px part keeps the PNG small and the circles readable.
    save_overlay(held_images, table, out / "overlay.png", overwrite=True, dpi=70,
                 radius=7.0, region=(150, 550, 150, 550))
    report = EvaluationReport.from_table(table, "PHANGS_CLUSTER_CLASS_HUMAN", "class_ml")
    save_confusion_matrix(report, out / "confusion_matrix.png", overwrite=True, dpi=100,
                          title="held-out simulated galaxy",
                          xlabel="predicted class (class_ml)", ylabel="human-like class")
    print(report)

    # (d) reliability diagram: enough candidates (1000) for 15 confidence bins
    big = simulate_field(shape=(2300, 2300), n_candidates=1000, distance_mpc=10.0,
                         label_noise="human", seed=SEED + 11, target="heldout-big")
    big_images = big.to_multiband_image()
    fitted = clf.temperature
    curves = {}
    for name, temperature in (("as trained, T = 1", 1.0),
                              (f"calibrated, T = {fitted:.2f}", fitted)):
        clf.temperature = temperature
        table = clf.classify(big.catalog, big_images, progress_bar=False)
        curves[name] = EvaluationReport.from_table(
            table, "PHANGS_CLUSTER_CLASS_HUMAN", "class_ml", prob_columns="auto").reliability()
    save_reliability_diagram(curves, out / "reliability.png", overwrite=True, dpi=100,
                             title="held-out simulated galaxy vs human-like labels")
    print(", ".join(f"{name}: ECE {curve.ece:.3f}" for name, curve in curves.items()))
    for name in ("gallery.png", "overlay.png", "confusion_matrix.png", "reliability.png"):
        path = out / name
        _shrink_png(path)
        print(f"wrote {path} ({path.stat().st_size // 1024} kB)")


def _shrink_png(path):
    """Re-encode a PNG with a 256-colour palette: the pages stay light (< 300 kB)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256)
    small.save(path, optimize=True)


if __name__ == "__main__":
    main()
