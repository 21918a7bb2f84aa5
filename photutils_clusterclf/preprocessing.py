"""Normalisation of cutouts and the geometric transforms applied to them.

`Normalization` turns raw multi-band cutouts (flux units, any background
level, NaN where there is no data) into the finite, O(1) values a network
sees. Its name and parameters are stored in the model card, so
classification always preprocesses exactly as training did.

`dihedral` gives the 8 rotations/flips of the square (test-time
augmentation, training augmentation), `resize` brings cutouts to the
network's input size, and `random_augment` is the training-time
augmentation of *raw* cutouts.

Order of operations (training and classification alike)::

    raw cutouts (N, B, S, S) --[random_augment, training only]--> raw
        --[Normalization]--> normalised --[resize]--> network

Augmentation acts on raw cutouts because a flux jitter or an interpolated
shift is physical only on fluxes, not on asinh-stretched values.
"""

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from .utils.validation import check_integer

__all__ = [
    "prepare_batch",
    "DIHEDRAL_TRANSFORMS",
    "NORMALIZATIONS",
    "Normalization",
    "dihedral",
    "random_augment",
    "resize",
]

#: Number of elements of the dihedral group of the square (4 rotations x flip).
DIHEDRAL_TRANSFORMS = 8

#: Normalisation names and their default parameters.
NORMALIZATIONS = {
    "asinh": {"border": 3, "softening": 3.0, "min_scale": 1e-6, "peak_fraction": 1e-3},
    "asinh_shared": {"border": 3, "softening": 3.0, "min_scale": 1e-6, "peak_fraction": 1e-3},
}

# 1.4826 * MAD is the standard deviation of a Gaussian.
_MAD_TO_SIGMA = 1.4826
# The robust peak is the k-th brightest pixel, so that one hot pixel or
# cosmic ray does not set the scale of an otherwise empty cutout.
_PEAK_RANK = 3


def _border_mask(size_y, size_x, border):
    """Boolean (size_y, size_x) mask of the pixels within ``border`` of an edge."""
    mask = np.ones((size_y, size_x), dtype=bool)
    if size_y > 2 * border and size_x > 2 * border:
        mask[border:-border, border:-border] = False
    return mask


def _order_statistic(ordered, k):
    """The ``k``-th smallest (0-based) of each row of ``ordered`` (sorted, NaN last)."""
    k = np.clip(k, 0, None)[..., None]
    return np.take_along_axis(ordered, np.minimum(k, ordered.shape[-1] - 1), -1)[..., 0]


def _kth_of_two_sorted(left, n_left, right, n_right, k):
    """The ``k``-th smallest (0-based) of the union of two sorted sequences per row.

    ``left(i)`` and ``right(j)`` give the ``i``-th / ``j``-th element of each
    row's sequences (index arrays in, values out; only called with indices
    below ``n_left`` / ``n_right``). Rows need ``k < n_left + n_right``. A
    vectorised binary search over how many of the ``k + 1`` smallest come
    from ``left``: ``log2(n)`` steps instead of sorting the union.
    """
    lo = np.maximum(0, k + 1 - n_right)
    hi = np.minimum(k + 1, n_left)
    while np.any(active := lo < hi):
        mid = (lo + hi) // 2
        rows = np.flatnonzero(active)
        mid_a = mid[rows]
        # More elements from ``left`` while its next one is below the last
        # one taken from ``right``.
        more = left(rows, mid_a) < right(rows, k[rows] - mid_a)
        lo[rows] = np.where(more, mid_a + 1, lo[rows])
        hi[rows] = np.where(more, hi[rows], mid_a)
    rows = np.arange(len(k))
    j = k + 1 - lo
    from_left = np.full(len(k), -np.inf, dtype=np.float32)
    from_right = np.full(len(k), -np.inf, dtype=np.float32)
    has_left, has_right = lo > 0, j > 0
    from_left[has_left] = left(rows[has_left], lo[has_left] - 1)
    from_right[has_right] = right(rows[has_right], j[has_right] - 1)
    return np.maximum(from_left, from_right)


def _nanmedian_and_mad_last(values):
    """Median and median absolute deviation over the last axis, NaN ignored.

    Both NaN where a row is all NaN. One sort (NaN sorts last) gives the
    median; the absolute deviations of the sorted values from it are two
    sorted runs (below and above the median), so their median is found by
    a binary search over the two runs instead of a second sort. The values
    are exactly those of ``median(abs(values - median(values)))``: the same
    float32 differences, selected instead of sorted. Vectorised for millions
    of rows, where `numpy.nanmedian` falls back to slow masked-array code.
    """
    shape = values.shape[:-1]
    ordered = np.sort(values.reshape(-1, values.shape[-1]), axis=-1)
    count = np.sum(~np.isnan(ordered), axis=-1)
    k_lo, k_hi = (count - 1) // 2, count // 2
    med = 0.5 * (_order_statistic(ordered, k_lo) + _order_statistic(ordered, k_hi))
    med[count == 0] = np.nan
    mad = np.full(len(count), np.nan, dtype=np.float32)
    rows = np.flatnonzero(count)
    if rows.size:
        # Only rows with data (a copy only when some have none).
        part, centre = (ordered, med) if rows.size == len(count) else (ordered[rows], med[rows])
        # The deviations of the values below the median, nearest first, and
        # of the others, from the median up: two increasing runs.
        n_below = np.sum(part < centre[:, None], axis=-1)

        def below(r, i):
            return centre[r] - part[r, n_below[r] - 1 - i]

        def above(r, j):
            return part[r, n_below[r] + j] - centre[r]

        n_above = count[rows] - n_below
        mad[rows] = 0.5 * (
            _kth_of_two_sorted(below, n_below, above, n_above, k_lo[rows])
            + _kth_of_two_sorted(below, n_below, above, n_above, k_hi[rows])
        )
    return med.reshape(shape), mad.reshape(shape)


class Normalization:
    """Per-cutout normalisation, reproducible from its `to_dict`.

    ``"asinh"``, for each cutout and band:

    - background ``bkg`` = median of the pixels within ``border`` pixels of
      the cutout edge (NaN ignored);
    - scale = 1.4826 x median absolute deviation of those border pixels,
      floored by ``min_scale`` and by ``peak_fraction`` times the robust
      peak (third-brightest pixel above ``bkg``), so that noise-free or
      empty cutouts do not blow up;
    - output = ``asinh((x - bkg) / (softening * scale))``, and NaN pixels
      (no data) become 0, i.e. background, after the stretch.

    ``"asinh_shared"`` keeps the colours: the same background per band,
    but one scale for all the bands of a cutout, the median over its bands
    of the per-band scales above. Relative band fluxes survive (a common
    factor on all bands cancels; a factor on one band does not), which is
    what separates red stars and background galaxies from young clusters.
    It needs the band axis: input ``(..., B, S, S)``.

    Each cutout is normalised on its own (``"asinh"``: each band too): the
    result for a row does not depend on the other rows of the batch.

    Parameters
    ----------
    name : str, optional
        Normalisation name, one of `NORMALIZATIONS`.
    params : dict, optional
        Parameters overriding the defaults of ``name``
        (both: ``border`` int >= 1, ``softening`` > 0,
        ``min_scale`` > 0, ``peak_fraction`` in [0, 1)).

    Examples
    --------
    >>> import numpy as np
    >>> norm = Normalization("asinh", {"softening": 2.0})
    >>> out = norm(np.zeros((2, 5, 16, 16), dtype=np.float32))
    >>> out.shape, out.dtype, float(abs(out).max())
    ((2, 5, 16, 16), dtype('float32'), 0.0)
    >>> Normalization.from_dict(norm.to_dict()) == norm
    True
    """

    def __init__(self, name="asinh", params=None):
        if name not in NORMALIZATIONS:
            raise ValueError(
                f"unknown normalization {name!r}; accepted: " + ", ".join(sorted(NORMALIZATIONS))
            )
        defaults = NORMALIZATIONS[name]
        params = dict(params or {})
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for normalization "
                f"{name!r}; accepted: {', '.join(defaults)}"
            )
        merged = {**defaults, **params}
        self.name = name
        self.params = self._check_asinh(merged)

    @staticmethod
    def _check_asinh(params):
        """Validate and convert the asinh parameters to plain Python types."""
        border, soft = params["border"], params["softening"]
        min_scale, frac = params["min_scale"], params["peak_fraction"]
        if isinstance(border, bool) or not float(border).is_integer() or border < 1:
            raise ValueError(
                f"normalization parameter border must be an integer >= 1, got {border!r}"
            )
        for key, value in (("softening", soft), ("min_scale", min_scale)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(
                    f"normalization parameter {key} must be a finite number > 0, got {value!r}"
                )
        if not 0 <= frac < 1:
            raise ValueError(
                f"normalization parameter peak_fraction must be in [0, 1), got {frac!r}"
            )
        # Plain int/float so the card survives weights_only checkpoint loading.
        return {
            "border": int(border),
            "softening": float(soft),
            "min_scale": float(min_scale),
            "peak_fraction": float(frac),
        }

    def __call__(self, data):
        """Normalise cutouts.

        Parameters
        ----------
        data : array-like, shape (..., S_y, S_x)
            Raw cutouts, typically (N, B, S, S); NaN marks missing data.
            ``"asinh_shared"`` needs at least (B, S_y, S_x).

        Returns
        -------
        out : `numpy.ndarray`
            Native-endian float32 of the same shape, all finite.
        """
        x = np.asarray(data, dtype=np.float32)
        shared = self.name == "asinh_shared"
        if x.ndim < 2 + shared:
            raise ValueError(
                f"cutouts must have at least {2 + shared} dimensions "
                f"({'..., B, S, S' if shared else '..., S, S'}) for normalization "
                f"{self.name!r}, got shape {x.shape}"
            )
        p = self.params
        border = x[..., _border_mask(*x.shape[-2:], p["border"])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are handled below
            bkg, mad = _nanmedian_and_mad_last(border)
            scale = _MAD_TO_SIGMA * mad
        bkg = np.nan_to_num(bkg, nan=0.0)
        flat = x.reshape(*x.shape[:-2], -1) - bkg[..., None]
        rank = min(_PEAK_RANK, flat.shape[-1])
        # fmax(NaN, -inf) = -inf: NaN (no data) never counts as the peak.
        peak = np.partition(np.fmax(flat, -np.inf), -rank, axis=-1)[..., -rank]
        peak = np.where(np.isfinite(peak), np.clip(peak, 0, None), 0)
        scale = np.fmax(np.nan_to_num(scale, nan=0.0), p["peak_fraction"] * peak)
        scale = np.fmax(scale, np.float32(p["min_scale"]))
        if shared:
            scale = np.repeat(np.median(scale, axis=-1, keepdims=True), scale.shape[-1], -1)
        scale = scale * np.float32(p["softening"])
        flat /= scale[..., None]
        out = np.arcsinh(flat, out=flat)
        # NaN (no data) is background after the stretch; +-inf input is no data too.
        np.copyto(out, 0, where=~np.isfinite(out))
        return out.reshape(x.shape)

    def to_dict(self):
        """Plain-dict form for the model card: ``{"name": ..., "params": {...}}``."""
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d):
        """Rebuild a normalisation from `to_dict` output.

        Raises
        ------
        ValueError
            If ``d`` is not such a dict, names an unknown normalisation or has
            bad parameters.
        """
        if not isinstance(d, dict) or "name" not in d or not set(d) <= {"name", "params"}:
            raise ValueError(
                f"normalization must be a dict with keys 'name' and 'params', got {d!r}"
            )
        return cls(d["name"], d.get("params"))

    def __eq__(self, other):
        if not isinstance(other, Normalization):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"Normalization({self.name!r}, {self.params!r})"


def _check_k(k):
    check_integer("dihedral transform index", k, minimum=0, maximum=DIHEDRAL_TRANSFORMS - 1)
    return int(k)


def dihedral(x, k):
    """Apply one of the 8 symmetries of the square to the last two dimensions.

    Parameters
    ----------
    x : `torch.Tensor`
        At least 2-D; the last two dimensions are the image (y, x).
    k : int
        0..7: rotation by ``90 * (k % 4)`` degrees, followed by a left-right
        flip if ``k >= 4``. ``k = 0`` is the identity.

    Returns
    -------
    `torch.Tensor`
        The transformed tensor (a new tensor, or ``x`` itself for ``k = 0``).
    """
    k = _check_k(k)
    y = torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x
    return y.flip(-1) if k >= 4 else y


def resize(x, size):
    """Resize square cutouts to ``size`` x ``size`` pixels (bilinear).

    Parameters
    ----------
    x : `torch.Tensor`, shape (N, B, S_y, S_x)
        Cutouts (floating point).
    size : int
        Output side in pixels.

    Returns
    -------
    `torch.Tensor`, shape (N, B, size, size)
        ``x`` itself when it already has that size. Bilinear with
        ``align_corners=False``; antialiased when shrinking, so that
        downsizing averages instead of skipping pixels.
    """
    size = check_integer("size", size)
    if x.ndim != 4:
        raise ValueError(f"resize expects a (N, B, S, S) tensor, got shape {tuple(x.shape)}")
    size = int(size)
    if tuple(x.shape[-2:]) == (size, size):
        return x
    shrink = size < max(x.shape[-2:])
    return F.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )


def random_augment(x, generator=None, *, max_shift=0.5, flux_jitter=0.1):
    """Random training augmentation of *raw* cutouts (normalise afterwards).

    Per sample: one of the 8 dihedral transforms, a sub-pixel translation of
    up to ``max_shift`` pixels in x and y (bilinear interpolation with
    reflection at the edges), and per sample and band a multiplicative flux
    factor uniform in ``[1 - flux_jitter, 1 + flux_jitter]``.

    NaN pixels (no data) are first replaced by the border median of their
    cutout and band, because interpolation would spread NaN; after
    normalisation they are background, as NaN would have been.

    Note that `Normalization` ``"asinh"`` divides each band by its own
    noise scale, so a per-band flux factor mostly cancels there; it matters
    only through the absolute floors of the scale (faint, noise-free data).
    With ``"asinh_shared"`` it is a colour jitter of up to about
    ``2.5 * flux_jitter / ln(10)`` mag per band.

    Parameters
    ----------
    x : `torch.Tensor`, shape (N, B, S, S)
        Raw float cutouts.
    generator : `torch.Generator`, optional
        Source of randomness; the same generator state gives the same output.
        `None` uses torch's global generator.
    max_shift : float, optional
        Largest shift in pixels along each axis (>= 0).
    flux_jitter : float, optional
        Half-width of the flux factor interval, in [0, 1).

    Returns
    -------
    `torch.Tensor`
        Augmented raw cutouts, float32, same shape and device, no NaN.
    """
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"random_augment expects square (N, B, S, S) cutouts, got shape {tuple(x.shape)}"
        )
    if not max_shift >= 0:
        raise ValueError(f"max_shift must be >= 0 pixels, got {max_shift!r}")
    if not 0 <= flux_jitter < 1:
        raise ValueError(f"flux_jitter must be in [0, 1), got {flux_jitter!r}")
    n, n_bands, size, _ = x.shape
    x = x.to(torch.float32)
    gen_device = generator.device if generator is not None else torch.device("cpu")

    def uniform(*shape):
        # Drawn on the generator's device then moved, so results do not
        # depend on where x lives.
        return torch.rand(*shape, generator=generator, device=gen_device).to(x.device)

    ks = torch.randint(0, DIHEDRAL_TRANSFORMS, (n,), generator=generator, device=gen_device)
    shifts = (2 * uniform(n, 2) - 1) * max_shift
    factors = 1 + (2 * uniform(n, n_bands) - 1) * flux_jitter

    border = x[..., torch.from_numpy(_border_mask(size, size, min(3, size // 2))).to(x.device)]
    fill = torch.nan_to_num(torch.nanmedian(border, dim=-1).values, nan=0.0)
    x = torch.where(torch.isnan(x), fill[..., None, None], x)

    out = torch.empty_like(x)
    ks = ks.to(x.device)
    for k in range(DIHEDRAL_TRANSFORMS):
        idx = torch.nonzero(ks == k).flatten()
        if idx.numel():
            out[idx] = dihedral(x[idx], k)

    if max_shift > 0:
        # Affine grid in normalised coordinates: one pixel is 2 / size.
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, :, 2] = shifts * (2.0 / size)
        grid = F.affine_grid(theta, list(out.shape), align_corners=False)
        out = F.grid_sample(
            out, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
    return out * factors[..., None, None]


def prepare_batch(raw, normalization, input_size):
    """Raw cutouts -> network input: normalise, fill, resize.

    This is the one preprocessing path shared by training and
    classification.

    Parameters
    ----------
    raw : `numpy.ndarray`
        ``(N, B, S, S)`` float32 cutouts, NaN where there is no data.
    normalization : `~photutils_clusterclf.preprocessing.Normalization`
        The model card's normalisation.
    input_size : int
        Side of the network input; cutouts are resized when it differs.

    Returns
    -------
    batch : `torch.Tensor`
        ``(N, B, input_size, input_size)`` float32, finite, on the CPU.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(normalization(raw), dtype=np.float32))
    return resize(tensor, input_size)
