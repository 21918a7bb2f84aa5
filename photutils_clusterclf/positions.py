"""Turn any accepted position input into 0-based pixel positions.

Accepted inputs: an Astropy `~astropy.table.Table` /
`~astropy.table.QTable` with pixel or sky columns, a
`~astropy.coordinates.SkyCoord`, point / circle regions from the ``regions``
package (a list or a `~regions.Regions`), or an (N, 2) array of pixel
``(x, y)``. Files are read elsewhere (DS9 files by
`~photutils_clusterclf.catalogs.read_candidates`).

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
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from astropy.wcs.utils import pixel_to_pixel, wcs_to_celestial_frame

from .columns import (
    accepted_names,
    column_values,
    find_column,
    find_pixel,
    find_sky,
    is_angular,
    table_skycoord,
)

__all__ = ["Positions", "band_pixel_positions", "reference_wcs", "resolve_positions"]

#: Region classes whose centre is a position.
REGION_TYPES = ("PointPixelRegion", "CirclePixelRegion", "PointSkyRegion", "CircleSkyRegion")

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
          ``x_center/y_center``, ``xcenter/ycenter``, ``x_peak/y_peak``, ``x/y``,
          ``x_image/y_image``) or sky columns (a `~astropy.coordinates.SkyCoord`
          column such as photutils' ``sky_centroid`` or ``skycoord_peak``, then
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
    TypeError
        A file path (read it with
        `~photutils_clusterclf.catalogs.read_candidates`).

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
    ref_wcs = reference_wcs(images)

    if source is None:
        raise ValueError(
            "positions are None (a source finder that found nothing returns "
            "None): there are no candidates to resolve"
        )
    if isinstance(source, (str, Path)):
        raise TypeError(
            f"positions cannot be a file path ({source}): read the file first "
            "with photutils_clusterclf.catalogs.read_candidates (catalogues "
            "and DS9 region files)"
        )
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
        band pixel through the two WCS (astropy.wcs.utils.pixel_to_pixel). NaN in,
        NaN out.

    Raises
    ------
    ValueError
        A band is on another grid but it or the reference band has no WCS.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, not {x.shape} and {y.shape}")
    ref_wcs = images.wcs(images.reference_band)
    valid = np.isfinite(x) & np.isfinite(y)
    out = {}
    for band in images.bands if bands is None else bands:
        if images.same_grid(band):
            out[band] = (x, y)
            continue
        band_wcs = images.wcs(band)
        if ref_wcs is None or band_wcs is None:
            raise ValueError(
                f"band {band} is not on the grid of the reference band "
                f"{images.reference_band} and one of them has no WCS; "
                "give both a celestial WCS or resample them to one grid"
            )
        bx = np.full(x.shape, np.nan)
        by = np.full(y.shape, np.nan)
        # only finite rows go through the WCS: SIP inversion iterates and
        # must not see NaN
        bx[valid], by[valid] = pixel_to_pixel(ref_wcs, band_wcs, x[valid], y[valid])
        out[band] = (bx, by)
    return out


# --------------------------------------------------------------------------
# helpers


def reference_wcs(images):
    """The celestial WCS of the reference band of images (or of a WCS), or None."""
    if images is None:
        return None
    if isinstance(images, WCS):
        return images.celestial if images.has_celestial else None
    return images.wcs(images.reference_band)


def _need_wcs(ref_wcs, what):
    if ref_wcs is None:
        raise ValueError(
            f"{what} needs a WCS: pass images whose reference band "
            "has a celestial WCS (or use pixel positions)"
        )


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


def _override_columns(table, columns, use):
    """(pixel, sky) specification from an explicit ``columns`` argument."""
    names = (columns,) if isinstance(columns, str) else tuple(columns)
    if len(names) not in (1, 2) or (len(names) == 1 and not isinstance(columns, str)):
        raise ValueError(
            f"columns must be a pair of names or one SkyCoord column name, not {columns!r}"
        )
    found = tuple(find_column(table, n) for n in names)
    missing = [n for n, f in zip(names, found) if f is None]
    if missing:
        raise ValueError(
            f"columns {', '.join(missing)} not in the table (columns: {', '.join(table.colnames)})"
        )
    if len(found) == 1:
        if not isinstance(table[found[0]], SkyCoord):
            raise ValueError(
                f"column {found[0]} is not a SkyCoord column; "
                "pass a pair (x, y) or (lon, lat) of column names"
            )
        return None, found[0]
    if use == "sky" or is_angular(table[found[0]]):
        return None, found
    return (found[0], found[1], None), None


def _from_table(table, ref_wcs, origin, use, columns):
    if columns is not None:
        pixel, sky = _override_columns(table, columns, use)
    else:
        pixel, sky = find_pixel(table), find_sky(table)
    if use == "pixel" and pixel is None:
        raise ValueError(
            f"use='pixel' but the table has no pixel columns; accepted: {accepted_names()}"
        )
    if use == "sky" and sky is None:
        raise ValueError(
            f"use='sky' but the table has no sky columns; accepted: {accepted_names()}"
        )
    if pixel is None and sky is None:
        raise ValueError(
            f"no position columns found in the table "
            f"(columns: {', '.join(table.colnames) or 'none'}); accepted: "
            f"{accepted_names()}; or pass columns=(x, y) "
            "(--columns X Y on the command line)"
        )

    if use == "sky" or pixel is None:
        return _sky_positions(table, sky, ref_wcs)

    xname, yname, implied = pixel
    meta_origin = table.meta.get("origin") if table.meta else None
    candidates = (origin, meta_origin, implied)
    used_origin = next((o for o in candidates if o is not None), None)
    if used_origin not in (0, 1):
        if used_origin is None:
            hint = " (or use='sky')" if sky is not None else ""
            raise ValueError(
                f"pixel columns {xname}/{yname} have no known origin: "
                f"{_ORIGIN_HELP}{hint}; on the command line "
                "--origin 0 or 1"
            )
        raise ValueError(f"table.meta['origin'] is {used_origin!r}; it must be 0 or 1")
    x = column_values(table[xname], xname, "pixel") - used_origin
    y = column_values(table[yname], yname, "pixel") - used_origin
    positions = Positions(x, y, f"pixel columns {xname}/{yname} (origin={used_origin})")
    if use == "auto" and sky is not None and ref_wcs is not None:
        _check_agreement(positions, _sky_positions(table, sky, ref_wcs))
    return positions


def _sky_positions(table, sky, ref_wcs):
    name = sky if isinstance(sky, str) else "/".join(sky)
    _need_wcs(ref_wcs, f"sky columns {name}")
    coords = table_skycoord(table, sky, wcs_to_celestial_frame(ref_wcs))
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
            AstropyUserWarning,
        )


def _is_region(obj):
    return isinstance(obj, regions.Region)


def _is_region_list(obj):
    if isinstance(obj, regions.Regions):
        return True
    return isinstance(obj, (list, tuple)) and len(obj) > 0 and all(_is_region(r) for r in obj)


def _from_regions(regs, ref_wcs, origin, what):
    """Centres of point/circle regions; the regions package is 0-based."""
    if origin == 1:
        raise ValueError(
            "pixel regions are already 0-based (the regions package "
            "converts DS9's 1-based file coordinates): do not pass "
            "origin=1"
        )
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
                f"accepted: {', '.join(REGION_TYPES)}"
            )
        centre = reg.center
        if isinstance(centre, SkyCoord):
            frame = centre.frame
            key = (frame.name,) + tuple(
                str(getattr(frame, attr)) for attr in frame.frame_attributes
            )
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
        coords = SkyCoord(np.array(lon, float), np.array(lat, float), unit=u.deg, frame=frame)
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
            "a DS9 file path, or an (N, 2) array of pixel (x, y)"
        )
    try:
        values = np.ma.filled(arr.astype(np.float64), np.nan)
    except (TypeError, ValueError):
        raise ValueError(f"position array is not numeric (dtype {arr.dtype})") from None
    used = 0 if origin is None else origin
    x, y = _clean(values[:, 0]) - used, _clean(values[:, 1]) - used
    return Positions(x, y, f"pixel array (origin={used})")
