"""Constants and builders shared by the test modules.

Imported as ``from helpers import ...``: pytest's default ("prepend") import mode
puts this directory on ``sys.path``.
"""

from pathlib import Path

import numpy as np
from astropy.wcs import WCS

BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")

# The columns ClusterClassifier.classify appends to a catalogue, in order.
NEW_COLUMNS = (
    "class_ml",
    "class_ml_qual",
    "prob_class1",
    "prob_class2",
    "prob_class3",
    "prob_class4",
    "class_ml_flags",
)

# The real LEGUS NGC 1566 files (provenance and licence in their README).
LEGUS_DIR = Path(__file__).resolve().parent / "data" / "legus"
NGC1566_CATALOG = LEGUS_DIR / "hlsp_legus_hst_wfc3_ngc1566_multiband_v1_padagb-mwext-avgapcor.tab"
STARCNET_PREDICTIONS = LEGUS_DIR / "starcnet_ngc1566_predictions.csv"


def make_wcs(
    shape=None,
    *,
    crpix=None,
    crval=(65.0, -54.9),
    scale_arcsec=0.03962,
    rotation_deg=0.0,
    radesys=None,
):
    """A TAN WCS with RA increasing to the left (east left, north up when unrotated).

    ``crpix`` defaults to the centre of ``shape`` (``x = shape[1] / 2``,
    ``y = shape[0] / 2``) when that is given, else to ``(1, 1)``. A non-zero
    ``rotation_deg`` is written as a CD matrix, otherwise CDELT is used;
    ``radesys`` is set only when given.
    """
    if crpix is None:
        crpix = (1.0, 1.0) if shape is None else (shape[1] / 2, shape[0] / 2)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(crval)
    wcs.wcs.crpix = list(crpix)
    scale = scale_arcsec / 3600
    if rotation_deg:
        c, s = np.cos(np.radians(rotation_deg)), np.sin(np.radians(rotation_deg))
        wcs.wcs.cd = [[-scale * c, scale * s], [scale * s, scale * c]]
    else:
        wcs.wcs.cdelt = [-scale, scale]
    if radesys is not None:
        wcs.wcs.radesys = radesys
    return wcs


def require_programs(*names, modules=()):
    """Skip the calling test when a program is missing, except in CI, where it fails.

    CI installs the programs (``.ci/run``) and the Python ``modules`` (the
    test extra), so a missing one there is an error in the set-up, not a
    reason to skip.
    """
    import importlib.util
    import os
    import shutil

    import pytest

    missing = [name for name in names if shutil.which(name) is None]
    missing += [name for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        return
    message = (
        f"{', '.join(missing)} not installed (Debian: apt-get install saods9 xvfb "
        "xauth chromium chromium-driver; pip install selenium)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must install them")
    pytest.skip(message)


def classified_field(directory, *, shape=(200, 200), n_candidates=12, seed=3):
    """A simulated field written to ``directory`` with its catalogue classified.

    The classifier is an untrained ``small_cnn``: real output columns, in
    seconds. Returns the classified table, the path of its FITS catalogue
    (``classified.fits``) and the band files (band -> path).
    """
    from photutils_clusterclf import ClusterClassifier, build_model
    from photutils_clusterclf.datasets import simulate_field
    from photutils_clusterclf.fileio import write_table

    field = simulate_field(shape=shape, n_candidates=n_candidates, seed=seed)
    images = field.to_multiband_image()
    clf = ClusterClassifier.from_model(
        build_model("small_cnn", n_bands=5, n_classes=4),
        arch="small_cnn",
        bands=images.bands,
        cutout_size=32,
        device="cpu",
    )
    table = clf.classify(field.catalog, images, progress_bar=False)
    paths = field.write(directory)
    write_table(table, directory / "classified.fits")
    return table, directory / "classified.fits", paths


def assert_same_cutout(shown, expected, *, other=None):
    """A displayed 8-bit cutout ``shown`` is ``expected`` up to JPEG error.

    With ``other`` (another candidate's cell), ``shown`` must also be much
    closer to ``expected`` than ``other`` is.
    """
    shown, expected = np.asarray(shown, float), np.asarray(expected, float)
    assert np.corrcoef(shown.ravel(), expected.ravel())[0, 1] > 0.9
    error = np.mean(np.abs(shown - expected))
    assert error < 15
    if other is not None:
        assert error < 0.5 * np.mean(np.abs(np.asarray(other, float) - expected))


# -- a small field on disk and a random classifier (bad-input, interrupt and CLI tests)

#: Image shape and cutout size of the small field.
SHAPE = (40, 50)
CUTOUT = 9


def make_arrays(shape=SHAPE, seed=0, bands=BANDS):
    """Noise plus a few point sources, one float32 array per band."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    arrays = {}
    for i, band in enumerate(bands):
        img = rng.normal(0.0, 0.05, shape)
        for x0, y0 in ((10, 10), (25, 20), (40, 30)):
            img += (1 + i) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 4.5)
        arrays[band] = img.astype(np.float32)
    return arrays


def make_classifier(bands=BANDS, seed=0):
    """A random, untrained small_cnn classifier on the CPU."""
    import torch

    from photutils_clusterclf import ClusterClassifier, build_model

    torch.manual_seed(seed)
    model = build_model("small_cnn", n_bands=len(bands), n_classes=4)
    return ClusterClassifier.from_model(
        model, arch="small_cnn", bands=bands, cutout_size=CUTOUT, device="cpu"
    )


def write_weights_file(path, arch="small_cnn", bands=BANDS, seed=0):
    """A clusterclf checkpoint of a random ``arch`` (32 px); returns its state dict."""
    import torch

    from photutils_clusterclf import build_model
    from photutils_clusterclf.checkpoint import ModelCard, save_checkpoint
    from photutils_clusterclf.preprocessing import Normalization

    torch.manual_seed(seed)
    model = build_model(arch, n_bands=len(bands))
    card = ModelCard(
        arch=arch,
        bands=bands,
        cutout_size=32,
        input_size=32,
        normalization=Normalization().to_dict(),
        training={"made": "test"},
    )
    save_checkpoint(path, card, model.state_dict())
    return model.state_dict()


def write_band_files(directory, shape=SHAPE, seed=0, bands=BANDS):
    """One big-endian FITS file per band (with WCS and FILTER); returns band -> path."""
    from astropy.io import fits

    directory.mkdir(parents=True, exist_ok=True)
    header = make_wcs(shape).to_header()
    paths = {}
    for band, data in make_arrays(shape, seed, bands).items():
        header["FILTER"] = band
        path = directory / f"{band.lower()}.fits"
        fits.PrimaryHDU(data.astype(">f4"), header=header).writeto(path)
        paths[band] = path
    return paths


def write_catalogue(path, x=(10.0, 25.0, 40.0, 300.0), y=(10.0, 20.0, 30.0, 5.0)):
    """A PHANGS-like catalogue (0-based PHANGS_X/PHANGS_Y)."""
    from astropy.table import Table

    Table(
        {
            "ID": np.arange(1, len(x) + 1),
            "PHANGS_X": np.array(x, float),
            "PHANGS_Y": np.array(y, float),
        }
    ).write(path)
    return path


def run_cli(argv, capsys):
    """Run ``clusterclf`` in-process: (exit status, stdout, stderr)."""
    from photutils_clusterclf.cli import main

    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err
