"""Training: labelled training sets, the options of a run, and the training loop.

`TrainingSet` (`~photutils_clusterclf.training.dataset`) gathers the
labelled raw cutouts of one or more galaxies; `train_classifier`
(`~photutils_clusterclf.training.loop`) fine-tunes one network or an
ensemble on it with the `TrainingOptions` it records in the model card and
returns a `~photutils_clusterclf.ClusterClassifier`. Several devices under
torchrun are handled by the private ``_ddp`` module. `pretrain`
(`~photutils_clusterclf.training.pretraining`) trains a network on a corpus
of simulated fields: the named pretrained weights of
`photutils_clusterclf.weights`.
"""

from .options import TrainingOptions

#: Names whose modules need torch, imported on first use (the command line
#: reads the defaults of `TrainingOptions` for its help without torch).
_LAZY = {
    "TrainingSet": "dataset",
    "train_classifier": "loop",
    "corpus_plan": "pretraining",
    "pretrain": "pretraining",
    "resolve_weights": "loop",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "TrainingOptions",
    "TrainingSet",
    "corpus_plan",
    "pretrain",
    "resolve_weights",
    "train_classifier",
]
