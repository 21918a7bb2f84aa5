"""Calibration of class probabilities: temperature scaling, ECE, Brier score.

A network trained with cross entropy is usually over-confident on new data:
among the candidates it gives a probability of 0.9, fewer than 90 % have
that class. Temperature scaling (Guo et al. 2017, "On Calibration of Modern
Neural Networks") divides the logits by one scalar ``T > 0`` before the
softmax, fitted by minimising the negative log-likelihood of a labelled
validation set. It changes no argmax, so the classes stay the same; only
the probabilities (and ``class_ml_qual``) move.

For an ensemble, the members share one temperature, fitted on what
classification reports: the mean over members of ``softmax(logits / T)``.

Labels are the classes ``1..K``: column ``k`` of a probability array is
the probability of class ``k + 1`` (as ``prob_class1..4``).
"""

import dataclasses
import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp

from .utils.validation import check_positive

__all__ = [
    "ReliabilityCurve",
    "brier_score",
    "calibration_summary",
    "expected_calibration_error",
    "fit_temperature",
    "negative_log_likelihood",
    "reliability_curve",
    "temperature_softmax",
]

#: Search interval of `fit_temperature`.
TEMPERATURE_BOUNDS = (0.05, 20.0)

# Rows of a probability array must sum to 1 within this (float32 softmax
# outputs do to about 1e-6).
_SUM_TOLERANCE = 1e-3


def _labels(labels, n, n_classes):
    """Classes ``1..K`` -> 0-based int64 indices, with one-line errors."""
    values = np.asarray(labels)
    if values.ndim != 1 or values.size != n:
        raise ValueError(f"labels must be one class per row ({n}), got shape {values.shape}")
    if values.dtype.kind not in "iuf":
        raise ValueError(f"labels must be integer classes 1-{n_classes}, got dtype {values.dtype}")
    valid = (
        np.isfinite(values) & (values == np.round(values)) & (values >= 1) & (values <= n_classes)
    )
    if not valid.all():
        bad = values[~valid][:3].tolist()
        raise ValueError(
            f"{np.count_nonzero(~valid)} label(s) are not classes "
            f"1-{n_classes} (e.g. {bad}); drop unlabelled rows first"
        )
    return values.astype(np.int64) - 1


def _probabilities(probs, labels):
    """Checked ``(N, K)`` float64 probabilities and 0-based labels."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be (N, K) class probabilities, got shape {p.shape}")
    n, k = p.shape
    if n == 0:
        raise ValueError("no rows: calibration metrics need at least one labelled object")
    if k < 2:
        raise ValueError(f"probs has {k} class column(s); calibration needs at least 2")
    missing = np.isnan(p).any(axis=1)
    if missing.any():
        raise ValueError(
            f"{np.count_nonzero(missing)} row(s) of probs are NaN "
            "(unclassified candidates, class 0); drop them first"
        )
    if (p < 0).any() or (p > 1).any() or (np.abs(p.sum(axis=1) - 1) > _SUM_TOLERANCE).any():
        raise ValueError("probs must be probabilities: each row in [0, 1] and summing to 1")
    return p, _labels(labels, n, k)


def _logits(logits):
    """Checked ``(M, N, K)`` float64 logits (a single model has ``M = 1``)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 2:
        z = z[np.newaxis]
    if z.ndim != 3:
        raise ValueError(
            "logits must be (N, K) for one model or (M, N, K) for an "
            f"ensemble of M, got shape {np.shape(logits)}"
        )
    if z.shape[1] == 0:
        raise ValueError("no rows: a temperature needs at least one labelled object")
    if z.shape[2] < 2:
        raise ValueError(f"logits have {z.shape[2]} class column(s); calibration needs at least 2")
    if not np.isfinite(z).all():
        raise ValueError("logits must be finite; drop rows of unclassified candidates")
    return z


def _log_probs(z, temperature):
    """``(N, K)`` log of the ensemble-mean ``softmax(z / T)``."""
    log_p = log_softmax(z / temperature, axis=2)
    if z.shape[0] == 1:
        return log_p[0]
    return logsumexp(log_p, axis=0) - math.log(z.shape[0])


def _through_noise(log_p, label_noise):
    """``log(p @ label_noise)``: log P(label | x) from log P(true class | x)."""
    if label_noise is None:
        return log_p
    noise = np.asarray(label_noise, dtype=np.float64)
    k = log_p.shape[1]
    if noise.shape != (k, k) or not np.isfinite(noise).all() or (noise < 0).any():
        raise ValueError(
            f"label_noise must be a ({k}, {k}) matrix of probabilities "
            f"P(label | true class), got shape {noise.shape}"
        )
    with np.errstate(divide="ignore"):
        log_noise = np.log(noise)
    return logsumexp(log_p[:, :, np.newaxis] + log_noise, axis=1)


def temperature_softmax(logits, temperature=1.0):
    """Probabilities ``softmax(logits / T)``, averaged over ensemble members.

    Parameters
    ----------
    logits : array-like
        ``(N, K)`` logits of one model or ``(M, N, K)`` of ``M`` members.
    temperature : float, optional
        ``T > 0``; 1 leaves the probabilities as trained.

    Returns
    -------
    probs : `numpy.ndarray`
        ``(N, K)`` float64.
    """
    return np.exp(_log_probs(_logits(logits), check_positive("temperature", temperature)))


def negative_log_likelihood(probs, labels):
    """Mean negative log-likelihood of the labels under the probabilities.

    Parameters
    ----------
    probs : array-like
        ``(N, K)`` probabilities; column ``k`` is class ``k + 1``.
    labels : array-like
        ``(N,)`` classes ``1..K``.

    Returns
    -------
    nll : float
        In nats; a probability of 0 for a label gives ``inf``.
    """
    p, y = _probabilities(probs, labels)
    with np.errstate(divide="ignore"):
        return float(-np.log(p[np.arange(y.size), y]).mean())


def fit_temperature(logits, labels, *, bounds=TEMPERATURE_BOUNDS, label_noise=None):
    """The temperature that minimises the negative log-likelihood of labelled logits.

    A coarse grid in ``log T`` finds the basin of the minimum (the NLL of
    an ensemble mean need not be convex), then a bounded Brent search
    refines it.

    Parameters
    ----------
    logits : array-like
        ``(N, K)`` validation logits of one model, or ``(M, N, K)`` of the
        ``M`` members of an ensemble (one shared temperature, fitted on
        the mean of the members' probabilities).
    labels : array-like
        ``(N,)`` classes ``1..K`` of the rows.
    bounds : tuple of float, optional
        Search interval ``(low, high)``, ``0 < low < high``.
    label_noise : array-like (K, K), optional
        For a network trained with forward correction (its probabilities
        are of the true classes, the labels noisy): P(label = j | true
        class = i). The likelihood is then that of the labels under
        ``softmax(logits / T) @ label_noise``.

    Returns
    -------
    temperature : float
        ``T > 1`` softens over-confident probabilities, ``T < 1`` sharpens
        under-confident ones.

    Raises
    ------
    ValueError
        Bad input, or a minimum at the edge of ``bounds``: then the
        likelihood keeps improving as ``T`` goes to 0 or infinity (e.g.
        every validation object is classified right, or the logits carry
        no information), and no finite temperature is supported by the data.
    """
    z = _logits(logits)
    y = _labels(labels, z.shape[1], z.shape[2])
    low, high = (float(b) for b in bounds)
    if not 0 < low < high or not math.isfinite(high):
        raise ValueError(f"bounds must be 0 < low < high, got {bounds!r}")
    rows = np.arange(y.size)

    def nll(log_t):
        return -_through_noise(_log_probs(z, math.exp(log_t)), label_noise)[rows, y].mean()

    grid = np.linspace(math.log(low), math.log(high), 41)
    values = [nll(g) for g in grid]
    best = int(np.argmin(values))
    if best in (0, grid.size - 1):
        raise ValueError(
            f"the validation likelihood is best at T = {math.exp(grid[best]):g}, "
            f"the edge of the search interval {low:g}-{high:g}: the "
            f"{y.size} labelled objects do not constrain a temperature "
            "(too few, all right, or uninformative logits)"
        )
    result = minimize_scalar(
        nll, bounds=(grid[best - 1], grid[best + 1]), method="bounded", options={"xatol": 1e-6}
    )
    return float(math.exp(result.x))


@dataclasses.dataclass(frozen=True)
class ReliabilityCurve:
    """Accuracy against confidence in equal-width bins of the top probability.

    Attributes
    ----------
    bin_edges : `numpy.ndarray`
        ``(n_bins + 1,)`` edges from 0 to 1.
    confidence : `numpy.ndarray`
        ``(n_bins,)`` mean top probability of the objects in each bin (NaN
        in empty bins).
    accuracy : `numpy.ndarray`
        ``(n_bins,)`` fraction of those objects whose most probable class is
        their label (NaN in empty bins).
    counts : `numpy.ndarray`
        ``(n_bins,)`` int64 objects per bin.
    """

    bin_edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray

    @property
    def n(self):
        """Number of objects."""
        return int(self.counts.sum())

    @property
    def ece(self):
        """Expected calibration error: count-weighted mean of ``|accuracy - confidence|``."""
        full = self.counts > 0
        gaps = np.abs(self.accuracy[full] - self.confidence[full])
        return float((self.counts[full] * gaps).sum() / self.n)


def reliability_curve(probs, labels, *, n_bins=15):
    """Reliability-diagram data of probabilities against labels.

    Each object falls in the bin of its top probability (its confidence);
    bins are ``[i / n_bins, (i + 1) / n_bins)``, the last one closed.

    Parameters
    ----------
    probs : array-like
        ``(N, K)`` probabilities; column ``k`` is class ``k + 1``.
    labels : array-like
        ``(N,)`` classes ``1..K``.
    n_bins : int, optional
        Number of equal-width bins.

    Returns
    -------
    curve : `ReliabilityCurve`
    """
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    n_bins = int(n_bins)
    p, y = _probabilities(probs, labels)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    index = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(index, confidence, minlength=n_bins) / counts
        accuracy = np.bincount(index, correct, minlength=n_bins) / counts
    return ReliabilityCurve(
        bin_edges=np.linspace(0.0, 1.0, n_bins + 1),
        confidence=mean_conf,
        accuracy=accuracy,
        counts=counts,
    )


def expected_calibration_error(probs, labels, *, n_bins=15):
    """Expected calibration error (ECE) of the top-class probability.

    ``ECE = sum_b (n_b / N) |accuracy_b - confidence_b|`` over the bins of
    `reliability_curve`: 0 when, in every bin, the fraction of objects of
    the predicted class equals their mean probability.

    Parameters
    ----------
    probs : array-like
        ``(N, K)`` probabilities; column ``k`` is class ``k + 1``.
    labels : array-like
        ``(N,)`` classes ``1..K``.
    n_bins : int, optional
        Number of equal-width confidence bins.

    Returns
    -------
    ece : float
        Between 0 and 1.
    """
    return reliability_curve(probs, labels, n_bins=n_bins).ece


def brier_score(probs, labels):
    """Multi-class Brier score: mean squared distance to the one-hot labels.

    ``mean_i sum_k (p_ik - [y_i = k])^2``, between 0 (certain and right)
    and 2 (certain and wrong); uniform probabilities over ``K`` classes
    score ``1 - 1/K``.

    Parameters
    ----------
    probs : array-like
        ``(N, K)`` probabilities; column ``k`` is class ``k + 1``.
    labels : array-like
        ``(N,)`` classes ``1..K``.

    Returns
    -------
    brier : float
    """
    p, y = _probabilities(probs, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(y.size), y] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def calibration_summary(logits, labels, temperature, *, n_bins=15, label_noise=None):
    """NLL, ECE and Brier score of labelled logits at ``T = 1`` and at ``temperature``.

    Parameters
    ----------
    logits : array-like
        ``(N, K)`` or ``(M, N, K)`` logits.
    labels : array-like
        ``(N,)`` classes ``1..K``.
    temperature : float
        The fitted temperature.
    n_bins : int, optional
        Bins of the ECE.
    label_noise : array-like (K, K), optional
        As in `fit_temperature`: the metrics are then those of the label
        probabilities ``softmax(logits / T) @ label_noise``.

    Returns
    -------
    summary : dict
        ``temperature``, ``n_objects`` and ``nll`` / ``ece`` / ``brier``
        ``_before`` and ``_after`` (plain floats, for a model card).
    """
    z = _logits(logits)
    out = {"temperature": check_positive("temperature", temperature), "n_objects": int(z.shape[1])}
    for when, t in (("before", 1.0), ("after", out["temperature"])):
        p = np.exp(_through_noise(_log_probs(z, t), label_noise))
        out[f"nll_{when}"] = negative_log_likelihood(p, labels)
        out[f"ece_{when}"] = expected_calibration_error(p, labels, n_bins=n_bins)
        out[f"brier_{when}"] = brier_score(p, labels)
    return out
