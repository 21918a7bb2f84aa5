"""The one provenance collector: software versions and the header of every record.

Model cards (`~photutils_clusterclf.checkpoint`) and classified catalogues
(``table.meta["clusterclf"]``) record the same ``versions`` dict, so that
a result can be traced to the software that made it. Versions are read
from the installed distributions, so collecting them imports nothing.
"""

import datetime
import importlib.metadata
import platform
import sys

from .._meta import __version__

__all__ = ["provenance", "software_versions"]

#: Distributions whose versions shape the results (import name -> distribution).
LIBRARIES = {"torch": "torch", "torchvision": "torchvision", "astropy": "astropy", "numpy": "numpy"}


def _version(module, distribution):
    loaded = sys.modules.get(module)
    if loaded is not None and hasattr(loaded, "__version__"):
        return str(loaded.__version__)
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def software_versions():
    """Versions of this package, Python and the libraries that shape its results."""
    return {
        "photutils_clusterclf": __version__,
        **{name: _version(name, dist) for name, dist in LIBRARIES.items()},
        "python": platform.python_version(),
    }


def provenance(**entries):
    """A provenance record: software, version, versions, UTC date, then ``entries``.

    Entries whose value is None are left out, so that no ``null`` reaches a
    file header.
    """
    record = {
        "software": "photutils-clusterclf",
        "version": __version__,
        "versions": software_versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update({k: v for k, v in entries.items() if v is not None})
    return record
