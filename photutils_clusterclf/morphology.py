"""A morphology branch: measured shape and colour added to a network's logits.

A CNN trained on a few thousand 32 px cutouts tells a round cluster (class 1)
from an elongated one (class 2) worse than gradient boosting on a dozen
hand-made features does (benchmarks/RESULTS.md): the second moments and
aperture fluxes that separate them are exact sums over the central pixels,
which the network has to learn from noisy examples. `MorphologyFusion`
measures such quantities from the network's own input and adds the logits
of a small multilayer perceptron on them to the network's logits, so the
two learn together and nothing changes in the data path: the model still
takes a normalised ``(N, B, S, S)`` batch and returns ``(N, n_classes)``
logits (training, calibration, test-time augmentation, DDP and checkpoints
work as for any network).

The measurements (`morphology_features`) are invariant under the 8
symmetries of the square, as the class of a candidate is: apertures are
centred on the image centre, moments are taken about the light-weighted
centroid, and the asymmetry is the smallest over the four central pixels
(a dihedral transform of an even-sized cutout moves the candidate between
them). They are computed on the normalised input (asinh-stretched), where
differences of aperture sums between bands act as colours.
"""

import functools

import numpy as np
import torch
import torch.fx
from photutils.aperture import CircularAperture
from torch import nn

__all__ = ["MORPHOLOGY_RADII", "MorphologyFusion", "morphology_features", "n_morphology_features"]

#: Aperture radii (pixels of the network input) of the per-band sums.
MORPHOLOGY_RADII = (1.5, 2.0, 3.0, 5.0, 8.0)

#: Radii of the windows in which second moments are measured.
_MOMENT_RADII = (3.0, 5.0)

# Sums of the band-summed image within the first three radii, relative to
# the largest: concentration ratios (clipped where the total is near zero).
_N_RATIOS = 3
_RATIO_LIMIT = 5.0
_TINY = 1e-6


def n_morphology_features(n_bands):
    """Number of `morphology_features` of an ``n_bands``-band input."""
    return n_bands * len(MORPHOLOGY_RADII) + (n_bands - 1) + _N_RATIOS + 3 * len(_MOMENT_RADII) + 1


@functools.lru_cache(maxsize=8)
def _masks(size):
    """Aperture weights ``(S*S, R)``, moment windows ``(W, S, S)`` and offsets ``(2, S, S)``."""
    centre = (size - 1) / 2
    apertures = np.stack(
        [
            CircularAperture((centre, centre), r=r)
            .to_mask(method="exact")
            .to_image((size, size))
            .ravel()
            for r in MORPHOLOGY_RADII
        ],
        axis=1,
    )
    offsets = np.mgrid[:size, :size] - centre
    radius = np.hypot(*offsets)
    windows = np.stack([radius <= r for r in _MOMENT_RADII])
    return tuple(
        torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        for a in (apertures, windows, offsets)
    )


def _moments(image, window, yy, xx):
    """Size, ellipticity and centroid offset of the positive light in ``window``."""
    m = image * window
    m0 = m.sum((1, 2)).clamp_min(_TINY)
    cy = (m * yy).sum((1, 2)) / m0
    cx = (m * xx).sum((1, 2)) / m0
    dy, dx = yy - cy[:, None, None], xx - cx[:, None, None]
    iyy = (m * dy * dy).sum((1, 2)) / m0
    ixx = (m * dx * dx).sum((1, 2)) / m0
    ixy = (m * dx * dy).sum((1, 2)) / m0
    trace = (ixx + iyy).clamp_min(_TINY)
    ellipticity = torch.sqrt((ixx - iyy) ** 2 + 4 * ixy**2 + _TINY**2) / trace
    return torch.stack([trace.sqrt(), ellipticity, torch.sqrt(cx**2 + cy**2 + _TINY**2)], 1)


@torch.fx.wrap
def morphology_features(x):
    """Dihedral-invariant measurements of a normalised batch.

    Parameters
    ----------
    x : `torch.Tensor`, shape (N, B, S, S)
        Network input (normalised cutouts).

    Returns
    -------
    `torch.Tensor`, shape (N, `n_morphology_features` (B))
        Per band, the sums within `MORPHOLOGY_RADII`; differences of the
        3 px sums of adjacent bands; concentration ratios of the band-summed
        image; size, ellipticity and centroid offset of its positive part
        within 3 and 5 px; its 180-degree asymmetry within 5 px.
    """
    apertures, windows, offsets = (
        a.to(device=x.device, dtype=x.dtype) for a in _masks(int(x.shape[-1]))
    )
    flux = x.flatten(2) @ apertures  # (N, B, R)
    total = flux.sum(1)
    ratios = (total[:, :_N_RATIOS] / total[:, -1:].abs().clamp_min(1e-3)).clamp(
        -_RATIO_LIMIT, _RATIO_LIMIT
    )
    colours = flux[:, :-1, 2] - flux[:, 1:, 2]
    image = x.sum(1).clamp_min(0)
    out = [flux.flatten(1), colours, ratios]
    out += [_moments(image, w, offsets[0], offsets[1]) for w in windows]
    window = windows[-1]
    light = (image * window).sum((1, 2)).clamp_min(_TINY)
    flipped = image.flip(-2, -1)  # rotation by 180 degrees about the image centre
    asymmetry = torch.stack(
        [
            ((image - torch.roll(flipped, shift, dims=(-2, -1))).abs() * window).sum((1, 2))
            for shift in ((-1, -1), (-1, 1), (1, -1), (1, 1))
        ],
        1,
    ).amin(1, keepdim=True)
    out.append(asymmetry / light[:, None])
    return torch.cat(out, 1)


class MorphologyFusion(nn.Module):
    """A network whose logits are summed with those of an MLP on `morphology_features`.

    Parameters
    ----------
    network : `torch.nn.Module`
        Maps ``(N, n_bands, S, S)`` to ``(N, n_classes)`` logits.
    n_bands, n_classes : int
    hidden : int, optional
        Width of the two hidden layers of the perceptron.

    Notes
    -----
    The perceptron starts with batch normalisation, which standardises the
    measurements (their scales differ by orders of magnitude).
    """

    def __init__(self, network, n_bands, n_classes, *, hidden=64):
        super().__init__()
        self.network = network
        k = n_morphology_features(n_bands)
        self.morphology = nn.Sequential(
            nn.BatchNorm1d(k),
            nn.Linear(k, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x):
        return self.network(x) + self.morphology(morphology_features(x))
