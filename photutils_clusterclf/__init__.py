"""photutils-clusterclf: star-cluster candidate classification with transfer-learned CNNs.

Classifies compact star-cluster candidates in multi-band HST imaging
(PHANGS-HST, LEGUS) into the classes 1-4 of the PHANGS/LEGUS scheme, with
ImageNet-pretrained ResNet18 / VGG19-BN networks fine-tuned as in
Wei et al. 2020, MNRAS 493, 3178.
"""

__version__ = "0.1.0"

__citation__ = __bibtex__ = """\
@ARTICLE{2020MNRAS.493.3178W,
       author = {{Wei}, Wei and {Huerta}, E.~A. and {Whitmore}, Bradley C. and
                 {Lee}, Janice C. and {Hannon}, Stephen and {Chandar}, Rupali and
                 {Dale}, Daniel A. and {Larson}, Kirsten L. and {Thilker}, David A. and
                 {Ubeda}, Leonardo and {Boquien}, M{\\'e}d{\\'e}ric and {Chevance}, M{\\'e}lanie and
                 {Kruijssen}, J.~M. Diederik and {Schruba}, Andreas and {Blanc}, Guillermo A. and
                 {Congiu}, Enrico},
        title = "{Deep transfer learning for star cluster classification: I. application to the PHANGS-HST survey}",
      journal = {\\mnras},
         year = 2020,
        month = apr,
       volume = {493},
       number = {3},
        pages = {3178-3193},
          doi = {10.1093/mnras/staa325},
}

@software{photutils_clusterclf,
       author = {{photutils-clusterclf developers}},
        title = {photutils-clusterclf: star-cluster candidate classification
                 in multi-band HST imaging with transfer-learned CNNs},
         year = 2026,
      version = {0.1.0},
          url = {https://github.com/photutils-clusterclf/photutils-clusterclf},
}
"""

from ._threads import num_threads, set_num_threads  # noqa: E402
from .catalogs import read_catalog, read_legus_catalog, read_phangs_catalog  # noqa: E402
from .classifier import ClusterClassifier  # noqa: E402
from .cutouts import CutoutBatch, extract_cutouts  # noqa: E402
from .evaluation import EvaluationReport  # noqa: E402
from .images import MultiBandImage  # noqa: E402
from .models import build_model  # noqa: E402
from .positions import resolve_positions  # noqa: E402
from .regions_io import class_regions  # noqa: E402

__all__ = [
    "ClusterClassifier",
    "CutoutBatch",
    "EvaluationReport",
    "MultiBandImage",
    "build_model",
    "class_regions",
    "extract_cutouts",
    "num_threads",
    "read_catalog",
    "read_legus_catalog",
    "read_phangs_catalog",
    "resolve_positions",
    "set_num_threads",
]
