"""Named pretrained weights, the torchvision way (``weights="sim-resnet18"``).

A `WeightsEntry` describes one pretrained network: its architecture, bands,
cutout and input sizes, how it was made (the `~photutils_clusterclf.training.pretrain`
options, hence a ``clusterclf pretrain`` command line), and optionally the
full SHA-256 and URL of a published copy. The file itself is an ordinary
clusterclf checkpoint (`~photutils_clusterclf.checkpoint.save_checkpoint`:
model card plus state dict, loaded with ``weights_only=True``) named
``<name>-<first 8 hex digits of its sha256>.pt``, as torchvision names its
files, and is looked up in the standard caches:

1. ``$TORCH_HOME/hub/checkpoints/`` (`torch.hub.get_dir`), where torchvision
   keeps the ImageNet weights;
2. astropy's cache directory for this package
   (``~/.astropy/cache/photutils_clusterclf`` or ``$XDG_CACHE_HOME``).

Loading checks the file's SHA-256: against the registry's full digest when
the entry pins one, and otherwise against the prefix in the file name (what
``torch.hub`` does with ``check_hash=True``), so a modified or truncated file
is refused. `install_weights` copies a file made elsewhere into the cache
under its hashed name; `~photutils_clusterclf.models.import_state_dict`
turns another group's plain torchvision-layout state dict into such a file
with a model card. `~photutils_clusterclf.models.build_model` accepts the
names (``weights="sim-resnet18"``).
"""

import dataclasses
import re
import shlex
import shutil
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .fileio import atomic_output, sha256_file

__all__ = [
    "WEIGHTS",
    "WeightsEntry",
    "find_weights_file",
    "get_weights",
    "install_weights",
    "list_weights",
    "load_weights",
    "register_weights",
    "weights_dirs",
]

#: Hex digits of the SHA-256 kept in a weights file name (torchvision keeps 8).
HASH_PREFIX_LENGTH = 8


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One named pretrained network.

    Parameters
    ----------
    name : str
        The name passed as ``weights=`` (lower case letters, digits, ``-``,
        ``_`` and ``.``).
    arch : str
        Architecture (`~photutils_clusterclf.models.ARCHITECTURES`).
    bands : tuple of str
        Input bands, in channel order.
    cutout_size, input_size : int
        Cutout side and network input side (pixels).
    description : str
        What it was trained on, in one or two sentences.
    recipe : dict
        Keyword arguments of `~photutils_clusterclf.training.pretrain`
        that make it (empty for weights not made by ``pretrain``).
    sha256 : str or None, optional
        Full hex SHA-256 of the published file; `None` when every copy is
        made locally (the file-name prefix is checked then).
    url : str or None, optional
        Where a published copy can be downloaded (by hand: this package
        never downloads weights).
    """

    name: str
    arch: str
    bands: tuple
    cutout_size: int
    input_size: int
    description: str
    recipe: dict = dataclasses.field(default_factory=dict)
    sha256: str | None = None
    url: str | None = None

    def __post_init__(self):
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", self.name):
            raise ValueError(
                f"weights name {self.name!r} must be lower-case letters, digits, '-', '_' or '.'"
            )
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"sha256 of {self.name} must be 64 lower-case hex digits")

    @property
    def command(self):
        """The ``clusterclf pretrain`` command line that makes this entry's file."""
        if not self.recipe:
            return None
        words = ["clusterclf", "pretrain", "--name", self.name]
        for key, value in self.recipe.items():
            words += [f"--{key.replace('_', '-')}", str(value)]
        return shlex.join(words)

    def file_name(self, sha256):
        """File name for a file of this entry with hex digest ``sha256``."""
        return f"{self.name}-{sha256[:HASH_PREFIX_LENGTH]}.pt"


#: The registry: name -> `WeightsEntry`.
WEIGHTS = {}


def register_weights(entry, *, replace=False):
    """Add ``entry`` to `WEIGHTS` (e.g. an imported model of another group).

    Parameters
    ----------
    entry : `WeightsEntry`
    replace : bool, optional
        Replace an entry of the same name.
    """
    if not isinstance(entry, WeightsEntry):
        raise TypeError(f"entry must be a WeightsEntry, got {type(entry).__name__}")
    if entry.name in WEIGHTS and not replace:
        raise ValueError(f"weights {entry.name!r} are already registered; pass replace=True")
    WEIGHTS[entry.name] = entry
    return entry


def list_weights():
    """Names of the registered weights, sorted."""
    return sorted(WEIGHTS)


def get_weights(name):
    """The `WeightsEntry` called ``name`` (`KeyError` naming the known ones otherwise)."""
    try:
        return WEIGHTS[name]
    except (KeyError, TypeError):
        raise KeyError(
            f"no pretrained weights named {name!r}; known: {', '.join(list_weights()) or 'none'}"
        ) from None


def weights_dirs():
    """Directories searched for weights files, in order (they need not exist)."""
    from astropy.config import get_cache_dir_path

    return (
        Path(torch.hub.get_dir()) / "checkpoints",
        Path(get_cache_dir_path(rootname="photutils_clusterclf", ensure_exists=False)),
    )


def _candidates(entry):
    pattern = re.compile(re.escape(entry.name) + rf"-([0-9a-f]{{{HASH_PREFIX_LENGTH}}})\.pt")
    found = []
    for directory in weights_dirs():
        if directory.is_dir():
            found += sorted(p for p in directory.iterdir() if pattern.fullmatch(p.name))
    return found


def find_weights_file(name):
    """Path of the file of the named weights in the caches (`weights_dirs`).

    Raises
    ------
    KeyError
        Unknown name.
    FileNotFoundError
        No file: the one-line message says which file, where it goes and
        the ``clusterclf pretrain`` command that makes it.
    ValueError
        Several files for one name.
    """
    entry = get_weights(name)
    found = _candidates(entry)
    if entry.sha256 is not None:
        pinned = [p for p in found if p.name == entry.file_name(entry.sha256)]
        found = pinned or found
    if len(found) > 1:
        raise ValueError(
            f"several files for weights {name!r}: {', '.join(map(str, found))}; keep one"
        )
    if found:
        return found[0]
    target = weights_dirs()[0]
    expected = entry.file_name(entry.sha256) if entry.sha256 else f"{name}-<sha256[:8]>.pt"
    how = [f"make it with `{entry.command}` (installs it in {target})"] if entry.command else []
    if entry.url:
        how.append(f"download {entry.url} into {target}")
    raise FileNotFoundError(
        f"pretrained weights {name!r} not found: no {expected} in "
        f"{' or '.join(str(d) for d in weights_dirs())}; "
        + " or ".join(how or [f"copy the file into {target}"])
        + ", or pass weights=None"
    )


def load_weights(name):
    """Read the named weights, checking the file's SHA-256.

    Returns
    -------
    `~photutils_clusterclf.checkpoint.Checkpoint`
        Model card and state dict(s) of the verified file.

    Raises
    ------
    KeyError, FileNotFoundError
        See `find_weights_file`.
    ValueError
        Checksum mismatch (modified file), or a file whose card does not
        match the entry (architecture, bands, sizes).
    """
    entry = get_weights(name)
    path = find_weights_file(name)
    digest = sha256_file(path)
    expected = entry.sha256 or path.stem.rpartition("-")[2]
    if not digest.startswith(expected):
        raise ValueError(
            f"weights file {path} has sha256 {digest}, expected "
            f"{expected}{'' if entry.sha256 else '...'}: it was modified or "
            "damaged; delete it and make it again"
            + (f" with `{entry.command}`" if entry.command else "")
        )
    checkpoint = load_checkpoint(path)
    _check_card(checkpoint.card, entry, path)
    return checkpoint


def _check_card(card, entry, path):
    have = (card.arch, tuple(card.bands), card.cutout_size, card.input_size)
    want = (entry.arch, tuple(entry.bands), entry.cutout_size, entry.input_size)
    if have != want:
        raise ValueError(
            f"weights file {path} holds (arch, bands, cutout, input) {have}, "
            f"but entry {entry.name!r} is {want}"
        )


def install_weights(path, name, *, overwrite=False):
    """Copy a weights file into the cache under its hashed name.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        A clusterclf checkpoint (e.g. written by ``clusterclf pretrain --out``)
        whose card matches the entry.
    name : str
        Registered name.
    overwrite : bool, optional
        Replace another file of the same name in the cache.

    Returns
    -------
    `~pathlib.Path`
        The installed file.
    """
    entry = get_weights(name)
    path = Path(path)
    _check_card(load_checkpoint(path).card, entry, path)
    digest = sha256_file(path)
    if entry.sha256 is not None and digest != entry.sha256:
        raise ValueError(
            f"{path} has sha256 {digest}, but {name!r} is pinned to "
            f"{entry.sha256}; it is another file"
        )
    target_dir = weights_dirs()[0]
    target = target_dir / entry.file_name(digest)
    others = [p for p in _candidates(entry) if p != target]
    if others and not overwrite:
        raise FileExistsError(
            f"weights {name!r} already installed as {others[0]}; pass "
            "overwrite=True (--overwrite) to replace it"
        )
    target_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(target, overwrite=True) as tmp:
        shutil.copyfile(path, tmp)
    for other in others:
        other.unlink()
    return target


_SIM_DESCRIPTION = (
    "{arch} trained from random initialisation on the true classes of simulated "
    "PHANGS-HST-like fields (photutils_clusterclf.datasets, within the simulator's ranges: "
    "4.4-23 Mpc, WFC3/UVIS and ACS F435W PSFs, crowding, with and without disk "
    "structure). No real galaxy was seen."
)

# The recipes are the pretrainings the learning curves measured
# (benchmarks/learning_curve.py, benchmarks/RESULTS.md), spelled out here so
# that a later change of pretrain's defaults cannot change what a name means.
_SIM_RECIPES = {
    "resnet18": {"n_fields": 8, "n_candidates": 800, "epochs": 4, "seed": 0},
    "small_cnn": {"n_fields": 12, "n_candidates": 800, "epochs": 10, "seed": 0},
}

for _arch, _recipe in _SIM_RECIPES.items():
    register_weights(
        WeightsEntry(
            name=f"sim-{_arch}",
            arch=_arch,
            bands=("F275W", "F336W", "F438W", "F555W", "F814W"),
            cutout_size=32,
            input_size=32,
            description=_SIM_DESCRIPTION.format(arch=_arch),
            recipe={"arch": _arch} | _recipe,
        )
    )
del _arch, _recipe
