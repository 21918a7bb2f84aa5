"""Atomic, non-clobbering output files and checksums.

Every file the package writes goes through `atomic_output`: the content is
written to a temporary file in the destination directory and renamed into
place only when complete, so an interrupted run never leaves a partial file
and never damages an existing one.
"""

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

from astropy.io.fits.verify import VerifyWarning

__all__ = ["atomic_output", "check_writable", "fits_header_meta", "sha256_file",
           "write_table"]

#: FITS keyword of ``table.meta["origin"]`` (the pixel convention of the
#: position columns). ``ORIGIN`` itself is reserved by the FITS standard for
#: the organisation that wrote the file.
FITS_ORIGIN_KEY = "CLUSTERCLF PIXEL_ORIGIN"

TABLE_FORMATS = {".fits": "fits", ".fit": "fits", ".fits.gz": "fits",
                 ".ecsv": "ascii.ecsv", ".csv": "ascii.csv"}


def check_writable(path, *, overwrite=False):
    """Raise `FileExistsError` if ``path`` exists and ``overwrite`` is False.

    Called before long work starts, so that a run is not wasted on an
    output that would be refused at the end.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"output file {path} already exists; "
                              "pass overwrite=True (--overwrite) to replace it")
    if not path.parent.exists():
        raise FileNotFoundError(f"output directory {path.parent} does not exist")


@contextlib.contextmanager
def atomic_output(path, *, overwrite=False):
    """Context manager yielding a temporary path that replaces ``path`` on success.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Final destination.
    overwrite : bool, optional
        Replace an existing file. Without it, an existing ``path`` raises
        `FileExistsError` before anything is written.

    Yields
    ------
    tmp : `~pathlib.Path`
        Where to write. It lives in the same directory as ``path`` (so the
        final rename is atomic) and keeps the suffix, so writers that pick a
        format from the name still work. It is deleted if the block raises.
    """
    path = Path(path)
    check_writable(path, overwrite=overwrite)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}",
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    tmp.unlink()  # writers such as astropy refuse an existing file
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written for {path}")
        if not overwrite and path.exists():
            raise FileExistsError(f"output file {path} appeared while writing; "
                                  "pass overwrite=True (--overwrite) to replace it")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def table_format(path):
    """Astropy ``format`` name for a table file, from its extension."""
    name = Path(path).name.lower()
    for ext, fmt in sorted(TABLE_FORMATS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(ext):
            return fmt
    raise ValueError(f"cannot tell the table format of {path}: use one of "
                     + ", ".join(sorted(TABLE_FORMATS)))


def write_table(table, path, *, overwrite=False):
    """Write an Astropy table atomically; the format follows the extension.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table to write.
    path : str or `~pathlib.Path`
        ``.fits``, ``.fits.gz``, ``.ecsv`` or ``.csv``.
    overwrite : bool, optional
        Replace an existing file.
    """
    fmt = table_format(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        if fmt == "fits":
            write_fits_table(table, tmp)
        else:
            table.write(tmp, format=fmt)


def write_fits_table(table, path):
    """Write a table to a new FITS file with its metadata flattened (`fits_header_meta`)."""
    out = table.copy(copy_data=False)
    out.meta = fits_header_meta(table.meta)
    with warnings.catch_warnings():
        # Long keys become HIERARCH cards, which is what we want.
        warnings.simplefilter("ignore", VerifyWarning)
        out.write(path, format="fits")


def fits_header_meta(meta, *, _prefix=""):
    """Flatten nested table metadata into FITS-header-safe key/value pairs.

    FITS headers hold only scalars: nested dicts become space-separated
    HIERARCH keys (``CLUSTERCLF MODEL_SHA256``), lists and other values
    JSON strings, so that no provenance is dropped on the way to FITS.
    None values are left out (a missing card reads back as missing, where
    ``'null'`` would read back as a string), and the pixel convention
    ``origin`` goes to `FITS_ORIGIN_KEY`, not to the reserved ``ORIGIN``.
    """
    flat = {}
    for key, value in meta.items():
        name = f"{_prefix}{key}".upper()
        if not _prefix and key == "origin":
            name = FITS_ORIGIN_KEY
        if value is None:
            continue
        if isinstance(value, dict):
            flat.update(fits_header_meta(value, _prefix=f"{name} "))
        elif isinstance(value, (bool, int, float, str)) and not isinstance(value, bytes):
            flat[name] = value
        elif key in ("comments", "history") and isinstance(value, list):
            flat[key] = value  # astropy writes these as COMMENT / HISTORY cards
        else:
            flat[name] = json.dumps(value, default=str)
    return flat


def sha256_file(path, *, chunk_size=1 << 20):
    """Hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
