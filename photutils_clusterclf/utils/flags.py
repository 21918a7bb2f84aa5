"""The bit flags of ``class_ml_flags``: one registry, and `decode_flags` to read them.

Following the photutils PSF-photometry flags: each bit has a name and a
description here, `~photutils_clusterclf.cutouts` sets them, and
`decode_flags` turns a flag value (or a column of them) back into words.
"""

import numpy as np

__all__ = ["FLAGS", "decode_flags"]

#: Bit value -> (name, description) of every flag, in bit order.
FLAGS = {
    1: ("partial", "the cutout lies partly off the image of some band (padded with NaN)"),
    2: ("nan", "more than nan_threshold of the cutout is NaN / no data in some band"),
    4: ("no_overlap", "the cutout lies entirely off the image of some band: not classified"),
    8: (
        "no_coverage",
        "some band has no data at the object (NaN centre pixel, or an "
        "all-zero / NaN cutout): not classified",
    ),
    16: ("invalid_position", "the position is NaN, infinite or masked: not classified"),
}


def decode_flags(flags, *, descriptions=False):
    """Names of the flags set in a ``class_ml_flags`` value or column.

    Parameters
    ----------
    flags : int or array-like of int
        One flag value, or a column of them.
    descriptions : bool, optional
        Return the descriptions instead of the short names.

    Returns
    -------
    names : list of str, or list of list of str
        For one value, the names of its bits in bit order (empty for 0);
        for an array, one such list per element.

    Raises
    ------
    ValueError
        A value is negative or has a bit that is not a flag.

    Examples
    --------
    >>> from photutils_clusterclf import decode_flags
    >>> decode_flags(5)
    ['partial', 'no_overlap']
    >>> decode_flags([0, 16])
    [[], ['invalid_position']]
    """
    values = np.asarray(flags)
    if values.dtype.kind not in "iu" and values.size:
        raise ValueError(f"flags must be integers, got dtype {values.dtype}")
    known = sum(FLAGS)
    bad = values[(values < 0) | (values & ~known != 0)] if values.size else values
    if bad.size:
        raise ValueError(
            f"flag value {int(bad.flat[0])} has bits that are not flags; known "
            f"bits: {', '.join(f'{b} {n}' for b, (n, _) in FLAGS.items())}"
        )
    pick = 1 if descriptions else 0

    def decode(value):
        return [entry[pick] for bit, entry in FLAGS.items() if int(value) & bit]

    if values.ndim == 0:
        return decode(values)
    return [decode(v) for v in values.ravel()]
