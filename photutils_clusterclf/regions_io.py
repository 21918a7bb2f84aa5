"""Classified candidates as DS9 regions: one coloured circle per object.

DS9 files of candidates are read by
`~photutils_clusterclf.catalogs.read_candidates`; this module goes the
other way. `write_class_regions` formats the DS9 text directly (the same
text the ``regions`` package writes), without building one region object
per row: for 10^5 candidates that is a fraction of a second instead of
tens of seconds.
"""

import warnings

import astropy.units as u
import numpy as np
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs.utils import proj_plane_pixel_scales, wcs_to_celestial_frame
from regions import (
    CirclePixelRegion,
    CircleSkyRegion,
    PixCoord,
    RegionMeta,
    Regions,
    RegionVisual,
)

from .classes import CLASSES, DEFAULT_COLORS, UNCLASSIFIED, fold_classes
from .columns import (
    column_values,
    find_column,
    find_sky,
    probability_columns,
    table_skycoord,
)
from .fileio import atomic_output
from .positions import reference_wcs, resolve_positions

__all__ = ["class_regions", "write_class_regions"]

#: Celestial frames with the same name in astropy and DS9.
DS9_SKY_FRAMES = ("icrs", "fk5", "fk4", "galactic")

#: DS9 colour of rows without a class (only drawn with include_unclassified).
UNCLASSIFIED_COLOR = "white"


def class_regions(
    table,
    *,
    column="class_ml",
    prob_columns=None,
    colors=None,
    radius=5.0,
    frame="pixel",
    wcs=None,
    origin=None,
    use="auto",
    columns=None,
    include_unclassified=False,
):
    """One coloured, labelled circle region per classified row of a table.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Table with a class column and positions (any columns accepted by
        `~photutils_clusterclf.positions.resolve_positions`).
    column : str, optional
        Class column: ``"class_ml"`` (default output), a PHANGS-style
        ``"PHANGS_CLUSTER_CLASS_ML_VGG"``, or a human class column. Codes
        are folded with `~photutils_clusterclf.classes.fold_classes`
        (PHANGS 5-19 -> 4), and the label shows the folded class.
    prob_columns : sequence of 4 str or dict, optional
        Probability columns of classes 1-4 (dict: class -> column). By
        default the columns written with ``column`` by the classifier are
        used if all four exist: ``<stem>prob_class1..4`` for a
        ``<stem>class_ml`` column, ``<column>_PROB1..4`` for a PHANGS-style
        one; otherwise the ``<column>_qual`` column (any case, e.g.
        ``class_ml_qual`` or ``PHANGS_CLUSTER_CLASS_ML_VGG_QUAL``; with
        ``aggregate="mode"`` the vote fraction) if present. The label is
        ``"<class> <probability of that class>"``, e.g. ``"1 0.87"``, or
        the class alone if no probability is known.
    colors : dict, optional
        Class -> DS9 colour, overriding
        `~photutils_clusterclf.classes.DEFAULT_COLORS` (class 0, drawn only
        with ``include_unclassified``, defaults to white).
    radius : float or `~astropy.units.Quantity`, optional
        Circle radius: a number or ``u.pix`` quantity is in pixels, an
        angle is on the sky. Converting between the two needs a WCS.
    frame : {"pixel", "sky"}, optional
        Pixel regions (0-based in memory; the DS9 writer adds 1) or sky
        regions. Sky regions come from the table's sky columns if it has
        some (and ``use`` is not ``"pixel"``), else from the pixel positions
        through ``wcs``; plain RA/Dec columns are taken in the WCS's frame
        (ICRS without a WCS).
    wcs : `~astropy.wcs.WCS` or `~photutils_clusterclf.images.MultiBandImage`, optional
        Celestial WCS of the pixel grid (for a MultiBandImage, that of its
        reference band).
    origin, use, columns : optional
        Passed to `~photutils_clusterclf.positions.resolve_positions` for
        pixel positions.
    include_unclassified : bool, optional
        Also draw rows with class 0 (not classified). They are skipped by
        default: skipping only concerns the display, the table keeps all
        its rows.

    Returns
    -------
    regions : `~regions.Regions`
        `~regions.CirclePixelRegion` or `~regions.CircleSkyRegion` objects
        in table order, with ``visual["color"]`` and ``meta["text"]``.
        Rows without a valid position are left out with a warning.

    Examples
    --------
    >>> from astropy.table import QTable
    >>> from photutils_clusterclf.regions_io import class_regions
    >>> t = QTable({"PHANGS_X": [10.0, 20.0, 30.0], "PHANGS_Y": [5.0, 8.0, 9.0],
    ...             "class_ml": [1, 0, 3], "class_ml_qual": [0.87, 0.0, 0.61]})
    >>> print(class_regions(t).serialize(format="ds9"))  # DS9 files are 1-based
    # Region file format: DS9 astropy/regions
    image
    circle(11.00000000,6.00000000,5.00000000) # text={1 0.87} color=red
    circle(31.00000000,10.00000000,5.00000000) # text={3 0.61} color=blue
    <BLANKLINE>
    """
    rows = _region_rows(
        table,
        column=column,
        prob_columns=prob_columns,
        colors=colors,
        radius=radius,
        frame=frame,
        wcs=wcs,
        origin=origin,
        use=use,
        columns=columns,
        include_unclassified=include_unclassified,
    )
    out = []
    for i, (text, color) in enumerate(zip(rows["texts"], rows["colors"], strict=True)):
        meta = RegionMeta({"text": text})
        visual = RegionVisual({"color": color})
        if frame == "sky":
            out.append(CircleSkyRegion(rows["centres"][i], rows["size"], meta=meta, visual=visual))
        else:
            out.append(
                CirclePixelRegion(
                    PixCoord(rows["x"][i], rows["y"][i]), rows["size"], meta=meta, visual=visual
                )
            )
    return Regions(out)


def _region_rows(
    table,
    *,
    column,
    prob_columns,
    colors,
    radius,
    frame,
    wcs,
    origin,
    use,
    columns,
    include_unclassified,
):
    """Centres, radius, labels and colours of the rows that get a region."""
    if frame not in ("pixel", "sky"):
        raise ValueError(f"frame must be 'pixel' or 'sky', not {frame!r}")
    ref_wcs = reference_wcs(wcs)
    classes = fold_classes(_class_column(table, column))
    probs = _class_probabilities(table, column, classes, prob_columns)
    palette = {UNCLASSIFIED: UNCLASSIFIED_COLOR, **DEFAULT_COLORS, **(colors or {})}
    rows = {"frame": frame}
    if frame == "sky":
        centres = _sky_centres(table, ref_wcs, origin, use, columns)
        sph = centres.spherical
        valid = np.isfinite(sph.lon.deg) & np.isfinite(sph.lat.deg)
        rows["size"] = _radius(radius, "sky", ref_wcs)
    else:
        pos = resolve_positions(table, ref_wcs, origin=origin, use=use, columns=columns)
        valid = pos.valid
        rows["size"] = _radius(radius, "pixel", ref_wcs)
    keep = np.ones(len(table), bool) if include_unclassified else classes != UNCLASSIFIED
    dropped = np.count_nonzero(keep & ~valid)
    if dropped:
        warnings.warn(
            f"{dropped} row(s) with a class have no valid position and get no region",
            AstropyUserWarning,
        )
    index = np.flatnonzero(keep & valid)
    if frame == "sky":
        rows["centres"] = centres[index]
    else:
        rows["x"], rows["y"] = pos.x[index], pos.y[index]
    rows["texts"] = [
        f"{int(c)}" if not np.isfinite(p) else f"{int(c)} {p:.2f}"
        for c, p in zip(classes[index], probs[index], strict=True)
    ]
    rows["colors"] = [palette.get(int(c), UNCLASSIFIED_COLOR) for c in classes[index]]
    return rows


def _ds9_text(rows, precision=8):
    """The DS9 file of `_region_rows`, as the ``regions`` package would write it."""
    n = len(rows["texts"])
    if n == 0:
        return ""
    if rows["frame"] == "sky":
        centres = rows["centres"]
        frame = centres.frame.name
        if frame not in DS9_SKY_FRAMES:
            raise ValueError(
                f"sky frame {frame} cannot be written to a DS9 file; "
                f"accepted: {', '.join(DS9_SKY_FRAMES)}"
            )
        coords = [
            c.replace(" ", ",") for c in np.atleast_1d(centres.to_string(precision=precision))
        ]
        size = rows["size"].to_string(unit="deg", precision=precision)[:-4]
        shapes = [f"circle({c},{size})" for c in coords]
    else:
        frame = "image"
        size = f"{rows['size']:.{precision}f}"
        shapes = [
            f"circle({x + 1:0.{precision}f},{y + 1:0.{precision}f},{size})"
            for x, y in zip(rows["x"], rows["y"], strict=True)
        ]
    texts, colors = rows["texts"], rows["colors"]
    # Properties shared by every region go on a "global" line, as in regions.
    shared_text = len(set(texts)) == 1
    shared_color = len(set(colors)) == 1
    header = "# Region file format: DS9 astropy/regions\n"
    shared = ([f"text={{{texts[0]}}}"] if shared_text else []) + (
        [f"color={colors[0]}"] if shared_color else []
    )
    if shared:
        header += f"global {' '.join(shared)}\n"
    lines = []
    for shape, text, color in zip(shapes, texts, colors, strict=True):
        meta = ([] if shared_text else [f"text={{{text}}}"]) + (
            [] if shared_color else [f"color={color}"]
        )
        lines.append(f"{shape} # {' '.join(meta)}" if meta else shape)
    return header + f"{frame}\n" + "\n".join(lines) + "\n"


def write_class_regions(table, path, *, overwrite=False, **kwargs):
    """Write `class_regions` of a table to a DS9 region file, atomically.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Classified table.
    path : str or `~pathlib.Path`
        Output DS9 file (``.reg``).
    overwrite : bool, optional
        Replace an existing file (otherwise `FileExistsError`).
    **kwargs
        Options of `class_regions`.

    Returns
    -------
    n : int
        The number of regions written. The file is the one
        ``class_regions(table, **kwargs).write(path, format="ds9")`` would
        write, formatted directly.
    """
    options = {
        "column": "class_ml",
        "prob_columns": None,
        "colors": None,
        "radius": 5.0,
        "frame": "pixel",
        "wcs": None,
        "origin": None,
        "use": "auto",
        "columns": None,
        "include_unclassified": False,
    }
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise TypeError(f"unexpected options {unknown}; accepted: {sorted(options)}")
    rows = _region_rows(table, **{**options, **kwargs})
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(_ds9_text(rows))
    return len(rows["texts"])


def _class_column(table, column):
    name = find_column(table, column)
    if name is None:
        classish = [c for c in table.colnames if "class" in c.lower()]
        raise KeyError(
            f"class column {column!r} not in the table; pass column= one of "
            f"{', '.join(classish) or '(no column has class in its name)'}"
        )
    return table[name]


def _class_probabilities(table, column, classes, prob_columns):
    """Probability of each row's class (NaN where unknown), float64."""
    probs = np.full(len(table), np.nan)
    if prob_columns is None:
        names = probability_columns(table, column)
        if names is None:
            qual = find_column(table, f"{column}_qual")
            if qual is not None:
                probs[:] = column_values(table[qual], qual)
            return probs
    else:
        names = (
            dict(prob_columns)
            if isinstance(prob_columns, dict)
            else dict(zip(CLASSES, prob_columns))
        )
        if sorted(names) != list(CLASSES):
            raise ValueError(
                "prob_columns must name one column for each of the "
                f"classes 1-4, not {prob_columns!r}"
            )
        found = {k: find_column(table, n) for k, n in names.items()}
        missing = [names[k] for k, name in found.items() if name is None]
        if missing:
            raise KeyError(f"probability columns {', '.join(missing)} not in the table")
        names = found
    for k, name in names.items():
        rows = classes == k
        probs[rows] = column_values(table[name], name)[rows]
    return probs


def _sky_centres(table, ref_wcs, origin, use, columns):
    """Sky positions of the rows: the sky columns, or pixel columns through the WCS."""
    sky = find_sky(table) if (use != "pixel" and columns is None) else None
    if sky is not None:
        frame = wcs_to_celestial_frame(ref_wcs) if ref_wcs is not None else None
        return table_skycoord(table, sky, frame).reshape(-1)
    if ref_wcs is None:
        raise ValueError(
            "frame='sky' needs sky columns in the table or a wcs= to convert its pixel positions"
        )
    pos = resolve_positions(table, ref_wcs, origin=origin, use=use, columns=columns)
    return ref_wcs.pixel_to_world(pos.x, pos.y)


def _radius(radius, frame, ref_wcs):
    """The radius as pixels (float) or an angle (Quantity) for ``frame``."""
    quantity = radius if isinstance(radius, u.Quantity) else radius * u.pix
    angular = quantity.unit.physical_type == "angle"
    if not angular and quantity.unit != u.pix:
        raise ValueError(f"radius has wrong units ({quantity.unit}): use pixels or an angle")
    if angular == (frame == "sky"):
        return quantity if angular else float(quantity.value)
    if ref_wcs is None:
        raise ValueError(f"a radius of {radius} for {frame} regions needs wcs= to convert it")
    # mean pixel scale of the celestial axes, in degrees per pixel
    scale = np.mean(proj_plane_pixel_scales(ref_wcs)) * u.deg / u.pix
    if angular:
        return float((quantity / scale).to_value(u.pix))
    return (quantity * scale).to(u.arcsec)
