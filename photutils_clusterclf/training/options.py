"""`TrainingOptions`: every option of a training run, validated, recorded in the model card."""

import dataclasses
import os

import numpy as np

from ..utils.validation import check_choice, check_fraction, check_integer

__all__ = ["RECOMMENDED_LR", "SCHEDULES", "TrainingOptions"]

CLASS_BALANCES = ("weighted", "sampler", "none")

#: Learning-rate schedules of `TrainingOptions` (``schedule``).
SCHEDULES = ("plateau", "cosine")

#: Peak learning rate of ``lr="auto"`` per architecture (others: 1e-3).
#: VGG19-BN from random weights at 1e-3 is unstable (its validation loss
#: jumps after the warm-up) and at 3e-4 trains: macro recall 0.56 vs 0.31 on
#: the validation galaxy (benchmarks/RESULTS.md, "VGG19-BN on the benchmark").
RECOMMENDED_LR = {"vgg19_bn": 3e-4}
DEFAULT_LR = 1e-3
#: ``backbone_lr_factor="auto"`` when the network starts from pretrained
#: weights (1 from random ones): 0.1 beat 1 on the learning curves' own
#: validation splits, and 0.01 beat 0.1 and 0 on the accuracy benchmark's
#: validation galaxy, see ``benchmarks/RESULTS.md``.
PRETRAINED_BACKBONE_LR_FACTOR = 0.01


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """The options of `~photutils_clusterclf.training.train_classifier`.

    They are validated when created, and recorded (`to_dict`) in the
    ``training["options"]`` of the model card. Where the run happens
    (device, checkpoint directory, progress bars) is not an option of the
    model and is passed to `train_classifier` directly.

    Parameters
    ----------
    arch : str, optional
        Architecture for `~photutils_clusterclf.models.build_model`
        (``"resnet18"``, ``"vgg19_bn"``, ...).
    weights : {"auto", "imagenet", None}, pretrained name or path, optional
        Initialisation (see `~photutils_clusterclf.models.build_model`).
        ``"auto"`` (default): the simulated-field weights ``sim-<arch>``
        when ``clusterclf pretrain --name sim-<arch>`` has installed them
        (they measure best, see :ref:`pretrained`), else torchvision's
        ImageNet weights when cached, else random initialisation with an
        `~astropy.utils.exceptions.AstropyUserWarning` naming both. The
        model card records what was used. Otherwise: a registered name such
        as ``"sim-resnet18"`` (`~photutils_clusterclf.weights`),
        ``"imagenet"`` (a warning and random initialisation when not
        cached), a previous clusterclf checkpoint (continue training on a
        new galaxy), a ``.pth`` state dict, or None (random).
    require_pretrained : bool, optional
        Make missing pretrained weights (``"auto"`` finding none, or no
        cached ImageNet file) a `FileNotFoundError` instead of a warning.
    input_size : int, optional
        Side of the network input; cutouts are resized to it. Defaults to
        the cutout size.
    epochs : int, optional
        Maximum number of epochs per member.
    batch_size : int, optional
        Global batch size (split over the ranks under DDP). The last
        incomplete batch of each epoch is dropped.
    lr : float or "auto", optional
        AdamW (peak) learning rate; see ``schedule``. ``"auto"``: the
        architecture's entry in ``RECOMMENDED_LR`` (3e-4 for ``vgg19_bn``),
        otherwise 1e-3; the number is what the model card records.
    weight_decay : float, optional
        AdamW decoupled weight decay.
    n_models : int, optional
        Number of ensemble members; member ``k`` uses seed ``seed + k``.
    seed : int, optional
        Base seed. It also fixes the random validation split (shared by all
        members).
    freeze_backbone_epochs : int, optional
        Train only the first convolution (the new ``n_bands``-channel stem)
        and the classification head for this many epochs.
    backbone_lr_factor : float or "auto", optional
        Learning rate of every layer but the stem and the head, relative to
        ``lr``, in [0, 1] (discriminative fine-tuning: e.g. 0.1 keeps
        pretrained features close to where they were). ``"auto"``:
        ``PRETRAINED_BACKBONE_LR_FACTOR`` (0.01) when the network starts from
        pretrained weights (ImageNet found in the cache, named or simulated-
        field weights, a checkpoint, a state dict), 1 from random weights;
        the number is what the model card records.
    val_galaxy : str or list of str, optional
        Galaxies held out for validation. Default: with several galaxies, the
        galaxy whose share of the objects is closest to ``val_fraction``
        (the last one on ties); with one galaxy, a stratified random split.
    val_fraction : float, optional
        Fraction of objects for the stratified split (and target share for
        the automatic galaxy choice); 0 disables validation (then the last
        weights are kept and there is no early stopping).
    patience : int or None, optional
        Stop after this many epochs without a better validation macro recall
        (mean recall over classes); the best weights are kept. None: never
        stop early.
    class_balance : {"weighted", "sampler", "none"}, optional
        Class-weighted cross entropy (inverse class frequency), a balanced
        sampler (with replacement), or neither.
    augment : bool, optional
        Random dihedral transform, sub-pixel shift and flux jitter
        (`~photutils_clusterclf.preprocessing.random_augment`) of the raw
        cutouts before normalisation.
    normalization : str or `~photutils_clusterclf.preprocessing.Normalization`, optional
        Cutout normalisation (a name of
        `~photutils_clusterclf.preprocessing.NORMALIZATIONS` with its default
        parameters, or an instance); recorded in the model card.
    stem, head : str, optional
        Network variants for small inputs, passed to
        `~photutils_clusterclf.models.build_model` and recorded in the model
        card (``stem``: ``"standard"``, ``"nopool"``, ``"stride1"``;
        ``head``: ``"standard"``, ``"compact"``). ``"auto"``: the
        architecture's entry in
        `~photutils_clusterclf.models.RECOMMENDED_VARIANTS`.
    schedule : {"plateau", "cosine"}, optional
        ``"plateau"``: the learning rate is halved when the validation macro
        recall stops improving for ``max(1, patience // 2)`` epochs.
        ``"cosine"``: linear warm-up over ``max(1, epochs // 10)`` epochs,
        then cosine decay to 0 at ``epochs``.
    label_smoothing : float, optional
        Label smoothing of the cross entropy, in [0, 1) (robustness to noisy
        human labels).
    label_noise : None, "human" or array-like (4, 4), optional
        How the training labels were made from the true classes:
        ``label_noise[i, j]`` = P(label = class j + 1 | true class i + 1),
        rows summing to 1 (``"human"``:
        `~photutils_clusterclf.datasets.HUMAN_LABEL_NOISE`). With a matrix
        the network is trained with *forward correction* (Patrini et al.
        2017): its softmax is read as P(true class | cutout), and the loss
        compares ``softmax @ label_noise`` with the labels, so that it
        predicts the true classes rather than the labellers' confusions.
        The matrix must be invertible. One way to estimate it for a
        catalogue classified by several people:
        ``dawid_skene(votes).confusion.mean(axis=0)``
        (`~photutils_clusterclf.consensus.dawid_skene`). None: plain cross
        entropy against the labels.
    """

    arch: str = "resnet18"
    weights: object = "auto"
    require_pretrained: bool = False
    input_size: object = None
    epochs: int = 15
    batch_size: int = 64
    lr: object = "auto"
    weight_decay: float = 1e-4
    n_models: int = 1
    seed: int = 0
    freeze_backbone_epochs: int = 0
    backbone_lr_factor: object = "auto"
    val_galaxy: object = None
    val_fraction: float = 0.2
    patience: object = 8
    class_balance: str = "weighted"
    augment: bool = True
    normalization: object = "asinh_shared"
    stem: str = "auto"
    head: str = "auto"
    schedule: str = "cosine"
    label_smoothing: float = 0.1
    label_noise: object = None

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        check_choice("class_balance", self.class_balance, CLASS_BALANCES)
        for name in ("epochs", "batch_size", "n_models"):
            put(name, check_integer(name, getattr(self, name)))
        put(
            "freeze_backbone_epochs",
            check_integer("freeze_backbone_epochs", self.freeze_backbone_epochs, minimum=0),
        )
        put("backbone_lr_factor", _check_backbone_lr_factor(self.backbone_lr_factor))
        put("patience", check_integer("patience", self.patience, allow_none=True))
        put("input_size", check_integer("input_size", self.input_size, allow_none=True))
        put("seed", check_integer("seed", self.seed, minimum=0))
        if self.val_galaxy is None:
            put("val_fraction", check_fraction("val_fraction", self.val_fraction))
        if isinstance(self.weights, os.PathLike):
            put("weights", os.fspath(self.weights))
        if self.input_size is not None:
            from ..models import check_input_size  # torch: not needed for the defaults

            check_input_size(self.arch, self.input_size)
        # "auto" stays "auto" until used (`learning_rate`): resolved here, it
        # would survive a dataclasses.replace(..., arch=...) as the old
        # architecture's number.
        if isinstance(self.lr, str):
            if self.lr != "auto":
                raise ValueError(f"lr must be a positive number or 'auto', got {self.lr!r}")
        elif isinstance(self.lr, bool) or not float(self.lr) > 0:
            raise ValueError(f"lr must be a positive number or 'auto', got {self.lr!r}")
        else:
            put("lr", float(self.lr))
        put("weight_decay", float(self.weight_decay))
        put("augment", bool(self.augment))
        put("require_pretrained", bool(self.require_pretrained))
        check_choice("schedule", self.schedule, SCHEDULES)
        smoothing = self.label_smoothing
        if (
            isinstance(smoothing, bool)
            or not isinstance(smoothing, (int, float))
            or not (0 <= smoothing < 1)
        ):
            raise ValueError(f"label_smoothing must be in [0, 1), got {smoothing!r}")
        put("label_smoothing", float(smoothing))
        if self.label_noise is not None:
            put("label_noise", _check_label_noise(self.label_noise))
        # torch (models, preprocessing): not needed for the defaults.
        if not isinstance(self.normalization, str) or self.normalization != "asinh_shared":
            self.make_normalization()  # ValueError for an unknown name or bad parameters
        if (self.stem, self.head) != ("auto", "auto"):
            from ..models import check_variant

            check_variant(self.arch, *self.variant())

    def make_normalization(self):
        """The `~photutils_clusterclf.preprocessing.Normalization` of ``normalization``."""
        from ..preprocessing import Normalization

        value = self.normalization
        if isinstance(value, Normalization):
            return value
        if isinstance(value, dict):
            return Normalization.from_dict(value)
        if not isinstance(value, str):
            raise ValueError(f"normalization must be a name or a Normalization, got {value!r}")
        return Normalization(value)

    def variant(self):
        """``(stem, head)`` for `~photutils_clusterclf.models.build_model`, ``"auto"`` resolved."""
        stem, head = self.stem, self.head
        if "auto" in (stem, head):
            from ..models import RECOMMENDED_VARIANTS

            recommended = RECOMMENDED_VARIANTS.get(self.arch, {})
            stem = recommended.get("stem", stem) if stem == "auto" else stem
            head = recommended.get("head", head) if head == "auto" else head
        return stem, head

    def learning_rate(self):
        """The peak learning rate: ``lr``, or for ``"auto"`` the architecture's `RECOMMENDED_LR`."""
        if self.lr == "auto":
            return RECOMMENDED_LR.get(self.arch, DEFAULT_LR)
        return self.lr

    def backbone_lr_ratio(self, weights):
        """``backbone_lr_factor`` as a number, for a network built with ``weights``.

        ``weights`` is what the network is built from after resolution (None:
        random initialisation); ``"auto"`` gives 1 for None, else
        ``PRETRAINED_BACKBONE_LR_FACTOR``.
        """
        if self.backbone_lr_factor == "auto":
            return 1.0 if weights is None else PRETRAINED_BACKBONE_LR_FACTOR
        return self.backbone_lr_factor

    def to_dict(self):
        """The options as plain JSON-able values (as recorded in the model card; ``lr`` resolved)."""
        out = dataclasses.asdict(self) | {"lr": self.learning_rate()}
        if isinstance(out["val_galaxy"], tuple):
            out["val_galaxy"] = list(out["val_galaxy"])
        if not isinstance(self.normalization, str):
            out["normalization"] = self.make_normalization().to_dict()
        if self.label_noise is not None:
            out["label_noise"] = [list(row) for row in self.label_noise]
        return out

    def label_noise_matrix(self):
        """``label_noise`` as a (4, 4) `numpy.ndarray`, or None."""
        return None if self.label_noise is None else np.array(self.label_noise)


def _check_backbone_lr_factor(value):
    """``"auto"``, or the factor as a float in [0, 1]."""
    if value == "auto":
        return value
    try:
        return check_fraction("backbone_lr_factor", value, closed=True)
    except ValueError:
        raise ValueError(
            f"backbone_lr_factor must be a number in [0, 1] or 'auto', got {value!r}"
        ) from None


def _check_label_noise(label_noise):
    """A validated, invertible label-noise matrix as a tuple of row tuples (hashable, frozen)."""
    from ..datasets.labels import label_noise_matrix  # the simulator's validation

    matrix = label_noise_matrix(label_noise)
    if matrix is None:
        return None
    # Forward correction can only recover the true classes if no two of
    # them produce the same label distribution.
    if np.linalg.cond(matrix) > 1e6:
        raise ValueError(
            "label_noise matrix is singular: the true classes cannot be told apart "
            "from labels made with it (rows must be linearly independent)"
        )
    return tuple(tuple(float(v) for v in row) for row in matrix)
