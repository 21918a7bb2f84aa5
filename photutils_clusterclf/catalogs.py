"""Readers and column conventions for PHANGS-HST and LEGUS cluster catalogues.

Two public catalogue families are understood natively:

* PHANGS-HST high-level science products (``hlsp_phangs-cat_*`` FITS
  tables), whose pixel columns ``PHANGS_X`` / ``PHANGS_Y`` are 0-based;
* LEGUS high-level science products (``*_padagb-mwext-avgapcor.tab``
  whitespace ASCII tables without header), whose pixel columns are 1-based
  (IRAF / DS9 convention).

Every reader records the pixel convention in ``table.meta["origin"]`` so
that `photutils_clusterclf.positions.resolve_positions` converts positions
without guessing, and the format in ``table.meta["catalog_format"]``.
"""

import re
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import registry
from astropy.table import MaskedColumn, QTable

from .classes import PHANGS_FOLD, fold_classes
from .connect import FITS_ORIGIN_KEY

__all__ = [
    "LEGUS_BANDS",
    "LEGUS_MAG_SENTINEL",
    "PHANGS_FOLDED_COLUMN",
    "PHANGS_HUMAN_COLUMN",
    "read_candidates",
    "read_catalog",
    "read_legus_catalog",
    "read_phangs_catalog",
]

#: Column of PHANGS human classes (codes 0-19).
PHANGS_HUMAN_COLUMN = "PHANGS_CLUSTER_CLASS_HUMAN"

#: Column added by `read_phangs_catalog`: the human class folded onto 1-4.
PHANGS_FOLDED_COLUMN = "PHANGS_CLUSTER_CLASS_HUMAN_FOLDED"

#: Magnitude (and error) value LEGUS writes for "no detection in this band".
LEGUS_MAG_SENTINEL = 99.999

#: Filters of the five LEGUS magnitude columns, in file order, for the
#: WFC3/UVIS + ACS galaxies such as NGC 1566. Galaxies observed in ACS
#: F435W or F606W use those names instead: pass ``bands=`` to the reader.
LEGUS_BANDS = ("F275W", "F336W", "F438W", "F555W", "F814W")

# Columns 17-32 of every LEGUS .tab file: SED-fit results and fit statistics.
_LEGUS_SED_COLUMNS = (
    ("age", u.yr),
    ("age_max", u.yr),
    ("age_min", u.yr),
    ("mass", u.Msun),
    ("mass_max", u.Msun),
    ("mass_min", u.Msun),
    ("ebv", u.mag),
    ("ebv_max", u.mag),
    ("ebv_min", u.mag),
)
# Classification columns after column 33 (n_filters), by total column count.
_LEGUS_CLASS_COLUMNS = {
    34: ("class",),
    35: ("class", "class_mean"),
    39: (
        "class",
        "class_method",
        "class_human_mode",
        "class_ml",
        "class_human_verify",
        "class_4_reclass",
    ),
}
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
_ACCEPTED = "LEGUS .tab, PHANGS-HST FITS, or any FITS / ECSV / CSV table astropy can read"


#: Public PHANGS-HST catalogue file names (Maschmann et al. 2024 release):
#: ``hlsp_phangs-cat_hst_<instr>_<target>_multi_v1_<product>.fits``.
PHANGS_FILE_NAME = re.compile(
    r"hlsp_phangs-cat_hst_(?P<instrument>[a-z0-9-]+)_(?P<target>[a-z0-9-]+)_multi_v1_"
    r"(?P<product>obs-(?:human|machine)-cluster-class12|"
    r"obs-(?:human|machine)-compact-association-class3|obs-sed-candidates|"
    r"obs-candidates)\.fits(?:\.gz)?$",
    re.IGNORECASE,
)

#: Identifier columns of PHANGS-HST catalogues, in the order they are looked for.
PHANGS_ID_COLUMNS = ("ID_PHANGS_CLUSTER", "ID_PHANGS_CANDIDATE", "ID_PHANGS_ALLSOURCES")


def _phangs_meta(table, path):
    """Target, instrument and product from a public file name; the identifier column."""
    match = PHANGS_FILE_NAME.match(Path(path).name)
    if match:
        table.meta.setdefault("target", match["target"].upper())
        table.meta.setdefault("instrument", match["instrument"].upper())
        table.meta["phangs_product"] = match["product"].lower()
    ids = [c for c in PHANGS_ID_COLUMNS if c in table.colnames]
    if ids:
        table.meta["id_column"] = ids[0]


def _fold_phangs(table, path):
    """Add the folded human-class column and the PHANGS metadata in place."""
    if "PHANGS_X" not in table.colnames or "PHANGS_Y" not in table.colnames:
        raise ValueError(
            f"{path} is not a PHANGS-HST cluster catalogue: it has no PHANGS_X / PHANGS_Y columns"
        )
    if PHANGS_HUMAN_COLUMN in table.colnames:
        folded = fold_classes(table[PHANGS_HUMAN_COLUMN], mapping=PHANGS_FOLD)
        if PHANGS_FOLDED_COLUMN in table.colnames:  # a file this package wrote
            table[PHANGS_FOLDED_COLUMN] = folded
        else:
            index = table.colnames.index(PHANGS_HUMAN_COLUMN) + 1
            table.add_column(folded, name=PHANGS_FOLDED_COLUMN, index=index)
    table.meta["origin"] = 0
    table.meta["catalog_format"] = "phangs"
    _phangs_meta(table, path)
    return table


def read_phangs_catalog(path):
    """Read a PHANGS-HST cluster catalogue (FITS).

    The PHANGS-HST high-level science product catalogues hold one row per
    candidate with ``ID_PHANGS_CLUSTER``, 0-based pixel positions
    ``PHANGS_X`` / ``PHANGS_Y``, sky positions ``PHANGS_RA`` /
    ``PHANGS_DEC``, Vega magnitudes ``PHANGS_<BAND>_VEGA``, the
    concentration index ``PHANGS_CI``, and the classes
    ``PHANGS_CLUSTER_CLASS_HUMAN`` and/or ``PHANGS_CLUSTER_CLASS_ML_VGG``
    (and ``..._QUAL``). All columns are kept unchanged.

    The human codes go beyond the four classes; they are folded onto 1-4
    by `photutils_clusterclf.classes.PHANGS_FOLD` (via
    `~photutils_clusterclf.classes.fold_classes`) into a new column
    ``PHANGS_CLUSTER_CLASS_HUMAN_FOLDED`` placed after the original:

    ========  =========================================================  ======
    code      PHANGS meaning                                             folded
    ========  =========================================================  ======
    0         not classified                                             0
    1         symmetric, centrally concentrated cluster                  1
    2         asymmetric / elongated, centrally concentrated cluster     2
    3         compact association (multiple peaks)                       3
    4         not a cluster (star, artefact, ...)                        4
    5-19      specific non-clusters (5 star pair, 6 saturated star,      4
              8 diffraction spike, 9 background galaxy, 12 edge,
              13 triple, ... )
    other     invalid / masked / NaN                                     0
    ========  =========================================================  ======

    Parameters
    ----------
    path : str or `~pathlib.Path`
        The FITS catalogue.

    Returns
    -------
    table : `~astropy.table.QTable`
        The catalogue, with ``meta["origin"] = 0`` (pixel positions are
        0-based) and ``meta["catalog_format"] = "phangs"``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable FITS table with ``PHANGS_X`` /
        ``PHANGS_Y`` columns.
    """
    path = _existing(path)
    try:
        table = QTable.read(path, format="fits")
    except Exception as exc:  # astropy raises many types for a bad file
        raise ValueError(f"cannot read {path} as a PHANGS-HST FITS catalogue: {exc}") from None
    return _fold_phangs(table, path)


def read_legus_catalog(path, *, bands=LEGUS_BANDS):
    """Read a LEGUS cluster catalogue (``*_padagb-mwext-avgapcor.tab``).

    The files are whitespace-separated ASCII without header. Columns
    (1-based, as in the LEGUS header files) and the names given here:

    =======  ==========================  =======================================
    column   name                        meaning
    =======  ==========================  =======================================
    1        ``id``                      source id
    2, 3     ``x``, ``y``                pixel position, **1-based** (kept as is)
    4, 5     ``ra``, ``dec``             sky position (deg)
    6-15     ``mag_<BAND>``,             Vega magnitude and error in five bands
             ``mag_err_<BAND>``          (``bands``); 99.999 = no detection
    16       ``ci``                      concentration index, mag(1 px) - mag(3 px)
    17-25    ``age``, ``age_max``,       SED-fit age (yr), mass (Msun), E(B-V)
             ``age_min``, ``mass``, ...  (mag) with 68 % limits
    26-30    ``chi2_<BAND>``             SED-fit residual per band
    31       ``chi2_reduced``            reduced chi2 of the SED fit
    32       ``q_probability``           Q probability of the SED fit
    33       ``n_filters``               number of filters with detection
    =======  ==========================  =======================================

    The class columns depend on the format:

    * standard format, 34 or 35 columns: 34 ``class`` = mode of the human
      classifications (the final class), 35 (if present) ``class_mean`` =
      mean of the human classifications (float; a large difference to the
      mode flags uncertain cases). This follows the LEGUS header files that
      MAST distributes next to the ``.tab`` files.
    * hybrid format, 39 columns: 34 ``class`` = final (hybrid human /
      machine) class, 35 ``class_method`` (0 machine only; 1 machine + 1
      human; 3 three humans + machine; 4 three humans + machine + 1 human;
      6 reclassified class 4), 36 ``class_human_mode`` (mode of three
      humans), 37 ``class_ml`` (machine class), 38 ``class_human_verify``
      (single-human verification of the machine class), 39
      ``class_4_reclass`` (class-4 reclassification).

    Class columns are int16 (0 = not classified) except ``class_mean``.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        The ``.tab`` file.
    bands : sequence of 5 str, optional
        Filters of the five magnitude columns, in file order. The default
        (`LEGUS_BANDS`) fits the WFC3 galaxies; some galaxies have ACS
        F435W / F606W instead (see the galaxy's header file).

    Returns
    -------
    table : `~astropy.table.QTable`
        Named columns; ``ra`` / ``dec`` are `~astropy.units.Quantity` in deg;
        magnitudes and their errors are masked where the file has the
        99.999 sentinel (`LEGUS_MAG_SENTINEL`). ``x`` / ``y`` are exactly as
        in the file (1-based), and ``meta["origin"] = 1`` says so:
        `~photutils_clusterclf.positions.resolve_positions` reads it and
        converts to 0-based pixels (``x - 1``). ``meta["catalog_format"]``
        is ``"legus"`` and ``meta["legus_columns"]`` the column count.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not numeric whitespace ASCII with 34, 35 or 39
        columns, or ``bands`` is not five names.
    """
    path = _existing(path)
    bands = tuple(str(band).upper() for band in bands)
    if len(bands) != 5:
        raise ValueError(
            f"bands must name the 5 LEGUS magnitude columns in file "
            f"order, got {len(bands)}: {bands}"
        )
    try:
        data = np.loadtxt(path, ndmin=2, dtype=float)
    except ValueError as exc:
        raise ValueError(
            f"cannot read {path} as a LEGUS .tab catalogue "
            f"(whitespace ASCII numbers, no header): {exc}"
        ) from None
    ncol = data.shape[1]
    if ncol not in _LEGUS_CLASS_COLUMNS:
        accepted = ", ".join(str(n) for n in sorted(_LEGUS_CLASS_COLUMNS))
        raise ValueError(f"{path} has {ncol} columns; LEGUS catalogues have {accepted} columns")

    table = QTable(meta={"origin": 1, "catalog_format": "legus", "legus_columns": ncol})
    table["id"] = data[:, 0].astype(np.int64)
    table["x"] = data[:, 1]
    table["y"] = data[:, 2]
    table["ra"] = data[:, 3] * u.deg
    table["dec"] = data[:, 4] * u.deg
    for i, band in enumerate(bands):
        for offset, name in ((0, f"mag_{band}"), (1, f"mag_err_{band}")):
            values = data[:, 5 + 2 * i + offset]
            # 99.999 marks a non-detection; compare with a tolerance because
            # the file stores it as printed text.
            missing = np.isclose(values, LEGUS_MAG_SENTINEL)
            table[name] = MaskedColumn(values, mask=missing, fill_value=np.nan)
    table["ci"] = data[:, 15]
    for i, (name, unit) in enumerate(_LEGUS_SED_COLUMNS):
        table[name] = data[:, 16 + i] * unit
    for i, band in enumerate(bands):
        table[f"chi2_{band}"] = data[:, 25 + i]
    table["chi2_reduced"] = data[:, 30]
    table["q_probability"] = data[:, 31]
    table["n_filters"] = data[:, 32].astype(np.int16)
    for i, name in enumerate(_LEGUS_CLASS_COLUMNS[ncol]):
        values = data[:, 33 + i]
        table[name] = values if name == "class_mean" else values.astype(np.int16)
    return table


def read_catalog(path, *, format=None):
    """Read any supported candidate catalogue, dispatching on its content.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        The catalogue file.
    format : str, optional
        ``"legus"``, ``"phangs"``, or an astropy ``Table.read`` format name
        (``"fits"``, ``"ascii.ecsv"``, ``"ascii.csv"``, ...). By default:
        a ``.tab`` file is read by `read_legus_catalog`; anything else
        goes to astropy, which picks the format from the extension or the
        content. A table with ``PHANGS_X`` / ``PHANGS_Y`` columns (FITS or
        any other format) then gets the `read_phangs_catalog` conventions:
        folded human classes and ``meta["origin"] = 0``.

    Returns
    -------
    table : `~astropy.table.QTable`
        The catalogue. LEGUS and PHANGS tables carry ``meta["origin"]``;
        generic tables keep whatever metadata the file had.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be read in any accepted format.
    """
    path = _existing(path)
    if format is None:
        format = "legus" if path.suffix.lower() == ".tab" else None
    if format == "legus":
        return read_legus_catalog(path)
    if format == "phangs":
        return read_phangs_catalog(path)
    if format is None and path.name.lower().endswith(_FITS_SUFFIXES):
        format = "fits"
    try:
        table = QTable.read(path, format=format)
    except Exception as exc:  # astropy raises many types for a bad file
        raise ValueError(
            f"cannot read {path} (format={format!r}): {exc}; accepted: {_ACCEPTED}"
        ) from None
    if FITS_ORIGIN_KEY in table.meta:  # written by this package's FITS writer
        table.meta.setdefault("origin", int(table.meta.pop(FITS_ORIGIN_KEY)))
    if "PHANGS_X" in table.colnames and "PHANGS_Y" in table.colnames:
        return _fold_phangs(table, path)
    return table


def _existing(path):
    """``Path(path)``, or a one-line `FileNotFoundError` if it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue file {path} does not exist")
    return path


def read_candidates(path):
    """Candidates from a file: a catalogue table, or the regions of a DS9 file.

    DS9 files (``.reg``, ``.ds9``) are read with the ``regions`` package
    (whose pixel centres are 0-based); everything else goes through
    `read_catalog`.

    Parameters
    ----------
    path : str or `~pathlib.Path`
        Catalogue (FITS, ECSV, CSV, LEGUS ``.tab``) or DS9 ``.reg`` file.

    Returns
    -------
    source : `~astropy.table.QTable` or `~regions.Regions`
    """
    path = _existing(path)
    if path.suffix.lower() in (".reg", ".ds9"):
        from regions import Regions

        try:
            return Regions.read(path, format="ds9")
        except Exception as exc:  # the regions parser raises many types
            raise ValueError(f"cannot read {path} as a DS9 region file: {exc}") from None
    return read_catalog(path)


# Astropy unified I/O: QTable.read(path, format="legus") / format="phangs".
registry.register_reader("legus", QTable, read_legus_catalog, force=True)
registry.register_reader("phangs", QTable, read_phangs_catalog, force=True)
