"""Figures of simulated fields: an RGB view with the candidates and a per-class gallery."""

from pathlib import Path

import numpy as np

from ..classes import CLASSES, DEFAULT_COLORS
from ..fileio import atomic_output, check_writable

__all__ = ["plot_field", "rgb_image"]


def _stretch(data, low, high, softening=0.05):
    """asinh stretch of ``data`` between ``low`` and ``high`` into [0, 1]."""
    scaled = np.clip((data - low) / max(high - low, 1e-30), 0.0, None)
    return np.clip(np.arcsinh(scaled / softening) / np.arcsinh(1.0 / softening), 0.0, 1.0)


def rgb_image(red, green, blue, *, percentiles=(1.0, 99.8)):
    """Combine three images into an asinh-stretched RGB array.

    Parameters
    ----------
    red, green, blue : `~numpy.ndarray`
        2-D images of the same shape (e.g. F814W, F555W, F438W).
    percentiles : tuple of float, optional
        Per-channel percentiles mapped to black and to white (before the
        asinh softening).

    Returns
    -------
    rgb : `~numpy.ndarray`
        (ny, nx, 3) float array in [0, 1].
    """
    channels = []
    for data in (red, green, blue):
        data = np.nan_to_num(np.asarray(data, dtype=np.float32))
        low, high = np.percentile(data, percentiles)
        channels.append(_stretch(data, low, high))
    return np.stack(channels, axis=-1)


def _colour_bands(bands):
    """(red, green, blue) bands: the reddest, the V band and the blue optical band."""
    blue = "F438W" if "F438W" in bands else ("F435W" if "F435W" in bands else bands[0])
    return ("F814W" if "F814W" in bands else bands[-1],
            "F555W" if "F555W" in bands else bands[len(bands) // 2], blue)


def plot_field(field, path=None, *, n_per_class=6, cutout_size=32, max_display=1500,
               overwrite=False, dpi=100):
    """Draw a simulated field (RGB, candidates coloured by true class) and a cutout gallery.

    Parameters
    ----------
    field : `~photutils_clusterclf.datasets.SimulatedField`
        The field.
    path : str or `~pathlib.Path`, optional
        Write the figure there as PNG (atomically).
    n_per_class : int, optional
        Cutouts per class in the gallery (the first candidates of each
        class in catalogue order).
    cutout_size : int, optional
        Side of the gallery cutouts (px).
    max_display : int, optional
        The field view is block-averaged to at most this many pixels a side.
    overwrite : bool, optional
        Replace an existing ``path``.
    dpi : int, optional
        Resolution of the PNG.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if path is not None:
        check_writable(path, overwrite=overwrite)
    if n_per_class < 1 or cutout_size < 4:
        raise ValueError(f"need n_per_class >= 1 and cutout_size >= 4, got "
                         f"{n_per_class} and {cutout_size}")
    bands = _colour_bands(tuple(field.images))
    rgb = rgb_image(*(field.images[b] for b in bands))
    ny, nx = rgb.shape[:2]
    block = max(1, int(np.ceil(max(ny, nx) / max_display)))
    view = rgb[:ny // block * block, :nx // block * block]
    view = view.reshape(ny // block, block, nx // block, block, 3).mean(axis=(1, 3))

    catalog = field.catalog
    true = np.asarray(catalog["CLASS_TRUE"])
    x, y = np.asarray(catalog["PHANGS_X"], float), np.asarray(catalog["PHANGS_Y"], float)
    fig = Figure(figsize=(5.0 + 1.25 * n_per_class, 5.6))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(CLASSES), 1 + n_per_class, wspace=0.05, hspace=0.2,
                            width_ratios=[4.0] + [1.0] * n_per_class,
                            left=0.02, right=0.98, bottom=0.03, top=0.92)
    ax = fig.add_subplot(grid[:, 0])
    ax.imshow(view, origin="lower", extent=(-0.5, nx - 0.5, -0.5, ny - 0.5))
    for cls in CLASSES:
        sel = true == cls
        ax.scatter(x[sel], y[sel], s=30, facecolors="none", linewidths=0.6,
                   edgecolors=DEFAULT_COLORS[cls], label=f"class {cls}")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    ax.set_title(f"{field.target}: R={bands[0]} G={bands[1]} B={bands[2]}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])

    half = cutout_size // 2
    padded = {band: np.pad(np.asarray(field.images[band], dtype=np.float32), half)
              for band in bands}
    for row, cls in enumerate(CLASSES):
        rows = np.flatnonzero(true == cls)[:n_per_class]
        for col in range(n_per_class):
            cax = fig.add_subplot(grid[row, 1 + col])
            cax.set_xticks([])
            cax.set_yticks([])
            if col == 0:
                cax.set_ylabel(f"class {cls}", color=DEFAULT_COLORS[cls], fontsize=8)
            if col >= rows.size:
                continue
            i = rows[col]
            cx, cy = int(round(x[i])) + half, int(round(y[i])) + half
            # each cutout stretched on its own, so faint candidates show too
            cut = [padded[band][cy - half:cy + half, cx - half:cx + half] for band in bands]
            cax.imshow(rgb_image(*cut, percentiles=(5.0, 99.5)), origin="lower")
            cax.set_title(str(catalog["SIM_MORPHOLOGY"][i]), fontsize=6)
    if path is not None:
        with atomic_output(Path(path), overwrite=overwrite) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    return fig
