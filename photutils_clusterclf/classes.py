"""The class scheme of PHANGS-HST and LEGUS star-cluster catalogues.

Classes 1-4 are the machine-learning targets (see the classes page of the docs). PHANGS
human catalogues also use codes 5-19 for specific kinds of non-cluster; for
training and evaluation they fold into class 4. LEGUS class 0 means "not
inspected" and is never a label.
"""

import numpy as np

__all__ = [
    "CLASSES",
    "CLASS_DESCRIPTIONS",
    "DEFAULT_COLORS",
    "PHANGS_FOLD",
    "UNCLASSIFIED",
    "fold_classes",
]

#: The four target classes, in the order of the probability columns.
CLASSES = (1, 2, 3, 4)

#: Value of ``class_ml`` (and of folded labels) where there is no class.
UNCLASSIFIED = 0

CLASS_DESCRIPTIONS = {
    1: "cluster: single peak, symmetric, centrally concentrated",
    2: "cluster: single peak, elongated or asymmetric, centrally concentrated",
    3: "compact association: multiple peaks, often on diffuse wings",
    4: "not a cluster: star, star pair/triple, saturated star, spike, "
    "background galaxy or artefact",
}

#: DS9 colour of each class (configurable wherever colours are used).
DEFAULT_COLORS = {1: "red", 2: "green", 3: "blue", 4: "yellow"}

#: PHANGS human codes 5-19 (5 pair of stars, 6 saturated star, 7 bad pixel,
#: 8 diffraction spike, 9 background galaxy, 10-19 other artefacts, edges,
#: triples...) all mean "not a cluster" and fold into class 4.
PHANGS_FOLD = {code: 4 for code in range(5, 20)}


def fold_classes(codes, *, mapping=None):
    """Fold catalogue class codes onto the classes 1-4.

    Parameters
    ----------
    codes : array-like
        Class codes: integers, floats (LEGUS writes ``4.0``), or a masked
        array / masked column.
    mapping : dict, optional
        Code -> class translations, applied after keeping codes 1-4 (so a
        mapping may also merge classes, e.g. ``{2: 1}``). Defaults to
        `PHANGS_FOLD` (codes 5-19 -> 4). Pass ``{}`` to fold nothing.

    Returns
    -------
    folded : `numpy.ndarray` of int16
        Codes 1-4 unchanged, mapped codes translated, and 0
        (`UNCLASSIFIED`) for everything else: 0, negative, NaN, masked,
        non-integer or unknown codes.
    """
    mapping = PHANGS_FOLD if mapping is None else mapping
    values = np.ma.filled(np.ma.asarray(codes, dtype=float), np.nan)
    values = np.atleast_1d(values).astype(float)
    out = np.zeros(values.shape, dtype=np.int16)
    finite = np.isfinite(values) & (values == np.round(values))
    ints = np.where(finite, values, 0).astype(np.int64)
    for cls in CLASSES:
        out[finite & (ints == cls)] = cls
    for code, target in mapping.items():
        if target not in (UNCLASSIFIED,) + CLASSES:
            raise ValueError(
                f"mapping sends code {code} to {target}; targets must be one of 0, 1, 2, 3, 4"
            )
        out[finite & (ints == code)] = target
    return out
