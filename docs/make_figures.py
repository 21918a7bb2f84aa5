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
  (temperature 1) and with the temperature fitted on the validation galaxy;
* with ``--screenshots`` (needs ``ds9``, ``xvfb-run`` and ``chromium``):
  ``ds9_classes.png``, SAOImage DS9's own view (``-saveimage png``) of the
  held-out galaxy with the package's region file, and ``inspect_page.png``,
  the ``clusterclf inspect`` page of its catalogue in headless Chromium.

The classifier behind all but the gallery is a ``small_cnn`` trained for a few
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
    parser.add_argument(
        "--screenshots", action="store_true", help="also the DS9 and inspection-page screenshots"
    )
    args = parser.parse_args(argv)

    from astropy.utils.exceptions import AstropyUserWarning

    from photutils_clusterclf import EvaluationReport, extract_cutouts
    from photutils_clusterclf.datasets import simulate_field
    from photutils_clusterclf.training import TrainingSet, train_classifier
    from photutils_clusterclf.visualization import (
        plot_cutout_gallery,
        save_confusion_matrix,
        save_figure,
        save_overlay,
        save_reliability_diagram,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # (a) gallery: true classes of one simulated field
    field = simulate_field(shape=(700, 700), n_candidates=160, distance_mpc=8.0, seed=SEED)
    images = field.to_multiband_image()
    cat = field.catalog
    batch = extract_cutouts(images, cat["PHANGS_X"], cat["PHANGS_Y"], size=32)
    fig = plot_cutout_gallery(
        batch,
        cat["CLASS_TRUE"],
        n_per_class=6,
        title="simulated candidates by class (F814W, F555W, F438W)",
    )
    save_figure(fig, out / "gallery.png", overwrite=True, dpi=90)

    # (b, c) a small model trained on two galaxies, applied to a held-out one
    galaxies = []
    for k, distance in enumerate((6.0, 10.0, 16.0)):
        train = simulate_field(
            shape=(1000, 1000),
            n_candidates=400,
            distance_mpc=distance,
            label_noise="human",
            seed=SEED + 1 + k,
            target=f"train{k}",
        )
        galaxies.append((train.catalog, train.to_multiband_image(), f"train{k}"))
    training_set = TrainingSet.from_galaxies(
        galaxies, label_column="PHANGS_CLUSTER_CLASS_HUMAN", cutout_size=32, progress_bar=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        clf = train_classifier(
            training_set,
            arch="small_cnn",
            weights=None,
            epochs=args.epochs,
            seed=0,
            device="cpu",
            progress_bar=False,
        )
    heldout = simulate_field(
        shape=(700, 700),
        n_candidates=160,
        distance_mpc=10.0,
        label_noise="human",
        seed=SEED + 10,
        target="heldout",
    )
    held_images = heldout.to_multiband_image()
    table = clf.classify(heldout.catalog, held_images, progress_bar=False)
    # A 400 x 400 px part keeps the PNG small and the circles readable.
    save_overlay(
        held_images,
        table,
        out / "overlay.png",
        overwrite=True,
        dpi=70,
        radius=7.0,
        region=(150, 550, 150, 550),
    )
    report = EvaluationReport.from_table(table, "PHANGS_CLUSTER_CLASS_HUMAN", "class_ml")
    save_confusion_matrix(
        report,
        out / "confusion_matrix.png",
        overwrite=True,
        dpi=100,
        title="held-out simulated galaxy",
        xlabel="predicted class (class_ml)",
        ylabel="human-like class",
    )
    print(report)

    # (d) reliability diagram: enough candidates (1000) for 15 confidence bins
    big = simulate_field(
        shape=(2300, 2300),
        n_candidates=1000,
        distance_mpc=10.0,
        label_noise="human",
        seed=SEED + 11,
        target="heldout-big",
    )
    big_images = big.to_multiband_image()
    fitted = clf.temperature
    curves = {}
    for name, temperature in (
        ("as trained, T = 1", 1.0),
        (f"calibrated, T = {fitted:.2f}", fitted),
    ):
        clf.temperature = temperature
        big_table = clf.classify(big.catalog, big_images, progress_bar=False)
        curves[name] = EvaluationReport.from_table(
            big_table, "PHANGS_CLUSTER_CLASS_HUMAN", "class_ml", prob_columns="auto"
        ).reliability()
    save_reliability_diagram(
        curves,
        out / "reliability.png",
        overwrite=True,
        dpi=100,
        title="held-out simulated galaxy vs human-like labels",
    )
    print(", ".join(f"{name}: ECE {curve.ece:.3f}" for name, curve in curves.items()))
    names = ["gallery.png", "overlay.png", "confusion_matrix.png", "reliability.png"]
    if args.screenshots:
        _screenshots(heldout, table, out)
        names += ["ds9_classes.png", "inspect_page.png"]
    for name in names:
        path = out / name
        _shrink_png(path)
        print(f"wrote {path} ({path.stat().st_size // 1024} kB)")


def _screenshots(heldout, table, out):
    """DS9 and Chromium screenshots of the classified held-out galaxy."""
    import subprocess
    import tempfile

    from photutils_clusterclf.inspect_page import write_inspection_page
    from photutils_clusterclf.regions_io import write_class_regions

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = heldout.write(tmp)
        regions = tmp / "classes.reg"
        write_class_regions(table, regions)
        # Debian's DS9 does not load Tk-Img's "window" format, which
        # -saveimage needs; a one-line Tcl file loads it first.
        (tmp / "img.tcl").write_text("package require img::window\n")
        channels = []
        for channel, band in (("red", "F814W"), ("green", "F555W"), ("blue", "F438W")):
            channels += [
                f"-{channel}",
                str(paths[band]),
                "-scale",
                "asinh",
                "-scale",
                "mode",
                "99.5",
            ]
        # the 400 x 400 px part of overlay.png, 1.5 screen pixels per pixel
        subprocess.run(
            [
                "xvfb-run",
                "-a",
                "-s",
                "-screen 0 1280x1024x24",
                "ds9",
                "-source",
                str(tmp / "img.tcl"),
                "-width",
                "600",
                "-height",
                "600",
                "-rgb",
                *channels,
                "-rgb",
                "close",
                "-zoom",
                "1.5",
                "-pan",
                "to",
                "351",
                "351",
                "image",
                "-regions",
                "load",
                "all",
                str(regions),
                "-saveimage",
                "png",
                str(out / "ds9_classes.png"),
                "-exit",
            ],
            check=True,
            timeout=120,
        )
        page = tmp / "inspect.html"
        write_inspection_page(table, heldout.to_multiband_image(), page, progress_bar=False)
        subprocess.run(
            [
                "chromium",
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1250,760",
                "--virtual-time-budget=10000",
                f"--screenshot={out / 'inspect_page.png'}",
                page.as_uri(),
            ],
            check=True,
            timeout=120,
            capture_output=True,
        )


def _shrink_png(path):
    """Re-encode a PNG with a 256-colour palette: the pages stay light (< 300 kB)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256)
    small.save(path, optimize=True)


if __name__ == "__main__":
    main()
