"""`TrainingSet`: the labelled raw cutouts of one or more galaxies, in memory.

Normalisation is not applied here: it happens in the model pipeline,
exactly as at classification time. A training set can be saved to and
loaded from one ``.npz`` file.
"""

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from ..classes import CLASSES, fold_classes
from ..cutouts import (
    DEFAULT_CUTOUT_SIZE,
    FLAG_INVALID_POSITION,
    FLAG_NO_COVERAGE,
    FLAG_NO_OVERLAP,
    extract_cutouts,
)
from ..fileio import atomic_output
from ..images import normalize_band_name
from ..positions import resolve_positions
from ..utils.progress import add_progress_bar

__all__ = ["TrainingSet"]

#: Version of the ``.npz`` training-set file.
TRAINING_SET_VERSION = 1

#: Reasons for leaving a catalogue row out of a training set, in the order
#: they are tested (each excluded row is counted once, under its first reason).
EXCLUSION_REASONS = ("unlabelled", "invalid_position", "no_overlap", "no_coverage")
_FLAG_REASONS = (
    ("invalid_position", FLAG_INVALID_POSITION),
    ("no_overlap", FLAG_NO_OVERLAP),
    ("no_coverage", FLAG_NO_COVERAGE),
)


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
        per_galaxy[name] = {
            "n_rows": int(n_rows.get(name, sel.sum() + sum(exc.values()))),
            "n_objects": int(sel.sum()),
            "classes": _class_counts(labels[sel]),
            "n_excluded": exc,
        }
    totals = {r: sum(g["n_excluded"][r] for g in per_galaxy.values()) for r in EXCLUSION_REASONS}
    return {
        "label_column": label_column,
        "n_objects": int(labels.size),
        "classes": _class_counts(labels),
        "n_excluded": totals,
        "galaxies": per_galaxy,
    }


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
    soft_labels : array-like, shape (N, 4), optional
        Class probabilities to train on instead of ``labels`` (soft labels,
        e.g. the ``consensus_prob1`` ... ``consensus_prob4`` columns of
        `~photutils_clusterclf.consensus_labels`): non-negative, rows
        summing to 1. ``labels`` still drive the class balance and the
        validation.

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
    soft_labels : `numpy.ndarray` or None
        ``(N, 4)`` float32 class probabilities, or None (hard labels).
    """

    def __init__(
        self, cutouts, labels, *, galaxy=None, bands, size=None, summary=None, soft_labels=None
    ):
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
            raise ValueError(
                f"labels must be classes 1-4, found {bad[:5]}; fold catalogue "
                "codes with fold_classes or use TrainingSet.from_galaxies"
            )
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
        self.soft_labels = None if soft_labels is None else _check_soft_labels(soft_labels, n)
        self._fingerprint = None

    def __len__(self):
        return self.labels.size

    def __repr__(self):
        counts = ", ".join(f"{c}: {n}" for c, n in self.summary["classes"].items())
        excluded = sum(self.summary["n_excluded"].values())
        return (
            f"<TrainingSet {len(self)} objects ({counts}) from "
            f"{len(self.galaxies)} galaxies, {excluded} rows excluded, "
            f"bands={','.join(self.bands)} size={self.size}px>"
        )

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
            if self.soft_labels is not None:
                digest.update(self.soft_labels.data)
            digest.update(json.dumps([self.galaxy.tolist(), list(self.bands)]).encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @classmethod
    def from_galaxies(
        cls,
        galaxies,
        *,
        label_column,
        cutout_size=DEFAULT_CUTOUT_SIZE,
        bands=None,
        origin=None,
        mapping=None,
        progress_bar=False,
        soft_label_columns=None,
    ):
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
        soft_label_columns : sequence of 4 str, optional
            Columns of class probabilities 1-4 to train on as soft labels
            (e.g. ``consensus_prob1`` ... ``consensus_prob4`` with
            ``label_column="consensus_class"``); they must be finite on
            every labelled row.

        Returns
        -------
        `TrainingSet`
        """
        if soft_label_columns is not None and len(soft_label_columns) != len(CLASSES):
            raise ValueError(
                "soft_label_columns must name 4 columns (probabilities of the "
                f"classes 1-4), got {list(soft_label_columns)}"
            )
        entries = [_galaxy_entry(g, k, label_column, origin) for k, g in enumerate(galaxies)]
        if not entries:
            raise ValueError("no galaxies given: pass a list of (catalog, images[, name]) entries")
        names = [e["name"] for e in entries]
        if len(set(names)) != len(names):
            raise ValueError(f"galaxy names must be unique, got {names}")
        bands = tuple(bands) if bands is not None else tuple(entries[0]["images"].bands)
        parts, labels, galaxy, excluded, n_rows, soft = [], [], [], {}, {}, []
        for entry in add_progress_bar(entries, desc="cutouts", unit="galaxy", enabled=progress_bar):
            name = entry["name"]
            data, folded, soft_part, reasons = _galaxy_cutouts(
                entry,
                cutout_size=cutout_size,
                bands=bands,
                mapping=mapping,
                soft_label_columns=soft_label_columns,
            )
            parts.append(data)
            labels.append(folded)
            if soft_part is not None:
                soft.append(soft_part)
            galaxy.append(np.full(len(folded), name))
            excluded[name], n_rows[name] = reasons, len(entry["catalog"])
        labels = np.concatenate(labels).astype(np.int64)
        galaxy = np.concatenate(galaxy)
        summary = _summarize(
            labels, galaxy, excluded=excluded, n_rows=n_rows, label_column=label_column
        )
        if soft_label_columns is not None:
            summary["soft_label_columns"] = list(soft_label_columns)
        _add_empty_galaxies(summary, names, excluded=excluded, n_rows=n_rows)
        return cls(
            np.concatenate(parts),
            labels,
            galaxy=galaxy,
            bands=bands,
            size=cutout_size,
            summary=summary,
            soft_labels=np.concatenate(soft) if soft else None,
        )

    def save(self, path, *, overwrite=False):
        """Write the training set to one ``.npz`` file (atomically).

        Parameters
        ----------
        path : str or `~pathlib.Path`
            Output file.
        overwrite : bool, optional
            Replace an existing file.
        """
        soft = {} if self.soft_labels is None else {"soft_labels": self.soft_labels}
        with atomic_output(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                version=np.int64(TRAINING_SET_VERSION),
                cutouts=self.cutouts,
                labels=self.labels,
                galaxy=self.galaxy,
                bands=np.asarray(self.bands),
                size=np.int64(self.size),
                summary=np.asarray(json.dumps(self.summary)),
                **soft,
            )

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
            raise ValueError(
                f"{path} has training-set format version {int(data['version'])}; "
                f"this package reads version {TRAINING_SET_VERSION}"
            )
        return cls(
            data["cutouts"],
            data["labels"],
            galaxy=data["galaxy"],
            bands=data["bands"].tolist(),
            size=int(data["size"]),
            summary=json.loads(str(data["summary"])),
            soft_labels=data.get("soft_labels"),
        )


def _check_soft_labels(soft_labels, n):
    """``(n, 4)`` float32 class probabilities, or `ValueError`."""
    soft = np.asarray(soft_labels, dtype=np.float64)
    if soft.shape != (n, len(CLASSES)):
        raise ValueError(f"soft_labels must have shape ({n}, 4), got {soft.shape}")
    if not (
        np.isfinite(soft).all()
        and (soft >= 0).all()
        and np.allclose(soft.sum(axis=1), 1, atol=1e-4)
    ):
        raise ValueError(
            "soft_labels must be finite, non-negative class probabilities whose rows sum to 1"
        )
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


def _soft_columns(catalog, columns, name):
    """``(rows, 4)`` soft labels of one catalogue (NaN where masked)."""
    missing = [c for c in columns if c not in catalog.colnames]
    if missing:
        raise KeyError(
            f"soft-label column(s) {', '.join(map(repr, missing))} not in the "
            f"catalogue of {name}; columns are {', '.join(catalog.colnames)}"
        )
    return np.stack(
        [np.ma.filled(np.ma.asarray(catalog[c], dtype=float), np.nan) for c in columns], axis=1
    )


def _galaxy_entry(item, index, label_column, origin):
    if isinstance(item, dict):
        unknown = set(item) - {"catalog", "images", "name", "label_column", "origin"}
        if unknown or not {"catalog", "images"} <= set(item):
            raise ValueError(
                "a galaxy dict needs keys 'catalog' and 'images' (optional 'name', "
                f"'label_column', 'origin'); got {sorted(item)}"
            )
        entry = dict(item)
    elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
        entry = dict(zip(("catalog", "images", "name"), item))
    else:
        raise TypeError(
            "each galaxy must be (catalog, images), (catalog, images, name) or a "
            f"dict; got {type(item).__name__}"
        )
    meta = getattr(entry["catalog"], "meta", {}) or {}
    name = entry.get("name") or meta.get("galaxy") or meta.get("target") or f"galaxy{index}"
    entry["name"] = str(name)
    entry.setdefault("label_column", label_column)
    entry.setdefault("origin", origin)
    return entry


def _add_empty_galaxies(summary, names, *, excluded, n_rows):
    """List the galaxies without a single usable object in ``summary`` too."""
    for name in names:
        summary["galaxies"].setdefault(
            name,
            {
                "n_rows": n_rows[name],
                "n_objects": 0,
                "classes": _class_counts(np.zeros(0, np.int64)),
                "n_excluded": excluded[name],
            },
        )


def _galaxy_cutouts(entry, *, cutout_size, bands, mapping, soft_label_columns):
    """The classifiable labelled cutouts of one galaxy entry (see `_galaxy_entry`).

    Returns the cutouts, their folded labels, their soft labels (None
    without ``soft_label_columns``) and the counts of rows left out, by
    reason.
    """
    catalog, name, column = entry["catalog"], entry["name"], entry["label_column"]
    if column not in catalog.colnames:
        raise KeyError(
            f"label column {column!r} not in the catalogue of {name}; "
            f"columns are {', '.join(catalog.colnames)}"
        )
    folded = fold_classes(catalog[column], mapping=mapping)
    positions = resolve_positions(catalog, entry["images"], origin=entry["origin"])
    keep = np.flatnonzero(folded > 0)
    batch = extract_cutouts(
        entry["images"], positions.x[keep], positions.y[keep], size=cutout_size, bands=bands
    )
    reasons = {"unlabelled": int(len(catalog) - keep.size)}
    # Each left-out cutout counts once, under the first of its flags.
    remaining = batch.flags.copy()
    for reason, bit in _FLAG_REASONS:
        hit = (remaining & bit) != 0
        reasons[reason] = int(hit.sum())
        remaining[hit] = 0
    ok = batch.classifiable
    if not ok.all():
        warnings.warn(
            f"{name}: {int((~ok).sum())} labelled candidates left out of the "
            "training set because their cutouts cannot be classified "
            f"({reasons})",
            AstropyUserWarning,
        )
    soft = None
    if soft_label_columns is not None:
        soft = _soft_columns(catalog, soft_label_columns, name)[keep][ok]
    return batch.data[ok], folded[keep][ok], soft, reasons
