"""photutils-clusterclf: star-cluster candidate classification with transfer-learned CNNs.

Classifies compact star-cluster candidates in multi-band HST imaging
(PHANGS-HST, LEGUS) into the classes 1-4 of the PHANGS/LEGUS scheme, with
ImageNet-pretrained ResNet18 / VGG19-BN networks fine-tuned as in
Wei et al. 2020, MNRAS 493, 3178.
"""

from ._meta import __bibtex__, __citation__, __version__
from .catalogs import read_catalog, read_legus_catalog, read_phangs_catalog
from .classifier import ClusterClassifier
from .consensus import consensus_labels
from .cutouts import CutoutBatch, extract_cutouts
from .evaluation import EvaluationReport
from .images import MultiBandImage
from .models import build_model
from .positions import resolve_positions
from .regions_io import class_regions

__all__ = [
    "ClusterClassifier",
    "CutoutBatch",
    "EvaluationReport",
    "MultiBandImage",
    "build_model",
    "class_regions",
    "consensus_labels",
    "extract_cutouts",
    "read_catalog",
    "read_legus_catalog",
    "read_phangs_catalog",
    "resolve_positions",
]
