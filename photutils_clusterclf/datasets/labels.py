"""Label noise: simulated human classifications of known true classes."""

import numpy as np

from ..classes import CLASSES

__all__ = ["HUMAN_LABEL_NOISE", "label_noise_matrix", "noisy_labels"]

#: P(human label = column | true class = row), classes 1-4. The diagonal
#: follows the agreement between human classifiers reported for LEGUS and
#: PHANGS (about 70-80 % on class 1, 40-50 % on classes 2 and 3, 60-70 %
#: on class 4; Wei et al. 2020, Whitmore et al. 2021); the off-diagonal
#: mass goes mostly to the neighbouring classes, as in those studies.
HUMAN_LABEL_NOISE = np.array(
    [
        [0.75, 0.17, 0.04, 0.04],
        [0.25, 0.45, 0.18, 0.12],
        [0.05, 0.20, 0.45, 0.30],
        [0.06, 0.09, 0.20, 0.65],
    ]
)
HUMAN_LABEL_NOISE.setflags(write=False)


def label_noise_matrix(label_noise):
    """Validate a label-noise option and return its 4 x 4 matrix (or None).

    Parameters
    ----------
    label_noise : None, "none", "human" or array-like (4, 4)
        None / "none": labels equal the true classes. "human":
        `HUMAN_LABEL_NOISE`. An array: row i gives the probabilities of
        the labels 1-4 for true class i + 1; rows must sum to 1.

    Returns
    -------
    matrix : `~numpy.ndarray` or None
    """
    if label_noise is None or (isinstance(label_noise, str) and label_noise.lower() == "none"):
        return None
    if isinstance(label_noise, str):
        if label_noise.lower() == "human":
            return HUMAN_LABEL_NOISE.copy()
        raise ValueError(
            f"unknown label_noise {label_noise!r}; use None, 'none', "
            "'human' or a 4x4 row-stochastic array"
        )
    matrix = np.asarray(label_noise, dtype=float)
    if matrix.shape != (len(CLASSES), len(CLASSES)):
        raise ValueError(f"label_noise matrix must have shape (4, 4), got {matrix.shape}")
    if (
        not np.all(np.isfinite(matrix))
        or np.any(matrix < 0)
        or not np.allclose(matrix.sum(axis=1), 1.0, atol=1e-6)
    ):
        raise ValueError(
            "label_noise matrix must be finite, non-negative, and each row must sum to 1"
        )
    return matrix


def noisy_labels(true_classes, label_noise, rng):
    """Draw noisy labels for known true classes.

    Call it several times with the same generator for independent
    labellers (e.g. the consensus of three).

    Parameters
    ----------
    true_classes : array-like of int
        True classes 1-4; any other value (0 = unlabelled) is kept as is.
    label_noise : None, "none", "human" or array-like (4, 4)
        See `label_noise_matrix`.
    rng : `numpy.random.Generator` or int or None
        Random generator (or seed).

    Returns
    -------
    labels : `~numpy.ndarray` of int16
        One label per input row.
    """
    true_classes = np.asarray(true_classes)
    labels = true_classes.astype(np.int16, copy=True)
    matrix = label_noise_matrix(label_noise)
    if matrix is None:
        return labels
    rng = np.random.default_rng(rng)
    valid = np.isin(labels, CLASSES)
    cumulative = np.cumsum(matrix, axis=1)[labels[valid] - 1]
    cumulative[:, -1] = 1.0  # guard against rounding at the top of the CDF
    u = rng.random(int(valid.sum()))
    labels[valid] = (u[:, None] >= cumulative).sum(axis=1) + 1
    return labels
