"""photutils-clusterclf: star-cluster candidate classification with transfer-learned CNNs.

Classifies compact star-cluster candidates in multi-band HST imaging
(PHANGS-HST, LEGUS) into the classes 1-4 of the PHANGS/LEGUS scheme, with
ImageNet-pretrained ResNet18 / VGG19-BN networks fine-tuned as in
Wei et al. 2020, MNRAS 493, 3178.
"""

from . import connect  # noqa: F401  (registers the "clusterclf" FITS writer)
from ._meta import __bibtex__, __citation__, __version__  # noqa: F401
from ._threads import num_threads, set_num_threads
from .catalogs import read_catalog, read_legus_catalog, read_phangs_catalog
from .config import conf  # noqa: F401  (astropy configuration items)
from .consensus import consensus_labels
from .cutouts import CutoutBatch, extract_cutouts
from .evaluation import EvaluationReport
from .images import MultiBandImage
from .positions import resolve_positions
from .regions_io import class_regions
from .utils.flags import decode_flags

#: Names whose modules need torch: imported on first use, so that
#: ``clusterclf --cite`` and the command line's input checks do not pay for
#: importing torch (several seconds).
_LAZY = {"ClusterClassifier": "classifier", "build_model": "models"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ClusterClassifier",
    "CutoutBatch",
    "EvaluationReport",
    "MultiBandImage",
    "build_model",
    "class_regions",
    "consensus_labels",
    "decode_flags",
    "extract_cutouts",
    "num_threads",
    "read_catalog",
    "read_legus_catalog",
    "read_phangs_catalog",
    "resolve_positions",
    "set_num_threads",
]
