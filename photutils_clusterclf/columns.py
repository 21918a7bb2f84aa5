"""Catalogue column conventions: which columns hold positions, and their values.

The one place that knows the pixel and sky column names of PHANGS-HST,
LEGUS, photutils and SExtractor catalogues (with the pixel origin each
implies), used by `~photutils_clusterclf.positions` and
`~photutils_clusterclf.regions_io`.
"""

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, SkyCoord

from .classes import CLASSES

__all__ = [
    "PIXEL_COLUMNS",
    "SKY_COLUMNS",
    "column_values",
    "find_column",
    "find_pixel",
    "find_sky",
    "probability_columns",
    "table_skycoord",
]

#: Pixel column pairs, in the order they are looked for (case-insensitive),
#: with the origin they imply (None: unknown, must be given).
PIXEL_COLUMNS = (
    (("PHANGS_X", "PHANGS_Y"), 0),
    (("x_centroid", "y_centroid"), 0),  # photutils >= 2
    (("xcentroid", "ycentroid"), 0),  # photutils 1.x
    (("x_fit", "y_fit"), 0),  # photutils PSF photometry
    (("x_init", "y_init"), 0),
    (("x_0", "y_0"), 0),
    (("x_center", "y_center"), 0),  # photutils aperture photometry
    (("xcenter", "ycenter"), 0),  # photutils 1.x aperture photometry
    (("x_peak", "y_peak"), 0),  # photutils find_peaks
    (("x", "y"), None),  # also X/Y; LEGUS files are 1-based
    (("x_image", "y_image"), None),  # SExtractor (1-based) or others
)

#: Sky column pairs (longitude, latitude), in the order they are looked for.
SKY_COLUMNS = (
    ("PHANGS_RA", "PHANGS_DEC"),
    ("ra", "dec"),
    ("RAJ2000", "DEJ2000"),
    ("ALPHA_J2000", "DELTA_J2000"),
    ("ra_deg", "dec_deg"),
)


def column_values(column, name, kind=None):
    """Plain float64 values of a table column, NaN where masked/invalid.

    ``kind`` is "pixel" (unit must be none or pix), "sky" (unit must be
    an angle; none means degrees; values returned in degrees) or None (no
    unit check).
    """
    unit = getattr(column, "unit", None)
    if unit is not None and unit == u.dimensionless_unscaled:
        unit = None
    if kind == "sky":
        if unit is not None and unit.physical_type != "angle":
            raise ValueError(
                f"column {name} has wrong units ({unit}): sky columns "
                "must be angles (deg, arcsec, hourangle...) or unitless "
                "degrees"
            )
        scale = 1.0 if unit is None else unit.to(u.deg)
    else:
        if kind == "pixel" and unit is not None and unit != u.pix:
            raise ValueError(
                f"column {name} has wrong units ({unit}): pixel columns must be unitless or in pix"
            )
        scale = 1.0
    # MaskedColumn, MaskedQuantity (QTable) and plain columns keep their
    # mask in different places
    mask = getattr(column, "mask", None)
    raw = (
        getattr(column, "unmasked", column)
        if isinstance(column, u.Quantity)
        else np.ma.getdata(column)
    )
    raw = raw.value if isinstance(raw, u.Quantity) else raw
    try:
        values = np.array(raw, dtype=np.float64, ndmin=1) * scale
    except (TypeError, ValueError):
        dtype = np.asarray(raw).dtype
        raise ValueError(f"column {name} is not numeric (dtype {dtype})") from None
    if mask is not None:
        values[np.broadcast_to(np.asarray(mask, dtype=bool), values.shape)] = np.nan
    values[~np.isfinite(values)] = np.nan
    return values


def find_column(table, name):
    """Actual column name matching ``name`` (exact first, then case-insensitive)."""
    if name in table.colnames:
        return name
    matches = [c for c in table.colnames if c.lower() == name.lower()]
    return matches[0] if matches else None


def find_pair(table, pair):
    found = tuple(find_column(table, name) for name in pair)
    return found if None not in found else None


def find_pixel(table):
    """(x column, y column, implied origin) of the first known pixel pair, or None."""
    for pair, implied in PIXEL_COLUMNS:
        found = find_pair(table, pair)
        if found:
            return found[0], found[1], implied
    return None


def find_sky(table):
    """Sky columns of a table: a SkyCoord column name (str), a pair, or None."""
    skycoords = [c for c in table.colnames if isinstance(table[c], SkyCoord)]
    if skycoords:
        return "sky_centroid" if "sky_centroid" in skycoords else skycoords[0]
    for pair in SKY_COLUMNS:
        found = find_pair(table, pair)
        if found:
            return found
    return None


def table_skycoord(table, sky, frame=None):
    """SkyCoord of a table's sky columns (see `find_sky`).

    Plain lon/lat columns carry no frame: they are taken in ``frame``
    (that of the reference WCS, in which catalogue positions are measured),
    ICRS if None, so that no spurious frame conversion shifts them.
    """
    if isinstance(sky, str):
        return table[sky]
    frame = "icrs" if frame is None else frame
    equatorial = getattr(frame, "name", frame) in ("icrs", "fk5", "fk4", "fk4noeterms")
    lon = _sky_degrees(table[sky[0]], sky[0], u.hourangle if equatorial else u.deg)
    lat = _sky_degrees(table[sky[1]], sky[1], u.deg)
    return SkyCoord(lon, lat, unit=u.deg, frame=frame)


def _sky_degrees(column, name, string_unit):
    """Degrees of a sky column; text columns may hold sexagesimal angles.

    Text such as ``"01:36:41.7"`` or ``"+15:47:01"`` (or with letters,
    ``"1h36m41.7s"``) is parsed by `~astropy.coordinates.Angle`, in
    ``string_unit`` (hours for right ascension) unless the text names its
    unit; text that is a plain number is taken as degrees, like numeric
    columns. Empty or masked entries become NaN.
    """
    if np.asarray(column).dtype.kind not in "US":
        return column_values(column, name, "sky")
    text = np.char.strip(np.ma.getdata(column).astype(str))
    missing = np.ma.getmaskarray(column) | (text == "")
    degrees = np.full(text.shape, np.nan)
    try:
        degrees[~missing] = text[~missing].astype(np.float64)
    except ValueError:
        try:
            degrees[~missing] = Angle(text[~missing], unit=string_unit).deg
        except ValueError as exc:
            raise ValueError(
                f"column {name} holds text that is not an angle ({exc}); accepted are "
                f"numbers in degrees or sexagesimal text such as "
                f"{'01:36:41.7 (hours)' if string_unit == u.hourangle else '+15:47:01'}"
            ) from None
    return degrees


def accepted_names():
    pixel = ", ".join("/".join(p) for p, _ in PIXEL_COLUMNS)
    sky = ", ".join("/".join(p) for p in SKY_COLUMNS)
    return f"pixel columns {pixel}; sky columns a SkyCoord column, {sky}"


def is_angular(column):
    unit = getattr(column, "unit", None)
    return unit is not None and unit.physical_type == "angle"


def probability_columns(table, column):
    """Class -> probability column written with ``column``, or None.

    Only columns of the same run are used: ``<stem>prob_class<k>`` for a
    ``<stem>class_ml`` column (default style, any prefix), or
    ``<column>_PROB<k>`` (PHANGS style).
    """
    patterns = [f"{column}_prob{{k}}"]
    if column.lower().endswith("class_ml"):
        patterns.insert(0, column[: -len("class_ml")] + "prob_class{k}")
    for pattern in patterns:
        names = {k: find_column(table, pattern.format(k=k)) for k in CLASSES}
        if None not in names.values():
            return names
    return None
