"""Pretraining on simulated fields: the offline source of transfer learning.

`pretrain` simulates a diverse corpus of PHANGS-HST-like fields with the
package's simulator (`photutils_clusterclf.datasets.simulate_field`),
trains a network on their *true* classes, and writes a clusterclf
checkpoint whose model card records what it was pretrained on. That file is
what the named weights (``weights="sim-resnet18"``, see
`photutils_clusterclf.weights`) are.

The corpus is made one field at a time: each field's cutouts go to their own
file in a work directory and the training set is a memory-mapped array
assembled from them, so the corpus never sits in memory at once (only the
validation fields are held, preprocessed, during training). The work
directory also holds the training checkpoints: an interrupted run started
again with the same options reuses the finished fields and resumes
training where it stopped, and ends with the same file. On the CPU two runs
with the same options write identical bytes (the card records no time).
"""

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np

from ..fileio import atomic_output, check_writable
from ..utils.progress import add_progress_bar

__all__ = ["PRETRAIN_RANGES", "corpus_plan", "pretrain"]

#: Parameter ranges of the pretraining corpus: those of the simulator's
#: PHANGS-HST-like fields. PSF, noise, colours and morphologies are drawn
#: inside each field by the simulator itself, within its own ranges
#: (recorded in the model card).
PRETRAIN_RANGES = {
    "distance_mpc": (4.4, 23.0),
    "instrument": ("wfc3", "acs"),
    "disk_structure": (True, False),
    "field_star_density": (1e-4, 6e-4),
    "psf_fwhm_px": {"wfc3_uvis": (1.7, 2.0), "acs_f435w": (2.5, 3.3)},
    "psf_moffat_beta": (1.5, 2.0),
    "v_mag": (19.0, 24.8),
    "colours": "young (U-B -1.4, V-I 0.4), intermediate, old (U-B 0.0, V-I 1.15)",
    "class_mix": (0.19, 0.16, 0.28, 0.37),
    "noise": "Poisson, read noise 3.1 e-, sky and diffuse disk light",
}

#: Candidate density of a PHANGS-HST field: 800 in 2048^2 px.
_DENSITY = 800 / 2048**2
#: Every this-many-th field is held out for validation.
_VAL_EVERY = 5
_BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")


def corpus_plan(n_fields, *, n_candidates=800, seed=0):
    """The simulation parameters of each corpus field (deterministic in ``seed``).

    Instruments and disk structure cycle through their four combinations;
    distances are uniform and crowding log-uniform in `PRETRAIN_RANGES`.

    Returns
    -------
    list of dict
        Keyword arguments of `~photutils_clusterclf.datasets.simulate_field`
        per field.
    """
    for name, value in (("n_fields", n_fields), ("n_candidates", n_candidates)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    rng = np.random.default_rng([int(seed), 13])
    side = max(256, round(math.sqrt(n_candidates / _DENSITY)))
    low, high = np.log(PRETRAIN_RANGES["field_star_density"])
    plan = []
    for i in range(int(n_fields)):
        plan.append(
            {
                "shape": (side, side),
                "n_candidates": int(n_candidates),
                "distance_mpc": float(np.round(rng.uniform(*PRETRAIN_RANGES["distance_mpc"]), 3)),
                "field_star_density": float(np.round(np.exp(rng.uniform(low, high)), 7)),
                "instrument": PRETRAIN_RANGES["instrument"][i % 2],
                "disk_structure": PRETRAIN_RANGES["disk_structure"][(i // 2) % 2],
                "seed": int(rng.integers(2**31)),
                "target": f"pretrain-{i:04d}",
            }
        )
    return plan


def _field_cutouts(params, path, cutout_size):
    """Simulate one field and write its cutouts and true classes to ``path``."""
    from ..datasets import simulate_field
    from .dataset import TrainingSet

    field = simulate_field(**params)
    with warnings.catch_warnings():
        # Candidates too near the edge are left out and counted; fine here.
        warnings.filterwarnings("ignore", message=".*left out of the training set")
        ts = TrainingSet.from_galaxies(
            [(field.catalog, field.to_multiband_image(), params["target"])],
            label_column="CLASS_TRUE",
            cutout_size=cutout_size,
            progress_bar=False,
        )
    with atomic_output(path, overwrite=True) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, cutouts=ts.cutouts, labels=ts.labels, params=np.asarray(json.dumps(params)))


def _corpus(plan, work_dir, cutout_size, progress_bar):
    """Memory-mapped `TrainingSet` of the whole corpus, made a field at a time."""
    from .dataset import TrainingSet

    fields_dir = work_dir / "fields"
    fields_dir.mkdir(parents=True, exist_ok=True)
    paths = [fields_dir / f"{p['target']}.npz" for p in plan]
    for params, path in add_progress_bar(
        list(zip(plan, paths)), desc="simulating corpus", unit="field", enabled=progress_bar
    ):
        if path.is_file():
            with np.load(path, allow_pickle=False) as npz:
                stored = json.loads(str(npz["params"]))
            if stored != json.loads(json.dumps(params)):
                raise ValueError(
                    f"{path} was simulated with other options; use another work_dir or delete it"
                )
            continue
        _field_cutouts(params, path, cutout_size)
    labels, galaxy, counts = [], [], []
    for params, path in zip(plan, paths):
        with np.load(path, allow_pickle=False, mmap_mode="r") as npz:
            labels.append(npz["labels"])
            counts.append(labels[-1].size)
        galaxy.append(np.full(counts[-1], params["target"]))
    cutouts = np.lib.format.open_memmap(
        work_dir / "corpus.npy",
        mode="w+",
        dtype=np.float32,
        shape=(sum(counts), len(_BANDS), cutout_size, cutout_size),
    )
    start = 0
    for path, n in zip(paths, counts):
        with np.load(path, allow_pickle=False) as npz:
            cutouts[start : start + n] = npz["cutouts"]
        start += n
    cutouts.flush()
    # Channel 2 is F438W (WFC3) or F435W (ACS): the B band either way.
    return TrainingSet(
        cutouts,
        np.concatenate(labels),
        galaxy=np.concatenate(galaxy),
        bands=_BANDS,
        size=cutout_size,
    )


def _simulator_version():
    from .._meta import __version__

    return f"photutils_clusterclf.datasets {__version__}"


def pretrain(
    out=None,
    *,
    name=None,
    arch="resnet18",
    n_fields=8,
    n_candidates=800,
    epochs=4,
    seed=0,
    cutout_size=32,
    input_size=None,
    device="auto",
    work_dir=None,
    keep_work_dir=False,
    overwrite=False,
    progress_bar=False,
    **train_options,
):
    """Simulate a corpus, train on its true classes, write the pretrained weights.

    Parameters
    ----------
    out : str or `~pathlib.Path`, optional
        Checkpoint to write. Optional when ``name`` is given.
    name : str, optional
        A registered name (`photutils_clusterclf.weights.WEIGHTS`): the
        options must be that entry's recipe (``WEIGHTS[name].command``
        spells them out), and the file is installed into the weights cache
        under its hashed name (`~photutils_clusterclf.weights.install_weights`).
    arch : str, optional
        Architecture.
    n_fields : int, optional
        Simulated fields (every fifth is held out for validation).
    n_candidates : int, optional
        Candidates per field (the field size keeps a PHANGS-like density).
    epochs : int, optional
        Maximum training epochs.
    seed : int, optional
        Seed of the corpus and of the training.
    cutout_size : int, optional
        Cutout side (pixels).
    input_size : int, optional
        Network input side (default: the cutout size).
    device : str, optional
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    work_dir : str or `~pathlib.Path`, optional
        Corpus and training checkpoints; default ``.<out name>.pretrain``
        next to ``out``. Reused (resumed) when it exists.
    keep_work_dir : bool, optional
        Keep it after success (it is deleted by default: the corpus is
        about 20 kB per candidate).
    overwrite : bool, optional
        Replace ``out`` (and an installed file of ``name``).
    progress_bar : bool, optional
        Progress bars for the corpus and the training.
    **train_options
        Passed to `~photutils_clusterclf.training.train_classifier`
        (``batch_size``, ``lr``, ``patience``, ...).

    Returns
    -------
    path : `~pathlib.Path`
        The weights file (the installed one when ``name`` is given).
    sha256 : str
        Its SHA-256.
    """
    from ..checkpoint import save_checkpoint

    options = {
        "arch": arch,
        "n_fields": n_fields,
        "n_candidates": n_candidates,
        "epochs": epochs,
        "seed": seed,
    }
    if name is not None:
        _check_recipe(name, options)
    out, internal = _output_path(out, name)
    check_writable(out, overwrite=overwrite or internal)
    work_dir = Path(work_dir) if work_dir is not None else out.parent / f".{out.name}.pretrain"
    plan = corpus_plan(n_fields, n_candidates=n_candidates, seed=seed)
    work_dir.mkdir(parents=True, exist_ok=True)
    training_set = _corpus(plan, work_dir, cutout_size, progress_bar)
    val = _validation_fields(plan)
    clf = _train_resumably(
        training_set,
        work_dir / "train",
        arch=arch,
        input_size=input_size,
        epochs=epochs,
        seed=seed,
        device=device,
        val_galaxy=val or None,
        progress_bar=progress_bar,
        **train_options,
    )
    card = _pretrained_card(
        clf, training_set, plan, val, options=options | {"cutout_size": cutout_size}
    )
    sha = save_checkpoint(out, card, clf.models[0].state_dict(), overwrite=overwrite or internal)
    if name is not None:
        out = _install(out, name, internal=internal, overwrite=overwrite)
    if not keep_work_dir:
        shutil.rmtree(work_dir)
    return out, sha


def _train_resumably(training_set, checkpoint_dir, **options):
    """Train from scratch, checkpointing in ``checkpoint_dir``; resume the run found there."""
    from .loop import train_classifier

    resume = checkpoint_dir.is_dir()
    checkpoint_dir.mkdir(exist_ok=True)
    return train_classifier(
        training_set, weights=None, checkpoint_dir=checkpoint_dir, resume=resume, **options
    )


def _check_recipe(name, options):
    """Raise unless ``options`` are the recipe of the registered weights ``name``."""
    from ..weights import get_weights

    recipe = get_weights(name).recipe
    if not recipe:
        raise ValueError(f"weights {name!r} are not made by pretrain")
    differ = {k: (options[k], v) for k, v in recipe.items() if options.get(k) != v}
    if differ:
        raise ValueError(
            f"{name!r} is made with {recipe}; these options differ (given, recipe): {differ}"
        )


def _output_path(out, name):
    """The file to write and whether it is internal (to be installed as ``name``)."""
    from ..weights import weights_dirs

    internal = out is None and name is not None
    if internal:
        # Written next to its final place, then installed under its hashed name.
        weights_dirs()[0].mkdir(parents=True, exist_ok=True)
        out = weights_dirs()[0] / f".{name}-unverified.pt"
    if out is None:
        raise ValueError("give out (a file to write) or name (a registered entry to install)")
    return Path(out), internal


def _install(out, name, *, internal, overwrite):
    """Install ``out`` as the registered weights ``name``; returns the installed file."""
    from ..weights import install_weights

    installed = install_weights(out, name, overwrite=overwrite)
    if internal:
        out.unlink()  # the unverified copy written only to be installed
    return installed


def _validation_fields(plan):
    """Targets of the held-out fields: every `_VAL_EVERY`-th, else the last one."""
    val = [p["target"] for i, p in enumerate(plan) if i % _VAL_EVERY == _VAL_EVERY - 1]
    if not val and len(plan) > 1:
        val = [plan[-1]["target"]]
    return val


def _pretrained_card(clf, training_set, plan, val, *, options):
    """The model card of the pretrained network: what it was pretrained on, and how well."""
    from ..checkpoint import ModelCard

    member = clf.card.training["members"][0]
    best = next((r for r in member["log"] if r["epoch"] == member["best_epoch"]), None)
    return ModelCard(
        arch=options["arch"],
        bands=_BANDS,
        cutout_size=options["cutout_size"],
        input_size=clf.card.input_size,
        normalization=clf.card.normalization,
        temperature=clf.card.temperature,
        model_options=clf.card.model_options,
        # No time stamp: the same options give the same bytes.
        created="not recorded (reproducible build)",
        training={
            "pretraining": {
                "simulator": _simulator_version(),
                "ranges": PRETRAIN_RANGES,
                "options": options,
                "train_options": clf.card.training["options"],
                "n_fields": len(plan),
                "n_candidates": len(training_set),
                "classes": training_set.summary["classes"],
                "label": "true class (CLASS_TRUE)",
                "validation_fields": val,
                "best_epoch": member["best_epoch"],
                "epochs_run": member["epochs_run"],
                "val_macro_recall": member["best_val_macro_recall"],
                "val_recall": None if best is None else best["val_recall"],
                "log": [
                    {k: r[k] for k in ("epoch", "train_loss", "val_macro_recall")}
                    for r in member["log"]
                ],
                "calibration": clf.card.training.get("calibration"),
                "device": clf.card.training["device"],
                "torch_threads": clf.card.training["torch_threads"],
                "fields": plan,
            }
        },
    )
