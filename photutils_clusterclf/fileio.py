"""Atomic, non-clobbering output files and checksums.

Every file the package writes goes through `atomic_output`: the content is
written to a temporary file in the destination directory and renamed into
place only when complete, so an interrupted run never leaves a partial file
and never damages an existing one.
"""

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_output", "check_writable", "sha256_file", "write_table"]

#: Astropy ``format`` per file extension. ``"clusterclf"`` is the FITS writer
#: that keeps nested provenance (`photutils_clusterclf.connect`, registered
#: when the package is imported).
TABLE_FORMATS = {
    ".fits": "clusterclf",
    ".fit": "clusterclf",
    ".fits.gz": "clusterclf",
    ".ecsv": "ascii.ecsv",
    ".csv": "ascii.csv",
}


def check_writable(path, *, overwrite=False):
    """Raise `FileExistsError` if ``path`` exists and ``overwrite`` is False.

    Called before long work starts, so that a run is not wasted on an
    output that would be refused at the end.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"output file {path} already exists; pass overwrite=True (--overwrite) to replace it"
        )
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    tmp.unlink()  # writers such as astropy refuse an existing file
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written for {path}")
        if not overwrite and path.exists():
            raise FileExistsError(
                f"output file {path} appeared while writing; "
                "pass overwrite=True (--overwrite) to replace it"
            )
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
    raise ValueError(
        f"cannot tell the table format of {path}: use one of " + ", ".join(sorted(TABLE_FORMATS))
    )


def write_table(table, path, *, overwrite=False):
    """Write an Astropy table atomically; the format follows the extension.

    What this adds to ``table.write(path)``: the file appears complete or not
    at all (`atomic_output`), and an unknown extension is refused in one
    line. FITS goes through the ``"clusterclf"`` writer, which keeps nested
    provenance (`photutils_clusterclf.connect`).

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
        table.write(tmp, format=fmt)


def sha256_file(path, *, chunk_size=1 << 20):
    """Hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
