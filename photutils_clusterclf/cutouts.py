"""Vectorised multi-band cutout extraction with edge padding and quality flags.

Conventions
-----------
Positions are 0-based pixel coordinates (pixel centres at integers). A
cutout of size ``S`` is centred on the pixel ``c = floor(p + 0.5)`` that
contains the position ``p`` (halves round up, not to even), and spans
``c - S//2 ... c - S//2 + S - 1`` on each axis: ``c - S//2 ... c + S//2``
for odd ``S`` and ``c - S//2 ... c + S//2 - 1`` for even ``S``. Either way the
centre pixel is at index ``S//2`` of the cutout.

Pixels off the image are NaN ("padding"). Infinite pixel values are turned
into NaN too, so NaN is the single "no data" marker downstream.

Extraction is one gather per band and chunk of objects: objects whose
cutout lies inside the image are read through a sliding-window view of the
(memory-mapped) image, in order of increasing row so that consecutive reads
touch neighbouring pages; only objects overlapping an edge go through a
clipped fancy index. Only the gathered pixels are converted to native
float32, never the whole image.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .images import MultiBandImage, normalize_band_name
from .positions import band_pixel_positions
from .utils.flags import FLAGS

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CUTOUT_SIZE",
    "FLAG_INVALID_POSITION",
    "FLAG_NAN",
    "FLAG_NO_COVERAGE",
    "FLAG_NO_OVERLAP",
    "FLAG_PARTIAL",
    "NOT_CLASSIFIABLE",
    "CutoutBatch",
    "extract_cutouts",
    "iter_cutout_batches",
]

# The flag bits, in bit order; their names and descriptions are registered
# in `photutils_clusterclf.utils.flags.FLAGS` (read them with `decode_flags`):
# partly off an image (padded with NaN); too much NaN / no data; entirely off
# an image (not classified); no data at the object in some band (not
# classified); NaN, infinite or masked position (not classified).
FLAG_PARTIAL, FLAG_NAN, FLAG_NO_OVERLAP, FLAG_NO_COVERAGE, FLAG_INVALID_POSITION = FLAGS
#: Flags that make an object unclassifiable.
NOT_CLASSIFIABLE = FLAG_NO_OVERLAP | FLAG_NO_COVERAGE | FLAG_INVALID_POSITION

#: Default cutout side in pixels.
DEFAULT_CUTOUT_SIZE = 32

#: Objects gathered per band at a time: bounds the temporary arrays to a
#: few MB (cache-friendly) whatever the number of objects.
_GATHER_CHUNK = 1024

#: Default number of objects per batch of `iter_cutout_batches`.
DEFAULT_BATCH_SIZE = 8192


@dataclass
class CutoutBatch:
    """Multi-band cutouts of ``N`` objects and their quality flags.

    Attributes
    ----------
    data : `~numpy.ndarray`
        ``(N, B, S, S)`` native-endian float32; NaN where there is no data
        (off-image padding, NaN pixels).
    flags : `~numpy.ndarray`
        ``(N,)`` int16 bit mask of the ``FLAG_*`` constants.
    bands : tuple of str
        The band of each of the ``B`` planes.
    size : int
        The cutout side ``S`` in pixels.
    """

    data: np.ndarray
    flags: np.ndarray
    bands: tuple
    size: int

    @property
    def classifiable(self):
        """`~numpy.ndarray` of bool: objects with no `NOT_CLASSIFIABLE` flag."""
        return (self.flags & NOT_CLASSIFIABLE) == 0

    def __len__(self):
        return len(self.flags)


def _positive_int(value, message):
    """``value`` as an int; `ValueError` ``"<message>, got <value>"`` if not >= 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{message}, got {value!r}")
    return int(value)


def _check_size(size):
    return _positive_int(size, "size must be a positive integer number of pixels")


def _check_images(images):
    if isinstance(images, MultiBandImage):
        return images
    if isinstance(images, Mapping):
        return MultiBandImage.from_arrays(images)
    raise TypeError(
        "images must be a MultiBandImage or a mapping band -> 2-D array, "
        f"got {type(images).__name__}"
    )


def _check_bands(images, bands):
    if bands is None:
        return tuple(images.bands)
    if isinstance(bands, str):
        bands = [bands]
    missing = [b for b in bands if b not in images]
    if missing:
        raise KeyError(
            f"bands {missing} are not in the images; available: {', '.join(images.bands)}"
        )
    return tuple(normalize_band_name(b) for b in bands)


def _as_coordinates(x, y):
    """``x``, ``y`` as 1-D float64 arrays, masked entries as NaN."""
    coords = []
    for name, value in (("x", x), ("y", y)):
        value = np.ma.filled(np.ma.asarray(value, dtype=np.float64), np.nan)
        if value.ndim != 1:
            value = np.atleast_1d(value)
            if value.ndim != 1:
                raise ValueError(
                    f"{name} must be a 1-D array of positions, got shape {value.shape}"
                )
        coords.append(value)
    if coords[0].shape != coords[1].shape:
        raise ValueError(
            f"x and y must have the same length, got {coords[0].size} and {coords[1].size}"
        )
    return coords


def _prepare(images, x, y, bands):
    """Checked ``(images, bands, valid, positions)`` for a cutout request.

    ``valid`` marks finite reference positions; ``positions`` maps each of
    ``bands`` to its ``(x, y)`` pixel positions (WCS conversion done once).
    """
    images = _check_images(images)
    bands = _check_bands(images, bands)
    x, y = _as_coordinates(x, y)
    valid = np.isfinite(x) & np.isfinite(y)
    return images, bands, valid, band_pixel_positions(images, x, y, bands=bands)


def _start(coord, n_pix, size):
    """First pixel index of each cutout along one axis (far off-image if not finite)."""
    # Clipping keeps huge or infinite coordinates from overflowing int64 while
    # keeping them off the image.
    coord = np.clip(
        np.where(np.isfinite(coord), coord, -4.0 * size),
        -4.0 * size,
        n_pix + 4.0 * size,
    )
    return np.floor(coord + 0.5).astype(np.int64) - size // 2


def _inspect(block, nan_counts, no_coverage):
    """Turn inf into NaN in ``block`` (n, S, S); fill the per-object quality arrays."""
    n, size = block.shape[:2]
    # A finite sum means no NaN/inf (one fast pass); count exactly only
    # where it is not.
    suspect = np.flatnonzero(~np.isfinite(block.reshape(n, -1).sum(axis=1)))
    nan_counts[:] = 0
    if suspect.size:
        sub = block[suspect]
        bad = ~np.isfinite(sub)
        sub[bad] = np.nan
        block[suspect] = sub
        nan_counts[suspect] = bad.reshape(suspect.size, -1).sum(axis=1)
    centre = block[:, size // 2, size // 2]
    no_coverage[:] = np.isnan(centre)
    # An all-zero (or zero and NaN) cutout is outside a drizzled footprint;
    # it must have a zero centre, so only those are checked.
    zero = np.flatnonzero(centre == 0)
    if zero.size:
        sub = block[zero]
        no_coverage[zero] = np.all((sub == 0) | np.isnan(sub), axis=(1, 2))


def _native_float32(block):
    """A freshly gathered ``block`` as native-endian float32.

    Big-endian float32 (FITS) is byte-swapped in place, which is a few
    times faster than converting into a new array.
    """
    if block.dtype.kind == "f" and block.dtype.itemsize == 4 and not block.dtype.isnative:
        return block.byteswap(inplace=True).view(block.dtype.newbyteorder())
    return np.asarray(block, dtype=np.float32)


def _gather_band(data, x0, y0, size, out, flags, valid, nan_threshold):
    """Fill ``out`` (N, S, S) with cutouts of ``data`` starting at ``x0``, ``y0``.

    Sets the per-object ``flags`` of this band.
    """
    ny, nx = data.shape
    inside = (y0 >= 0) & (x0 >= 0) & (y0 <= ny - size) & (x0 <= nx - size)
    overlap = (y0 > -size) & (y0 < ny) & (x0 > -size) & (x0 < nx)
    partial = overlap & ~inside
    out[~overlap] = np.nan
    flags[~overlap & valid] |= FLAG_NO_OVERLAP
    flags[partial] |= FLAG_PARTIAL
    max_nan = nan_threshold * size * size
    nan_counts = np.empty(_GATHER_CHUNK, dtype=np.int64)
    no_coverage = np.empty(_GATHER_CHUNK, dtype=bool)

    def finish(rows, block):
        n = len(rows)
        _inspect(block, nan_counts[:n], no_coverage[:n])
        flags[rows[nan_counts[:n] > max_nan]] |= FLAG_NAN
        flags[rows[no_coverage[:n]]] |= FLAG_NO_COVERAGE
        out[rows] = block

    rows_inside = np.flatnonzero(inside)
    if rows_inside.size:
        windows = sliding_window_view(data, (size, size))
        # Row order makes consecutive objects read neighbouring pages of the
        # memmap: several times faster than catalogue order on large mosaics.
        rows_inside = rows_inside[np.argsort(y0[rows_inside], kind="stable")]
        for start in range(0, rows_inside.size, _GATHER_CHUNK):
            rows = rows_inside[start : start + _GATHER_CHUNK]
            # Converts only the gathered pixels (FITS big-endian -> native).
            finish(rows, _native_float32(windows[y0[rows], x0[rows]]))

    rows_partial = np.flatnonzero(partial)
    offsets = np.arange(size)
    for start in range(0, rows_partial.size, _GATHER_CHUNK):
        rows = rows_partial[start : start + _GATHER_CHUNK]
        iy = y0[rows, None] + offsets
        ix = x0[rows, None] + offsets
        on_image = ((iy >= 0) & (iy < ny))[:, :, None] & ((ix >= 0) & (ix < nx))[:, None, :]
        block = _native_float32(
            data[np.clip(iy, 0, ny - 1)[:, :, None], np.clip(ix, 0, nx - 1)[:, None, :]]
        )
        block[~on_image] = np.nan
        finish(rows, block)


def _extract(images, positions, valid, bands, size, nan_threshold):
    n = valid.size
    data = np.empty((n, len(bands), size, size), dtype=np.float32)
    flags = np.where(valid, 0, FLAG_INVALID_POSITION).astype(np.int16)
    for b, band in enumerate(bands):
        bx, by = positions[band]
        array = images[band]
        y0 = _start(by, array.shape[0], size)
        x0 = _start(bx, array.shape[1], size)
        # Rows with an invalid reference position stay all-NaN, flag 16 only.
        y0[~valid] = -4 * size
        _gather_band(array, x0, y0, size, data[:, b], flags, valid, nan_threshold)
    return CutoutBatch(data=data, flags=flags, bands=bands, size=size)


def _check_nan_threshold(nan_threshold):
    if not 0 <= nan_threshold <= 1:
        raise ValueError(f"nan_threshold must be a fraction between 0 and 1, got {nan_threshold!r}")
    return float(nan_threshold)


def extract_cutouts(images, x, y, *, size=DEFAULT_CUTOUT_SIZE, bands=None, nan_threshold=0.25):
    """Cut ``size`` x ``size`` pixel stamps around positions in every band.

    Parameters
    ----------
    images : `~photutils_clusterclf.images.MultiBandImage` or mapping
        The images (a mapping band -> 2-D array is wrapped with
        `~photutils_clusterclf.images.MultiBandImage.from_arrays`).
    x, y : array-like
        0-based pixel positions on the grid of ``images.reference_band``;
        NaN, infinite or masked entries are flagged `FLAG_INVALID_POSITION`.
    size : int, optional
        Cutout side in pixels, odd or even (see the module notes for the
        centring convention).
    bands : list of str, optional
        Bands to cut out, in this order (default: all bands of ``images``).
        Positions still refer to the reference band of ``images``.
    nan_threshold : float, optional
        Fraction of NaN pixels (padding included) in a band's cutout above
        which `FLAG_NAN` is set.

    Returns
    -------
    CutoutBatch
        ``(N, B, S, S)`` float32 cutouts and ``(N,)`` int16 flags; no row
        is dropped.

    Notes
    -----
    Bands not on the reference grid are cut out around the position
    converted through their WCS
    (`~photutils_clusterclf.positions.band_pixel_positions`); the images are
    not resampled.
    """
    size = _check_size(size)
    nan_threshold = _check_nan_threshold(nan_threshold)
    images, bands, valid, positions = _prepare(images, x, y, bands)
    return _extract(images, positions, valid, bands, size, nan_threshold)


def iter_cutout_batches(
    images,
    x,
    y,
    *,
    size=DEFAULT_CUTOUT_SIZE,
    batch_size=DEFAULT_BATCH_SIZE,
    bands=None,
    nan_threshold=0.25,
):
    """Yield cutouts of consecutive slices of objects, with bounded memory.

    Same as `extract_cutouts` on ``x[s], y[s]`` for consecutive slices
    ``s`` of ``batch_size`` objects; the per-band positions are computed
    once.

    Parameters
    ----------
    images, x, y, size, bands, nan_threshold
        As in `extract_cutouts`.
    batch_size : int, optional
        Objects per batch.

    Yields
    ------
    slice, CutoutBatch
        The slice of the input positions and their cutouts.
    """
    size = _check_size(size)
    nan_threshold = _check_nan_threshold(nan_threshold)
    batch_size = _positive_int(batch_size, "batch_size must be a positive integer")
    images, bands, valid, positions = _prepare(images, x, y, bands)
    for start in range(0, valid.size, batch_size):
        part = slice(start, min(start + batch_size, valid.size))
        sub = {band: (bx[part], by[part]) for band, (bx, by) in positions.items()}
        yield part, _extract(images, sub, valid[part], bands, size, nan_threshold)
