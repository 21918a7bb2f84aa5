"""`ClusterClassifier`: cutouts in, class probabilities out; catalogues in, catalogues out.

The classifier wraps one network or an ensemble of networks with the model
card that says how its inputs were prepared (bands, cutout size,
normalisation, input size), so that classification always preprocesses
exactly as training did.
"""

import dataclasses
import warnings

import numpy as np
import torch
from astropy.table import QTable, Table
from astropy.utils.exceptions import AstropyUserWarning

from ._inference import InferenceEngine, default_batch_size
from .checkpoint import (
    Checkpoint,
    ModelCard,
    check_bands,
    load_checkpoint,
    save_checkpoint,
)
from .classes import CLASSES, UNCLASSIFIED
from .cutouts import CutoutBatch
from .models import build_model, resolve_device
from .positions import resolve_positions
from .preprocessing import Normalization
from .utils.provenance import provenance
from .utils.validation import check_choice, check_integer

__all__ = ["ClusterClassifier", "aggregate_members"]

AGGREGATES = ("mean", "mode")
COLUMN_STYLES = ("default", "phangs")

#: Short method and software reference written into every classified catalogue.
CITATION = (
    "Wei et al. 2020, MNRAS 493, 3178 (doi:10.1093/mnras/staa325); "
    "photutils-clusterclf; BibTeX: clusterclf --cite"
)


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
    check_choice("aggregate", aggregate, AGGREGATES)
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


#: Below this fraction of classifiable candidates, `ClusterClassifier.classify` warns.
MIN_CLASSIFIED_FRACTION = 0.5


def _warn_coverage(n, n_classified, positions):
    """Warn loudly when no candidate, or only a small fraction, lies on the images."""
    if n == 0 or n_classified >= MIN_CLASSIFIED_FRACTION * n:
        return
    what = "none" if n_classified == 0 else f"only {n_classified}"
    warnings.warn(
        f"{what} of the {n} candidates could be classified ({positions.description}): "
        f"{n - n_classified} lie off the images or where a band has no data (see the "
        "class_ml_flags column). Check that the catalogue and the images are of the same "
        "field, the pixel origin (origin=0 or 1) and whether the sky columns (use='sky') "
        "are the right positions",
        AstropyUserWarning,
    )


def _set_columns(table, columns):
    """Add ``columns`` (name -> values) to ``table``, warning for each one replaced."""
    for name, values in columns.items():
        if name in table.colnames:
            warnings.warn(
                f"replacing existing column {name}; pass prefix= to keep it", AstropyUserWarning
            )
        table[name] = values


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
        self._engine = InferenceEngine(self.models, card, self.normalization, self.device)

    @property
    def autocast_dtype(self):
        """``None`` (float32) or ``torch.bfloat16`` / ``torch.float16``: autocast on CUDA.

        Used on CUDA only; probabilities then differ by up to about 1e-2
        from float32 (see the performance page).
        """
        return self._engine.autocast_dtype

    @autocast_dtype.setter
    def autocast_dtype(self, dtype):
        self._engine.autocast_dtype = dtype

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
            model = build_model(
                card.arch,
                n_bands=len(card.bands),
                n_classes=len(card.classes),
                weights=None,
                **card.model_options,
            )
            model.load_state_dict(state)
            models.append(model)
        return cls(models, card, device=device, sha256=checkpoint.sha256)

    @classmethod
    def from_model(
        cls,
        models,
        *,
        arch,
        bands,
        cutout_size,
        input_size=None,
        normalization=None,
        device="auto",
        training=None,
        model_options=None,
    ):
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
        model_options : dict, optional
            The ``stem`` / ``head`` the networks were built with
            (`~photutils_clusterclf.models.build_model`); they do not change
            the weights' shapes, so a checkpoint only rebuilds them right if
            they are recorded.
        """
        normalization = normalization or Normalization()
        card = ModelCard(
            arch=arch,
            bands=tuple(bands),
            cutout_size=int(cutout_size),
            input_size=int(input_size or cutout_size),
            normalization=normalization.to_dict(),
            training=training or {},
            model_options=dict(model_options or {}),
        )
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
        # The engine applies the temperature: it follows the new card.
        self._engine.card = self.card

    @property
    def n_members(self):
        """Number of networks in the ensemble."""
        return len(self.models)

    def __repr__(self):
        return (
            f"<ClusterClassifier {self.card.arch} x{self.n_members} bands="
            f"{','.join(self.bands)} cutout={self.card.cutout_size}px "
            f"input={self.card.input_size}px device={self.device}>"
        )

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
    def _raw_array(self, cutouts):
        if isinstance(cutouts, CutoutBatch):
            check_bands(self.card, cutouts.bands)
            if tuple(cutouts.bands) != self.bands:
                order = [cutouts.bands.index(b) for b in self.bands]
                return cutouts.data[:, order]
            return cutouts.data
        data = np.asarray(cutouts, dtype=np.float32)
        if data.ndim != 4 or data.shape[1] != len(self.bands):
            raise ValueError(
                f"cutouts must have shape (N, {len(self.bands)}, S, S) "
                f"for bands {', '.join(self.bands)}; got {data.shape}"
            )
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
            Show a progress bar.

        Returns
        -------
        member_probs : `numpy.ndarray`
            ``(M, N, 4)`` float32.
        """
        raw = self._raw_array(cutouts)
        batch_size = int(batch_size or default_batch_size(self.device))
        return self._engine.predict_members(
            raw, tta=tta, batch_size=batch_size, progress_bar=progress_bar
        )

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
        members = self.predict_members(
            cutouts, tta=tta, batch_size=batch_size, progress_bar=progress_bar
        )
        return members.mean(axis=0)

    def classify(
        self,
        source,
        images,
        *,
        origin=None,
        use="auto",
        columns=None,
        tta=False,
        aggregate="mean",
        column_style="default",
        prefix="",
        tag=None,
        batch_size=None,
        progress_bar=False,
        copy=True,
    ):
        """Classify candidates and return the catalogue with class columns added.

        Parameters
        ----------
        source : `~astropy.table.Table`, `~astropy.coordinates.SkyCoord`, regions or array
            The candidates: a table with pixel or sky position columns
            (PHANGS, LEGUS or photutils names), a `~astropy.coordinates.SkyCoord`,
            point/circle regions or a `regions.Regions` (a DS9 file read by
            `~photutils_clusterclf.catalogs.read_candidates`), or an
            ``(N, 2)`` array of pixel positions. See
            `~photutils_clusterclf.positions.resolve_positions`.
        images : `~photutils_clusterclf.images.MultiBandImage`
            The images; they must contain the model's bands.
        origin : {0, 1}, optional
            Pixel convention of pixel positions (0: numpy/photutils/PHANGS;
            1: FITS/DS9/LEGUS). Required when it cannot be inferred.
        use : {"auto", "pixel", "sky"}, optional
            Which positions to use when a table has both.
        columns : str or (str, str), optional
            Position columns of a table to use instead of the detection
            (see `~photutils_clusterclf.positions.resolve_positions`).
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
        check_choice("aggregate", aggregate, AGGREGATES)
        batch_size = check_integer("batch_size", batch_size, allow_none=True)
        names = self.column_names(column_style=column_style, prefix=prefix, tag=tag)
        check_bands(self.card, images.bands)
        # Positions refer to the images' reference band, which need not be
        # one of the model's bands: resolve them on the full image set.
        positions = resolve_positions(source, images, origin=origin, use=use, columns=columns)
        table = self._output_table(source, positions, copy=copy)
        n = len(positions.x)
        member_probs, flags, classified = self._predict_positions(
            images, positions, tta=tta, batch_size=batch_size, progress_bar=progress_bar
        )

        probs, classes, quality = aggregate_members(member_probs, aggregate=aggregate)
        classes[~classified] = UNCLASSIFIED
        quality[~classified] = np.nan
        probs[~classified] = np.nan

        columns = {names["class"]: classes, names["qual"]: quality}
        columns.update({names[f"prob{k}"]: probs[:, i] for i, k in enumerate(CLASSES)})
        columns[names["flags"]] = flags
        _set_columns(table, columns)
        _warn_coverage(n, int(classified.sum()), positions)
        table.meta["clusterclf"] = self._provenance(
            positions,
            tta=tta,
            aggregate=aggregate,
            column_style=column_style,
            n_classified=int(classified.sum()),
            n=n,
        )
        return table

    __call__ = classify

    def _predict_positions(self, images, positions, *, tta, batch_size, progress_bar):
        """Members' probabilities, flags and classified mask of the cutouts at ``positions``."""
        n = len(positions.x)
        batch_size = int(batch_size or default_batch_size(self.device))
        member_probs = np.zeros((self.n_members, n, len(CLASSES)), dtype=np.float32)
        flags = np.zeros(n, dtype=np.int16)
        classified = np.zeros(n, dtype=bool)
        for rows, probs in self._engine.stream(
            images,
            positions.x,
            positions.y,
            flags,
            tta=tta,
            batch_size=batch_size,
            progress_bar=progress_bar and n > batch_size,
        ):
            member_probs[:, rows] = probs
            classified[rows] = True
        return member_probs, flags, classified

    def column_names(self, *, column_style="default", prefix="", tag=None):
        """Names of the output columns for a column style.

        Returns
        -------
        names : dict
            Keys ``"class"``, ``"qual"``, ``"prob1"``..``"prob4"``, ``"flags"``.
        """
        check_choice("column_style", column_style, COLUMN_STYLES)
        if column_style == "default":
            base = f"{prefix}class_ml"
            probs = {f"prob{k}": f"{prefix}prob_class{k}" for k in CLASSES}
            return {"class": base, "qual": f"{base}_qual", **probs, "flags": f"{base}_flags"}
        tag = (tag or self.phangs_tag).upper()
        base = f"PHANGS_CLUSTER_CLASS_ML_{tag}"
        probs = {f"prob{k}": f"{base}_PROB{k}" for k in CLASSES}
        return {"class": base, "qual": f"{base}_QUAL", **probs, "flags": f"{base}_FLAGS"}

    def region_options(
        self,
        source,
        *,
        origin=None,
        use="auto",
        columns=None,
        column_style="default",
        prefix="",
        tag=None,
        **classify_options,
    ):
        """Options of `~photutils_clusterclf.regions_io.class_regions` for a classified table.

        They draw the class column that `classify` wrote for ``source``, at
        the positions it used: a source table's own pixel columns follow
        ``origin`` and ``use``, whereas the tables built from regions,
        `~astropy.coordinates.SkyCoord` or arrays hold 0-based positions.

        Parameters
        ----------
        source : object
            The ``source`` given to `classify`.
        origin, use, columns, column_style, prefix, tag : optional
            As given to `classify`.
        **classify_options
            Other options of `classify`; they do not change the regions.

        Returns
        -------
        options : dict
            ``column``, ``origin``, ``use`` and ``columns``.
        """
        from_table = isinstance(source, Table)
        names = self.column_names(column_style=column_style, prefix=prefix, tag=tag)
        return {
            "column": names["class"],
            "origin": origin if from_table else None,
            "use": use if from_table else "auto",
            "columns": columns if from_table else None,
        }

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
        card = self.card
        return provenance(
            model_arch=card.arch,
            model_members=self.n_members,
            model_sha256=self.sha256 or "unsaved",
            bands=list(card.bands),
            cutout_size=card.cutout_size,
            input_size=card.input_size,
            normalization=dict(card.normalization),
            temperature=card.temperature,
            positions=positions.description,
            device=str(self.device),
            **options,
            citation=CITATION,
        )
