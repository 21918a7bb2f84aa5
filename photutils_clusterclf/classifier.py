"""`ClusterClassifier`: cutouts in, class probabilities out; catalogues in, catalogues out.

The classifier wraps one network or an ensemble of networks with the model
card that says how its inputs were prepared (bands, cutout size,
normalisation, input size), so that classification always preprocesses
exactly as training did.
"""

import concurrent.futures
import copy
import dataclasses
import datetime
import warnings

import numpy as np
import torch
from astropy.table import QTable, Table
from astropy.utils.exceptions import AstropyUserWarning
from tqdm.auto import tqdm

from . import __version__
from .checkpoint import Checkpoint, ModelCard, check_bands, load_checkpoint, save_checkpoint
from .classes import CLASSES, UNCLASSIFIED
from .cutouts import CutoutBatch, extract_cutouts
from .models import build_model
from .positions import resolve_positions
from .preprocessing import DIHEDRAL_TRANSFORMS, Normalization, dihedral, resize

__all__ = [
    "ClusterClassifier",
    "aggregate_members",
    "default_batch_size",
    "prepare_batch",
    "resolve_device",
]

AGGREGATES = ("mean", "mode")
COLUMN_STYLES = ("default", "phangs")

#: Short method and software reference written into every classified catalogue.
CITATION = ("Wei et al. 2020, MNRAS 493, 3178 (doi:10.1093/mnras/staa325); "
            "photutils-clusterclf; BibTeX: clusterclf --cite")


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
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' "
                         "or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; "
                         "use device='cpu' or 'auto'")
    return dev


def default_batch_size(device):
    """Batch size that keeps a device busy without exhausting its memory."""
    return 512 if resolve_device(device).type == "cuda" else 128


def _inference_module(model):
    """An inference copy of an eval-mode network: batch norm folded, channels-last.

    Folding batch normalisation into the preceding convolutions removes a
    memory-bound pass per layer, and channels-last (NHWC) is the layout
    oneDNN and cuDNN convolutions run fastest in; together they change the
    probabilities by about 1e-5 (benchmarks/bench_inference_options.py).
    """
    from torch.fx.experimental.optimization import fuse
    try:
        runner = fuse(model)  # a copy: the given model keeps its layers for saving
    except Exception:  # noqa: BLE001 - fx cannot trace every custom network;
        # folding is only an optimisation, the network itself is still fine.
        runner = copy.deepcopy(model)
    return runner.to(memory_format=torch.channels_last)


def prepare_batch(raw, normalization, input_size):
    """Raw cutouts -> network input: normalise, fill, resize.

    This is the one preprocessing path shared by training and
    classification.

    Parameters
    ----------
    raw : `numpy.ndarray`
        ``(N, B, S, S)`` float32 cutouts, NaN where there is no data.
    normalization : `~photutils_clusterclf.preprocessing.Normalization`
        The model card's normalisation.
    input_size : int
        Side of the network input; cutouts are resized when it differs.

    Returns
    -------
    batch : `torch.Tensor`
        ``(N, B, input_size, input_size)`` float32, finite, on the CPU.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(normalization(raw), dtype=np.float32))
    return resize(tensor, input_size)


def aggregate_members(member_probs, *, aggregate="mean"):
    """Combine the probabilities of ensemble members into classes and qualities.

    Parameters
    ----------
    member_probs : `numpy.ndarray`
        ``(M, N, 4)`` probabilities of ``M`` members (each already averaged
        over test-time transforms).
    aggregate : {"mean", "mode"}
        ``"mean"``: class of the highest mean probability, quality = that mean
        probability. ``"mode"``: the class most members vote for (ties go to
        the higher mean probability), quality = fraction of members voting
        for it, as in the PHANGS-HST catalogues.

    Returns
    -------
    probs : `numpy.ndarray`
        ``(N, 4)`` mean probabilities.
    classes : `numpy.ndarray`
        ``(N,)`` int16 classes 1-4.
    quality : `numpy.ndarray`
        ``(N,)`` float32.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate={aggregate!r} is not one of {AGGREGATES}")
    member_probs = np.asarray(member_probs, dtype=np.float32)
    probs = member_probs.mean(axis=0)
    n = probs.shape[0]
    if aggregate == "mean":
        index = probs.argmax(axis=1)
        quality = probs[np.arange(n), index]
    else:
        votes = member_probs.argmax(axis=2)  # (M, N)
        counts = np.stack([(votes == k).sum(axis=0) for k in range(len(CLASSES))], axis=1)
        # The tiny mean-probability term only breaks ties between equal counts.
        index = (counts + 0.5 * probs).argmax(axis=1)
        quality = counts[np.arange(n), index] / member_probs.shape[0]
    classes = np.asarray(CLASSES, dtype=np.int16)[index]
    return probs, classes, quality.astype(np.float32)


class ClusterClassifier:
    """A trained network (or ensemble) with the model card that describes its inputs.

    Parameters
    ----------
    models : `torch.nn.Module` or list of `torch.nn.Module`
        One network, or the members of an ensemble, all of the card's
        architecture.
    card : `~photutils_clusterclf.checkpoint.ModelCard`
        Bands, cutout size, input size and normalisation the networks were
        trained with.
    device : str or `torch.device`, optional
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``.
    sha256 : str, optional
        Checksum of the checkpoint file the networks came from, recorded in
        the provenance of classified tables.

    Examples
    --------
    >>> from photutils_clusterclf import ClusterClassifier, build_model
    >>> model = build_model("small_cnn", n_bands=5, n_classes=4)
    >>> clf = ClusterClassifier.from_model(
    ...     model, arch="small_cnn",
    ...     bands=("F275W", "F336W", "F438W", "F555W", "F814W"), cutout_size=16)
    >>> clf.n_members
    1
    """

    def __init__(self, models, card, *, device="auto", sha256=None):
        if isinstance(models, torch.nn.Module):
            models = [models]
        models = list(models)
        if not models:
            raise ValueError("a ClusterClassifier needs at least one model")
        if not isinstance(card, ModelCard):
            raise TypeError(f"card must be a ModelCard, not {type(card).__name__}")
        self.card = card
        self.device = resolve_device(device)
        self.sha256 = sha256
        self.normalization = Normalization.from_dict(card.normalization)
        self.models = [m.to(self.device).eval() for m in models]
        # What actually runs: optimised copies; `models` stay as given for saving.
        self._runners = [_inference_module(m) for m in self.models]
        #: ``None`` (float32) or ``torch.bfloat16`` / ``torch.float16``: autocast
        #: of the forward pass, used on CUDA only (probabilities then differ by
        #: up to about 1e-2 from float32; see benchmarks/RESULTS.md).
        self.autocast_dtype = None

    @classmethod
    def load(cls, path, *, device="auto", sha256=None):
        """Load a checkpoint written by `save` or by training.

        Parameters
        ----------
        path : str or `~pathlib.Path`
            The checkpoint file.
        device : str or `torch.device`, optional
            Where to run the networks.
        sha256 : str, optional
            Expected SHA-256 of the file; a mismatch is an error.
        """
        ckpt = load_checkpoint(path, sha256=sha256)
        return cls.from_checkpoint(ckpt, device=device)

    @classmethod
    def from_checkpoint(cls, checkpoint, *, device="auto"):
        """Build the classifier from a loaded `~photutils_clusterclf.checkpoint.Checkpoint`."""
        card = checkpoint.card
        models = []
        for state in checkpoint.state_dicts:
            model = build_model(card.arch, n_bands=len(card.bands),
                                n_classes=len(card.classes), weights=None)
            model.load_state_dict(state)
            models.append(model)
        return cls(models, card, device=device, sha256=checkpoint.sha256)

    @classmethod
    def from_model(cls, models, *, arch, bands, cutout_size, input_size=None,
                   normalization=None, device="auto", training=None):
        """Wrap freshly built or trained networks.

        Parameters
        ----------
        models : `torch.nn.Module` or list of `torch.nn.Module`
            The network(s).
        arch : str
            Architecture name understood by `~photutils_clusterclf.models.build_model`.
        bands : sequence of str
            Band order of the network's input channels.
        cutout_size : int
            Side of the cutouts, in pixels of the reference band.
        input_size : int, optional
            Side of the network input; defaults to ``cutout_size``.
        normalization : `~photutils_clusterclf.preprocessing.Normalization`, optional
            Defaults to ``Normalization()``.
        device : str or `torch.device`, optional
            Where to run the networks.
        training : dict, optional
            Training provenance for the model card.
        """
        normalization = normalization or Normalization()
        card = ModelCard(arch=arch, bands=tuple(bands), cutout_size=int(cutout_size),
                         input_size=int(input_size or cutout_size),
                         normalization=normalization.to_dict(), training=training or {})
        return cls(models, card, device=device)

    @property
    def bands(self):
        """Band order of the network input."""
        return tuple(self.card.bands)

    @property
    def temperature(self):
        """Temperature dividing the logits before the softmax (the model card's).

        Fitted on the validation set by training (see
        `photutils_clusterclf.calibration`); 1 gives the probabilities as
        trained. Setting it changes the probabilities, never the argmax.
        """
        return self.card.temperature

    @temperature.setter
    def temperature(self, value):
        self.card = dataclasses.replace(self.card, temperature=value)

    @property
    def n_members(self):
        """Number of networks in the ensemble."""
        return len(self.models)

    def __repr__(self):
        return (f"<ClusterClassifier {self.card.arch} x{self.n_members} bands="
                f"{','.join(self.bands)} cutout={self.card.cutout_size}px "
                f"input={self.card.input_size}px device={self.device}>")

    def checkpoint(self):
        """The classifier as a `~photutils_clusterclf.checkpoint.Checkpoint` (CPU tensors)."""
        states = [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in self.models]
        return Checkpoint(card=self.card, state_dicts=states, sha256=self.sha256)

    def save(self, path, *, overwrite=False):
        """Write the classifier to one checkpoint file; returns its SHA-256."""
        ckpt = self.checkpoint()
        self.sha256 = save_checkpoint(path, ckpt.card, ckpt.state_dicts, overwrite=overwrite)
        return self.sha256

    # -- inference ---------------------------------------------------------
    def _member_probs(self, inputs, *, tta):
        """``(M, n, 4)`` softmax probabilities (at the card's temperature) for a prepared CPU batch."""
        transforms = range(DIHEDRAL_TRANSFORMS) if tta else (0,)
        cuda = self.device.type == "cuda"
        # Asynchronous only from pinned memory (what `_stream` hands over on CUDA).
        x = inputs.to(self.device, non_blocking=cuda and inputs.is_pinned())
        # One forward pass over all transforms: bigger batches run faster.
        x = torch.cat([dihedral(x, k) for k in transforms]) if tta else x
        x = x.contiguous(memory_format=torch.channels_last)
        amp = torch.autocast("cuda", dtype=self.autocast_dtype or torch.float16,
                             enabled=cuda and self.autocast_dtype is not None)
        out = []
        with torch.inference_mode(), amp:
            for model in self._runners:
                # Temperature scaling (calibration.py): T = 1 leaves them as trained.
                p = torch.softmax(model(x).float() / self.card.temperature, dim=1)
                out.append(p.reshape(len(transforms), -1, p.shape[1]).mean(dim=0))
        return torch.stack(out).cpu().numpy()

    def _raw_array(self, cutouts):
        if isinstance(cutouts, CutoutBatch):
            check_bands(self.card, cutouts.bands)
            if tuple(cutouts.bands) != self.bands:
                order = [cutouts.bands.index(b) for b in self.bands]
                return cutouts.data[:, order]
            return cutouts.data
        data = np.asarray(cutouts, dtype=np.float32)
        if data.ndim != 4 or data.shape[1] != len(self.bands):
            raise ValueError(f"cutouts must have shape (N, {len(self.bands)}, S, S) "
                             f"for bands {', '.join(self.bands)}; got {data.shape}")
        return data

    def predict_members(self, cutouts, *, tta=False, batch_size=None, progress_bar=False):
        """Per-member probabilities for raw cutouts.

        Parameters
        ----------
        cutouts : `~photutils_clusterclf.cutouts.CutoutBatch` or `numpy.ndarray`
            ``(N, B, S, S)`` raw cutouts in the model's band order (NaN where
            there is no data).
        tta : bool, optional
            Average over the 8 dihedral transforms.
        batch_size : int, optional
            Objects per forward pass; chosen for the device by default.
        progress_bar : bool, optional
            Show a tqdm progress bar.

        Returns
        -------
        member_probs : `numpy.ndarray`
            ``(M, N, 4)`` float32.
        """
        raw = self._raw_array(cutouts)
        batch_size = int(batch_size or default_batch_size(self.device))
        out = np.empty((self.n_members, len(raw), len(CLASSES)), dtype=np.float32)
        with tqdm(total=len(raw), disable=not progress_bar, unit="obj",
                  desc="classify") as bar:
            for start in range(0, len(raw), batch_size):
                stop = min(start + batch_size, len(raw))
                inputs = prepare_batch(raw[start:stop], self.normalization,
                                       self.card.input_size)
                out[:, start:stop] = self._member_probs(inputs, tta=tta)
                bar.update(stop - start)
        return out

    def predict_proba(self, cutouts, *, tta=False, batch_size=None, progress_bar=False):
        """Class probabilities, averaged over ensemble members (and transforms).

        Parameters
        ----------
        cutouts : `~photutils_clusterclf.cutouts.CutoutBatch` or `numpy.ndarray`
            ``(N, B, S, S)`` raw cutouts in the model's band order.
        tta : bool, optional
            Average over the 8 dihedral transforms.
        batch_size : int, optional
            Objects per forward pass.
        progress_bar : bool, optional
            Show a progress bar.

        Returns
        -------
        probs : `numpy.ndarray`
            ``(N, 4)`` float32; column ``k`` is the probability of class ``k + 1``.
        """
        members = self.predict_members(cutouts, tta=tta, batch_size=batch_size,
                                       progress_bar=progress_bar)
        return members.mean(axis=0)

    def _prepared_batches(self, images, x, y, flags, batch_size):
        """Yield ``(rows, inputs, n_scanned)`` for full batches of classifiable rows.

        Rows are cut out in chunks; the classifiable ones are buffered until
        a whole batch is ready, so that catalogues with many unclassifiable
        rows (off the footprint, NaN positions) still run the network on
        full batches. ``flags`` is filled in as rows are scanned. Memory is
        bounded by the chunk size, whatever the catalogue length.
        """
        chunk = max(batch_size, 2048)
        rows = np.empty(0, dtype=np.intp)
        data = None
        for start in range(0, len(x), chunk):
            sl = slice(start, min(start + chunk, len(x)))
            batch = extract_cutouts(images, x[sl], y[sl], size=self.card.cutout_size,
                                    bands=self.bands)
            flags[sl] = batch.flags
            ok = np.flatnonzero(batch.classifiable)
            # Rows left over from the previous chunk, then this chunk's.
            rows = np.concatenate([rows, ok + start])
            data = batch.data[ok] if data is None else np.concatenate([data, batch.data[ok]])
            n_full = len(rows) - len(rows) % batch_size
            for i in range(0, n_full, batch_size):
                yield rows[i:i + batch_size], self._inputs(data[i:i + batch_size]), sl.stop
            rows, data = rows[n_full:], data[n_full:]
        if len(rows):
            yield rows, self._inputs(data), len(x)

    def _inputs(self, raw):
        """Network input for raw cutouts, pinned on CUDA so the copy to the GPU overlaps."""
        inputs = prepare_batch(raw, self.normalization, self.card.input_size)
        return inputs.pin_memory() if self.device.type == "cuda" else inputs

    def _stream(self, images, x, y, flags, *, tta, batch_size, progress_bar):
        """Yield ``(rows, member_probs)`` batch by batch.

        The next batch is cut out and normalised in a background thread
        while the networks run on the current one.
        """
        batches = self._prepared_batches(images, x, y, flags, batch_size)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool, \
                tqdm(total=len(x), disable=not progress_bar, unit="obj",
                     desc="classify") as bar:
            pending = pool.submit(next, batches, None)
            while (item := pending.result()) is not None:
                pending = pool.submit(next, batches, None)
                rows, inputs, n_scanned = item
                yield rows, self._member_probs(inputs, tta=tta)
                bar.update(n_scanned - bar.n)
            bar.update(len(x) - bar.n)

    def classify(self, source, images, *, origin=None, use="auto", tta=False,
                 aggregate="mean", column_style="default", prefix="", tag=None,
                 batch_size=None, progress_bar=True, copy=True):
        """Classify candidates and return the catalogue with class columns added.

        Parameters
        ----------
        source : `~astropy.table.Table`, `~astropy.coordinates.SkyCoord`, regions, str or array
            The candidates: a table with pixel or sky position columns
            (PHANGS, LEGUS or photutils names), a `~astropy.coordinates.SkyCoord`,
            point/circle regions or a `regions.Regions`, a DS9 region file, or
            an ``(N, 2)`` array of pixel positions. See
            `~photutils_clusterclf.positions.resolve_positions`.
        images : `~photutils_clusterclf.images.MultiBandImage`
            The images; they must contain the model's bands.
        origin : {0, 1}, optional
            Pixel convention of pixel positions (0: numpy/photutils/PHANGS;
            1: FITS/DS9/LEGUS). Required when it cannot be inferred.
        use : {"auto", "pixel", "sky"}, optional
            Which positions to use when a table has both.
        tta : bool, optional
            Test-time augmentation over the 8 dihedral transforms.
        aggregate : {"mean", "mode"}, optional
            How ensemble members are combined (see `aggregate_members`).
        column_style : {"default", "phangs"}, optional
            ``"default"``: ``class_ml``, ``class_ml_qual``, ``prob_class1``..4,
            ``class_ml_flags``. ``"phangs"``: ``PHANGS_CLUSTER_CLASS_ML_<TAG>``,
            ``..._QUAL``, ``..._PROB1``..4 and ``..._FLAGS``.
        prefix : str, optional
            Prepended to the default column names (e.g. ``"resnet_"``).
        tag : str, optional
            The ``<TAG>`` of PHANGS-style names; from the architecture by default.
        batch_size : int, optional
            Objects per forward pass; chosen for the device by default.
        progress_bar : bool, optional
            Show a progress bar.
        copy : bool, optional
            When False and ``source`` is a table, add the columns to it in
            place instead of to a copy.

        Returns
        -------
        table : `~astropy.table.QTable`
            One row per input candidate, in input order, with the new columns.
            Candidates that could not be classified have class 0 and a flag.
        """
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate={aggregate!r} is not one of {AGGREGATES}")
        names = self.column_names(column_style=column_style, prefix=prefix, tag=tag)
        check_bands(self.card, images.bands)
        # Positions refer to the images' reference band, which need not be
        # one of the model's bands: resolve them on the full image set.
        positions = resolve_positions(source, images, origin=origin, use=use)
        table = self._output_table(source, positions, copy=copy)
        n = len(positions.x)
        batch_size = int(batch_size or default_batch_size(self.device))

        member_probs = np.zeros((self.n_members, n, len(CLASSES)), dtype=np.float32)
        flags = np.zeros(n, dtype=np.int16)
        classified = np.zeros(n, dtype=bool)
        for rows, probs in self._stream(images, positions.x, positions.y, flags, tta=tta,
                                        batch_size=batch_size,
                                        progress_bar=progress_bar and n > batch_size):
            member_probs[:, rows] = probs
            classified[rows] = True

        probs, classes, quality = aggregate_members(member_probs, aggregate=aggregate)
        classes[~classified] = UNCLASSIFIED
        quality[~classified] = np.nan
        probs[~classified] = np.nan

        columns = {names["class"]: classes, names["qual"]: quality}
        columns.update({names[f"prob{k}"]: probs[:, i] for i, k in enumerate(CLASSES)})
        columns[names["flags"]] = flags
        for name, values in columns.items():
            if name in table.colnames:
                warnings.warn(f"replacing existing column {name}; pass prefix= to keep it",
                              AstropyUserWarning)
            table[name] = values
        table.meta["clusterclf"] = self._provenance(positions, tta=tta, aggregate=aggregate,
                                                    column_style=column_style,
                                                    n_classified=int(classified.sum()), n=n)
        return table

    __call__ = classify

    def column_names(self, *, column_style="default", prefix="", tag=None):
        """Names of the output columns for a column style.

        Returns
        -------
        names : dict
            Keys ``"class"``, ``"qual"``, ``"prob1"``..``"prob4"``, ``"flags"``.
        """
        if column_style == "default":
            base = f"{prefix}class_ml"
            probs = {f"prob{k}": f"{prefix}prob_class{k}" for k in CLASSES}
            return {"class": base, "qual": f"{base}_qual", **probs, "flags": f"{base}_flags"}
        if column_style == "phangs":
            tag = (tag or self.phangs_tag).upper()
            base = f"PHANGS_CLUSTER_CLASS_ML_{tag}"
            probs = {f"prob{k}": f"{base}_PROB{k}" for k in CLASSES}
            return {"class": base, "qual": f"{base}_QUAL", **probs, "flags": f"{base}_FLAGS"}
        raise ValueError(f"column_style={column_style!r} is not one of {COLUMN_STYLES}")

    def region_options(self, source, *, origin=None, use="auto", column_style="default",
                       prefix="", tag=None, **classify_options):
        """Options of `~photutils_clusterclf.regions_io.class_regions` for a classified table.

        They draw the class column that `classify` wrote for ``source``, at
        the positions it used: a source table's own pixel columns follow
        ``origin`` and ``use``, whereas the tables built from regions,
        `~astropy.coordinates.SkyCoord` or arrays hold 0-based positions.

        Parameters
        ----------
        source : object
            The ``source`` given to `classify`.
        origin, use, column_style, prefix, tag : optional
            As given to `classify`.
        **classify_options
            Other options of `classify`; they do not change the regions.

        Returns
        -------
        options : dict
            ``column``, ``origin`` and ``use``.
        """
        from_table = isinstance(source, Table)
        names = self.column_names(column_style=column_style, prefix=prefix, tag=tag)
        return {"column": names["class"],
                "origin": origin if from_table else None,
                "use": use if from_table else "auto"}

    @property
    def phangs_tag(self):
        """``VGG``, ``RESNET``, ... : the architecture family, as in PHANGS column names."""
        arch = self.card.arch.lower()
        for family in ("vgg", "resnet"):
            if arch.startswith(family):
                return family.upper()
        return arch.replace("_", "").upper()

    @staticmethod
    def _output_table(source, positions, *, copy):
        if isinstance(source, Table):
            if not copy:
                return source
            return QTable(source, copy=True)
        # photutils' names for 0-based positions, so that the convention
        # survives a trip through FITS (where meta["origin"] would not).
        table = QTable()
        table["x_center"] = positions.x
        table["y_center"] = positions.y
        return table

    def _provenance(self, positions, **options):
        import astropy
        import torchvision
        card = self.card
        return {
            "software": "photutils-clusterclf",
            "version": __version__,
            "versions": {"torch": str(torch.__version__), "torchvision": torchvision.__version__,
                         "astropy": astropy.__version__, "numpy": np.__version__},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "model_arch": card.arch,
            "model_members": self.n_members,
            "model_sha256": self.sha256 or "unsaved",
            "bands": list(card.bands),
            "cutout_size": card.cutout_size,
            "input_size": card.input_size,
            "normalization": dict(card.normalization),
            "temperature": card.temperature,
            "positions": positions.description,
            "device": str(self.device),
            **options,
            "citation": CITATION,
        }
