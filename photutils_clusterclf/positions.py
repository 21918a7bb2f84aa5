"""Turn any accepted position input into 0-based pixel positions.

Accepted inputs (DESIGN.md section 6): an Astropy `~astropy.table.Table` /
`~astropy.table.QTable` with pixel or sky columns, a
`~astropy.coordinates.SkyCoord`, point / circle regions from the ``regions``
package (a list, a `~regions.Regions`, or a DS9 file path), or an (N, 2)
array of pixel ``(x, y)``.

Origin rules (pixel inputs)
---------------------------
All positions returned are **0-based** (numpy / photutils / Astropy WCS
convention: the centre of the first pixel is 0.0). Inputs are converted as
follows:

1. an explicit ``origin=0`` or ``origin=1`` always wins;
2. otherwise ``table.meta["origin"]`` (lower case; set by the catalogue
   readers: 0 for PHANGS-HST, 1 for LEGUS). The upper-case FITS keyword
   ``ORIGIN`` names the software that wrote a file and is not used;
3. otherwise columns with a known convention: ``PHANGS_X/PHANGS_Y`` and
   photutils columns (``x_centroid``, ``xcentroid``, ``x_fit``, ``x_init``,
   ``x_0``, ``x_center``, ``xcenter``) are 0-based;
4. any other pixel columns (``x/y``, ``x_image/y_image``, ...) raise
   `ValueError` asking for ``origin``: guessing would shift every cutout by
   one pixel.

(N, 2) arrays are 0-based unless ``origin=1`` is given. Pixel regions are
always 0-based: the ``regions`` package converts the 1-based coordinates of
DS9 files when it reads them, so ``origin=1`` is refused for regions.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
import regions
from astropy.coordinates import Angle, SkyCoord
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from astropy.wcs.utils import wcs_to_celestial_frame

__all__ = ["Positions", "band_pixel_positions", "resolve_positions"]

#: Pixel column pairs, in the order they are looked for (case-insensitive),
#: with the origin they imply (None: unknown, must be given).
PIXEL_COLUMNS = (
    (("PHANGS_X", "PHANGS_Y"), 0),
    (("x_centroid", "y_centroid"), 0),   # photutils >= 2
    (("xcentroid", "ycentroid"), 0),     # photutils 1.x
    (("x_fit", "y_fit"), 0),             # photutils PSF photometry
    (("x_init", "y_init"), 0),
    (("x_0", "y_0"), 0),
    (("x_center", "y_center"), 0),       # photutils aperture photometry
    (("xcenter", "ycenter"), 0),         # photutils 1.x aperture photometry
    (("x", "y"), None),                  # also X/Y; LEGUS files are 1-based
    (("x_image", "y_image"), None),      # SExtractor (1-based) or others
)

#: Sky column pairs (longitude, latitude), in the order they are looked for.
SKY_COLUMNS = (
    ("PHANGS_RA", "PHANGS_DEC"),
    ("ra", "dec"),
    ("RAJ2000", "DEJ2000"),
    ("ALPHA_J2000", "DELTA_J2000"),
    ("ra_deg", "dec_deg"),
)

#: Region classes whose centre is a position.
REGION_TYPES = ("PointPixelRegion", "CirclePixelRegion",
                "PointSkyRegion", "CircleSkyRegion")

#: Pixel/sky disagreement (auto mode): rows further apart than this...
DISAGREE_PIXELS = 1.0
#: ...must not be more than this fraction of the valid rows.
DISAGREE_FRACTION = 0.01

_ORIGIN_HELP = "pass origin=0 (numpy/photutils) or origin=1 (FITS/IRAF/DS9/LEGUS)"


@dataclass
class Positions:
    """0-based pixel positions on the reference band's grid.

    Attributes
    ----------
    x, y : `numpy.ndarray` of float64
        0-based pixel coordinates; NaN where the input was masked, NaN or
        infinite. Rows are never dropped: row ``i`` is input row ``i``.
    description : str
        Where the positions came from, e.g.
        ``"pixel columns PHANGS_X/PHANGS_Y (origin=0)"``; recorded in the
        output table's meta.
    """

    x: np.ndarray
    y: np.ndarray
    description: str

    def __len__(self):
        return len(self.x)

    @property
    def valid(self):
        """`numpy.ndarray` of bool: True where both coordinates are finite."""
        return np.isfinite(self.x) & np.isfinite(self.y)


def resolve_positions(source, images=None, *, origin=None, use="auto", columns=None):
    """Convert a position input to 0-based pixel positions on the reference grid.

    Parameters
    ----------
    source : table, `~astropy.coordinates.SkyCoord`, regions, path or array
        One of:

        - `~astropy.table.Table` / `~astropy.table.QTable` with pixel columns
          (case-insensitive, looked for in this order: ``PHANGS_X/PHANGS_Y``,
          ``x_centroid/y_centroid``, ``xcentroid/ycentroid``,
          ``x_fit/y_fit``, ``x_init/y_init``, ``x_0/y_0``,
          ``x_center/y_center``, ``xcenter/ycenter``, ``x/y``,
          ``x_image/y_image``) or sky columns (a `~astropy.coordinates.SkyCoord`
          column such as photutils' ``sky_centroid``, then
          ``PHANGS_RA/PHANGS_DEC``, ``ra/dec``, ``RAJ2000/DEJ2000``,
          ``ALPHA_J2000/DELTA_J2000``, ``ra_deg/dec_deg``). Sky columns are
          angles (unitless values are degrees) taken in the frame of the
          reference WCS, or text: sexagesimal (``"01:36:41.7"``,
          ``"1h36m41.7s"``: right ascension in hours; ``"+15:47:01"``) or
          decimal degrees;
        - a `~astropy.coordinates.SkyCoord` (scalar or array);
        - a `~regions.PointPixelRegion`, `~regions.CirclePixelRegion`,
          `~regions.PointSkyRegion` or `~regions.CircleSkyRegion`, a list of
          them, or a `~regions.Regions`; the centres are used;
        - a DS9 region file path (``.reg`` or ``.ds9``);
        - an (N, 2) array of pixel ``(x, y)``, 0-based unless ``origin=1``.
    images : `~photutils_clusterclf.images.MultiBandImage` or `~astropy.wcs.WCS`
        Optional.
        It gives the WCS of the reference band, needed for sky positions and
        for the pixel/sky consistency check. A celestial WCS may be passed
        directly.
    origin : {0, 1}, optional
        Origin of pixel inputs (see the module docstring for the rules when
        it is not given). Ignored for sky inputs.
    use : {"auto", "pixel", "sky"}, optional
        Which columns of a table to use. ``"auto"`` takes pixel columns if
        present, else sky columns. When a table has both and a WCS is
        known, ``"auto"`` warns (`~astropy.utils.exceptions.AstropyUserWarning`)
        if they disagree by more than 1 px for more than 1 % of the rows.
    columns : str or (str, str), optional
        Column names to use instead of the detection: a pair of pixel
        (x, y) or sky (lon, lat) columns, or the name of a
        `~astropy.coordinates.SkyCoord` column. A pair is sky if its
        values carry angular units or ``use="sky"``.

    Returns
    -------
    positions : `Positions`
        One entry per input row / object, in input order, NaN where invalid.

    Raises
    ------
    ValueError
        No recognised columns (the message lists the accepted names),
        unknown origin, wrong units, sky positions without a WCS,
        unsupported region shapes, or a badly shaped array.
    FileNotFoundError
        A region file path that does not exist.

    Examples
    --------
    A LEGUS-style table with 1-based pixel columns:

    >>> from astropy.table import Table
    >>> from photutils_clusterclf.positions import resolve_positions
    >>> legus = Table({"x": [11.0, 25.5], "y": [31.0, 8.0]}, meta={"origin": 1})
    >>> pos = resolve_positions(legus)
    >>> pos.x, pos.y
    (array([10. , 24.5]), array([30.,  7.]))
    >>> pos.description
    'pixel columns x/y (origin=1)'
    """
    if origin not in (None, 0, 1):
        raise ValueError(f"origin must be 0 or 1, not {origin!r}")
    if use not in ("auto", "pixel", "sky"):
        raise ValueError(f"use must be 'auto', 'pixel' or 'sky', not {use!r}")
    ref_wcs = _reference_wcs(images)

    if isinstance(source, (str, Path)):
        return _from_regions(_read_ds9(source), ref_wcs, origin, f"DS9 file {source}")
    if isinstance(source, Table):
        return _from_table(source, ref_wcs, origin, use, columns)
    if isinstance(source, SkyCoord):
        x, y = _sky_to_pixel(source, ref_wcs)
        return Positions(x, y, "SkyCoord")
    if _is_region(source):
        return _from_regions([source], ref_wcs, origin, "region")
    if _is_region_list(source):
        return _from_regions(list(source), ref_wcs, origin, "regions")
    return _from_array(source, origin)


def band_pixel_positions(images, x, y, *, bands=None):
    """0-based pixel positions in every band of a multi-band image.

    Parameters
    ----------
    images : `~photutils_clusterclf.images.MultiBandImage`
        The images; ``x`` and ``y`` refer to its reference band's grid.
    x, y : array-like
        0-based pixel positions on the reference grid; NaN allowed.
    bands : sequence of str, optional
        Only these bands (names as in ``images.bands``), in this order;
        default all bands of ``images``. Other bands are not converted.

    Returns
    -------
    positions : dict
        Band name -> ``(x, y)`` float64 arrays. Bands on the reference grid
        (``images.same_grid(band)``) share the input arrays (not copies:
        do not modify them in place); other bands go reference pixel ->
        sky (reference WCS) -> band pixel (band WCS), vectorised. NaN in,
        NaN out.

    Raises
    ------
    ValueError
        A band is on another grid but it or the reference band has no WCS.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, not {x.shape} "
                         f"and {y.shape}")
    ref_wcs = images.wcs(images.reference_band)
    valid = np.isfinite(x) & np.isfinite(y)
    sky = None
    out = {}
    for band in images.bands if bands is None else bands:
        if images.same_grid(band):
            out[band] = (x, y)
            continue
        band_wcs = images.wcs(band)
        if ref_wcs is None or band_wcs is None:
            raise ValueError(f"band {band} is not on the grid of the reference band "
                             f"{images.reference_band} and one of them has no WCS; "
                             "give both a celestial WCS or resample them to one grid")
        if sky is None:  # one pixel -> sky conversion shared by all other bands
            sky = ref_wcs.pixel_to_world(x[valid], y[valid])
        bx = np.full(x.shape, np.nan)
        by = np.full(y.shape, np.nan)
        # only finite rows go through the WCS: SIP inversion iterates and
        # must not see NaN
        bx[valid], by[valid] = band_wcs.world_to_pixel(sky)
        out[band] = (bx, by)
    return out


# --------------------------------------------------------------------------
# helpers


def _reference_wcs(images):
    """The celestial WCS of the reference band, or None."""
    if images is None:
        return None
    if isinstance(images, WCS):
        return images.celestial if images.has_celestial else None
    return images.wcs(images.reference_band)


def _need_wcs(ref_wcs, what):
    if ref_wcs is None:
        raise ValueError(f"{what} needs a WCS: pass images whose reference band "
                         "has a celestial WCS (or use pixel positions)")


def _sky_to_pixel(coords, ref_wcs, what="sky positions"):
    """SkyCoord -> 0-based float64 pixel arrays (NaN preserved)."""
    _need_wcs(ref_wcs, what)
    x, y = ref_wcs.world_to_pixel(coords.reshape(-1))
    return _clean(x), _clean(y)


def _clean(values):
    """float64 1-D copy with inf replaced by NaN."""
    values = np.array(values, dtype=np.float64, ndmin=1)
    values[~np.isfinite(values)] = np.nan
    return values


def _column_values(column, name, kind=None):
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
            raise ValueError(f"column {name} has wrong units ({unit}): sky columns "
                             "must be angles (deg, arcsec, hourangle...) or unitless "
                             "degrees")
        scale = 1.0 if unit is None else unit.to(u.deg)
    else:
        if kind == "pixel" and unit is not None and unit != u.pix:
            raise ValueError(f"column {name} has wrong units ({unit}): pixel columns "
                             "must be unitless or in pix")
        scale = 1.0
    # MaskedColumn, MaskedQuantity (QTable) and plain columns keep their
    # mask in different places
    mask = getattr(column, "mask", None)
    raw = getattr(column, "unmasked", column) if isinstance(column, u.Quantity) \
        else np.ma.getdata(column)
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


def _find_column(table, name):
    """Actual column name matching ``name`` (exact first, then case-insensitive)."""
    if name in table.colnames:
        return name
    matches = [c for c in table.colnames if c.lower() == name.lower()]
    return matches[0] if matches else None


def _find_pair(table, pair):
    found = tuple(_find_column(table, name) for name in pair)
    return found if None not in found else None


def _find_pixel(table):
    """(x column, y column, implied origin) of the first known pixel pair, or None."""
    for pair, implied in PIXEL_COLUMNS:
        found = _find_pair(table, pair)
        if found:
            return found[0], found[1], implied
    return None


def _find_sky(table):
    """Sky columns of a table: a SkyCoord column name (str), a pair, or None."""
    skycoords = [c for c in table.colnames if isinstance(table[c], SkyCoord)]
    if skycoords:
        return "sky_centroid" if "sky_centroid" in skycoords else skycoords[0]
    for pair in SKY_COLUMNS:
        found = _find_pair(table, pair)
        if found:
            return found
    return None


def _table_skycoord(table, sky, frame=None):
    """SkyCoord of a table's sky columns (see `_find_sky`).

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
        return _column_values(column, name, "sky")
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


def _accepted_names():
    pixel = ", ".join("/".join(p) for p, _ in PIXEL_COLUMNS)
    sky = ", ".join("/".join(p) for p in SKY_COLUMNS)
    return f"pixel columns {pixel}; sky columns a SkyCoord column, {sky}"


def _is_angular(column):
    unit = getattr(column, "unit", None)
    return unit is not None and unit.physical_type == "angle"


def _override_columns(table, columns, use):
    """(pixel, sky) specification from an explicit ``columns`` argument."""
    names = (columns,) if isinstance(columns, str) else tuple(columns)
    if len(names) not in (1, 2) or (len(names) == 1 and not isinstance(columns, str)):
        raise ValueError("columns must be a pair of names or one SkyCoord column name, "
                         f"not {columns!r}")
    found = tuple(_find_column(table, n) for n in names)
    missing = [n for n, f in zip(names, found) if f is None]
    if missing:
        raise ValueError(f"columns {', '.join(missing)} not in the table "
                         f"(columns: {', '.join(table.colnames)})")
    if len(found) == 1:
        if not isinstance(table[found[0]], SkyCoord):
            raise ValueError(f"column {found[0]} is not a SkyCoord column; "
                             "pass a pair (x, y) or (lon, lat) of column names")
        return None, found[0]
    if use == "sky" or _is_angular(table[found[0]]):
        return None, found
    return (found[0], found[1], None), None


def _from_table(table, ref_wcs, origin, use, columns):
    if columns is not None:
        pixel, sky = _override_columns(table, columns, use)
    else:
        pixel, sky = _find_pixel(table), _find_sky(table)
    if use == "pixel" and pixel is None:
        raise ValueError(f"use='pixel' but the table has no pixel columns; accepted: "
                         f"{_accepted_names()}")
    if use == "sky" and sky is None:
        raise ValueError(f"use='sky' but the table has no sky columns; accepted: "
                         f"{_accepted_names()}")
    if pixel is None and sky is None:
        raise ValueError(f"no position columns found in the table "
                         f"(columns: {', '.join(table.colnames) or 'none'}); accepted: "
                         f"{_accepted_names()}; or pass columns=(x, y)")

    if use == "sky" or pixel is None:
        return _sky_positions(table, sky, ref_wcs)

    xname, yname, implied = pixel
    meta_origin = table.meta.get("origin") if table.meta else None
    candidates = (origin, meta_origin, implied)
    used_origin = next((o for o in candidates if o is not None), None)
    if used_origin not in (0, 1):
        if used_origin is None:
            hint = " (or use='sky')" if sky is not None else ""
            raise ValueError(f"pixel columns {xname}/{yname} have no known origin: "
                             f"{_ORIGIN_HELP}{hint}; on the command line "
                             "--origin 0 or 1")
        raise ValueError(f"table.meta['origin'] is {used_origin!r}; it must be 0 or 1")
    x = _column_values(table[xname], xname, "pixel") - used_origin
    y = _column_values(table[yname], yname, "pixel") - used_origin
    positions = Positions(x, y, f"pixel columns {xname}/{yname} (origin={used_origin})")
    if use == "auto" and sky is not None and ref_wcs is not None:
        _check_agreement(positions, _sky_positions(table, sky, ref_wcs))
    return positions


def _sky_positions(table, sky, ref_wcs):
    name = sky if isinstance(sky, str) else "/".join(sky)
    _need_wcs(ref_wcs, f"sky columns {name}")
    coords = _table_skycoord(table, sky, wcs_to_celestial_frame(ref_wcs))
    x, y = _sky_to_pixel(coords, ref_wcs)
    return Positions(x, y, f"sky columns {name}")


def _check_agreement(pixel, sky):
    """Warn if pixel and sky columns of one table disagree (auto mode)."""
    both = pixel.valid & sky.valid
    if not both.any():
        return
    offset = np.hypot(pixel.x[both] - sky.x[both], pixel.y[both] - sky.y[both])
    bad = np.mean(offset > DISAGREE_PIXELS)
    if bad > DISAGREE_FRACTION:
        warnings.warn(
            f"{pixel.description} and {sky.description} disagree by more than "
            f"{DISAGREE_PIXELS:g} px for {100 * bad:.1f}% of rows (median offset "
            f"{np.median(offset):.2f} px); using the {pixel.description} "
            "(pass use='sky' for the sky columns, or check origin)",
            AstropyUserWarning)


def _is_region(obj):
    return isinstance(obj, regions.Region)


def _is_region_list(obj):
    if isinstance(obj, regions.Regions):
        return True
    return (isinstance(obj, (list, tuple)) and len(obj) > 0
            and all(_is_region(r) for r in obj))


def _read_ds9(path):
    path = Path(path)
    if path.suffix.lower() not in (".reg", ".ds9"):
        raise ValueError(f"{path} is not a DS9 region file (.reg or .ds9); read "
                         "catalogue files into a Table first (e.g. read_catalog)")
    if not path.is_file():
        raise FileNotFoundError(f"region file {path} does not exist")
    return regions.Regions.read(path, format="ds9")


def _from_regions(regs, ref_wcs, origin, what):
    """Centres of point/circle regions; the regions package is 0-based."""
    if origin == 1:
        raise ValueError("pixel regions are already 0-based (the regions package "
                         "converts DS9's 1-based file coordinates): do not pass "
                         "origin=1")
    accepted = tuple(getattr(regions, name) for name in REGION_TYPES)
    n = len(regs)
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    # sky centres grouped by frame, then converted once per group: building
    # SkyCoord objects or comparing frames per region is ~1 ms each
    groups = {}  # frame key -> (frame without data, rows, lon deg, lat deg)
    for i, reg in enumerate(regs):
        if not isinstance(reg, accepted):
            # an unsupported shape is a bad value of a supported input kind
            raise ValueError(  # noqa: TRY004
                f"unsupported region {type(reg).__name__} at index {i}; "
                f"accepted: {', '.join(REGION_TYPES)}")
        centre = reg.center
        if isinstance(centre, SkyCoord):
            frame = centre.frame
            key = (frame.name,) + tuple(str(getattr(frame, attr))
                                        for attr in frame.frame_attributes)
            if key not in groups:
                groups[key] = (frame.replicate_without_data(), [], [], [])
            sph = centre.data if hasattr(centre.data, "lon") else centre.spherical
            group = groups[key]
            group[1].append(i)
            group[2].append(sph.lon.deg)
            group[3].append(sph.lat.deg)
        else:
            x[i], y[i] = centre.x, centre.y
    for frame, rows, lon, lat in groups.values():
        coords = SkyCoord(np.array(lon, float), np.array(lat, float), unit=u.deg,
                          frame=frame)
        x[rows], y[rows] = _sky_to_pixel(coords, ref_wcs, f"sky {what}")
    x[~np.isfinite(x)] = np.nan
    y[~np.isfinite(y)] = np.nan
    n_sky = sum(len(group[1]) for group in groups.values())
    kind = "pixel" if n_sky == 0 else "sky" if n_sky == n else "mixed"
    return Positions(x, y, f"{what} ({n} {kind} point/circle centres)")


def _from_array(source, origin):
    arr = np.ma.asarray(source)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"cannot read positions from {type(source).__name__} of shape "
            f"{getattr(arr, 'shape', '?')}: accepted are a Table, a SkyCoord, regions, "
            "a DS9 file path, or an (N, 2) array of pixel (x, y)")
    try:
        values = np.ma.filled(arr.astype(np.float64), np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"position array is not numeric (dtype {arr.dtype})") from None
    used = 0 if origin is None else origin
    x, y = _clean(values[:, 0]) - used, _clean(values[:, 1]) - used
    return Positions(x, y, f"pixel array (origin={used})")
