"""One-file checkpoints: model card plus one state dict per ensemble member.

A checkpoint is a `torch.save` of plain containers only::

    {"format": "photutils-clusterclf checkpoint", "format_version": 1,
     "card": {...ModelCard.to_dict()...}, "state_dicts": [{name: tensor}, ...]}

and is read back with ``torch.load(..., weights_only=True)``, which refuses
arbitrary Python objects, so loading a checkpoint from someone else cannot
run code. Every problem is reported as a one-line `CheckpointError`.
"""

import dataclasses
import datetime
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .classes import CLASSES
from .fileio import atomic_output, sha256_file
from .utils.provenance import software_versions
from .utils.validation import check_positive

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "ModelCard",
    "check_bands",
    "is_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

#: Version of the checkpoint layout written by `save_checkpoint`.
FORMAT_VERSION = 1

#: Architectures a model card may name (the networks that
#: `photutils_clusterclf.models.build_model` builds; defined here so that
#: reading a card needs no network code).
ARCHITECTURES = ("resnet18", "vgg19_bn", "resnet34", "vgg11_bn", "small_cnn")

_FORMAT_NAME = "photutils-clusterclf checkpoint"
_REQUIRED = ("arch", "bands", "cutout_size", "input_size", "normalization")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, foreign, unsafe or incompatible."""


def _plain(value, where):
    """``value`` as plain containers (dict/list/str/int/float/bool/None/tensor).

    NumPy scalars and arrays become Python numbers and lists, so that the
    card loads with ``weights_only=True``; anything else is refused now
    rather than producing a checkpoint that cannot be read.
    """
    if value is None or isinstance(value, (str, bool, int, float, torch.Tensor)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"model card key {key!r} in {where} must be a str or int")
            out[key] = _plain(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"model card entry {where} is a {type(value).__name__}; only dicts, lists, "
        "str, int, float, bool, None, tensors and NumPy numbers/arrays can be stored"
    )


@dataclasses.dataclass
class ModelCard:
    """Everything needed to apply a model exactly as it was trained.

    Parameters
    ----------
    arch : str
        Architecture name (`photutils_clusterclf.models.ARCHITECTURES`).
    bands : tuple of str
        Filter names in input-channel order, e.g. ``("F275W", ..., "F814W")``.
    cutout_size : int
        Side in pixels of the cutouts taken from the images.
    input_size : int
        Side in pixels the cutouts are resized to before the network.
    normalization : dict
        `photutils_clusterclf.preprocessing.Normalization.to_dict` output.
    classes : tuple of int, optional
        Output classes in logit order; must be (1, 2, 3, 4).
    training : dict, optional
        Provenance: galaxies, label column, seeds, epochs, per-epoch log,
        metrics. Plain containers only (tuples are stored as lists).
    versions : dict, optional
        Library versions; filled in by `save_checkpoint` when empty.
    created : str, optional
        ISO 8601 UTC time; filled in by `save_checkpoint` when empty.
    model_options : dict, optional
        Keyword options of `photutils_clusterclf.models.build_model` beyond
        the architecture (``stem``, ``head``); empty for the standard
        network (and in checkpoints written before they existed).
    temperature : float, optional
        Temperature ``T > 0`` dividing the logits before the softmax at
        classification (`photutils_clusterclf.calibration`); fitted on the
        validation set by training. Cards written before it existed load
        with 1 (probabilities as trained).
    """

    arch: str
    bands: tuple
    cutout_size: int
    input_size: int
    normalization: dict
    classes: tuple = CLASSES
    training: dict = dataclasses.field(default_factory=dict)
    versions: dict = dataclasses.field(default_factory=dict)
    created: str = ""
    model_options: dict = dataclasses.field(default_factory=dict)
    temperature: float = 1.0

    def __post_init__(self):
        from .preprocessing import Normalization

        if self.arch not in ARCHITECTURES:
            raise CheckpointError(
                f"unknown architecture {self.arch!r} in model card; this version "
                f"knows {', '.join(ARCHITECTURES)}"
            )
        if isinstance(self.bands, str) or not self.bands:
            raise CheckpointError(
                f"model card bands must be a non-empty sequence of filter names, got {self.bands!r}"
            )
        self.bands = tuple(str(b).strip().upper() for b in self.bands)
        for name in ("cutout_size", "input_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise CheckpointError(
                    f"model card {name} must be a positive integer, got {value!r}"
                )
            setattr(self, name, int(value))
        try:
            self.normalization = Normalization.from_dict(self.normalization).to_dict()
        except ValueError as exc:
            raise CheckpointError(f"model card normalization: {exc}") from None
        self.classes = tuple(int(c) for c in self.classes)
        if self.classes != CLASSES:
            raise CheckpointError(
                f"model card class scheme {self.classes} is not supported; this "
                f"version predicts classes {CLASSES}"
            )
        if not isinstance(self.model_options, Mapping) or not set(self.model_options) <= {
            "stem",
            "head",
        }:
            raise CheckpointError(
                f"model card model_options must be a dict with keys stem/head, got "
                f"{self.model_options!r}"
            )
        for name in ("training", "versions"):
            if not isinstance(getattr(self, name), Mapping):
                raise CheckpointError(f"model card {name} must be a dict")
        try:
            self.temperature = check_positive("temperature", self.temperature)
        except ValueError as exc:
            raise CheckpointError(f"model card {exc}") from None

    def to_dict(self):
        """Plain-container form (what the checkpoint file stores)."""
        return _plain(dataclasses.asdict(self), "card")

    @classmethod
    def from_dict(cls, d):
        """Rebuild a card from `to_dict` output.

        Raises
        ------
        CheckpointError
            Missing or unknown fields, or invalid values.
        """
        if not isinstance(d, Mapping):
            raise CheckpointError(f"model card must be a dict, got {type(d).__name__}")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise CheckpointError(f"model card lacks field(s) {', '.join(missing)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CheckpointError(
                f"model card has unknown field(s) {', '.join(map(str, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**d)


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint.

    Parameters
    ----------
    card : ModelCard
        The model card.
    state_dicts : list of dict
        One ``name -> tensor`` state dict per ensemble member (on the CPU).
    sha256 : str or None
        Hex SHA-256 of the file it was read from.
    """

    card: ModelCard
    state_dicts: list
    sha256: str | None = None


def _check_state_dicts(state_dicts):
    if isinstance(state_dicts, Mapping):
        state_dicts = [state_dicts]
    state_dicts = list(state_dicts)
    if not state_dicts:
        raise ValueError("a checkpoint needs at least one state dict")
    out = []
    for i, sd in enumerate(state_dicts):
        if not isinstance(sd, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()
        ):
            raise TypeError(
                f"state dict {i} must map parameter names to tensors (model.state_dict())"
            )
        out.append({k: v.detach().cpu() for k, v in sd.items()})
    return out


def save_checkpoint(path, card, state_dicts, *, overwrite=False):
    """Write a model card and its weights to one file.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Output file (conventionally ``.pt``).
    card : ModelCard
        The model card; ``versions`` and ``created`` are filled in (in the
        file, not in ``card``) when empty.
    state_dicts : dict or list of dict
        ``model.state_dict()`` of one model or of each ensemble member.
    overwrite : bool, optional
        Replace an existing file.

    Returns
    -------
    sha256 : str
        Hex SHA-256 of the written file (record it to pin the model).
    """
    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard, got {type(card).__name__}")
    card = dataclasses.replace(
        card,
        versions=dict(card.versions) or software_versions(),
        created=card.created
        or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    payload = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "card": card.to_dict(),
        "state_dicts": _check_state_dicts(state_dicts),
    }
    # Through a file object: torch.save names the archive inside the zip after
    # a path, which would make the bytes depend on the temporary file name.
    with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
    return sha256_file(path)


def _first_line(exc):
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def is_checkpoint(path):
    """Whether ``path`` is a file written by `save_checkpoint` (not validated further).

    False for anything else: a missing or unreadable file, or a bare state
    dict (which `~photutils_clusterclf.models.build_model` reads itself).
    """
    path = Path(path)
    if not path.is_file():
        return False
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable: not a checkpoint
        return False
    return isinstance(payload, dict) and payload.get("format") == _FORMAT_NAME


def load_checkpoint(path, *, sha256=None):
    """Read a checkpoint written by `save_checkpoint`.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        The checkpoint file.
    sha256 : str, optional
        Expected hex SHA-256 of the file; checked before anything is
        unpickled.

    Returns
    -------
    Checkpoint
        Card, state dicts (on the CPU) and the file's SHA-256.

    Raises
    ------
    CheckpointError
        Missing, truncated or corrupt file, not a clusterclf checkpoint,
        unsupported format version, invalid model card, checksum mismatch,
        or Python objects other than tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist or is not a file")
    digest = sha256_file(path)
    if sha256 is not None and digest != str(sha256).strip().lower():
        raise CheckpointError(
            f"checkpoint {path} has sha256 {digest}, expected {sha256}; wrong or modified file"
        )
    with open(path, "rb") as fh:
        magic = fh.read(4)
    # torch.save writes a zip archive (or, before torch 1.6, a pickle).
    if magic and magic != b"PK\x03\x04" and magic[:1] != b"\x80":
        raise CheckpointError(
            f"{path} is not a clusterclf checkpoint (not a file written by torch.save; "
            "checkpoints are the .pt files written by training or ClusterClassifier.save)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            raise CheckpointError(
                f"refusing to load {path}: it contains Python objects other than "
                "tensors and plain containers"
            ) from None
        raise CheckpointError(f"checkpoint {path} is corrupt ({_first_line(exc)})") from None
    except Exception as exc:  # garbage makes torch's unpickler fail in arbitrary ways
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({_first_line(exc)})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT_NAME:
        raise CheckpointError(
            f"{path} is not a photutils-clusterclf checkpoint (no 'format' "
            f"entry {_FORMAT_NAME!r}); a bare state dict is loaded with "
            "build_model(arch, weights=path)"
        )
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {version} is not supported by this version "
            f"(reads {FORMAT_VERSION}); upgrade photutils-clusterclf"
        )
    try:
        card = ModelCard.from_dict(payload.get("card"))
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
    except TypeError as exc:
        raise CheckpointError(f"checkpoint {path}: invalid model card ({exc})") from None
    try:
        state_dicts = _check_state_dicts(payload.get("state_dicts") or [])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
    return Checkpoint(card=card, state_dicts=state_dicts, sha256=digest)


def check_bands(card, bands):
    """Check that images provide every band of the model.

    Parameters
    ----------
    card : ModelCard
        The model card.
    bands : iterable of str
        Bands available (e.g. a `~photutils_clusterclf.images.MultiBandImage`,
        which iterates over its band names).

    Returns
    -------
    tuple of str
        The model's bands, in input-channel order (to select from the images).

    Raises
    ------
    ValueError
        If some model band is missing.
    """
    have = tuple(str(b).strip().upper() for b in bands)
    missing = [b for b in card.bands if b not in have]
    if missing:
        raise ValueError(
            f"model expects bands {', '.join(card.bands)}; images have "
            f"{', '.join(have) or 'none'} (missing {', '.join(missing)})"
        )
    return card.bands
