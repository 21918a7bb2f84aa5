"""Astropy unified I/O: the FITS writer that keeps a classified catalogue's provenance.

Importing the package registers the format ``"clusterclf"`` with astropy's
I/O registry, for `~astropy.table.Table` and `~astropy.table.QTable`, and
makes it the writer that ``table.write("out.fits")`` picks for a FITS file
name (it outranks astropy's own ``"fits"`` writer, which drops nested
metadata with a warning). The writer flattens the metadata into FITS
header cards (`fits_header_meta`) and then writes with astropy's FITS
writer, so ``out.write("classified.fits")`` keeps ``meta["clusterclf"]``
as ``CLUSTERCLF ...`` HIERARCH cards, with no warning. Tables whose
metadata holds only scalars are written exactly as astropy writes them,
except that None values are left out and an integer ``origin`` (this
package's pixel convention) is written as `FITS_ORIGIN_KEY`.
An explicit ``format="fits"`` still selects astropy's writer.
"""

import json
import numbers
import warnings

from astropy.io import registry
from astropy.io.fits.connect import is_fits
from astropy.io.fits.verify import VerifyWarning
from astropy.table import QTable, Table

__all__ = ["FITS_ORIGIN_KEY", "fits_header_meta", "write_fits_table"]

#: FITS keyword of an integer ``table.meta["origin"]`` (the pixel convention
#: of the position columns). ``ORIGIN`` itself is reserved by the FITS
#: standard for the organisation that wrote the file.
FITS_ORIGIN_KEY = "CLUSTERCLF PIXEL_ORIGIN"


def fits_header_meta(meta, *, _prefix=""):
    """Flatten nested table metadata into FITS-header-safe key/value pairs.

    FITS headers hold only scalars: nested dicts become space-separated
    HIERARCH keys (``CLUSTERCLF MODEL_SHA256``), lists and other values
    JSON strings, so that no provenance is dropped on the way to FITS.
    None values are left out (a missing card reads back as missing, where
    ``'null'`` would read back as a string), and an integer top-level
    ``origin`` (the pixel convention) goes to `FITS_ORIGIN_KEY`, not to the
    reserved ``ORIGIN``.

    Parameters
    ----------
    meta : dict
        Table metadata, possibly nested.

    Returns
    -------
    flat : dict
        Upper-case keys and scalar values (``comments`` / ``history`` lists
        are kept as lists: astropy writes them as COMMENT / HISTORY cards).
    """
    flat = {}
    for key, value in meta.items():
        name = f"{_prefix}{key}".upper()
        if value is None:
            continue
        if (
            not _prefix
            and key == "origin"
            and isinstance(value, numbers.Integral)
            and not isinstance(value, bool)
        ):
            name = FITS_ORIGIN_KEY
        if isinstance(value, dict):
            flat.update(fits_header_meta(value, _prefix=f"{name} "))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif key in ("comments", "history") and isinstance(value, list):
            flat[key] = value
        else:
            flat[name] = json.dumps(value, default=str)
    return flat


def write_fits_table(table, output, **kwargs):
    """Write a table to FITS with its metadata flattened by `fits_header_meta`.

    This is the writer of the ``"clusterclf"`` format:
    ``table.write("out.fits")`` and ``table.write(path, format="clusterclf")``
    both call it.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table; its ``meta`` is not changed.
    output : str or `~pathlib.Path`
        The FITS file.
    **kwargs
        Passed to astropy's FITS writer (``overwrite``, ``append``, ``name``).
    """
    out = table.copy(copy_data=False)
    out.meta = fits_header_meta(table.meta)
    with warnings.catch_warnings():
        # Long keys become HIERARCH cards, which is what we want.
        warnings.filterwarnings("ignore", message=".*HIERARCH card", category=VerifyWarning)
        out.write(output, format="fits", **kwargs)  # astropy's own FITS writer


def _is_fits_output(origin, *args, **kwargs):
    """Identifier: a FITS destination (writing only; reading stays astropy's ``"fits"``)."""
    return origin == "write" and is_fits(origin, *args, **kwargs)


# The identifier is registered for Table only: one registered for QTable would
# hide all of Table's identifiers from QTable. The writer is registered for
# both, with priority 1, which outranks astropy's "fits" writer (priority 0
# for Table, none of its own for QTable) when a FITS file name matches both.
registry.register_identifier("clusterclf", Table, _is_fits_output, force=True)
for _cls in (Table, QTable):
    registry.register_writer("clusterclf", _cls, write_fits_table, priority=1, force=True)
