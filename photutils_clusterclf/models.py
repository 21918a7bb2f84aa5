"""Network architectures with an N-band stem, and their initial weights.

The paper's networks (Wei et al. 2020) are ImageNet-pretrained ResNet18 and
VGG19-BN; ResNet34 and VGG11-BN come through the same code. The first
convolution is rebuilt for ``n_bands`` input channels; with ImageNet weights
it is initialised from the RGB kernels (mean over RGB, times 3/n_bands, so
that a flat multi-band input gives the same response as a flat RGB one), and
the classification head is new. `build_model` also starts from named
pretrained weights (`photutils_clusterclf.weights`, e.g. ``"sim-resnet18"``),
from a clusterclf checkpoint or from a ``.pth`` state dict;
`import_state_dict` gives another group's state dict a model card.

Sensible input sizes (the cutout is resized to the model card's
``input_size``): all the torchvision networks downsample by 32, so they need
at least 32 px (VGG's five max-poolings fail below that; ResNet runs but
ends on a 1 x 1 map); 32-64 px cutouts work without anything special, and
ImageNet filters are at home from about 64 to 224 px.

Small inputs: the standard ResNet stem (7 x 7 stride-2 convolution, then a
stride-2 max-pool) reduces a 32 px cutout to 8 px before the first residual
block, and torchvision's VGG head (7 x 7 average pool, two 4096-wide layers)
replicates a 1 x 1 map 49 times into a 25,088-wide input at 32 px.
``stem="nopool"`` drops the stem's max-pool (ResNet; VGG's first max-pool),
``stem="stride1"`` also makes the ResNet stem convolution stride 1, and
``head="compact"`` gives VGG a global average pool and one linear layer
(ResNets already have that head). None of them changes a convolution's
weights, so ImageNet initialisation works with all of them. ``small_cnn`` is not
from the paper: a tiny network (< 100k parameters) for fast tests and CPU
demos, for any input of 8 px or more.
"""

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from .checkpoint import ARCHITECTURES, ModelCard, is_checkpoint, load_checkpoint, save_checkpoint
from .classes import CLASSES
from .config import offline
from .preprocessing import Normalization
from .utils.validation import check_integer
from .weights import WEIGHTS, list_weights, load_weights

__all__ = [
    "resolve_device",
    "ARCHITECTURES",
    "HEADS",
    "MIN_INPUT_SIZE",
    "RECOMMENDED_VARIANTS",
    "STEMS",
    "build_model",
    "check_input_size",
    "check_variant",
    "imagenet_weights_file",
    "import_state_dict",
]

# ARCHITECTURES (the names accepted by `build_model`) is defined with the
# model card, which records one of them.

#: Stem variants accepted by `build_model` (see the module docstring).
STEMS = ("standard", "nopool", "stride1")

#: Head variants accepted by `build_model`.
HEADS = ("standard", "compact")

#: The stem and head `train_classifier` uses by default (``"auto"``) per
#: architecture, as measured in benchmarks/RESULTS.md: VGG needs the compact
#: head to train at all at 32 px.
RECOMMENDED_VARIANTS = {
    "resnet18": {"stem": "nopool", "head": "standard"},
    "resnet34": {"stem": "nopool", "head": "standard"},
    "vgg19_bn": {"stem": "standard", "head": "compact"},
    "vgg11_bn": {"stem": "standard", "head": "compact"},
    "small_cnn": {"stem": "standard", "head": "standard"},
}

#: Smallest input side (pixels) each architecture handles.
MIN_INPUT_SIZE = {
    "resnet18": 32,
    "resnet34": 32,
    "vgg19_bn": 32,
    "vgg11_bn": 32,
    "small_cnn": 8,
}

# Per architecture: state-dict prefixes of the first convolution and of the
# final linear layer (the layers replaced for N bands and 4 classes).
_LAYERS = {
    "resnet18": ("conv1", "fc"),
    "resnet34": ("conv1", "fc"),
    "vgg19_bn": ("features.0", "classifier.6"),
    "vgg11_bn": ("features.0", "classifier.6"),
    "small_cnn": ("features.0", "classifier.1"),
}


def _imagenet_weights(arch):
    """torchvision's ImageNet weights entry of ``arch`` (None for small_cnn)."""
    if arch == "small_cnn":
        return None
    return torchvision.models.get_model_weights(arch).IMAGENET1K_V1


_IMAGENET_CLASSES = 1000
_RGB = 3
# Seconds allowed for the reachability probe before a download attempt.
_PROBE_TIMEOUT = 3.0


def resolve_device(device="auto"):
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a `torch.device` into a device.

    ``"auto"`` picks CUDA when available, else the CPU. Asking for CUDA on a
    machine without it is an error rather than a silent fallback.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but CUDA is not available; use device='cpu' or 'auto'"
        )
    return dev


def _check_arch(arch):
    if arch not in _LAYERS:
        raise ValueError(f"unknown architecture {arch!r}; accepted: {', '.join(ARCHITECTURES)}")


def check_input_size(arch, size):
    """Raise `ValueError` if ``size`` px inputs are too small for ``arch``.

    Parameters
    ----------
    arch : str
        One of `ARCHITECTURES`.
    size : int
        Input side in pixels (the model card's ``input_size``).
    """
    _check_arch(arch)
    if size < MIN_INPUT_SIZE[arch]:
        raise ValueError(
            f"input size {size} px is too small for {arch}; it needs at least "
            f"{MIN_INPUT_SIZE[arch]} px (resize the cutouts, e.g. input_size=64)"
        )


def _small_cnn(n_bands, n_classes):
    """Four 3x3 conv blocks, global average pooling, linear head (~61k parameters)."""
    layers = []
    channels = [n_bands, 16, 32, 64, 64]
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
        layers += [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
        if i < 3:
            layers.append(nn.MaxPool2d(2))
    model = nn.Sequential()
    model.features = nn.Sequential(*layers)
    model.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(channels[-1], n_classes))
    return model


def check_variant(arch, stem="standard", head="standard"):
    """Raise `ValueError` unless ``stem`` and ``head`` are variants ``arch`` has.

    Parameters
    ----------
    arch : str
        One of `ARCHITECTURES`.
    stem, head : str, optional
        As in `build_model`.
    """
    _check_arch(arch)
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; accepted: {', '.join(STEMS)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; accepted: {', '.join(HEADS)}")
    if arch == "small_cnn" and (stem, head) != ("standard", "standard"):
        raise ValueError(
            "small_cnn has no stem or head variants; use stem='standard', head='standard'"
        )
    if arch.startswith("vgg") and stem == "stride1":
        raise ValueError(
            f"{arch} has no strided stem convolution; use stem='nopool' "
            "(drops its first max-pool) or 'standard'"
        )


def _head_prefix(arch, head):
    """State-dict prefix of the final linear layer."""
    return "classifier" if arch.startswith("vgg") and head == "compact" else _LAYERS[arch][1]


def _apply_variant(model, arch, stem, head, n_classes):
    """Switch ``model`` to the small-input stem / compact head (weights keep their shapes)."""
    if arch.startswith("resnet"):
        if stem in ("nopool", "stride1"):
            model.maxpool = nn.Identity()
        if stem == "stride1":
            model.conv1.stride = (1, 1)
        return model
    if stem == "nopool":
        first = next(i for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d))
        model.features[first] = nn.Identity()  # the indices (state-dict keys) stay
    if head == "compact":
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier = nn.Linear(model.classifier[0].in_features // 49, n_classes)
    return model


def _architecture(arch, n_bands, n_classes, stem="standard", head="standard"):
    """Randomly initialised ``arch`` with an ``n_bands`` stem and ``n_classes`` head."""
    if arch == "small_cnn":
        return _small_cnn(n_bands, n_classes)
    model = torchvision.models.get_model(arch, weights=None, num_classes=n_classes)
    model = _apply_variant(model, arch, stem, head, n_classes)
    parent, _, name = _LAYERS[arch][0].rpartition(".")
    holder = model.get_submodule(parent)  # "" is the model itself
    old = getattr(holder, name)
    if n_bands != old.in_channels:
        setattr(
            holder,
            name,
            nn.Conv2d(
                n_bands,
                old.out_channels,
                old.kernel_size,
                stride=old.stride,
                padding=old.padding,
                bias=old.bias is not None,
            ),
        )
    return model


def imagenet_weights_file(arch):
    """Path of the cached torchvision ImageNet weights of ``arch``.

    ``$TORCH_HOME/hub/checkpoints/<file>`` (``torch.hub.get_dir()``), where
    torchvision itself caches them, e.g. ``resnet18-f37072fd.pth``.

    Raises
    ------
    ValueError
        Unknown architecture, or one without ImageNet weights (``small_cnn``).
    """
    _check_arch(arch)
    enum = _imagenet_weights(arch)
    if enum is None:
        raise ValueError(
            f"architecture {arch} has no ImageNet weights; use weights=None or a local .pth file"
        )
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(enum.url).path)


def _reachable(url):
    """Whether ``url``'s host answers within a few seconds (never blocks longer).

    The probe runs in a daemon thread because name resolution ignores socket
    timeouts and can hang on machines without network.
    """
    parsed = urlparse(url)
    result = []

    def probe():
        try:
            socket.create_connection(
                (parsed.hostname, parsed.port or 443), timeout=_PROBE_TIMEOUT
            ).close()
            result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_PROBE_TIMEOUT + 0.5)
    return bool(result)


def _imagenet_state_dict(arch):
    """ImageNet state dict of ``arch`` from the cache, else downloaded into it."""
    path = imagenet_weights_file(arch)
    if path.is_file():
        return _read_state_dict(path)
    enum = _imagenet_weights(arch)
    if offline():
        reason = "offline: photutils_clusterclf.conf.offline or $CLUSTERCLF_OFFLINE is set"
    elif not _reachable(enum.url):
        reason = f"{urlparse(enum.url).hostname} is unreachable"
    else:
        try:
            return enum.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # any network / hash failure is reported in one line
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    raise FileNotFoundError(
        f"ImageNet weights for {arch} not found at {path} and could not be downloaded "
        f"({reason}); copy {path.name} there (or set $TORCH_HOME), pass weights=None "
        "to start from random weights, or weights='<path to .pth>'"
    )


def _read_state_dict(path):
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt / not a torch file: say which file
        raise ValueError(
            f"cannot read weights file {path}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"weights file {path} does not hold a state dict (name -> tensor); "
            "a clusterclf checkpoint is loaded with load_checkpoint or "
            "ClusterClassifier.load"
        )
    return state


def _adapt_imagenet(state, arch, n_bands, head):
    """Turn a 3-channel, 1000-class ImageNet state dict into our stem; drop its head.

    The stem kernel becomes the mean over RGB repeated over the bands times
    3 / n_bands, so a flat image gives the same activations.
    """
    stem, head = _LAYERS[arch][0], _head_prefix(arch, head)
    state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    w = state[stem + ".weight"]
    state[stem + ".weight"] = w.mean(dim=1, keepdim=True).repeat(1, n_bands, 1, 1) * (
        _RGB / n_bands
    )
    return state


def _load_weights(model, state, arch, n_bands, n_classes, source, head_variant):
    """Load ``state`` into ``model``: ImageNet-shaped (adapted) or ours (as is)."""
    stem, head = _LAYERS[arch][0], _head_prefix(arch, head_variant)
    stem_w = state.get(stem + ".weight")
    # A compact head's own key, else the ImageNet head's (dropped when adapting).
    head_w = state.get(head + ".weight", state.get(_LAYERS[arch][1] + ".weight"))
    if stem_w is None or head_w is None:
        raise ValueError(f"weights {source} do not fit {arch}: no {stem}.weight / {head}.weight")
    is_ours = stem_w.shape[1] == n_bands and head_w.shape[0] == n_classes
    is_imagenet = stem_w.shape[1] == _RGB and head_w.shape[0] == _IMAGENET_CLASSES
    if not is_ours and not is_imagenet:
        raise ValueError(
            f"weights {source} have a {stem_w.shape[1]}-channel stem and a "
            f"{head_w.shape[0]}-class head; expected {n_bands} and {n_classes}, "
            f"or ImageNet's {_RGB} and {_IMAGENET_CLASSES}"
        )
    if is_ours:
        model.load_state_dict(state, strict=True)
        return
    missing, unexpected = model.load_state_dict(
        _adapt_imagenet(state, arch, n_bands, head_variant), strict=False
    )
    # Only the fresh head may be missing; anything else means the wrong architecture.
    missing = [k for k in missing if not k.startswith(head + ".")]
    if missing or unexpected:
        raise ValueError(
            f"weights {source} do not fit {arch}: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )


def _checkpoint_state_dict(checkpoint, source, arch, n_bands):
    """The first member's state dict of a checkpoint made for ``arch`` and ``n_bands``."""
    card = checkpoint.card
    if card.arch != arch or len(card.bands) != n_bands:
        raise ValueError(
            f"weights {source} are a {card.arch} for {len(card.bands)} bands "
            f"({', '.join(card.bands)}); asked for {arch} with {n_bands} bands"
        )
    return checkpoint.state_dicts[0], source


def build_model(arch, *, n_bands=5, n_classes=4, weights=None, stem="standard", head="standard"):
    """Build a classification network for ``n_bands``-band cutouts.

    Parameters
    ----------
    arch : str
        One of `ARCHITECTURES`.
    n_bands : int, optional
        Input channels (photometric bands).
    n_classes : int, optional
        Outputs (logits).
    weights : None, "imagenet", str or `~pathlib.Path`, optional
        `None`: random initialisation (seed with `torch.manual_seed`).
        ``"imagenet"``: torchvision's ImageNet weights from
        `imagenet_weights_file` (downloaded there if missing and the network
        is reachable; ``photutils_clusterclf.conf.offline = True`` or
        ``CLUSTERCLF_OFFLINE=1`` never tries), stem adapted to
        ``n_bands``, new randomly initialised head. A registered name such as
        ``"sim-resnet18"``: the named pretrained weights
        (`~photutils_clusterclf.weights.load_weights`, SHA-256 checked). A
        path: a clusterclf checkpoint (its first member; e.g. a model trained
        on another galaxy) or a ``.pth`` state dict, either torchvision
        ImageNet-shaped (adapted the same way) or already of this
        ``arch``/``n_bands``/``n_classes`` (loaded as is).
    stem : {"standard", "nopool", "stride1"}, optional
        ``"nopool"``: no max-pool in the ResNet stem (VGG: no first
        max-pool); ``"stride1"`` (ResNets): also a stride-1 stem
        convolution, so a 32 px input reaches the first block at 32 px
        (16 times the compute of ``"standard"``).
    head : {"standard", "compact"}, optional
        ``"compact"``: VGG ends on a global average pool and one linear
        layer instead of torchvision's 7 x 7 pool and 4096-wide layers
        (ResNets have that head in both cases).

    Returns
    -------
    `torch.nn.Module`
        The network on the CPU in training mode; input (N, n_bands, H, W),
        output (N, n_classes) logits.

    Raises
    ------
    ValueError
        Unknown architecture, bad sizes, weights that do not fit, or a named
        weights file whose SHA-256 does not match (modified file).
    FileNotFoundError
        ImageNet weights neither cached nor downloadable, a named weights
        file not in the cache, or a missing path.
    """
    _check_arch(arch)
    n_bands = check_integer("n_bands", n_bands)
    n_classes = check_integer("n_classes", n_classes)
    check_variant(arch, stem, head)
    model = _architecture(arch, n_bands, n_classes, stem, head)
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "imagenet":
        state, source = _imagenet_state_dict(arch), f"ImageNet {arch}"
    elif isinstance(weights, str) and weights in WEIGHTS:
        state, source = _checkpoint_state_dict(load_weights(weights), repr(weights), arch, n_bands)
    elif isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"weights file {path} does not exist; pass weights=None, "
                f"'imagenet', a pretrained name ({', '.join(list_weights())}) or the "
                "path of a .pth state dict or clusterclf checkpoint"
            )
        if is_checkpoint(path):
            state, source = _checkpoint_state_dict(load_checkpoint(path), str(path), arch, n_bands)
        else:
            state, source = _read_state_dict(path), str(path)
    else:
        raise TypeError(
            "weights must be None, 'imagenet', a pretrained name or a path, got "
            f"{type(weights).__name__}"
        )
    _load_weights(model, state, arch, n_bands, n_classes, source, head)
    return model


def import_state_dict(
    state_dict,
    out,
    *,
    arch,
    bands,
    cutout_size,
    input_size,
    normalization=None,
    description,
    source,
    overwrite=False,
):
    """Give a plain torchvision-layout state dict a model card (e.g. a published model).

    The result is a clusterclf checkpoint that `build_model`,
    `~photutils_clusterclf.training.train_classifier` (``weights=out``) and
    `~photutils_clusterclf.ClusterClassifier.load` accept, and that
    `~photutils_clusterclf.weights.install_weights` can install under a
    registered name.

    Parameters
    ----------
    state_dict : str, `~pathlib.Path` or dict
        The state dict, or a ``.pth`` file holding one (read with
        ``weights_only=True``). It must be of ``arch`` with a
        ``len(bands)``-channel stem and a 4-class head (classes 1-4 in
        order).
    out : str or `~pathlib.Path`
        Checkpoint to write.
    arch : str
    bands : sequence of str
    cutout_size, input_size : int
    normalization : dict, optional
        `~photutils_clusterclf.preprocessing.Normalization.to_dict` of the
        preprocessing the model was trained with (default: this package's).
    description : str
        What the model was trained on.
    source : str
        Where the state dict came from (paper, URL, group).
    overwrite : bool, optional

    Returns
    -------
    str
        SHA-256 of the written file.
    """
    if not isinstance(state_dict, dict):
        state_dict = _read_state_dict(Path(state_dict))
    model = build_model(arch, n_bands=len(bands), n_classes=len(CLASSES))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"state dict does not fit {arch} with {len(bands)} bands and "
            f"{len(CLASSES)} classes: {str(exc).splitlines()[0]}"
        ) from None
    card = ModelCard(
        arch=arch,
        bands=tuple(bands),
        cutout_size=cutout_size,
        input_size=input_size,
        normalization=normalization or Normalization().to_dict(),
        training={"imported": {"source": str(source), "description": str(description)}},
    )
    return save_checkpoint(out, card, model.state_dict(), overwrite=overwrite)
