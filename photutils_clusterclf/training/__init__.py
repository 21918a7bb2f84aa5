"""Training: labelled training sets, the options of a run, and the training loop.

`TrainingSet` (`~photutils_clusterclf.training.dataset`) gathers the
labelled raw cutouts of one or more galaxies; `train_classifier`
(`~photutils_clusterclf.training.loop`) fine-tunes one network or an
ensemble on it with the `TrainingOptions` it records in the model card and
returns a `~photutils_clusterclf.ClusterClassifier`. Several devices under
torchrun are handled by the private ``_ddp`` module.
"""

from .dataset import TrainingSet
from .loop import train_classifier
from .options import TrainingOptions

__all__ = ["TrainingOptions", "TrainingSet", "train_classifier"]
