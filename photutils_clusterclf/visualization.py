"""Figures: confusion matrix, reliability diagram, colour overlay of classes, cutout galleries.

Library functions never touch pyplot's global state: figures are
`matplotlib.figure.Figure` objects with an Agg canvas, so they work in
scripts, servers and notebooks alike (in a notebook, display the returned
figure). PNG files are written atomically through
`photutils_clusterclf.fileio.atomic_output`.
"""

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from .classes import CLASSES, DEFAULT_COLORS, fold_classes
from .fileio import atomic_output

__all__ = [
    "CLASS_LABELS",
    "plot_confusion_matrix",
    "plot_cutout_gallery",
    "plot_overlay",
    "plot_reliability_diagram",
    "rgb_image",
    "save_confusion_matrix",
    "save_figure",
    "save_overlay",
    "save_reliability_diagram",
    "stretch_cutouts",
]

#: Short class names for legends and gallery rows.
CLASS_LABELS = {
    1: "1 symmetric cluster",
    2: "2 asymmetric cluster",
    3: "3 compact association",
    4: "4 not a cluster",
}

# Preferred filters for the red, green and blue channels, best first.
_RGB_PREFERENCE = (
    ("F814W", "F775W", "F606W", "F555W"),
    ("F555W", "F606W", "F547M", "F438W"),
    ("F438W", "F435W", "F336W", "F275W"),
)
_STRETCHES = ("asinh", "linear", "lupton")


def _new_axes(ax, figsize):
    """The given Axes, or one on a new pyplot-free Figure."""
    if ax is not None:
        return ax
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig.add_subplot()


def save_figure(fig, path, *, overwrite=False, dpi=150):
    """Save a figure atomically; the format follows the file extension.

    Parameters
    ----------
    fig : `~matplotlib.figure.Figure`
        The figure.
    path : str or `~pathlib.Path`
        Output file (``.png``, ``.pdf``, ``.svg``, ...).
    overwrite : bool, optional
        Replace an existing file (otherwise `FileExistsError`).
    dpi : float, optional
        Resolution for raster formats.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if not fmt:
        raise ValueError(
            f"cannot tell the image format of {path}: give it an "
            "extension such as .png, .pdf or .svg"
        )
    if fig.canvas is None or not hasattr(fig.canvas, "print_figure"):
        FigureCanvasAgg(fig)
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")


# ---- confusion matrix -----------------------------------------------------


def plot_confusion_matrix(
    matrix,
    *,
    normalize=True,
    ax=None,
    labels=("1", "2", "3", "4"),
    title=None,
    xlabel="predicted class",
    ylabel="true class",
    cmap="Blues",
):
    """Draw a confusion matrix as an annotated image.

    Parameters
    ----------
    matrix : array-like
        (K, K) counts; rows are true classes, columns predicted classes.
    normalize : bool, optional
        Colour by row-normalised fractions and annotate each cell as
        ``"0.70\\n(123)"`` (fraction of the true class, then count). With
        False, colour and annotate the counts.
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw; a new figure by default.
    labels : sequence of str, optional
        Tick labels of the classes.
    title, xlabel, ylabel : str, optional
        Axes texts.
    cmap : str, optional
        Colour map.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
    """
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"matrix must be square (K, K), got shape {counts.shape}")
    if len(labels) != counts.shape[0]:
        raise ValueError(f"{len(labels)} labels for a {counts.shape[0]}x{counts.shape[0]} matrix")
    rows = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
    shown = fractions if normalize else counts
    ax = _new_axes(ax, (4.5, 4))
    image = ax.imshow(shown, cmap=cmap, vmin=0, vmax=1 if normalize else None)
    threshold = 0.5 * (1 if normalize else max(shown.max(), 1))
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            text = (
                f"{fractions[i, j]:.2f}\n({counts[i, j]:g})" if normalize else f"{counts[i, j]:g}"
            )
            # White text on dark cells keeps the numbers readable.
            color = "white" if shown[i, j] > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label="fraction of true class" if normalize else "count")
    return ax


def save_confusion_matrix(report_or_matrix, path, *, overwrite=False, dpi=150, **kwargs):
    """Plot a confusion matrix and save it atomically.

    Parameters
    ----------
    report_or_matrix : `~photutils_clusterclf.evaluation.EvaluationReport` or array-like
        A report (its names become title and axis labels) or (K, K) counts.
    path : str or `~pathlib.Path`
        Output image file.
    overwrite : bool, optional
        Replace an existing file.
    dpi : float, optional
        Resolution.
    **kwargs
        Passed to `plot_confusion_matrix`.
    """
    if hasattr(report_or_matrix, "plot_confusion_matrix"):
        ax = report_or_matrix.plot_confusion_matrix(**kwargs)
    else:
        ax = plot_confusion_matrix(report_or_matrix, **kwargs)
    save_figure(ax.figure, path, overwrite=overwrite, dpi=dpi)


# ---- reliability diagram ----------------------------------------------------


def plot_reliability_diagram(curves, *, ax=None, title=None, counts=True):
    """Draw accuracy against confidence, one line per reliability curve.

    A calibrated classifier follows the diagonal: among the objects whose
    top probability is about 0.8, 80 % have that class. Points below it
    are over-confident. The legend gives each curve's expected
    calibration error.

    Parameters
    ----------
    curves : `~photutils_clusterclf.calibration.ReliabilityCurve` or dict
        One curve, or label -> curve (e.g. ``{"before": ..., "after": ...}``).
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw; a new figure by default.
    title : str, optional
        Axes title.
    counts : bool, optional
        Also show, as steps on a secondary axis, the fraction of objects in
        each confidence bin.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
    """
    if not isinstance(curves, Mapping):
        curves = {None: curves}
    if not curves:
        raise ValueError("no reliability curve to plot")
    ax = _new_axes(ax, (4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="calibrated")
    hist = ax.twinx() if counts else None
    for (label, curve), color in zip(curves.items(), ("C0", "C3", "C2", "C1", "C4"), strict=False):
        full = curve.counts > 0
        text = f"ECE {curve.ece:.3f}" if label is None else f"{label} (ECE {curve.ece:.3f})"
        ax.plot(curve.confidence[full], curve.accuracy[full], "o-", color=color, ms=4, label=text)
        if hist is not None:
            hist.stairs(
                curve.counts / max(curve.n, 1), curve.bin_edges, color=color, alpha=0.35, lw=1
            )
    if hist is not None:
        hist.set_ylim(0, 1)
        hist.set_ylabel("fraction of objects per bin", color="0.4")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top class probability)")
    ax.set_ylabel("accuracy (fraction of that class)")
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def save_reliability_diagram(report_or_curves, path, *, overwrite=False, dpi=150, **kwargs):
    """Plot a reliability diagram and save it atomically.

    Parameters
    ----------
    report_or_curves : `~photutils_clusterclf.evaluation.EvaluationReport`, curve or dict
        A report with probabilities (its names become the title), or what
        `plot_reliability_diagram` takes.
    path : str or `~pathlib.Path`
        Output image file.
    overwrite : bool, optional
        Replace an existing file.
    dpi : float, optional
        Resolution.
    **kwargs
        Passed to `plot_reliability_diagram`.
    """
    if hasattr(report_or_curves, "plot_reliability"):
        ax = report_or_curves.plot_reliability(**kwargs)
    else:
        ax = plot_reliability_diagram(report_or_curves, **kwargs)
    save_figure(ax.figure, path, overwrite=overwrite, dpi=dpi)


# ---- RGB view and overlay ---------------------------------------------------


def _image_bands(images):
    """Band names of a `MultiBandImage` or of a mapping band -> array."""
    return tuple(images.bands) if hasattr(images, "bands") else tuple(images)


def default_rgb_bands(available):
    """Red, green, blue filters chosen from ``available`` (distinct where possible)."""
    chosen = []
    for preference in _RGB_PREFERENCE:
        pick = next((b for b in preference if b in available and b not in chosen), None)
        if pick is None:  # fall back to any unused band, long wavelength first
            pick = next(
                (b for b in sorted(available, reverse=True) if b not in chosen),
                chosen[-1] if chosen else None,
            )
        if pick is None:
            raise ValueError("no image bands to make an RGB view from")
        chosen.append(pick)
    return tuple(chosen)


def _stretch_band(data, stretch, q=10.0):
    """Map one band to [0, 1]: background (median) to 0, 99.5th percentile to 1.

    The ``"asinh"`` stretch is `~astropy.visualization.AsinhStretch` with
    ``a = 1 / q``, i.e. ``arcsinh(q x) / arcsinh(q)``: linear for faint
    pixels and logarithmic for bright ones, so that both the disk and the
    cluster cores stay visible. NaN pixels map to the background.
    """
    finite = data[np.isfinite(data)]
    # Percentiles of a regular subsample (<= ~10^6 pixels) are as good and
    # several times faster on big views.
    finite = finite[:: max(1, finite.size // 1_000_000)]
    if finite.size == 0:
        return np.zeros(data.shape)
    return _scale(data, np.median(finite), np.percentile(finite, 99.5), stretch, q)


def _scale(data, low, high, stretch, q):
    """Map ``low`` to 0 and ``high`` to 1 (arrays broadcast), NaN to 0, then stretch."""
    # The limits may be one per plane (arrays): astropy's ManualInterval takes
    # scalars only, so the interval is applied here; the stretch is astropy's.
    filled = np.where(np.isnan(data), low, data)
    scaled = np.clip((filled - low) / np.maximum(high - low, 1e-30), 0, 1)
    # asinh is linear for faint pixels and logarithmic for bright ones, so
    # both the disk and the cluster cores stay visible.
    from astropy.visualization import AsinhStretch, LinearStretch

    band_stretch = AsinhStretch(a=1.0 / q) if stretch == "asinh" else LinearStretch()
    return band_stretch(scaled, clip=True)


def stretch_cutouts(cutouts, *, stretch="asinh", q=10.0):
    """Scale every plane of a cutout stack to [0, 1] as the figures do.

    Each ``(S, S)`` plane is scaled on its own, exactly as
    `plot_cutout_gallery` and `rgb_image` scale a band: its median (the
    background) maps to 0, its 99.5th percentile to 1, NaN pixels to 0.
    A colour composite is three of these planes stacked as red, green,
    blue.

    Parameters
    ----------
    cutouts : array-like
        ``(..., S, S)`` cutouts, e.g. the ``(N, B, S, S)`` data of a
        `~photutils_clusterclf.cutouts.CutoutBatch`; NaN allowed.
    stretch : {"asinh", "linear"}, optional
        Scaling between the two levels.
    q : float, optional
        Softening of the asinh stretch.

    Returns
    -------
    scaled : `numpy.ndarray`
        Float array of the same shape, in [0, 1]; all-NaN planes are 0.
    """
    if stretch not in ("asinh", "linear"):
        raise ValueError(f"stretch must be 'asinh' or 'linear', got {stretch!r}")
    data = np.asarray(cutouts, dtype=float)
    if data.ndim < 2:
        raise ValueError(f"cutouts must have at least 2 dimensions, got shape {data.shape}")
    # np.sort puts NaN last: the quantiles of the finite pixels are read at
    # interpolated ranks (numpy's "linear" method), far faster than
    # np.nanpercentile along an axis.
    ordered = np.sort(data.reshape(*data.shape[:-2], -1), axis=-1)
    n_finite = np.count_nonzero(~np.isnan(ordered), axis=-1)
    empty = (n_finite == 0)[..., None, None]
    low, high = (
        _sorted_quantile(ordered, n_finite, level)[..., None, None] for level in (0.5, 0.995)
    )
    scaled = _scale(data, np.where(empty, 0.0, low), np.where(empty, 1.0, high), stretch, q)
    return np.where(empty, 0.0, scaled)


def _sorted_quantile(ordered, n_finite, level):
    """Quantile of the first ``n_finite`` entries of each sorted row (NaN where none)."""
    rank = np.maximum(n_finite - 1, 0) * level
    below = np.floor(rank).astype(np.int64)
    above = np.minimum(below + 1, np.maximum(n_finite - 1, 0))
    lo = np.take_along_axis(ordered, below[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(ordered, above[..., None], axis=-1)[..., 0]
    return lo + (hi - lo) * (rank - below)


def _rgb_view(images, *, bands, stretch, region, max_size):
    """RGB array and its imshow ``extent`` in the original pixel frame."""
    if isinstance(images, Mapping):
        images = {str(band).upper(): data for band, data in images.items()}
    available = _image_bands(images)
    bands = default_rgb_bands(available) if bands is None else tuple(str(b).upper() for b in bands)
    if len(bands) != 3:
        raise ValueError(f"bands must name 3 filters (red, green, blue), got {bands}")
    missing = [b for b in bands if b not in available]
    if missing:
        raise KeyError(f"bands {missing} not in the images; available: " + ", ".join(available))
    # Overlay positions refer to the reference grid, so the view must too.
    off_grid = [b for b in bands if hasattr(images, "same_grid") and not images.same_grid(b)]
    if off_grid:
        raise ValueError(
            f"bands {off_grid} are not on the reference grid of "
            f"{images.reference_band}; choose bands on that grid"
        )
    shapes = {np.shape(images[b]) for b in bands}
    if len(shapes) != 1:
        raise ValueError(
            f"RGB bands {bands} have different shapes {sorted(shapes)}; "
            "choose bands on the same pixel grid"
        )
    ny, nx = shapes.pop()
    if region is None:
        x0, x1, y0, y1 = 0, nx, 0, ny
    else:
        x0, x1, y0, y1 = (int(round(v)) for v in region)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, nx), min(y1, ny)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(
                f"region {tuple(region)} (xmin, xmax, ymin, ymax) does "
                f"not overlap the {nx}x{ny} image"
            )
    # Striding (not block averaging) keeps memory bounded on memmapped
    # mosaics: only the sampled pixels are read.
    step = max(1, math.ceil(max(x1 - x0, y1 - y0) / max_size))
    channels = [np.asarray(images[band][y0:y1:step, x0:x1:step], dtype=float) for band in bands]
    if stretch == "lupton":
        from astropy.visualization import make_lupton_rgb

        medians = [np.nanmedian(c) for c in channels]
        channels = [
            np.nan_to_num(c - m) / max(np.nanpercentile(c, 99.5) - m, 1e-30)
            for c, m in zip(channels, medians)
        ]
        rgb = make_lupton_rgb(*channels, stretch=0.5, Q=8) / 255.0
    elif stretch in ("asinh", "linear"):
        rgb = np.stack([_stretch_band(c, stretch) for c in channels], axis=-1)
    else:
        raise ValueError(f"stretch must be one of {', '.join(_STRETCHES)}, got {stretch!r}")
    h, w = rgb.shape[:2]
    extent = (x0 - 0.5, x0 + w * step - 0.5, y0 - 0.5, y0 + h * step - 0.5)
    return rgb.astype(float), extent


def rgb_image(images, *, bands=None, stretch="asinh", region=None, max_size=2000):
    """A colour view of three bands, scaled to [0, 1].

    Parameters
    ----------
    images : `~photutils_clusterclf.images.MultiBandImage` or mapping
        The images (a mapping band name -> 2-D array is accepted too).
    bands : sequence of 3 str, optional
        Red, green, blue filters; default F814W, F555W (or F606W), F438W
        (or F435W / F336W), falling back to whatever bands exist.
    stretch : {"asinh", "linear", "lupton"}, optional
        Per-band scaling from the median (black) to the 99.5th percentile:
        asinh, linear, or `astropy.visualization.make_lupton_rgb`
        (colour-preserving).
    region : tuple of 4 numbers, optional
        ``(xmin, xmax, ymin, ymax)`` 0-based pixel bounds (end excluded) of
        the part to show; the whole image by default.
    max_size : int, optional
        Larger views are subsampled by an integer stride so that neither
        side exceeds this, keeping big mosaics fast and memory-bounded.

    Returns
    -------
    rgb : `numpy.ndarray`
        (H, W, 3) float in [0, 1]; row 0 is the bottom of the image (show
        it with ``origin="lower"``).
    """
    return _rgb_view(images, bands=bands, stretch=stretch, region=region, max_size=max_size)[0]


def plot_overlay(
    images,
    table,
    *,
    column="class_ml",
    colors=None,
    region=None,
    ax=None,
    origin=None,
    radius=6.0,
    bands=None,
    stretch="asinh",
    max_size=2000,
    legend=True,
):
    """RGB view of the images with a circle per classified candidate.

    The circles of each class form one
    `~matplotlib.collections.PatchCollection` in ``ax.collections``, with
    ``gid`` ``"class1"`` ... ``"class4"`` and the class name as label.

    Parameters
    ----------
    images : `~photutils_clusterclf.images.MultiBandImage` or mapping
        The images. With a plain mapping band -> array the table must have
        pixel positions (sky positions need the WCS of a `MultiBandImage`).
    table : `~astropy.table.Table`
        Candidates with positions (anything
        `~photutils_clusterclf.positions.resolve_positions` accepts) and a
        class column.
    column : str, optional
        Class column; folded with
        `~photutils_clusterclf.classes.fold_classes`, so PHANGS human codes
        work too. Rows of class 0 (not classified) are not drawn.
    colors : dict, optional
        Class -> matplotlib colour; default
        `~photutils_clusterclf.classes.DEFAULT_COLORS`.
    region : tuple of 4 numbers, optional
        ``(xmin, xmax, ymin, ymax)`` 0-based pixel bounds to show; only the
        candidates inside are drawn.
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw; a new figure by default.
    origin : {0, 1}, optional
        Pixel convention of the table's positions, if the table does not
        record it in ``meta["origin"]``.
    radius : float, optional
        Circle radius in (original) pixels.
    bands, stretch, max_size
        As in `rgb_image`.
    legend : bool, optional
        Add a legend with the class names.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
    """
    from .positions import resolve_positions

    if column not in table.colnames:
        raise KeyError(
            f"class column {column!r} not in the table; available: " + ", ".join(table.colnames)
        )
    colors = DEFAULT_COLORS if colors is None else colors
    rgb, extent = _rgb_view(images, bands=bands, stretch=stretch, region=region, max_size=max_size)
    # A plain mapping carries no WCS, so only pixel positions can be resolved.
    positions = resolve_positions(
        table, images if not isinstance(images, Mapping) else None, origin=origin
    )
    classes = fold_classes(table[column])
    x, y = positions.x, positions.y
    inside = (
        np.isfinite(x)
        & np.isfinite(y)
        & (x >= extent[0])
        & (x <= extent[1])
        & (y >= extent[2])
        & (y <= extent[3])
    )
    ax = _new_axes(ax, (8, 8))
    ax.imshow(rgb, origin="lower", extent=extent, interpolation="nearest")
    drawn = _draw_class_circles(ax, x[inside], y[inside], classes[inside], colors, radius)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("x (pixel, 0-based)")
    ax.set_ylabel("y (pixel, 0-based)")
    if legend and drawn:
        _class_legend(ax, drawn, colors, title=column)
    return ax


def _draw_class_circles(ax, x, y, classes, colors, radius):
    """Draw a circle at each position, coloured by class; returns the classes drawn."""
    drawn = []
    for cls in CLASSES:
        rows = np.flatnonzero(classes == cls)
        if not rows.size:
            continue
        # One collection per class draws 10^4 circles in about a second;
        # individual patches take ten times longer.
        circles = PatchCollection(
            [Circle((x[i], y[i]), radius) for i in rows],
            facecolor="none",
            edgecolor=colors[cls],
            linewidth=1.0,
            label=CLASS_LABELS[cls],
        )
        circles.set_gid(f"class{cls}")
        ax.add_collection(circles, autolim=False)
        drawn.append(cls)
    return drawn


def _class_legend(ax, classes, colors, *, title):
    """A legend of open circles, one per class."""
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor="none",
            markeredgecolor=colors[c],
            label=CLASS_LABELS[c],
        )
        for c in classes
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=8, title=title, framealpha=0.7)


def save_overlay(images, table, path, *, overwrite=False, dpi=150, **kwargs):
    """`plot_overlay` written to an image file atomically.

    Parameters
    ----------
    images, table
        As in `plot_overlay`.
    path : str or `~pathlib.Path`
        Output image file.
    overwrite : bool, optional
        Replace an existing file.
    dpi : float, optional
        Resolution.
    **kwargs
        Passed to `plot_overlay`.
    """
    ax = plot_overlay(images, table, **kwargs)
    save_figure(ax.figure, path, overwrite=overwrite, dpi=dpi)


# ---- cutout gallery -----------------------------------------------------------


def plot_cutout_gallery(
    cutouts, labels, *, n_per_class=6, bands=None, band_names=None, classes=CLASSES, title=None
):
    """A grid of example cutouts, one row per class.

    Parameters
    ----------
    cutouts : array-like or `~photutils_clusterclf.cutouts.CutoutBatch`
        (N, B, S, S) cutouts (NaN allowed).
    labels : array-like
        (N,) class of each cutout (folded with
        `~photutils_clusterclf.classes.fold_classes`).
    n_per_class : int, optional
        Columns: the first ``n_per_class`` cutouts of each class are shown.
    bands : sequence of 3 (or 1) int or str, optional
        Band indices (or names, with ``band_names``) for red, green, blue,
        or a single band for grey scale. Default: the last three bands
        (F814W, F555W, F438W for the usual 5-band order), or band 0 if
        there are fewer than three.
    band_names : sequence of str, optional
        Names of the B bands; taken from a `CutoutBatch`.
    classes : sequence of int, optional
        Classes to show, one row each.
    title : str, optional
        Figure title.

    Returns
    -------
    fig : `~matplotlib.figure.Figure`
    """
    if hasattr(cutouts, "data") and hasattr(cutouts, "bands"):
        band_names = cutouts.bands if band_names is None else band_names
        cutouts = cutouts.data
    data = np.asarray(cutouts, dtype=float)
    if data.ndim != 4:
        raise ValueError(f"cutouts must be (N, B, S, S), got shape {data.shape}")
    labels = fold_classes(labels)
    if labels.shape[0] != data.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {data.shape[0]} cutouts")
    nband = data.shape[1]
    if bands is None:
        bands = (nband - 1, nband - 2, nband - 3) if nband >= 3 else (0,)
    names = [str(b).upper() for b in band_names] if band_names is not None else None
    index = []
    for b in bands:
        if isinstance(b, str):
            if names is None or b.upper() not in names:
                raise KeyError(f"band {b!r} not among the cutout bands {names}")
            index.append(names.index(b.upper()))
        else:
            index.append(int(b))
    if len(index) not in (1, 3) or not all(0 <= i < nband for i in index):
        raise ValueError(f"bands must be 1 or 3 indices in 0..{nband - 1}, got {bands}")

    fig = Figure(figsize=(1.3 * n_per_class + 1.5, 1.4 * len(classes)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(classes), n_per_class, squeeze=False)
    for row, cls in enumerate(classes):
        picks = np.flatnonzero(labels == cls)[:n_per_class]
        for col in range(n_per_class):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(CLASS_LABELS.get(cls, str(cls)).replace(" ", "\n", 1), fontsize=8)
            if col >= picks.size:
                ax.set_facecolor("0.9")
                continue
            planes = [_stretch_band(data[picks[col], i], "asinh") for i in index]
            view = np.stack(planes, axis=-1) if len(planes) == 3 else planes[0]
            ax.imshow(
                view,
                origin="lower",
                cmap="gray" if len(planes) == 1 else None,
                interpolation="nearest",
            )
    if title:
        fig.suptitle(title)
    return fig
