"""The training loop: fine-tune one network or an ensemble on a `TrainingSet`.

Reproducibility: with the same seed, the same training set and the same
options, two runs on the CPU give identical weights. Every source of
randomness (initialisation, shuffling, sampling, augmentation, dropout) is
drawn from generators seeded from ``seed``, and the caller's global random
state is left untouched. An interrupted run resumed from its checkpoint
directory ends with the same weights as an uninterrupted one.

Calibration: after the members, one temperature for the ensemble is
fitted on the validation set (`~photutils_clusterclf.calibration`) and
stored in the model card, so that classification reports calibrated
probabilities.

Several devices: run the same script under ``torchrun --nproc-per-node N``
(see `~photutils_clusterclf.training._ddp`). Each rank processes a share
of every global batch, so that ``batch_size`` is the global batch size and
the gradient step is the one a single process would take.
"""

import contextlib
import copy
import dataclasses
import inspect
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from astropy.utils.exceptions import AstropyUserWarning

from ..calibration import calibration_summary, fit_temperature
from ..checkpoint import ModelCard
from ..classes import CLASSES
from ..classifier import ClusterClassifier
from ..evaluation import EvaluationReport
from ..fileio import atomic_output
from ..models import _imagenet_weights, build_model, check_input_size, imagenet_weights_file
from ..preprocessing import prepare_batch, random_augment
from ..utils.progress import progress_bar as _progress_bar
from ..weights import WEIGHTS, find_weights_file
from ._ddp import DDPContext
from .dataset import TrainingSet
from .options import TrainingOptions

__all__ = ["resolve_weights", "train_classifier"]

#: Version of the training-state checkpoints.
TRAINING_STATE_VERSION = 1


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
    if val_galaxy is None and len(galaxies) >= 2 and val_fraction > 0:
        shares = [np.count_nonzero(training_set.galaxy == g) / n for g in galaxies]
        dist_to_target = [abs(s - val_fraction) for s in shares]
        val_galaxy = galaxies[len(galaxies) - 1 - int(np.argmin(dist_to_target[::-1]))]
    if val_galaxy is not None:
        names = [val_galaxy] if isinstance(val_galaxy, str) else list(val_galaxy)
        unknown = [g for g in names if g not in galaxies]
        if unknown:
            raise ValueError(
                f"val_galaxy {unknown} not in the training set; galaxies are {galaxies}"
            )
        is_val = np.isin(training_set.galaxy, names)
        if is_val.all():
            raise ValueError(
                f"holding out {names} leaves no training objects; "
                "use val_galaxy=None for a random split"
            )
        return (
            np.flatnonzero(~is_val),
            np.flatnonzero(is_val),
            {"mode": "galaxy", "galaxies": names},
        )
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
    return (
        np.flatnonzero(~is_val),
        np.flatnonzero(is_val),
        {"mode": "stratified", "galaxies": [], "fraction": float(val_fraction)},
    )


def _class_weights(labels, class_balance):
    """Per-class loss weights: inverse frequency (mean 1 over the objects) or ones."""
    if class_balance != "weighted":
        return np.ones(len(CLASSES))
    counts = np.array([np.count_nonzero(labels == c) for c in CLASSES], dtype=np.float64)
    return np.where(
        counts > 0, counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0
    )


def _label_logits(logits, log_noise):
    """Logits of the labels under forward correction: ``log(softmax(logits) @ noise)``.

    The rows of the noise matrix sum to 1, so these are normalised log
    probabilities, and ``cross_entropy`` of them (which applies
    ``log_softmax``, an identity here) is the corrected loss, with label
    smoothing and soft targets as usual. Without a matrix: the logits.
    """
    if log_noise is None:
        return logits
    return torch.logsumexp(F.log_softmax(logits, dim=1).unsqueeze(2) + log_noise, dim=1)


def _loss_tensors(train_labels, opts, device):
    """Class weights (CPU and ``device``) and the log label-noise matrix (or None)."""
    weights = torch.as_tensor(
        _class_weights(train_labels, opts["class_balance"]), dtype=torch.float32
    )
    noise = opts["label_noise"]
    log_noise = (
        None if noise is None else torch.log(torch.tensor(noise, dtype=torch.float32)).to(device)
    )
    return weights, weights.to(device), log_noise


def _epoch_order(train_idx, labels, class_balance, generator):
    """Global order of the training rows for one epoch (identical on every rank)."""
    if class_balance == "sampler":
        counts = np.bincount(labels[train_idx], minlength=max(CLASSES) + 1)
        sampler = torch.utils.data.WeightedRandomSampler(
            torch.from_numpy(1.0 / counts[labels[train_idx]]),
            train_idx.size,
            replacement=True,
            generator=generator,
        )
        return train_idx[np.fromiter(sampler, dtype=np.int64, count=train_idx.size)]
    return train_idx[torch.randperm(train_idx.size, generator=generator).numpy()]


def _batches(order, batch_size):
    # The last incomplete batch is dropped (the order changes every epoch, so
    # no object is left out systematically): a batch of one breaks BatchNorm.
    stop = order.size - order.size % batch_size if order.size > batch_size else order.size
    return [order[i : i + batch_size] for i in range(0, stop, batch_size)]


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
    """Per-class recalls (None where a class is absent) and their mean over present ones."""
    report = EvaluationReport.from_confusion(confusion.numpy())
    recall = [None if math.isnan(r) else r for r in report.recall.values()]
    return recall, report.macro_recall


def _validation_batches(ts, val_idx, ctx, normalization, input_size, batch_size):
    """This rank's share of the validation set, preprocessed once for all epochs and members.

    Returns
    -------
    list of tuple of `torch.Tensor`
        ``(inputs, targets)`` chunks of ``2 * batch_size`` rows: network inputs
        on the CPU and 0-based classes.
    """
    shard = val_idx[ctx.rank :: ctx.world]
    step = 2 * batch_size
    return [
        (
            prepare_batch(ts.cutouts[idx], normalization, input_size),
            torch.from_numpy(ts.labels[idx] - 1),
        )
        for idx in (shard[start : start + step] for start in range(0, shard.size, step))
    ]


def _scheduler(optimizer, opts):
    """``"plateau"``: halve on a validation plateau; ``"cosine"``: linear warm-up, cosine decay."""
    if opts["schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=0.5, patience=max(1, (opts["patience"] or 4) // 2)
        )
    epochs = opts["epochs"]
    warmup = max(1, epochs // 10)

    def factor(epoch):  # epoch: number of finished epochs
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        # A Python float: the scheduler state must load with weights_only=True.
        return float(
            0.5
            * (1 + np.cos(np.pi * min(epoch - warmup, epochs - warmup) / max(epochs - warmup, 1)))
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class _Trainer:
    """Trains one ensemble member; holds everything a checkpoint must restore."""

    def __init__(self, ts, opts, member, ctx, split, val_batches, weights, normalization):
        self.ts, self.opts, self.member, self.ctx = ts, opts, member, ctx
        self.train_idx, self.val_idx = split
        self.val_batches = val_batches
        self.targets = torch.from_numpy(ts.labels - 1)
        self.soft = None if ts.soft_labels is None else torch.from_numpy(ts.soft_labels)
        self.seed = opts["seed"] + member
        self.normalization = normalization
        self.input_size = opts["input_size"]
        torch.manual_seed(self.seed)
        if ctx.device.type == "cuda":
            torch.cuda.manual_seed_all(self.seed)
        model = build_model(
            opts["arch"],
            n_bands=len(ts.bands),
            n_classes=len(CLASSES),
            weights=weights,
            stem=opts["stem"],
            head=opts["head"],
        )
        self.model = model.to(ctx.device)
        backbone, trainable = _stem_and_head(self.model)
        self.optimizer = torch.optim.AdamW(
            [{"params": backbone}, {"params": trainable}],
            lr=opts["lr"],
            weight_decay=opts["weight_decay"],
        )
        self.scheduler = _scheduler(self.optimizer, opts)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.class_weights, self.device_class_weights, self.log_noise = _loss_tensors(
            ts.labels[self.train_idx], opts, ctx.device
        )
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
            no_sync = (
                {"forward_sync_buffers": False}
                if "forward_sync_buffers"
                in inspect.signature(torch.nn.parallel.DistributedDataParallel).parameters
                else {"broadcast_buffers": False}
            )
            self.network = torch.nn.parallel.DistributedDataParallel(
                self.network,
                device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                **no_sync,
            )
        # SyncBatchNorm conversion may replace modules; keep the trained module's handle.
        self.module = self.network.module if ctx.active else self.network

    # -- state ---------------------------------------------------------------

    def state(self):
        rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if self.ctx.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.ctx.device)
        return {
            "version": TRAINING_STATE_VERSION,
            "options": self.opts,
            "fingerprint": self.ts.fingerprint(),
            "member": self.member,
            "seed": self.seed,
            "epoch": self.epoch,
            "stopped": self.stopped,
            "bad_epochs": self.bad_epochs,
            "model": _cpu_state(self.module),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "best": self.best,
            "log": self.log,
        }

    def restore(self, state, path):
        if state.get("version") != TRAINING_STATE_VERSION:
            raise ValueError(
                f"{path}: training-state version {state.get('version')} is not "
                f"{TRAINING_STATE_VERSION}"
            )
        if state["fingerprint"] != self.ts.fingerprint():
            raise ValueError(
                f"{path} was written for another training set; use another "
                "checkpoint_dir or resume=False"
            )
        changed = sorted(
            k for k in self.opts if k != "epochs" and state["options"].get(k) != self.opts[k]
        )
        if changed:
            raise ValueError(
                f"{path} was written with different options {changed}; resume "
                "with the same options (only epochs may change)"
            )
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and self.ctx.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.ctx.device)
        self.epoch, self.stopped, self.bad_epochs = (
            state["epoch"],
            state["stopped"],
            state["bad_epochs"],
        )
        self.best, self.log = state["best"], state["log"]

    # -- one epoch -----------------------------------------------------------

    def train_epoch(self):
        opts, ctx = self.opts, self.ctx
        frozen = self.epoch < opts["freeze_backbone_epochs"]
        # lr 0 freezes the backbone identically with and without DDP (AdamW's
        # decoupled weight decay is scaled by lr too).
        self.optimizer.param_groups[0]["lr"] = (
            0.0 if frozen else (self.optimizer.param_groups[1]["lr"] * opts["backbone_lr_factor"])
        )
        self.network.train()
        labels, w = self.targets, self.device_class_weights
        order = _epoch_order(self.train_idx, self.ts.labels, opts["class_balance"], self.generator)
        total = torch.zeros(1, dtype=torch.float64)
        batches = _batches(order, opts["batch_size"])
        for batch in batches:
            # Every rank augments the whole global batch with the shared
            # generator (keeping the generators in step), then takes its share.
            raw = self.ts.cutouts[batch]
            if opts["augment"]:
                raw = random_augment(torch.from_numpy(raw), self.generator).numpy()
            share = np.array_split(np.arange(batch.size), ctx.world)[ctx.rank]
            x = prepare_batch(raw[share], self.normalization, self.input_size).to(ctx.device)
            if self.soft is None:
                y = labels[batch[share]].to(ctx.device)
                weight, denom = w[y], self.class_weights[labels[batch]].sum()
            else:
                # Soft labels: cross entropy against class probabilities, each
                # object weighted by its expected class weight.
                y = self.soft[batch[share]].to(ctx.device)
                weight, denom = y @ w, (self.soft[batch] @ self.class_weights).sum()
            logits = _label_logits(self.network(x), self.log_noise)
            # Sum over this rank's share / global weight sum, times the world
            # size because DDP averages gradients over ranks: the gradient is
            # that of the global weighted mean loss.
            loss = (
                (
                    F.cross_entropy(
                        logits, y, reduction="none", label_smoothing=opts["label_smoothing"]
                    )
                    * weight
                ).sum()
                / denom
                * ctx.world
            )
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
            logits = self.module(x.to(ctx.device)).float()
            # Recall of the predicted (true) classes against the labels; the
            # loss is that of the labels (forward-corrected with a matrix).
            stats[: k * k] += _confusion(logits.cpu(), y).flatten().double()
            label_logits = _label_logits(logits, self.log_noise).cpu()
            stats[-1] += F.cross_entropy(label_logits, y, reduction="sum").double()
        stats = ctx.all_reduce(stats)
        recall, macro = _recalls(stats[: k * k].reshape(k, k))
        return float(stats[-1]) / max(self.val_idx.size, 1), recall, macro

    def run_epoch(self):
        start = time.perf_counter()
        train_loss = self.train_epoch()
        record = {
            "member": self.member,
            "epoch": self.epoch + 1,
            "train_loss": train_loss,
            "val_loss": None,
            "val_recall": None,
            "val_macro_recall": None,
            "lr": float(self.optimizer.param_groups[1]["lr"]),
        }
        self.epoch += 1
        if self.val_idx.size:
            record["val_loss"], record["val_recall"], macro = self.validate()
            record["val_macro_recall"] = macro
            if self.best["score"] is None or macro > self.best["score"]:
                self.best = {"epoch": self.epoch, "score": macro, "state": _cpu_state(self.module)}
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
            if self.opts["schedule"] == "plateau":
                self.scheduler.step(macro)
            patience = self.opts["patience"]
            self.stopped = patience is not None and self.bad_epochs >= patience
        else:
            # Without validation the last weights are the result.
            self.best = {"epoch": self.epoch, "score": None, "state": _cpu_state(self.module)}
        if self.opts["schedule"] != "plateau":
            self.scheduler.step()
        record["seconds"] = time.perf_counter() - start
        self.log.append(record)
        return record


# -- calibration (temperature scaling, calibration.py) ----------------------


@torch.no_grad()
def _fit_calibration(models, val_batches, n_val, ctx, labels, label_noise):
    """Temperature of the trained ensemble on the validation set, and its record.

    One temperature for all members, fitted on the mean of their
    probabilities: that mean is what classification reports, and members
    calibrated one by one make an under-confident mean. Without validation
    (or when the validation set does not constrain it) the temperature is
    1, and the record says why.
    """
    if n_val == 0:
        return 1.0, {"method": "none", "reason": "no validation set"}
    k = len(CLASSES)
    # Each rank holds the rows rank::world of the validation set (see
    # `_validation_batches`); a sum of zero-padded arrays gathers them all
    # on every rank.
    logits = torch.zeros(len(models), n_val, k, dtype=torch.float64)
    rows = torch.arange(n_val)[ctx.rank :: ctx.world]
    for m, model in enumerate(models):
        model.to(ctx.device).eval()
        start = 0
        for x, _ in val_batches:
            logits[m, rows[start : start + len(x)]] = model(x.to(ctx.device)).double().cpu()
            start += len(x)
    logits = ctx.all_reduce(logits).numpy()
    try:
        temperature = fit_temperature(logits, labels, label_noise=label_noise)
    except ValueError as exc:
        warnings.warn(f"probabilities left uncalibrated (temperature 1): {exc}", AstropyUserWarning)
        return 1.0, {"method": "none", "reason": str(exc)}
    method = "temperature scaling on the validation set"
    if label_noise is not None:
        method += " (likelihood of the labels through the label-noise matrix)"
    return temperature, {
        "method": method,
        **calibration_summary(logits, labels, temperature, label_noise=label_noise),
    }


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


def resolve_weights(arch, weights="auto", *, require_pretrained=False):
    """What `train_classifier` builds ``arch`` from, given its ``weights`` option.

    Parameters
    ----------
    arch : str
        Architecture.
    weights : {"auto", "imagenet", None}, pretrained name or path, optional
        The option (see `TrainingOptions`). ``"auto"``: the installed
        ``sim-<arch>`` weights, else ImageNet when cached, else None.
    require_pretrained : bool, optional
        Raise instead of warning when ``"auto"`` or ``"imagenet"`` find no file.

    Returns
    -------
    str, path or None
        ``weights`` itself, or its resolution (a registered name,
        ``"imagenet"`` or None for random initialisation).

    Raises
    ------
    FileNotFoundError
        A named entry whose file is not installed, or nothing found with
        ``require_pretrained``.

    Warns
    -----
    `~astropy.utils.exceptions.AstropyUserWarning`
        When it falls back to random initialisation.
    """
    if isinstance(weights, str) and weights in WEIGHTS:
        find_weights_file(weights)
        return weights
    if weights == "auto":
        return _auto_weights(arch, require_pretrained)
    if weights != "imagenet" or require_pretrained:
        return weights
    path = imagenet_weights_file(arch)
    if Path(path).is_file():
        return weights
    warnings.warn(
        f"ImageNet weights not found at {path}; training from random initialisation "
        "(put the file there, or pass require_pretrained=True to make this an error)",
        AstropyUserWarning,
    )
    return None


def _auto_weights(arch, require_pretrained):
    """``weights="auto"``: simulated-field weights, else ImageNet, else None (warned)."""
    missing = []
    sim = f"sim-{arch}"
    if sim in WEIGHTS:
        try:
            find_weights_file(sim)
            return sim
        except FileNotFoundError:
            missing.append(f"no {sim} weights (make them with `clusterclf pretrain --name {sim}`)")
    if _imagenet_weights(arch) is not None:
        path = imagenet_weights_file(arch)
        if path.is_file():
            return "imagenet"
        missing.append(f"no ImageNet weights at {path}")
    message = f"no pretrained weights for {arch}: {' and '.join(missing) or 'none exist'}"
    if require_pretrained:
        raise FileNotFoundError(message)
    warnings.warn(f"{message}; training from random initialisation", AstropyUserWarning)
    return None


def _check_run(training_set, checkpoint_dir, resume):
    if not isinstance(training_set, TrainingSet):
        raise TypeError(f"training_set must be a TrainingSet, not {type(training_set).__name__}")
    if len(training_set) == 0:
        raise ValueError("the training set is empty")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the checkpoint_dir of the interrupted run")
    if checkpoint_dir is not None and not Path(checkpoint_dir).is_dir():
        raise FileNotFoundError(f"checkpoint directory {checkpoint_dir} does not exist")


def _state_options(options, weights, input_size, split, normalization):
    """The options a training-state checkpoint records (and a resume must match)."""
    stem, head = options.variant()
    return {
        "arch": options.arch,
        "weights": None if weights is None else str(weights),
        "input_size": input_size,
        "epochs": options.epochs,
        "batch_size": options.batch_size,
        "lr": options.learning_rate(),
        "weight_decay": options.weight_decay,
        "seed": options.seed,
        "freeze_backbone_epochs": options.freeze_backbone_epochs,
        "backbone_lr_factor": options.backbone_lr_ratio(weights),
        "val_split": split,
        "patience": options.patience,
        "class_balance": options.class_balance,
        "augment": options.augment,
        "normalization": normalization.to_dict(),
        "stem": stem,
        "head": head,
        "schedule": options.schedule,
        "label_smoothing": options.label_smoothing,
        "label_noise": options.label_noise,
    }


def _train_member(trainer, path, resume, ctx, bar, log):
    """Run one member's epochs (resuming from ``path``), checkpointing after each."""
    epochs = trainer.opts["epochs"]
    if resume and path.is_file():
        trainer.restore(torch.load(path, map_location="cpu", weights_only=True), path)
        bar.update(min(trainer.epoch, epochs))
    while trainer.epoch < epochs and not trainer.stopped:
        record = trainer.run_epoch()
        if path is not None and ctx.main:
            with atomic_output(path, overwrite=True) as tmp:
                torch.save(trainer.state(), tmp)
        bar.update(1)
        bar.set_postfix(
            member=trainer.member + 1,
            loss=f"{record['train_loss']:.3f}",
            recall="-"
            if record["val_macro_recall"] is None
            else f"{record['val_macro_recall']:.3f}",
        )
        if log is not None and ctx.main:
            log(record)
    if trainer.stopped:  # early stopping: the bar counts the epochs not run as done
        bar.update(epochs - trainer.epoch)


def _train_ensemble(
    training_set,
    opts,
    ctx,
    indices,
    weights,
    normalization,
    *,
    n_models,
    checkpoint_dir,
    resume,
    bar,
    log,
):
    """Train the members one after another and calibrate the ensemble on the validation set.

    Returns the members' trainers, their best models, the temperature and
    the calibration record.
    """
    val_idx = indices[1]
    val_batches = _validation_batches(
        training_set, val_idx, ctx, normalization, opts["input_size"], opts["batch_size"]
    )
    trainers, models = [], []
    for member in range(n_models):
        trainer = _Trainer(
            training_set, opts, member, ctx, indices, val_batches, weights, normalization
        )
        path = None if checkpoint_dir is None else Path(checkpoint_dir) / f"member{member}.pt"
        _train_member(trainer, path, resume, ctx, bar, log)
        trainers.append(trainer)
        models.append(_best_model(trainer, n_bands=len(training_set.bands)))
        if ctx.active:
            dist.barrier()
    temperature, calibration = _fit_calibration(
        models, val_batches, val_idx.size, ctx, training_set.labels[val_idx], opts["label_noise"]
    )
    return trainers, models, temperature, calibration


def _best_model(trainer, *, n_bands):
    """A plain module (no DDP / SyncBatchNorm wrappers) with the member's best weights."""
    opts = trainer.opts
    model = build_model(
        opts["arch"],
        n_bands=n_bands,
        n_classes=len(CLASSES),
        weights=None,
        stem=opts["stem"],
        head=opts["head"],
    )
    model.load_state_dict(trainer.best["state"])
    return model


def _training_record(
    training_set, options, opts, split, train_idx, val_idx, ctx, trainers, calibration
):
    """The ``training`` dict of the model card: data, options, calibration, per-member logs."""
    macro = [t.best["score"] for t in trainers if t.best["score"] is not None]
    return {
        "label_column": training_set.summary.get("label_column"),
        "galaxies": training_set.galaxies,
        "counts": copy.deepcopy(training_set.summary),
        "validation": dict(split, n_train=int(train_idx.size), n_val=int(val_idx.size)),
        "seeds": [options.seed + k for k in range(options.n_models)],
        "options": options.to_dict()
        | {
            key: opts[key]
            for key in (
                "weights",
                "input_size",
                "normalization",
                "stem",
                "head",
                "backbone_lr_factor",
            )
        },
        "world_size": ctx.world,
        "device": str(ctx.device),
        # On the CPU the exact bits of the weights depend on it.
        "torch_threads": torch.get_num_threads(),
        "calibration": calibration,
        "members": [
            {
                "seed": t.seed,
                "best_epoch": t.best["epoch"],
                "epochs_run": t.epoch,
                "stopped_early": t.stopped,
                "best_val_macro_recall": t.best["score"],
                "log": t.log,
            }
            for t in trainers
        ],
        "metrics": {
            "val_macro_recall_mean": float(np.mean(macro)) if macro else None,
            "val_macro_recall_std": float(np.std(macro)) if macro else None,
        },
    }


def train_classifier(
    training_set,
    options=None,
    *,
    device="auto",
    progress_bar=False,
    checkpoint_dir=None,
    resume=False,
    log=None,
    **option_values,
):
    """Train a network (or an ensemble) on a `TrainingSet`.

    Parameters
    ----------
    training_set : `TrainingSet`
        Raw labelled cutouts.
    options : `TrainingOptions`, optional
        The training options (architecture, epochs, seed, ...); defaults
        to ``TrainingOptions()``.
    device : str or `torch.device`, optional
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``.
        Under torchrun each rank uses the GPU of its ``LOCAL_RANK``.
    progress_bar : bool, optional
        Show one progress bar over all epochs of all members (rank 0 only;
        plain lines when the output is not a terminal).
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
    **option_values
        Fields of `TrainingOptions` (``arch="small_cnn"``, ``epochs=10``,
        ...), replacing those of ``options``.

    Returns
    -------
    `~photutils_clusterclf.classifier.ClusterClassifier`
        With ``n_models`` members (best weights of each) and a model card
        whose ``training`` dict holds the provenance, the options and the
        epoch logs. The card's ``temperature`` is fitted on the validation
        set after training (one for the ensemble,
        `~photutils_clusterclf.calibration.fit_temperature`), so that the
        probabilities are calibrated; ``training["calibration"]`` records it
        with the validation NLL, ECE and Brier score before and after.
    """
    options = dataclasses.replace(options or TrainingOptions(), **option_values)
    _check_run(training_set, checkpoint_dir, resume)
    input_size = int(options.input_size or training_set.size)
    check_input_size(options.arch, input_size)
    weights = resolve_weights(
        options.arch, options.weights, require_pretrained=options.require_pretrained
    )
    train_idx, val_idx, split = _validation_split(
        training_set, options.val_galaxy, options.val_fraction, options.seed
    )
    # The very normalisation object the model card records, so that
    # classification preprocesses exactly as training did.
    normalization = options.make_normalization()
    opts = _state_options(options, weights, input_size, split, normalization)
    ctx = DDPContext(device)
    try:
        with (
            _reproducible(ctx.device),
            _progress_bar(
                total=options.n_models * options.epochs,
                desc="train",
                unit="epoch",
                enabled=progress_bar and ctx.main,
            ) as bar,
        ):
            trainers, models, temperature, calibration = _train_ensemble(
                training_set,
                opts,
                ctx,
                (train_idx, val_idx),
                weights,
                normalization,
                n_models=options.n_models,
                checkpoint_dir=checkpoint_dir,
                resume=resume,
                bar=bar,
                log=log,
            )
    finally:
        ctx.close()
    training = _training_record(
        training_set, options, opts, split, train_idx, val_idx, ctx, trainers, calibration
    )
    card = _model_card(
        training_set, options, opts, normalization, training=training, temperature=temperature
    )
    return ClusterClassifier(models, card, device=ctx.device)


def _model_card(training_set, options, opts, normalization, *, training, temperature):
    """The model card of the trained ensemble: what it needs to classify, and its record."""
    return ModelCard(
        arch=options.arch,
        bands=tuple(training_set.bands),
        cutout_size=training_set.size,
        input_size=opts["input_size"],
        normalization=normalization.to_dict(),
        training=training,
        model_options={"stem": opts["stem"], "head": opts["head"]},
        temperature=temperature,
    )
