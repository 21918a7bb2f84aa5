"""Figures of simulated fields: an RGB view with the candidates and a per-class gallery."""

import numpy as np

from ..classes import CLASSES, DEFAULT_COLORS
from ..cutouts import extract_cutouts
from ..fileio import check_writable
from ..visualization import plot_overlay, rgb_image, save_figure

__all__ = ["plot_field"]


def plot_field(
    field, path=None, *, n_per_class=6, cutout_size=32, max_display=1500, overwrite=False, dpi=100
):
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
        The field view is subsampled to at most this many pixels a side.
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
        raise ValueError(
            f"need n_per_class >= 1 and cutout_size >= 4, got {n_per_class} and {cutout_size}"
        )
    images = field.to_multiband_image()
    catalog = field.catalog
    true = np.asarray(catalog["CLASS_TRUE"])
    fig = Figure(figsize=(5.0 + 1.25 * n_per_class, 5.6))
    FigureCanvasAgg(fig)
    # An empty narrow column keeps the gallery's class labels off the field view.
    grid = fig.add_gridspec(
        len(CLASSES),
        2 + n_per_class,
        wspace=0.05,
        hspace=0.2,
        width_ratios=[4.0, 0.3] + [1.0] * n_per_class,
        left=0.02,
        right=0.98,
        bottom=0.03,
        top=0.92,
    )
    ax = fig.add_subplot(grid[:, 0])
    plot_overlay(images, catalog, column="CLASS_TRUE", ax=ax, max_size=max_display, radius=8)
    ax.set_title(f"{field.target}: candidates by true class", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])

    x, y = np.asarray(catalog["PHANGS_X"], float), np.asarray(catalog["PHANGS_Y"], float)
    for row, cls in enumerate(CLASSES):
        rows = np.flatnonzero(true == cls)[:n_per_class]
        cutouts = extract_cutouts(images, x[rows], y[rows], size=cutout_size)
        for col in range(n_per_class):
            cax = fig.add_subplot(grid[row, 2 + col])
            cax.set_xticks([])
            cax.set_yticks([])
            if col == 0:
                cax.set_ylabel(f"class {cls}", color=DEFAULT_COLORS[cls], fontsize=8)
            if col >= rows.size:
                continue
            # Each cutout is stretched on its own, so faint candidates show too.
            planes = dict(zip(cutouts.bands, cutouts.data[col]))
            cax.imshow(rgb_image(planes), origin="lower")
            cax.set_title(str(catalog["SIM_MORPHOLOGY"][rows[col]]), fontsize=6)
    if path is not None:
        save_figure(fig, path, overwrite=overwrite, dpi=dpi)
    return fig
