"""Multi-band images: band name -> lazily read 2-D data and its WCS.

`MultiBandImage` holds one 2-D array per HST filter. Images read from FITS
are memory-mapped and never copied whole into memory: cutout extraction
reads only the pixels it needs, so 38 galaxies of 8000 x 8000 pixels in
five bands fit on a laptop. Data are kept exactly as stored (FITS data are
big-endian); `~photutils_clusterclf.cutouts.extract_cutouts` converts the
gathered pixels to native float32.

Pixel positions refer to the grid of the *reference band*. Bands on other
grids (different shape or WCS) are related to it through their WCS.
"""

import mmap
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

__all__ = ["MultiBandImage", "normalize_band_name", "phangs_band_files"]

# HST / JWST filter names: F + central wavelength (3-4 digits) + width code
# (W, M, N, LP, X, W2, C); e.g. F555W, F658N, F200LP, F150W2, F1065C.
_BAND_RE = re.compile(r"^F\d{3,4}(?:W2|W|M|N|LP|X|C)$")

# PHANGS-HST science mosaics, e.g.
# hlsp_phangs-hst_hst_wfc3-uvis_ngc628mosaic_f275w_v1_exp-drc-sci.fits
_PHANGS_RE = re.compile(
    r"^hlsp_phangs-hst_hst_(?P<instrument>[a-z0-9]+(?:-[a-z0-9]+)*)_"
    r"(?P<target>.+)_(?P<filter>f\d{3,4}[a-z0-9]*)_v[0-9.]+_exp-drc-sci\.fits$",
    re.IGNORECASE,
)

# Band preferred as reference when present: the PHANGS/LEGUS V band, on
# whose grid catalogue positions are usually measured.
_PREFERRED_REFERENCE = "F555W"

# A band is on the reference grid if the two WCSs map the image corners to
# the same pixels within this many pixels.
_GRID_TOLERANCE_PX = 1e-3


def normalize_band_name(name):
    """Return the canonical upper-case filter name, e.g. ``"f555w"`` -> ``"F555W"``.

    Parameters
    ----------
    name : str
        A filter name such as ``"F555W"``, ``"f814w"``, ``" F200LP "``.

    Returns
    -------
    str
        The stripped, upper-case name.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If ``name`` does not look like an HST/JWST filter name
        (``F`` + 3-4 digits + ``W``, ``M``, ``N``, ``LP``, ``X``, ``W2`` or ``C``).
    """
    if not isinstance(name, str):
        raise TypeError(f"band name must be a string like 'F555W', got {type(name).__name__}")
    band = name.strip().upper()
    if not _BAND_RE.match(band):
        raise ValueError(
            f"{name!r} is not a filter name; expected e.g. 'F275W', 'F555W', "
            "'F658N', 'F200LP' (F + 3-4 digits + W/M/N/LP/X/W2/C)"
        )
    return band


def _wavelength_key(band):
    """Sort key ordering filter names by their central wavelength."""
    return int(re.match(r"F(\d+)", band).group(1)), band


def phangs_band_files(directory):
    """Map band names to the PHANGS-HST science mosaics in a directory.

    Files must be named
    ``hlsp_phangs-hst_hst_<instrument>_<target>_<filter>_v1_exp-drc-sci.fits``
    (filter token case-insensitive).

    Parameters
    ----------
    directory : str or `~pathlib.Path`
        The directory to scan (not recursive).

    Returns
    -------
    dict
        ``{band: Path}`` ordered by wavelength.

    Raises
    ------
    FileNotFoundError
        If ``directory`` does not exist or holds no PHANGS science mosaic.
    ValueError
        If two files hold the same band.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image directory {directory} does not exist")
    found = {}
    for path in sorted(directory.iterdir()):
        match = _PHANGS_RE.match(path.name)
        if match is None or not path.is_file():
            continue
        band = normalize_band_name(match["filter"])
        if band in found:
            raise ValueError(
                f"two files for band {band} in {directory}: {found[band].name} "
                f"and {path.name}; pass a mapping band -> file instead"
            )
        found[band] = path
    if not found:
        raise FileNotFoundError(
            f"no PHANGS science mosaics in {directory}; expected files named "
            "hlsp_phangs-hst_hst_<instrument>_<target>_<filter>_v1_exp-drc-sci.fits, "
            "or pass a mapping band -> file"
        )
    return {band: found[band] for band in sorted(found, key=_wavelength_key)}


def _celestial_wcs(header, hdulist=None):
    """The 2-D celestial WCS of ``header``, or None if it has none."""
    with warnings.catch_warnings():
        # Archive headers routinely trigger "fixed" notices (DATE-OBS, ...)
        # that say nothing about the astrometry.
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, fobj=hdulist)
        # A broken WCS means "no WCS", not a failed read.
        except Exception:  # noqa: BLE001
            return None
    if not wcs.has_celestial:
        return None
    celestial = wcs.celestial
    return celestial if celestial.naxis == 2 else None


def _is_image_hdu(hdu):
    return (
        isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))
        and hdu.header.get("NAXIS", 0) > 0
    )


def _read_fits(path, *, hdu, memmap):
    """Open ``path`` and return ``(data, wcs, header, hdulist, index)`` for one 2-D HDU.

    ``hdulist`` is None unless memory-mapped (then it must stay open);
    ``index`` is the position of the HDU in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    hdulist = fits.open(path, memmap=memmap)
    try:
        if hdu is None:
            candidates = [h for h in hdulist if _is_image_hdu(h) and h.header["NAXIS"] == 2]
            if not candidates:
                raise ValueError(
                    f"{path} has no HDU with 2-D image data; "
                    "pass hdu=<index or name> of the science image"
                )
            chosen = candidates[0]
        else:
            try:
                chosen = hdulist[hdu]
            except (KeyError, IndexError):
                raise KeyError(
                    f"{path} has no HDU {hdu!r}; it has {[h.name for h in hdulist]}"
                ) from None
        # With memmap=True this maps the file; no pixel is read here.
        data = chosen.data
        if data is None or data.ndim != 2:
            shape = None if data is None else data.shape
            raise ValueError(
                f"HDU {chosen.name!r} of {path} holds data of shape {shape}; a 2-D image is needed"
            )
        index = hdulist.index(chosen)
        wcs = _celestial_wcs(chosen.header, hdulist)
        header = fits.Header(hdulist[0].header)
        if chosen is not hdulist[0]:
            header.update(chosen.header)
    except BaseException:
        hdulist.close()
        raise
    if not memmap:
        hdulist.close()
        hdulist = None
    return data, wcs, header, hdulist, index


def _header_band(header, path):
    """The filter named by a FITS header (FILTER, or FILTER1/FILTER2 minus CLEAR*)."""
    names = []
    for key in ("FILTER", "FILTER1", "FILTER2"):
        value = header.get(key)
        if (
            isinstance(value, str)
            and value.strip()
            and not value.strip().upper().startswith("CLEAR")
        ):
            names.append(value.strip())
    bands = []
    for value in names:
        try:
            bands.append(normalize_band_name(value))
        except ValueError:
            continue
    bands = list(dict.fromkeys(bands))
    if len(bands) != 1:
        found = (
            ", ".join(
                f"{k}={header.get(k)!r}" for k in ("FILTER", "FILTER1", "FILTER2") if k in header
            )
            or "no FILTER keyword"
        )
        raise ValueError(
            f"cannot tell the band of {path} from its header ({found}); "
            "pass a mapping band -> file instead"
        )
    return bands[0]


def _check_stated_band(band, header, path):
    """Refuse ``band`` for ``path`` if its FITS filter keywords or PHANGS name say otherwise.

    Says nothing when neither names exactly one filter.
    """
    try:
        stated = {"FITS header": _header_band(header, path)}
    except ValueError:
        stated = {}
    match = _PHANGS_RE.match(Path(path).name)
    if match is not None:
        stated["PHANGS file name"] = normalize_band_name(match["filter"])
    for where, other in stated.items():
        if other != band:
            raise ValueError(
                f"{path} is given as band {band}, but its {where} says {other}; fix the "
                "mapping band -> file, or pass check_bands=False (clusterclf: "
                "--ignore-band-headers) if the file is mislabelled"
            )


def _wcs_equivalent(wcs1, wcs2, shape):
    """True if two celestial WCSs map the corners and centre of ``shape`` alike."""
    ny, nx = shape
    px = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2], dtype=float)
    py = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2], dtype=float)
    try:
        world = wcs1.pixel_to_world_values(px, py)
        qx, qy = wcs2.world_to_pixel_values(*world)
    except Exception:  # noqa: BLE001 - WCSs that cannot be related are not equivalent
        return False
    offset = np.hypot(np.asarray(qx) - px, np.asarray(qy) - py)
    return bool(np.all(np.isfinite(offset)) and np.max(offset) < _GRID_TOLERANCE_PX)


def _source_files(source):
    """``(band or None, path)`` of each file of an image source (see `MultiBandImage.from_fits`)."""
    if isinstance(source, Mapping):
        items = [(normalize_band_name(b), Path(p)) for b, p in source.items()]
    elif isinstance(source, (str, Path)):
        if not Path(source).exists():
            raise FileNotFoundError(
                f"image source {source} does not exist; pass a directory "
                "of PHANGS mosaics, a mapping band -> file or a list of files"
            )
        if not Path(source).is_dir():
            # A single file is a list of one file.
            items = [(None, Path(source))]
        else:
            items = list(phangs_band_files(source).items())
    elif isinstance(source, (list, tuple)):
        items = [(None, Path(p)) for p in source]
    else:
        raise TypeError(
            "source must be a mapping band -> path, a directory or a list of "
            f"paths, got {type(source).__name__}"
        )
    if not items:
        raise ValueError("no image files given")
    return items


def _wanted_files(items, wanted):
    """The files of the ``wanted`` bands, where every file's band is known before opening it."""
    known = {b for b, _ in items if b is not None}
    if len(known) != len(items):
        return items  # some bands are read from the headers: filtered after reading
    missing = [b for b in wanted if b not in known]
    if missing:
        raise KeyError(f"bands {missing} not in the images; available: {sorted(known)}")
    # Do not open files of bands that are not wanted.
    return [(b, p) for b, p in items if b in wanted]


class MultiBandImage:
    """Band name -> 2-D image data and WCS, with a reference grid.

    Use `from_fits` or `from_arrays` to build one. Data read from FITS are
    memory-mapped and kept as stored (possibly big-endian).

    Parameters
    ----------
    data : dict
        ``{band: 2-D array}``; bands are normalised with `normalize_band_name`.
    wcs : dict, optional
        ``{band: celestial WCS or None}``.
    reference_band : str, optional
        Band whose pixel grid positions refer to. Default: ``F555W`` if
        present, else the first band.
    sources : dict, optional
        ``{band: file path}`` for FITS-backed bands (shown in the repr).

    Notes
    -----
    A band with the same shape as the reference band is on the reference
    grid unless both have a WCS and the two differ. Bands of different shape
    need a WCS on both sides, otherwise a `ValueError` is raised because the
    grids cannot be related.
    """

    def __init__(
        self,
        data,
        *,
        wcs=None,
        reference_band=None,
        sources=None,
        _hdulists=(),
        _mapped=None,
    ):
        if not isinstance(data, Mapping) or not data:
            raise ValueError("MultiBandImage needs a non-empty mapping band -> 2-D array")
        wcs = dict(wcs or {})
        self._data = {}
        self._wcs = {}
        for name, array in data.items():
            band = normalize_band_name(name)
            if band in self._data:
                raise ValueError(f"band {band} given twice ({name!r}); give each band once")
            if not isinstance(array, np.ndarray):
                array = np.asarray(array)
            if array.ndim != 2:
                raise ValueError(
                    f"band {band} has data of shape {array.shape}; a 2-D image is needed"
                )
            self._data[band] = array
            self._wcs[band] = wcs.get(name, wcs.get(band))
        self._bands = tuple(self._data)
        if reference_band is None:
            reference_band = (
                _PREFERRED_REFERENCE if _PREFERRED_REFERENCE in self._data else self._bands[0]
            )
        reference_band = normalize_band_name(reference_band)
        if reference_band not in self._data:
            raise KeyError(f"reference band {reference_band} is not one of the bands {self._bands}")
        self._reference = reference_band
        self._sources = dict(sources or {})
        # Open FITS files whose memmaps back the data; kept so they stay valid.
        self._hdulists = tuple(_hdulists)
        # band -> HDU index of memory-mapped bands, to map them again after
        # pickling (e.g. sent to a Dask worker) instead of copying the pixels.
        self._mapped = dict(_mapped or {})
        self._same_grid = {}
        for band in self._bands:
            if self.shape(band) != self.shape(reference_band) and (
                self._wcs[band] is None or self._wcs[reference_band] is None
            ):
                raise ValueError(
                    f"cannot relate the grids of {band} {self.shape(band)} and "
                    f"reference band {reference_band} {self.shape(reference_band)}: "
                    "give them a WCS or the same shape"
                )

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_arrays(cls, arrays, *, wcs=None, reference_band=None):
        """Build from in-memory arrays.

        Parameters
        ----------
        arrays : mapping
            ``{band: 2-D array-like}``, in the band order wanted. Arrays are
            not copied.
        wcs : `~astropy.wcs.WCS` or mapping, optional
            One celestial WCS for all bands, or ``{band: WCS}`` (bands not in
            the mapping have no WCS).
        reference_band : str, optional
            See `MultiBandImage`.

        Returns
        -------
        MultiBandImage
        """
        if not isinstance(arrays, Mapping):
            raise TypeError(
                f"arrays must be a mapping band -> 2-D array, got {type(arrays).__name__}"
            )
        if isinstance(wcs, WCS):
            wcs = {band: wcs for band in arrays}
        elif wcs is not None and not isinstance(wcs, Mapping):
            raise TypeError(
                "wcs must be None, an astropy WCS or a mapping band -> WCS, "
                f"got {type(wcs).__name__}"
            )
        elif wcs is not None:
            wcs = {normalize_band_name(band): w for band, w in wcs.items()}
            unknown = set(wcs) - {normalize_band_name(b) for b in arrays}
            if unknown:
                raise KeyError(f"wcs given for bands {sorted(unknown)} that have no array")
        if wcs is not None:
            wcs = {
                band: (None if w is None else (w.celestial if w.naxis != 2 else w))
                for band, w in wcs.items()
            }
        return cls(arrays, wcs=wcs, reference_band=reference_band)

    @classmethod
    def from_fits(
        cls,
        source,
        *,
        bands=None,
        reference_band=None,
        memmap=True,
        hdu=None,
        check_bands=True,
    ):
        """Read one FITS image per band, memory-mapped.

        Parameters
        ----------
        source : mapping, str, `~pathlib.Path` or list
            - ``{band: path}``;
            - a directory of PHANGS-HST mosaics named
              ``hlsp_phangs-hst_hst_<instrument>_<target>_<filter>_v1_exp-drc-sci.fits``
              (bands ordered by wavelength);
            - a list of paths whose headers name the filter (``FILTER``, or
              ``FILTER1``/``FILTER2`` with ``CLEAR*`` skipped).
        bands : list of str, optional
            Keep only these bands, in this order (error if one is missing).
        reference_band : str, optional
            See `MultiBandImage`.
        memmap : bool, optional
            Memory-map the data (default). With False the images are read
            into memory.
        hdu : int or str, optional
            The HDU holding the image. Default: the first HDU with 2-D data.
        check_bands : bool, optional
            Refuse a file whose own FITS filter keywords (``FILTER``, or
            ``FILTER1``/``FILTER2``) or PHANGS file name name another band
            than the one it is given as (default). False trusts the mapping,
            for files whose headers are wrong.

        Returns
        -------
        MultiBandImage

        Raises
        ------
        FileNotFoundError
            A file or the directory does not exist, or the directory holds no
            PHANGS mosaic.
        ValueError
            Duplicate bands, a band that cannot be identified or that the
            file's header or name contradicts, non-2-D data, or grids that
            cannot be related.
        KeyError
            A requested band is not in ``source``.
        """
        items = _source_files(source)
        if bands is not None:
            wanted = [normalize_band_name(b) for b in bands]
            items = _wanted_files(items, wanted)
        data, wcs, sources, opened, mapped, handle = {}, {}, {}, [], {}, {}
        try:
            for band, path in items:
                array, band_wcs, header, hdulist, index = _read_fits(path, hdu=hdu, memmap=memmap)
                if hdulist is not None:
                    opened.append(hdulist)
                if band is None:
                    band = _header_band(header, path)
                elif check_bands:
                    _check_stated_band(band, header, path)
                if band in data:
                    raise ValueError(
                        f"band {band} given twice ({sources[band]} and {path}); give each band once"
                    )
                data[band], wcs[band], sources[band] = array, band_wcs, path
                if hdulist is not None:
                    handle[band] = hdulist
                    if _is_memmap(array):
                        mapped[band] = index
            if bands is not None:
                missing = [b for b in wanted if b not in data]
                if missing:
                    raise KeyError(f"bands {missing} not in the images; available: {list(data)}")
                data = {b: data[b] for b in wanted}
            # Files of bands not kept are closed now.
            keep = [handle[b] for b in data if b in handle]
            for hdulist in opened:
                if not any(hdulist is k for k in keep):
                    hdulist.close()
            return cls(
                data,
                wcs={b: wcs[b] for b in data},
                reference_band=reference_band,
                sources={b: sources[b] for b in data},
                _hdulists=keep,
                _mapped={b: mapped[b] for b in data if b in mapped},
            )
        except BaseException:
            for hdulist in opened:
                hdulist.close()
            raise

    # -- access -----------------------------------------------------------------------

    @property
    def bands(self):
        """tuple of str: the band names, upper case, in order."""
        return self._bands

    @property
    def reference_band(self):
        """str: the band whose pixel grid positions refer to."""
        return self._reference

    def _check_band(self, band):
        try:
            key = normalize_band_name(band)
        except (TypeError, ValueError):
            key = band
        if key not in self._data:
            raise KeyError(f"no band {band!r}; the bands are {', '.join(self._bands)}")
        return key

    def __getitem__(self, band):
        """The 2-D data of ``band`` as stored (a memmap for FITS; maybe big-endian)."""
        return self._data[self._check_band(band)]

    def __contains__(self, band):
        try:
            self._check_band(band)
        except KeyError:
            return False
        return True

    def __iter__(self):
        return iter(self._bands)

    def __len__(self):
        return len(self._bands)

    def wcs(self, band=None):
        """The celestial WCS of ``band`` (default: the reference band), or None."""
        return self._wcs[self._check_band(self._reference if band is None else band)]

    def shape(self, band=None):
        """The ``(ny, nx)`` shape of ``band`` (default: the reference band)."""
        return tuple(self._data[self._check_band(self._reference if band is None else band)].shape)

    def source(self, band):
        """The FITS file ``band`` was read from, or None for in-memory data."""
        return self._sources.get(self._check_band(band))

    def same_grid(self, band):
        """True if ``band`` shares the reference band's pixel grid.

        Same shape, and either WCS missing or the two WCSs map the image
        corners to the same pixels within 0.001 px.
        """
        band = self._check_band(band)
        if band not in self._same_grid:
            ref = self._reference
            if self.shape(band) != self.shape(ref):
                same = False
            elif (
                self._wcs[band] is None
                or self._wcs[ref] is None
                or self._wcs[band] is self._wcs[ref]
            ):
                same = True
            else:
                same = _wcs_equivalent(self._wcs[ref], self._wcs[band], self.shape(ref))
            self._same_grid[band] = same
        return self._same_grid[band]

    def select(self, bands):
        """A `MultiBandImage` of ``bands`` only, in that order, sharing the data.

        The reference band is kept if selected; otherwise the default rule
        applies to the selection (``F555W`` if present, else the first band).
        To keep positions on the original reference grid while cutting out a
        subset, pass ``bands=`` to `~photutils_clusterclf.cutouts.extract_cutouts`
        instead.

        Raises
        ------
        KeyError
            Naming the bands that are missing.
        """
        if isinstance(bands, str):
            bands = [bands]
        wanted = []
        for band in bands:
            try:
                wanted.append(normalize_band_name(band))
            except (TypeError, ValueError):
                wanted.append(band)
        missing = [b for b in wanted if b not in self._data]
        if missing:
            raise KeyError(
                f"bands {missing} are not in the images; available: {', '.join(self._bands)}"
            )
        if not wanted:
            raise ValueError("select needs at least one band")
        reference = self._reference if self._reference in wanted else None
        new = type(self)(
            {b: self._data[b] for b in wanted},
            wcs={b: self._wcs[b] for b in wanted},
            reference_band=reference,
            sources={b: self._sources[b] for b in wanted if b in self._sources},
            _hdulists=self._hdulists,
            _mapped={b: self._mapped[b] for b in wanted if b in self._mapped},
        )
        return new

    def __getstate__(self):
        # Memory-mapped bands travel as (file, HDU) and are mapped again on
        # unpickling: pickling the arrays would read whole mosaics.
        state = self.__dict__.copy()
        state["_data"] = {b: (None if b in self._mapped else a) for b, a in self._data.items()}
        state["_hdulists"] = ()
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        hdulists = []
        for band, index in self._mapped.items():
            array, _, _, hdulist, _ = _read_fits(self._sources[band], hdu=index, memmap=True)
            self._data[band] = array
            hdulists.append(hdulist)
        self._hdulists = tuple(hdulists)

    def close(self):
        """Close the FITS files backing the data (the arrays must not be used after).

        Images made by `select` share the files of the images they come from.
        """
        for hdulist in self._hdulists:
            hdulist.close()
        self._hdulists = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        lines = [
            f"<{type(self).__name__}: {len(self)} band{'s' * (len(self) != 1)}, "
            f"reference {self._reference}>"
        ]
        for band in self._bands:
            array = self._data[band]
            kind = "memmap" if _is_memmap(array) else "array"
            grid = (
                "reference"
                if band == self._reference
                else ("same grid" if self.same_grid(band) else "own grid")
            )
            wcs = "WCS" if self._wcs[band] is not None else "no WCS"
            source = f" {self._sources[band].name}" if band in self._sources else ""
            lines.append(
                f"  {band:<7s} {array.shape[0]}x{array.shape[1]} {array.dtype.str} "
                f"{kind}, {wcs}, {grid}{source}"
            )
        return "\n".join(lines)


def _is_memmap(array):
    """True if ``array`` is backed by a memory-mapped file."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False
