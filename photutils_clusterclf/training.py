"""Training sets and the training loop (single process or DistributedDataParallel).

`TrainingSet` gathers the labelled candidates of one or more galaxies into
one in-memory array of *raw* cutouts (normalisation happens in the model
pipeline, exactly as at classification time). `train_classifier` fine-tunes
one network or an ensemble on it and returns a
`~photutils_clusterclf.classifier.ClusterClassifier` whose model card
records how it was trained.

Reproducibility: with the same seed, the same training set and the same
options, two runs on the CPU give identical weights. Every source of
randomness (initialisation, shuffling, sampling, augmentation, dropout) is
drawn from generators seeded from ``seed``, and the caller's global random
state is left untouched. An interrupted run resumed from its checkpoint
directory ends with the same weights as an uninterrupted one.

Several devices: run the same script under ``torchrun --nproc-per-node N``.
`train_classifier` detects the ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK``
environment variables, joins (or initialises) the process group (NCCL on
GPUs, gloo on the CPU), and wraps the network in
`~torch.nn.parallel.DistributedDataParallel`. Each rank processes a share of
every global batch, so that ``batch_size`` is the global batch size and the
gradient step is the one a single process would take.
"""

import contextlib
import copy
import hashlib
import inspect
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from astropy.utils.exceptions import AstropyUserWarning
from tqdm.auto import tqdm

from .checkpoint import ModelCard
from .classes import CLASSES, fold_classes
from .classifier import ClusterClassifier, prepare_batch, resolve_device
from .cutouts import DEFAULT_CUTOUT_SIZE, FLAG_INVALID_POSITION, FLAG_NO_COVERAGE, FLAG_NO_OVERLAP, extract_cutouts
from .fileio import atomic_output
from .images import normalize_band_name
from .models import build_model, check_input_size, imagenet_weights_file
from .positions import resolve_positions
from .preprocessing import Normalization, random_augment

__all__ = ["TrainingSet", "train_classifier"]

#: Version of the ``.npz`` training-set file and of the training-state checkpoints.
TRAINING_SET_VERSION = 1
TRAINING_STATE_VERSION = 1

CLASS_BALANCES = ("weighted", "sampler", "none")

#: Reasons for leaving a catalogue row out of a training set, in the order
#: they are tested (each excluded row is counted once, under its first reason).
EXCLUSION_REASONS = ("unlabelled", "invalid_position", "no_overlap", "no_coverage")
_FLAG_REASONS = (("invalid_position", FLAG_INVALID_POSITION),
                 ("no_overlap", FLAG_NO_OVERLAP),
                 ("no_coverage", FLAG_NO_COVERAGE))


def _class_counts(labels):
    # String keys so that the summary survives JSON (model cards, .npz files) unchanged.
    return {str(c): int(np.count_nonzero(labels == c)) for c in CLASSES}


def _summarize(labels, galaxy, *, excluded=None, n_rows=None, label_column=None):
    names = list(dict.fromkeys(galaxy.tolist()))
    excluded = excluded or {}
    n_rows = n_rows or {}
    per_galaxy = {}
    for name in names:
        sel = galaxy == name
        exc = excluded.get(name, dict.fromkeys(EXCLUSION_REASONS, 0))
        per_galaxy[name] = {"n_rows": int(n_rows.get(name, sel.sum() + sum(exc.values()))),
                            "n_objects": int(sel.sum()),
                            "classes": _class_counts(labels[sel]),
                            "n_excluded": exc}
    totals = {r: sum(g["n_excluded"][r] for g in per_galaxy.values()) for r in EXCLUSION_REASONS}
    return {"label_column": label_column, "n_objects": int(labels.size),
            "classes": _class_counts(labels), "n_excluded": totals, "galaxies": per_galaxy}


class TrainingSet:
    """Labelled raw cutouts of one or more galaxies, ready for training.

    Parameters
    ----------
    cutouts : array-like, shape (N, B, S, S)
        Raw cutouts (any float type; stored as native float32, NaN kept
        where there is no data).
    labels : array-like of int, shape (N,)
        Classes 1-4. Catalogue codes (PHANGS 5-19, LEGUS 0, NaN) must be
        folded first, which `from_galaxies` does.
    galaxy : str or sequence of str, optional
        Galaxy of each row (or one name for all rows); used to hold out a
        galaxy for validation. Defaults to ``"galaxy"``.
    bands : sequence of str
        Filter names of the ``B`` channels, in order.
    size : int, optional
        Cutout side ``S``; checked against ``cutouts`` when given.
    summary : dict, optional
        Counts to report (see `summary`); computed from the arrays when
        omitted.

    Attributes
    ----------
    cutouts : `numpy.ndarray`
        ``(N, B, S, S)`` float32 raw cutouts.
    labels : `numpy.ndarray`
        ``(N,)`` int64 classes 1-4.
    galaxy : `numpy.ndarray`
        ``(N,)`` galaxy names.
    bands : tuple of str
    size : int
    summary : dict
        ``n_objects``, ``classes`` (count per class, keys ``"1"``-``"4"``),
        ``n_excluded`` (rows left out, per reason: ``unlabelled`` (folded
        class 0), ``invalid_position``, ``no_overlap``, ``no_coverage``),
        ``label_column``, and the same per galaxy under ``galaxies``
        (with ``n_rows``, the catalogue length).
    """

    def __init__(self, cutouts, labels, *, galaxy=None, bands, size=None, summary=None):
        cutouts = np.asarray(cutouts, dtype=np.float32)  # native-endian float32
        if cutouts.ndim != 4 or cutouts.shape[-1] != cutouts.shape[-2]:
            raise ValueError(f"cutouts must have shape (N, B, S, S), got {cutouts.shape}")
        n, n_bands, side = cutouts.shape[:3]
        if size is not None and int(size) != side:
            raise ValueError(f"size={size} does not match the cutouts' side {side}")
        raw_labels = np.asarray(labels)
        if raw_labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {raw_labels.shape}")
        if n and not np.isin(raw_labels, CLASSES).all():
            bad = sorted(set(np.unique(raw_labels).tolist()) - set(CLASSES))
            raise ValueError(f"labels must be classes 1-4, found {bad[:5]}; fold catalogue "
                             "codes with fold_classes or use TrainingSet.from_galaxies")
        if galaxy is None or isinstance(galaxy, str):
            galaxy = np.full(n, "galaxy" if galaxy is None else galaxy)
        galaxy = np.asarray(galaxy, dtype=str)
        if galaxy.shape != (n,):
            raise ValueError(f"galaxy must be one name or ({n},) names, got shape {galaxy.shape}")
        bands = tuple(normalize_band_name(b) for b in bands)
        if len(bands) != n_bands:
            raise ValueError(f"{len(bands)} band names given for cutouts with {n_bands} bands")
        self.cutouts = cutouts
        self.labels = raw_labels.astype(np.int64)
        self.galaxy = galaxy
        self.bands = bands
        self.size = int(side)
        self.summary = summary if summary is not None else _summarize(self.labels, galaxy)
        self._fingerprint = None

    def __len__(self):
        return self.labels.size

    def __repr__(self):
        counts = ", ".join(f"{c}: {n}" for c, n in self.summary["classes"].items())
        excluded = sum(self.summary["n_excluded"].values())
        return (f"<TrainingSet {len(self)} objects ({counts}) from "
                f"{len(self.galaxies)} galaxies, {excluded} rows excluded, "
                f"bands={','.join(self.bands)} size={self.size}px>")

    @property
    def galaxies(self):
        """Galaxy names in order of first appearance."""
        return list(dict.fromkeys(self.galaxy.tolist()))

    def fingerprint(self):
        """SHA-256 of the cutouts, labels, galaxies and bands (identifies the set in checkpoints)."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for arr in (np.ascontiguousarray(self.cutouts), self.labels):
                digest.update(arr.data)
            digest.update(json.dumps([self.galaxy.tolist(), list(self.bands)]).encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @classmethod
    def from_galaxies(cls, galaxies, *, label_column, cutout_size=DEFAULT_CUTOUT_SIZE, bands=None,
                      origin=None, mapping=None, progress_bar=True):
        """Build a training set from labelled catalogues and their images.

        Labels are folded with `~photutils_clusterclf.classes.fold_classes`
        (PHANGS codes 5-19 -> 4 by default). Rows whose folded label is 0
        (unlabelled, LEGUS class 0, unknown codes) and rows whose cutout
        cannot be classified (invalid position, off the image, a band
        without coverage) are left out and counted in `summary`.

        Parameters
        ----------
        galaxies : list
            One entry per galaxy: ``(catalog, images)``,
            ``(catalog, images, name)``, or a dict with keys ``catalog``,
            ``images`` and optionally ``name``, ``label_column``,
            ``origin``. ``images`` is a
            `~photutils_clusterclf.images.MultiBandImage`. A missing name is
            taken from ``catalog.meta`` (``galaxy``, ``target``) or set to
            ``galaxyK``.
        label_column : str
            Column of human classes (e.g. ``PHANGS_CLUSTER_CLASS_HUMAN``,
            LEGUS ``class_mode``).
        cutout_size : int, optional
            Cutout side in pixels.
        bands : sequence of str, optional
            Bands (channel order); defaults to the first galaxy's bands.
            Every galaxy must have them.
        origin : {0, 1}, optional
            Pixel convention of the catalogue positions, passed to
            `~photutils_clusterclf.positions.resolve_positions`.
        mapping : dict, optional
            Code folding, passed to `~photutils_clusterclf.classes.fold_classes`.
        progress_bar : bool, optional
            Show a progress bar over galaxies.

        Returns
        -------
        `TrainingSet`
        """
        entries = [_galaxy_entry(g, k, label_column, origin) for k, g in enumerate(galaxies)]
        if not entries:
            raise ValueError("no galaxies given: pass a list of (catalog, images[, name]) entries")
        names = [e["name"] for e in entries]
        if len(set(names)) != len(names):
            raise ValueError(f"galaxy names must be unique, got {names}")
        bands = tuple(bands) if bands is not None else tuple(entries[0]["images"].bands)
        parts, labels, galaxy, excluded, n_rows = [], [], [], {}, {}
        for entry in tqdm(entries, desc="cutouts", unit="galaxy", disable=not progress_bar):
            catalog, name, column = entry["catalog"], entry["name"], entry["label_column"]
            if column not in catalog.colnames:
                raise KeyError(f"label column {column!r} not in the catalogue of {name}; "
                               f"columns are {', '.join(catalog.colnames)}")
            folded = fold_classes(catalog[column], mapping=mapping)
            positions = resolve_positions(catalog, entry["images"], origin=entry["origin"])
            keep = np.flatnonzero(folded > 0)
            batch = extract_cutouts(entry["images"], positions.x[keep], positions.y[keep],
                                    size=cutout_size, bands=bands)
            reasons = {"unlabelled": int(len(catalog) - keep.size)}
            remaining = batch.flags.copy()
            for reason, bit in _FLAG_REASONS:
                hit = (remaining & bit) != 0
                reasons[reason] = int(hit.sum())
                remaining[hit] = 0
            ok = batch.classifiable
            if not ok.all():
                warnings.warn(f"{name}: {int((~ok).sum())} labelled candidates left out of the "
                              "training set because their cutouts cannot be classified "
                              f"({reasons})", AstropyUserWarning)
            parts.append(batch.data[ok])
            labels.append(folded[keep][ok])
            galaxy.append(np.full(int(ok.sum()), name))
            excluded[name], n_rows[name] = reasons, len(catalog)
        labels = np.concatenate(labels).astype(np.int64)
        galaxy = np.concatenate(galaxy)
        summary = _summarize(labels, galaxy, excluded=excluded, n_rows=n_rows,
                             label_column=label_column)
        # Galaxies without a single usable object still appear in the summary.
        for name in names:
            summary["galaxies"].setdefault(name, {
                "n_rows": n_rows[name], "n_objects": 0, "classes": _class_counts(labels[:0]),
                "n_excluded": excluded[name]})
        return cls(np.concatenate(parts), labels, galaxy=galaxy, bands=bands,
                   size=cutout_size, summary=summary)

    def save(self, path, *, overwrite=False):
        """Write the training set to one ``.npz`` file (atomically).

        Parameters
        ----------
        path : str or `~pathlib.Path`
            Output file.
        overwrite : bool, optional
            Replace an existing file.
        """
        with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, version=np.int64(TRAINING_SET_VERSION), cutouts=self.cutouts,
                     labels=self.labels, galaxy=self.galaxy, bands=np.asarray(self.bands),
                     size=np.int64(self.size), summary=np.asarray(json.dumps(self.summary)))

    @classmethod
    def load(cls, path):
        """Read a training set written by `save` (no pickles are loaded)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training set file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except (ValueError, OSError) as exc:
            raise ValueError(f"{path} is not a training-set .npz file: {exc}") from exc
        missing = {"version", "cutouts", "labels", "galaxy", "bands", "size", "summary"} - set(data)
        if missing:
            raise ValueError(f"{path} is not a training-set file: missing {sorted(missing)}")
        if int(data["version"]) != TRAINING_SET_VERSION:
            raise ValueError(f"{path} has training-set format version {int(data['version'])}; "
                             f"this package reads version {TRAINING_SET_VERSION}")
        return cls(data["cutouts"], data["labels"], galaxy=data["galaxy"],
                   bands=data["bands"].tolist(), size=int(data["size"]),
                   summary=json.loads(str(data["summary"])))


def _galaxy_entry(item, index, label_column, origin):
    if isinstance(item, dict):
        unknown = set(item) - {"catalog", "images", "name", "label_column", "origin"}
        if unknown or not {"catalog", "images"} <= set(item):
            raise ValueError("a galaxy dict needs keys 'catalog' and 'images' (optional 'name', "
                             f"'label_column', 'origin'); got {sorted(item)}")
        entry = dict(item)
    elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
        entry = dict(zip(("catalog", "images", "name"), item))
    else:
        raise TypeError("each galaxy must be (catalog, images), (catalog, images, name) or a "
                        f"dict; got {type(item).__name__}")
    meta = getattr(entry["catalog"], "meta", {}) or {}
    name = entry.get("name") or meta.get("galaxy") or meta.get("target") or f"galaxy{index}"
    entry["name"] = str(name)
    entry.setdefault("label_column", label_column)
    entry.setdefault("origin", origin)
    return entry


# -- training ------------------------------------------------------------------


class _Distributed:
    """Rank, world size and device of this process; initialises the process group if needed."""

    def __init__(self, device):
        device = resolve_device(device)
        self.owns_group = False
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.owns_group = True
        self.active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.world = dist.get_world_size() if self.active else 1
        self.rank = dist.get_rank() if self.active else 0
        if self.active and device.type == "cuda" and device.index is None:
            # One GPU per process, as torchrun lays them out.
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self.device = device

    @property
    def main(self):
        return self.rank == 0

    def all_reduce(self, tensor):
        if self.active:
            # NCCL reduces tensors on the GPU only.
            moved = tensor.to(self.device)
            dist.all_reduce(moved)
            tensor = moved.cpu()
        return tensor

    def close(self):
        if self.owns_group:
            dist.destroy_process_group()


def _validation_split(training_set, val_galaxy, val_fraction, seed):
    """Indices of training and validation rows, and a description of the split.

    Rule: ``val_galaxy`` names the held-out galaxies; otherwise, with two or
    more galaxies, the galaxy whose share of the objects is closest to
    ``val_fraction`` is held out (the last one on ties); with one galaxy, a
    stratified random split keeps ``val_fraction`` of each class.
    ``val_fraction=0`` (and no ``val_galaxy``) means no validation.
    """
    n = len(training_set)
    galaxies = training_set.galaxies
    if val_galaxy is None and not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if val_galaxy is None and len(galaxies) >= 2 and val_fraction > 0:
        shares = [np.count_nonzero(training_set.galaxy == g) / n for g in galaxies]
        dist_to_target = [abs(s - val_fraction) for s in shares]
        val_galaxy = galaxies[len(galaxies) - 1 - int(np.argmin(dist_to_target[::-1]))]
    if val_galaxy is not None:
        names = [val_galaxy] if isinstance(val_galaxy, str) else list(val_galaxy)
        unknown = [g for g in names if g not in galaxies]
        if unknown:
            raise ValueError(f"val_galaxy {unknown} not in the training set; galaxies are {galaxies}")
        is_val = np.isin(training_set.galaxy, names)
        if is_val.all():
            raise ValueError(f"holding out {names} leaves no training objects; "
                             "use val_galaxy=None for a random split")
        return (np.flatnonzero(~is_val), np.flatnonzero(is_val),
                {"mode": "galaxy", "galaxies": names})
    if val_fraction == 0:
        return np.arange(n), np.arange(0), {"mode": "none", "galaxies": []}
    gen = torch.Generator().manual_seed(seed)
    val = []
    for c in CLASSES:
        idx = np.flatnonzero(training_set.labels == c)
        # Keep at least one object of each class for training.
        n_val = min(int(round(idx.size * val_fraction)), max(idx.size - 1, 0))
        val.append(idx[torch.randperm(idx.size, generator=gen).numpy()[:n_val]])
    is_val = np.zeros(n, dtype=bool)
    is_val[np.concatenate(val)] = True
    return (np.flatnonzero(~is_val), np.flatnonzero(is_val),
            {"mode": "stratified", "galaxies": [], "fraction": float(val_fraction)})


def _class_weights(labels, class_balance):
    """Per-class loss weights: inverse frequency (mean 1 over the objects) or ones."""
    if class_balance != "weighted":
        return np.ones(len(CLASSES))
    counts = np.array([np.count_nonzero(labels == c) for c in CLASSES], dtype=np.float64)
    return np.where(counts > 0, counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0)


def _epoch_order(train_idx, labels, class_balance, generator):
    """Global order of the training rows for one epoch (identical on every rank)."""
    if class_balance == "sampler":
        counts = np.bincount(labels[train_idx], minlength=max(CLASSES) + 1)
        prob = torch.from_numpy(1.0 / counts[labels[train_idx]])
        pick = torch.multinomial(prob, train_idx.size, replacement=True, generator=generator)
        return train_idx[pick.numpy()]
    return train_idx[torch.randperm(train_idx.size, generator=generator).numpy()]


def _batches(order, batch_size):
    # The last incomplete batch is dropped (the order changes every epoch, so
    # no object is left out systematically): a batch of one breaks BatchNorm.
    stop = order.size - order.size % batch_size if order.size > batch_size else order.size
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def _stem_and_head(model):
    """Parameters that train while the backbone is frozen: the first conv and the last linear layer."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    ids = {id(p) for m in convs[:1] + linears[-1:] for p in m.parameters()}
    trainable = [p for p in model.parameters() if id(p) in ids]
    backbone = [p for p in model.parameters() if id(p) not in ids]
    return backbone, trainable


def _cpu_state(module):
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _confusion(logits, targets):
    pred = logits.argmax(dim=1)
    k = len(CLASSES)
    return torch.bincount(targets * k + pred, minlength=k * k).reshape(k, k)


def _recalls(confusion):
    totals = confusion.sum(dim=1)
    recall = [float(confusion[i, i] / totals[i]) if totals[i] else None for i in range(len(CLASSES))]
    present = [r for r in recall if r is not None]
    return recall, (float(np.mean(present)) if present else None)


def _validation_batches(ts, val_idx, ctx, normalization, input_size, batch_size):
    """This rank's share of the validation set, preprocessed once for all epochs and members.

    Returns
    -------
    list of tuple of `torch.Tensor`
        ``(inputs, targets)`` chunks of ``2 * batch_size`` rows: network inputs
        on the CPU and 0-based classes.
    """
    shard = val_idx[ctx.rank::ctx.world]
    step = 2 * batch_size
    return [(prepare_batch(ts.cutouts[idx], normalization, input_size),
             torch.from_numpy(ts.labels[idx] - 1))
            for idx in (shard[start:start + step] for start in range(0, shard.size, step))]


class _Trainer:
    """Trains one ensemble member; holds everything a checkpoint must restore."""

    def __init__(self, ts, opts, member, ctx, split, val_batches, weights, normalization):
        self.ts, self.opts, self.member, self.ctx = ts, opts, member, ctx
        self.train_idx, self.val_idx = split
        self.val_batches = val_batches
        self.targets = torch.from_numpy(ts.labels - 1)
        self.seed = opts["seed"] + member
        self.normalization = normalization
        self.input_size = opts["input_size"]
        torch.manual_seed(self.seed)
        if ctx.device.type == "cuda":
            torch.cuda.manual_seed_all(self.seed)
        model = build_model(opts["arch"], n_bands=len(ts.bands), n_classes=len(CLASSES),
                            weights=weights)
        self.model = model.to(ctx.device)
        backbone, trainable = _stem_and_head(self.model)
        self.optimizer = torch.optim.AdamW(
            [{"params": backbone}, {"params": trainable}], lr=opts["lr"],
            weight_decay=opts["weight_decay"])
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=0.5,
            patience=max(1, (opts["patience"] or 4) // 2))
        self.generator = torch.Generator().manual_seed(self.seed)
        self.class_weights = torch.as_tensor(
            _class_weights(ts.labels[self.train_idx], opts["class_balance"]), dtype=torch.float32)
        self.device_class_weights = self.class_weights.to(ctx.device)
        self.epoch = 0
        self.best = {"epoch": 0, "score": None, "state": _cpu_state(self.model)}
        self.bad_epochs = 0
        self.stopped = False
        self.log = []
        self.network = self.model
        if ctx.active:
            if ctx.device.type == "cuda":
                # Statistics over the global batch, as in a single process
                # (SyncBatchNorm needs GPUs; on the CPU each rank normalises
                # with its own share of the batch).
                self.network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.network)
            # Buffers are averaged once per epoch (_sync_buffers) rather than
            # broadcast from rank 0 at every forward pass.
            no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in
                       inspect.signature(torch.nn.parallel.DistributedDataParallel).parameters
                       else {"broadcast_buffers": False})
            self.network = torch.nn.parallel.DistributedDataParallel(
                self.network, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                **no_sync)
        # SyncBatchNorm conversion may replace modules; keep the trained module's handle.
        self.module = self.network.module if ctx.active else self.network

    # -- state ---------------------------------------------------------------

    def state(self):
        rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if self.ctx.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.ctx.device)
        return {"version": TRAINING_STATE_VERSION, "options": self.opts,
                "fingerprint": self.ts.fingerprint(), "member": self.member, "seed": self.seed,
                "epoch": self.epoch, "stopped": self.stopped, "bad_epochs": self.bad_epochs,
                "model": _cpu_state(self.module), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng, "best": self.best,
                "log": self.log}

    def restore(self, state, path):
        if state.get("version") != TRAINING_STATE_VERSION:
            raise ValueError(f"{path}: training-state version {state.get('version')} is not "
                             f"{TRAINING_STATE_VERSION}")
        if state["fingerprint"] != self.ts.fingerprint():
            raise ValueError(f"{path} was written for another training set; use another "
                             "checkpoint_dir or resume=False")
        changed = sorted(k for k in self.opts if k != "epochs" and state["options"].get(k) != self.opts[k])
        if changed:
            raise ValueError(f"{path} was written with different options {changed}; resume "
                             "with the same options (only epochs may change)")
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and self.ctx.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.ctx.device)
        self.epoch, self.stopped, self.bad_epochs = state["epoch"], state["stopped"], state["bad_epochs"]
        self.best, self.log = state["best"], state["log"]

    # -- one epoch -----------------------------------------------------------

    def train_epoch(self, progress_bar):
        opts, ctx = self.opts, self.ctx
        frozen = self.epoch < opts["freeze_backbone_epochs"]
        # lr 0 freezes the backbone identically with and without DDP (AdamW's
        # decoupled weight decay is scaled by lr too).
        self.optimizer.param_groups[0]["lr"] = 0.0 if frozen else (
            self.optimizer.param_groups[1]["lr"] * opts["backbone_lr_factor"])
        self.network.train()
        labels, w = self.targets, self.device_class_weights
        order = _epoch_order(self.train_idx, self.ts.labels, opts["class_balance"], self.generator)
        total = torch.zeros(1, dtype=torch.float64)
        batches = _batches(order, opts["batch_size"])
        for batch in tqdm(batches, desc=f"epoch {self.epoch + 1}", leave=False,
                          disable=not (progress_bar and ctx.main)):
            # Every rank augments the whole global batch with the shared
            # generator (keeping the generators in step), then takes its share.
            raw = self.ts.cutouts[batch]
            if opts["augment"]:
                raw = random_augment(torch.from_numpy(raw), self.generator).numpy()
            share = np.array_split(np.arange(batch.size), ctx.world)[ctx.rank]
            x = prepare_batch(raw[share], self.normalization, self.input_size).to(ctx.device)
            y = labels[batch[share]].to(ctx.device)
            denom = self.class_weights[labels[batch]].sum()
            logits = self.network(x)
            # Sum over this rank's share / global weight sum, times the world
            # size because DDP averages gradients over ranks: the gradient is
            # that of the global weighted mean loss.
            loss = (F.cross_entropy(logits, y, reduction="none") * w[y]).sum() / denom * ctx.world
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach().cpu().double() / ctx.world
        total = ctx.all_reduce(total)
        self._sync_buffers()
        return float(total) / max(len(batches), 1)

    def _sync_buffers(self):
        # Without SyncBatchNorm (CPU), each rank's BatchNorm running statistics
        # follow its own share of the batches: average them, so that every
        # rank validates and returns the same network.
        if not self.ctx.active:
            return
        with torch.no_grad():
            for buf in self.module.buffers():
                if buf.is_floating_point():
                    dist.all_reduce(buf)
                    buf /= self.ctx.world

    @torch.no_grad()
    def validate(self):
        ctx = self.ctx
        k = len(CLASSES)
        self.module.eval()
        stats = torch.zeros(k * k + 1, dtype=torch.float64)  # confusion matrix, loss sum
        for x, y in self.val_batches:
            logits = self.module(x.to(ctx.device)).float().cpu()
            stats[:k * k] += _confusion(logits, y).flatten().double()
            stats[-1] += F.cross_entropy(logits, y, reduction="sum").double()
        stats = ctx.all_reduce(stats)
        recall, macro = _recalls(stats[:k * k].reshape(k, k))
        return float(stats[-1]) / max(self.val_idx.size, 1), recall, macro

    def run_epoch(self, progress_bar):
        start = time.perf_counter()
        train_loss = self.train_epoch(progress_bar)
        record = {"member": self.member, "epoch": self.epoch + 1, "train_loss": train_loss,
                  "val_loss": None, "val_recall": None, "val_macro_recall": None,
                  "lr": float(self.optimizer.param_groups[1]["lr"])}
        self.epoch += 1
        if self.val_idx.size:
            record["val_loss"], record["val_recall"], macro = self.validate()
            record["val_macro_recall"] = macro
            if self.best["score"] is None or macro > self.best["score"]:
                self.best = {"epoch": self.epoch, "score": macro, "state": _cpu_state(self.module)}
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
            self.scheduler.step(macro)
            patience = self.opts["patience"]
            self.stopped = patience is not None and self.bad_epochs >= patience
        else:
            # Without validation the last weights are the result.
            self.best = {"epoch": self.epoch, "score": None, "state": _cpu_state(self.module)}
        record["seconds"] = time.perf_counter() - start
        self.log.append(record)
        return record


@contextlib.contextmanager
def _reproducible(device):
    """Deterministic kernels and a private global RNG for the duration of training."""
    was_on = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    was_benchmark = torch.backends.cudnn.benchmark
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_on, warn_only=was_warn)
            torch.backends.cudnn.benchmark = was_benchmark


def _resolve_weights(arch, weights, require_pretrained):
    """The ``weights`` to build with: ImageNet if available, else random init with a warning."""
    from .weights import WEIGHTS, find_weights_file
    if isinstance(weights, str) and weights in WEIGHTS:
        find_weights_file(weights)  # a missing file fails now, before any work
        return weights
    if weights != "imagenet" or require_pretrained:
        return weights
    path = imagenet_weights_file(arch)
    if Path(path).is_file():
        return weights
    warnings.warn(f"ImageNet weights not found at {path}; training from random initialisation "
                  "(put the file there, or pass require_pretrained=True to make this an error)",
                  AstropyUserWarning)
    return None


def train_classifier(training_set, *, arch="resnet18", weights="imagenet",
                     require_pretrained=False, input_size=None, epochs=30, batch_size=64,
                     lr=1e-3, weight_decay=1e-4, n_models=1, seed=0, device="auto",
                     freeze_backbone_epochs=0, backbone_lr_factor=1.0, val_galaxy=None, val_fraction=0.2, patience=8,
                     class_balance="weighted", augment=True, progress_bar=True,
                     checkpoint_dir=None, resume=False, log=None):
    """Train a network (or an ensemble) on a `TrainingSet`.

    Parameters
    ----------
    training_set : `TrainingSet`
        Raw labelled cutouts.
    arch : str, optional
        Architecture for `~photutils_clusterclf.models.build_model`
        (``"resnet18"``, ``"vgg19_bn"``, ...).
    weights : {"imagenet", None}, pretrained name or path, optional
        Initialisation (see `~photutils_clusterclf.models.build_model`): a
        registered name such as ``"sim-resnet18"``
        (`~photutils_clusterclf.weights`), a previous clusterclf checkpoint
        (continue training on a new galaxy), or a ``.pth`` state dict. With
        ``"imagenet"`` and no cached ImageNet file, an
        `~astropy.utils.exceptions.AstropyUserWarning` says so and training
        starts from random initialisation, unless ``require_pretrained``.
    require_pretrained : bool, optional
        Make missing ImageNet weights an error (the
        `FileNotFoundError` of `~photutils_clusterclf.models.build_model`).
    input_size : int, optional
        Side of the network input; cutouts are resized to it. Defaults to
        the cutout size.
    epochs : int, optional
        Maximum number of epochs per member.
    batch_size : int, optional
        Global batch size (split over the ranks under DDP). The last
        incomplete batch of each epoch is dropped.
    lr, weight_decay : float, optional
        AdamW learning rate and decoupled weight decay. The learning rate is
        halved when the validation macro recall stops improving for
        ``max(1, patience // 2)`` epochs.
    n_models : int, optional
        Number of ensemble members; member ``k`` uses seed ``seed + k``.
    seed : int, optional
        Base seed. It also fixes the random validation split (shared by all
        members).
    device : str or `torch.device`, optional
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``.
        Under torchrun each rank uses the GPU of its ``LOCAL_RANK``.
    freeze_backbone_epochs : int, optional
        Train only the first convolution (the new ``n_bands``-channel stem)
        and the classification head for this many epochs.
    backbone_lr_factor : float, optional
        Learning rate of every layer but the stem and the head, relative to
        ``lr`` (discriminative fine-tuning: e.g. 0.1 keeps pretrained
        features close to where they were).
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
    progress_bar : bool, optional
        Show tqdm progress bars (rank 0 only).
    checkpoint_dir : str or `~pathlib.Path`, optional
        Directory for one resumable training state per member
        (``member<k>.pt``), written after every epoch (rank 0 only).
    resume : bool, optional
        Continue from the states in ``checkpoint_dir``: finished members are
        not retrained and an interrupted member ends with the weights of an
        uninterrupted run. The options must be the same (``epochs`` may
        grow); the training set must be the same.
    log : callable, optional
        Called with each epoch's record (dict: member, epoch, train_loss,
        val_loss, val_recall per class, val_macro_recall, lr, seconds) after
        the epoch's checkpoint is written (rank 0 only). An exception it
        raises stops training, with that epoch's checkpoint already on disk
        (single process; under DDP the other ranks would wait).

    Returns
    -------
    `~photutils_clusterclf.classifier.ClusterClassifier`
        With ``n_models`` members (best weights of each) and a model card
        whose ``training`` dict holds the provenance and the epoch logs.
    """
    if not isinstance(training_set, TrainingSet):
        raise TypeError(f"training_set must be a TrainingSet, not {type(training_set).__name__}")
    if len(training_set) == 0:
        raise ValueError("the training set is empty")
    if class_balance not in CLASS_BALANCES:
        raise ValueError(f"class_balance={class_balance!r} is not one of {CLASS_BALANCES}")
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                             ("n_models", n_models, 1), ("freeze_backbone_epochs",
                                                         freeze_backbone_epochs, 0)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(backbone_lr_factor, (int, float)) and 0 <= backbone_lr_factor <= 1):
        raise ValueError(f"backbone_lr_factor must be a number in [0, 1], got {backbone_lr_factor!r}")
    if patience is not None and (int(patience) != patience or patience < 1):
        raise ValueError(f"patience must be a positive integer or None, got {patience!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the checkpoint_dir of the interrupted run")
    if checkpoint_dir is not None and not Path(checkpoint_dir).is_dir():
        raise FileNotFoundError(f"checkpoint directory {checkpoint_dir} does not exist")
    input_size = int(input_size or training_set.size)
    check_input_size(arch, input_size)
    weights = _resolve_weights(arch, weights, require_pretrained)
    train_idx, val_idx, split = _validation_split(training_set, val_galaxy, val_fraction, seed)
    opts = {"arch": arch, "weights": None if weights is None else str(weights),
            "input_size": input_size, "epochs": int(epochs), "batch_size": int(batch_size),
            "lr": float(lr), "weight_decay": float(weight_decay), "seed": int(seed),
            "freeze_backbone_epochs": int(freeze_backbone_epochs),
            "backbone_lr_factor": float(backbone_lr_factor), "val_split": split,
            "patience": None if patience is None else int(patience),
            "class_balance": class_balance, "augment": bool(augment)}
    # The very normalisation object the model card records, so that
    # classification preprocesses exactly as training did.
    normalization = Normalization()
    ctx = _Distributed(device)
    members, models = [], []
    try:
        with _reproducible(ctx.device):
            val_batches = _validation_batches(training_set, val_idx, ctx, normalization,
                                              input_size, opts["batch_size"])
            for member in range(n_models):
                trainer = _Trainer(training_set, opts, member, ctx, (train_idx, val_idx),
                                   val_batches, weights, normalization)
                path = None if checkpoint_dir is None else Path(checkpoint_dir) / f"member{member}.pt"
                if resume and path.is_file():
                    trainer.restore(torch.load(path, map_location="cpu", weights_only=True), path)
                bar = tqdm(total=epochs, initial=min(trainer.epoch, epochs), unit="epoch",
                           desc=f"member {member + 1}/{n_models}",
                           disable=not (progress_bar and ctx.main))
                with bar:
                    while trainer.epoch < epochs and not trainer.stopped:
                        record = trainer.run_epoch(progress_bar)
                        if path is not None and ctx.main:
                            with atomic_output(path, overwrite=True) as tmp:
                                torch.save(trainer.state(), tmp)
                        bar.update(1)
                        bar.set_postfix(loss=f"{record['train_loss']:.3f}",
                                        recall=record["val_macro_recall"])
                        if log is not None and ctx.main:
                            log(record)
                members.append(trainer)
                # A plain module (no DDP / SyncBatchNorm wrappers) with the best weights.
                model = build_model(arch, n_bands=len(training_set.bands),
                                    n_classes=len(CLASSES), weights=None)
                model.load_state_dict(trainer.best["state"])
                models.append(model)
                if ctx.active:
                    dist.barrier()
    finally:
        ctx.close()
    training = {
        "label_column": training_set.summary.get("label_column"),
        "galaxies": training_set.galaxies,
        "counts": copy.deepcopy(training_set.summary),
        "validation": dict(split, n_train=int(train_idx.size), n_val=int(val_idx.size)),
        "seeds": [int(seed) + k for k in range(n_models)],
        "options": {k: v for k, v in opts.items() if k != "val_split"}
        | {"n_models": int(n_models), "require_pretrained": bool(require_pretrained)},
        "world_size": ctx.world,
        "device": str(ctx.device),
        "members": [{"seed": t.seed, "best_epoch": t.best["epoch"], "epochs_run": t.epoch,
                     "stopped_early": t.stopped,
                     "best_val_macro_recall": t.best["score"],
                     "log": t.log} for t in members],
    }
    macro = [t.best["score"] for t in members if t.best["score"] is not None]
    training["metrics"] = {"val_macro_recall_mean": float(np.mean(macro)) if macro else None,
                           "val_macro_recall_std": float(np.std(macro)) if macro else None}
    card = ModelCard(arch=arch, bands=tuple(training_set.bands), cutout_size=training_set.size,
                     input_size=input_size, normalization=normalization.to_dict(),
                     training=training)
    return ClusterClassifier(models, card, device=ctx.device)
